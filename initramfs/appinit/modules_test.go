package appinit

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/plinth/plinth/internal/testenv"
)

// TestStaticNodes: the nodes of modules.devname of the modules named are
// made where missing, as character devices with the module's numbers; an
// existing node is left alone, another module's is not made.
func TestStaticNodes(t *testing.T) {
	testenv.Root(t, "makes device nodes")
	mods, dev := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(mods, "modules.devname"), []byte("# comment\nloop loop-control c10:237\ntun net/tun c10:200\nvfio vfio/vfio c10:196\nvhost_net vhost-net c10:238\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dev, "loop-control"), []byte("kept"), 0o600); err != nil {
		t.Fatal(err)
	}
	made, err := staticNodes(dev, mods, "loop", "tun", "vhost_net")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(made, []string{"net/tun", "vhost-net"}) {
		t.Fatalf("made %q", made)
	}
	var st unix.Stat_t
	if err := unix.Stat(filepath.Join(dev, "net/tun"), &st); err != nil {
		t.Fatal(err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFCHR || unix.Major(st.Rdev) != 10 || unix.Minor(st.Rdev) != 200 || st.Mode&0o777 != 0o600 {
		t.Fatalf("net/tun: mode %o rdev %d:%d", st.Mode, unix.Major(st.Rdev), unix.Minor(st.Rdev))
	}
	if b, _ := os.ReadFile(filepath.Join(dev, "loop-control")); string(b) != "kept" {
		t.Fatal("an existing node was replaced")
	}
	if made, err := staticNodes(dev, mods, "loop", "tun", "vhost_net"); err != nil || len(made) != 0 {
		t.Fatalf("again: made %q, %v", made, err)
	}
	os.WriteFile(filepath.Join(mods, "modules.devname"), []byte("tun ../../etc/x c10:200\n"), 0o644)
	if _, err := os.Lstat(filepath.Join(dev, "vfio")); err == nil {
		t.Fatal("a node of a module not named was made")
	}
	if _, err := staticNodes(dev, mods, "tun"); err == nil {
		t.Fatal("a node outside /dev accepted")
	}
}

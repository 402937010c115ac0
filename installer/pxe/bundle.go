package pxe

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// Bundle says where a bundle's parts come from.
type Bundle struct {
	Kernel, Initrd string
	// IPXEDir holds IPXEFiles (Debian's ipxe package: /usr/lib/ipxe).
	IPXEDir string
	// Cmdline is added to the generic script's kernel command line.
	Cmdline []string
}

// DefaultIPXEDir is where Debian's ipxe package puts its binaries.
const DefaultIPXEDir = "/usr/lib/ipxe"

// Write lays the bundle out in dir (see the package comment), replacing
// what is there. The generic boot.ipxe loads the kernel and initramfs from
// beside itself and carries no per-host settings: it is for other DHCP/TFTP
// servers (dnsmasq, QEMU's -netdev user,tftp=); plinth-pxe serve renders a
// per-host script instead.
func (b Bundle) Write(dir string) error {
	if err := os.MkdirAll(filepath.Join(dir, AnswersDir), 0o755); err != nil {
		return err
	}
	files := map[string]string{KernelFile: b.Kernel, InitrdFile: b.Initrd}
	for _, f := range IPXEFiles {
		files[f] = filepath.Join(b.IPXEDir, f)
	}
	for name, src := range files {
		if err := copyFile(src, filepath.Join(dir, name)); err != nil {
			if name != KernelFile && name != InitrdFile {
				err = fmt.Errorf("%w (install Debian's ipxe package)", err)
			}
			return fmt.Errorf("pxe bundle: %w", err)
		}
	}
	s := Script{Cmdline: b.Cmdline, Comment: []string{"Plinth network boot (generic: no per-host settings; plinth-pxe serve renders per-host scripts)"}}
	return os.WriteFile(filepath.Join(dir, ScriptFile), []byte(s.Render()), 0o644)
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp := dst + ".tmp"
	out, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		os.Remove(tmp)
		return fmt.Errorf("copying %s: %w", src, err)
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, dst)
}

package installer

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/plinth/plinth/api"

	"github.com/plinth/plinth/internal/testenv"
)

func TestGPTRoundTripAndSgdisk(t *testing.T) {
	const size = 64 << 20
	tab := Table{DiskGUID: "504C4E54-0000-4000-8000-000000000001", Sectors: size / SectorSize}
	tab.Partitions = []Partition{
		{Type: TypeEFISystem, GUID: "504C4E54-0000-4000-8000-0000000000E1", Name: LabelESP, First: 2048, Last: 2048 + 32768 - 1, Attributes: AttrLegacyBIOSBootable},
		{Type: TypeLinuxFS, GUID: "504C4E54-0000-4000-8000-0000000000E2", Name: LabelState, First: 2048 + 32768, Last: tab.LastUsable()},
	}
	primary, backup, err := tab.Marshal([]byte("boot code"))
	if err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(t.TempDir(), "disk.img")
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(primary, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(backup, size-int64(len(backup))); err != nil {
		t.Fatal(err)
	}
	got, err := ReadTable(f, size)
	if err != nil {
		t.Fatal(err)
	}
	if got.DiskGUID != tab.DiskGUID || len(got.Partitions) != 2 || got.Partitions[0] != tab.Partitions[0] || got.Partitions[1] != tab.Partitions[1] {
		t.Fatalf("read back %+v, want %+v", got, tab)
	}
	// sgdisk (gdisk, installed by make deps) is the independent check.
	if _, err := exec.LookPath("sgdisk"); err != nil {
		testenv.Unmet(t, "sgdisk not installed")
	}
	out, err := exec.Command("sgdisk", "-v", img).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "No problems found") {
		t.Fatalf("sgdisk -v: %v\n%s", err, out)
	}
	out, _ = exec.Command("sgdisk", "-i", "1", img).CombinedOutput()
	for _, want := range []string{"C12A7328-F81F-11D2-BA4B-00A0C93EC93B", "504C4E54-0000-4000-8000-0000000000E1", "'PLINTH-EFI'", "Attribute flags: 0000000000000004"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("sgdisk -i 1 lacks %q:\n%s", want, out)
		}
	}
}

const goodHash = "$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy"

func TestParseAnswer(t *testing.T) {
	a, err := ParseAnswer(strings.NewReader(`# Plinth answer file
disk.serial = TARGET0
disk.min_size = 4G
overwrite = yes
root_password_hash = '` + goodHash + `'
hostname = esx-01
network = static
address = 192.0.2.10/24
gateway = 192.0.2.1
dns = 192.0.2.53, 192.0.2.54
ntp = pool.ntp.org
ssh_key = ssh-ed25519 AAAAC3Nza admin@example
after = reboot
`))
	if err != nil {
		t.Fatal(err)
	}
	if a.Disk.Serial != "TARGET0" || a.Disk.MinSize != 4<<30 || !a.Overwrite || a.PasswordHash != goodHash ||
		a.Hostname != "esx-01" || a.Network.Mode != "static" || a.Network.Address.String() != "192.0.2.10/24" ||
		len(a.Network.DNS) != 2 || a.Network.Hostname != "esx-01" || len(a.NTP) != 1 || len(a.SSHKeys) != 1 || a.After != "reboot" {
		t.Fatalf("parsed %+v", a)
	}
}

func TestParseAnswerErrorsNameTheLine(t *testing.T) {
	for _, tc := range []struct{ text, want string }{
		{"root_password_hash = " + goodHash + "\ncolour = blue\n", "line 2 (colour): unknown key"},
		{"\n\nroot_password_hash = hunter2\n", "line 3 (root_password_hash): not a bcrypt hash"},
		{"root_password = Secret-123\n", "line 1 (root_password): a clear-text password is refused"},
		{"hostname = a\n", "root_password_hash is required"},
		{"root_password_hash = " + goodHash + "\nnetwork = static\n", "line 2 (network): static needs an address"},
		{"root_password_hash = " + goodHash + "\nhostname = a\nhostname = b\n", "line 3 (hostname): given twice (first on line 2)"},
		{"root_password_hash = " + goodHash + "\njust words\n", "line 2: \"just words\" is not `key = value`"},
		{"root_password_hash = " + goodHash + "\naddress = 10.0.0.1/8\n", "line 2 (address): only with network = static"},
	} {
		_, err := ParseAnswer(strings.NewReader(tc.text))
		var le *LineError
		if err == nil || !errors.As(err, &le) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want an error containing %q", tc.text, err, tc.want)
		}
	}
}

func TestSelect(t *testing.T) {
	cands := []Candidate{
		{Disk: api.HostDisk{Name: "vda", SizeBytes: 400 << 20, Serial: "USB"}, BootMedium: true, Refused: "it is the boot medium Plinth is running from"},
		{Disk: api.HostDisk{Name: "vdb", SizeBytes: 8 << 30, Serial: "TARGET0", Model: "QEMU HARDDISK"}},
		{Disk: api.HostDisk{Name: "vdc", SizeBytes: 16 << 30, Serial: "OLD"}, Warnings: []string{"holds another Plinth installation"}},
	}
	if c, err := Select(cands, DiskSelector{Serial: "TARGET0"}, false); err != nil || c.Disk.Name != "vdb" {
		t.Errorf("serial: %v %v", c.Disk.Name, err)
	}
	if c, err := Select(cands, DiskSelector{Model: "QEMU*"}, false); err != nil || c.Disk.Name != "vdb" {
		t.Errorf("model: %v %v", c.Disk.Name, err)
	}
	if _, err := Select(cands, DiskSelector{Path: "/dev/vda"}, true); !errors.Is(err, ErrRefused) {
		t.Errorf("boot medium: %v, want ErrRefused", err)
	}
	if _, err := Select(cands, DiskSelector{Serial: "NOPE"}, true); !errors.Is(err, ErrNoDisk) {
		t.Errorf("no match: %v", err)
	}
	if _, err := Select(cands, DiskSelector{}, true); !errors.Is(err, ErrAmbiguous) {
		t.Errorf("two eligible: %v", err)
	}
	if _, err := Select(cands, DiskSelector{Path: "vdc"}, false); !errors.Is(err, ErrNeedsForce) {
		t.Errorf("other Plinth without overwrite: %v", err)
	}
	if c, err := Select(cands, DiskSelector{MinSize: 10 << 30}, true); err != nil || c.Disk.Name != "vdc" {
		t.Errorf("min size with overwrite: %v %v", c.Disk.Name, err)
	}
}

// TestCandidatesRefuseTheBootMedium builds a fake /sys, /proc and /dev:
// vda holds the mounted STATE (the stick), vdb is blank, vdc has a mounted
// datastore, vdd holds old data, vde is too small.
func TestCandidatesRefuseTheBootMedium(t *testing.T) {
	root := t.TempDir()
	sys, proc, dev := filepath.Join(root, "sys"), filepath.Join(root, "proc"), filepath.Join(root, "dev")
	mk := func(p string) {
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"vda", "vdb", "vdc", "vdd", "vde"} {
		mk(filepath.Join(sys, "block", d, "queue"))
		os.WriteFile(filepath.Join(sys, "block", d, "queue", "logical_block_size"), []byte("512\n"), 0o644)
		f, _ := os.Create(filepath.Join(dev, d))
		if f == nil {
			mk(dev)
			f, _ = os.Create(filepath.Join(dev, d))
		}
		if d == "vdd" {
			f.Write([]byte("old data"))
		}
		f.Close()
	}
	for _, p := range []struct{ disk, part, majmin string }{{"vda", "vda2", "254:2"}, {"vdc", "vdc3", "254:35"}} {
		mk(filepath.Join(sys, "block", p.disk, p.part))
		os.WriteFile(filepath.Join(sys, "block", p.disk, p.part, "partition"), []byte("2\n"), 0o644)
		mk(filepath.Join(sys, "dev", "block"))
		if err := os.Symlink(filepath.Join(sys, "block", p.disk, p.part), filepath.Join(sys, "dev", "block", p.majmin)); err != nil {
			t.Fatal(err)
		}
	}
	mk(filepath.Join(proc, "self"))
	os.WriteFile(filepath.Join(proc, "self", "mountinfo"), []byte(
		"30 1 254:2 / /var/lib/plinth rw,noatime - ext4 /dev/vda2 rw\n"+
			"31 1 254:35 / /datastores/ds1 rw - ext4 /dev/vdc3 rw\n"+
			"22 1 0:21 / /run rw - tmpfs tmpfs rw\n"), 0o644)
	e := Env{Sys: sys, Proc: proc, Dev: dev, StateDir: "/var/lib/plinth"}
	hw := api.Hardware{Disks: []api.HostDisk{
		{Name: "vda", SizeBytes: 322 << 20, Partitions: []api.Partition{{Name: "vda1", Label: LabelESP, FSType: "vfat"}, {Name: "vda2", Label: LabelState, FSType: "ext4"}}, PlinthInstall: true},
		{Name: "vdb", SizeBytes: 8 << 30},
		{Name: "vdc", SizeBytes: 8 << 30, Partitions: []api.Partition{{Name: "vdc3", Label: "PLINTH-DS1", FSType: "ext4"}}},
		{Name: "vdd", SizeBytes: 8 << 30},
		{Name: "vde", SizeBytes: 1 << 30},
	}}
	got := map[string]Candidate{}
	for _, c := range Candidates(hw, e) {
		got[c.Disk.Name] = c
	}
	if c := got["vda"]; !c.BootMedium || !strings.Contains(c.Refused, "boot medium") {
		t.Errorf("vda (the stick): %+v", c)
	}
	if c := got["vdb"]; c.Refused != "" || len(c.Warnings) != 0 {
		t.Errorf("vdb (blank): %+v", c)
	}
	if c := got["vdc"]; !strings.Contains(c.Refused, "mounted on /datastores/ds1") {
		t.Errorf("vdc (mounted datastore): %+v", c)
	}
	if c := got["vdd"]; c.Refused != "" || len(c.Warnings) != 1 || !strings.Contains(c.Warnings[0], "not blank") {
		t.Errorf("vdd (old data): %+v", c)
	}
	if c := got["vde"]; !strings.Contains(c.Refused, "too small") {
		t.Errorf("vde (1 GiB): %+v", c)
	}
	if _, err := Select(Candidates(hw, e), DiskSelector{}, false); err != nil {
		t.Errorf("without a selector the one blank eligible disk should win... got %v", err)
	}
}

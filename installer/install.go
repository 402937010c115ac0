package installer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/board"
	"github.com/plinth/plinth/layout"
	"github.com/plinth/plinth/netconf"
)

// Config is what to carry into the new STATE. Empty fields are taken from
// the running host's STATE (what the DCUI set so far), if it has them.
type Config struct {
	PasswordHash string // bcrypt
	Hostname     string
	Network      *netconf.Config
	NTP          []string
	SSHKeys      []string
}

// Plan is one install, ready to write.
type Plan struct {
	Target     api.HostDisk
	TargetPath string // /dev/vdb
	// Source is the boot medium's disk (its ESP is copied).
	SourcePath string
	SourceESP  Partition
	Table      Table
	Config     Config
	Env        Env
}

// Progress is one report of Install: the step, and how far it is (Done
// of Total bytes, when the step has a size).
type Progress struct {
	Step        string
	Done, Total int64
	Message     string
}

// Steps of Install, in order.
const (
	StepPrepare   = "prepare"
	StepESP       = "copy boot partition"
	StepState     = "write STATE"
	StepDatastore = "write datastore"
	StepTable     = "write partition table"
	StepVerify    = "verify"
	StepDone      = "done"
)

// NewPlan checks the target and the boot medium and lays the disk out.
func NewPlan(e Env, target Candidate, cfg Config) (Plan, error) {
	if target.Refused != "" {
		return Plan{}, fmt.Errorf("%w: %s: %s", ErrRefused, target.Disk.Name, target.Refused)
	}
	p := Plan{Target: target.Disk, TargetPath: filepath.Join(e.Dev, target.Disk.Name), Config: cfg, Env: e}
	src, part, err := findSource(e)
	if err != nil {
		return Plan{}, err
	}
	if src == target.Disk.Name {
		return Plan{}, fmt.Errorf("%w: %s is the boot medium", ErrRefused, src)
	}
	p.SourcePath, p.SourceESP = filepath.Join(e.Dev, src), part
	sectors := target.Disk.SizeBytes / SectorSize
	// Deterministic GUIDs would make two installed disks alike; these are
	// fresh, derived from the disk's serial, name and the time.
	seed := fmt.Sprintf("%s/%s/%d", target.Disk.Serial, target.Disk.Name, time.Now().UnixNano())
	t := Table{DiskGUID: guidFrom(seed, "disk"), Sectors: sectors}
	espLast := uint64(ESPFirstLBA + ESPSize/SectorSize - 1)
	stateLast := espLast + StateSize/SectorSize
	align := uint64(2048)
	dsLast := (t.LastUsable()+1)/align*align - 1
	t.Partitions = []Partition{
		{Type: TypeEFISystem, GUID: guidFrom(seed, "esp"), Name: LabelESP, First: ESPFirstLBA, Last: espLast, Attributes: AttrLegacyBIOSBootable},
		{Type: TypeLinuxFS, GUID: guidFrom(seed, "state"), Name: LabelState, First: espLast + 1, Last: stateLast},
		{Type: TypeLinuxFS, GUID: guidFrom(seed, "ds1"), Name: LabelDatastore, First: stateLast + 1, Last: dsLast},
	}
	if err := t.Validate(); err != nil {
		return Plan{}, fmt.Errorf("layout for %s: %w", target.Disk.Name, err)
	}
	if t.Partitions[2].Size() < MinDatastore {
		return Plan{}, fmt.Errorf("%w: %s is too small for a datastore", ErrRefused, target.Disk.Name)
	}
	p.Table = t
	if e.Mke2fs == "" {
		return Plan{}, errors.New("mke2fs is missing (it comes with the appliance's payload on /usr)")
	}
	return p, nil
}

func guidFrom(seed, what string) string {
	s := sha256.Sum256([]byte(seed + "/" + what))
	s[6] = s[6]&0x0f | 0x40 // version 4 layout
	s[8] = s[8]&0x3f | 0x80
	h := fmt.Sprintf("%X", s[:16])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// findSource finds the boot medium: the disk holding the mounted STATE and
// a GPT whose PLINTH-EFI partition lies where Plinth's images put it.
func findSource(e Env) (string, Partition, error) {
	disk := e.stateDisk()
	if disk == "" {
		return "", Partition{}, fmt.Errorf("%w: STATE is not mounted from a disk (booted live, e.g. from the ISO?); boot the USB image (plinth-VERSION.img) to install", ErrNoSource)
	}
	f, err := os.Open(filepath.Join(e.Dev, disk))
	if err != nil {
		return "", Partition{}, fmt.Errorf("%w: %v", ErrNoSource, err)
	}
	defer f.Close()
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return "", Partition{}, err
	}
	t, err := ReadTable(f, size)
	if err != nil {
		return "", Partition{}, fmt.Errorf("%w: %s: %v", ErrNoSource, disk, err)
	}
	esp, ok := t.Find(LabelESP)
	if !ok || esp.First != ESPFirstLBA || esp.Size() != ESPSize {
		return "", Partition{}, fmt.Errorf("%w: %s has no %s partition of %d MiB at sector %d", ErrNoSource, disk, LabelESP, ESPSize>>20, ESPFirstLBA)
	}
	return disk, esp, nil
}

// BootESP is the device (/dev/vda1) of the boot medium's ESP: the
// PLINTH-EFI partition on the disk holding the mounted STATE. Upgrades
// write their banks there.
func (e Env) BootESP() (string, error) {
	disk := e.stateDisk()
	if disk == "" {
		return "", fmt.Errorf("%w: STATE is not mounted from a disk (booted live, from an ISO or the network)", ErrNoSource)
	}
	f, err := os.Open(filepath.Join(e.Dev, disk))
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrNoSource, err)
	}
	defer f.Close()
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return "", err
	}
	t, err := ReadTable(f, size)
	if err != nil {
		return "", fmt.Errorf("%w: %s: %v", ErrNoSource, disk, err)
	}
	for i, p := range t.Partitions {
		if p.Name == LabelESP {
			return filepath.Join(e.Dev, PartitionName(disk, i+1)), nil
		}
	}
	return "", fmt.Errorf("%w: %s has no %s partition", ErrNoSource, disk, LabelESP)
}

// PartitionName is the kernel's name of partition n of disk: vda1,
// nvme0n1p1, mmcblk0p1.
func PartitionName(disk string, n int) string {
	if c := disk[len(disk)-1]; c >= '0' && c <= '9' {
		return fmt.Sprintf("%sp%d", disk, n)
	}
	return fmt.Sprintf("%s%d", disk, n)
}

// Install writes the plan to the target disk, reporting progress (which may
// be nil). The target is opened exclusively: a disk something has mounted
// meanwhile is not written.
func Install(ctx context.Context, p Plan, progress func(Progress)) error {
	if progress == nil {
		progress = func(Progress) {}
	}
	report := func(step, format string, args ...any) {
		progress(Progress{Step: step, Message: fmt.Sprintf(format, args...)})
	}
	report(StepPrepare, "installing Plinth %s from %s to %s (%s, model %q, serial %q)", api.Version, p.SourcePath, p.TargetPath, HumanSize(p.Target.SizeBytes), p.Target.Model, p.Target.Serial)
	stage, err := os.MkdirTemp("", "plinth-install-state-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(stage)
	if err := p.stageState(stage); err != nil {
		return fmt.Errorf("step %s: %w", StepPrepare, err)
	}
	// Old partition tables first: a disk that is half written must not
	// look like the disk it was.
	if err := wipeTables(p.TargetPath, int64(p.Table.Sectors)*SectorSize); err != nil {
		return fmt.Errorf("step %s: %w", StepPrepare, err)
	}

	esp := p.Table.Partitions[0]
	srcSum, err := copyRange(ctx, p.SourcePath, p.SourceESP.Offset(), p.TargetPath, esp.Offset(), esp.Size(),
		func(done, total int64) { progress(Progress{Step: StepESP, Done: done, Total: total}) })
	if err != nil {
		return fmt.Errorf("step %s: %w", StepESP, err)
	}
	report(StepESP, "boot partition (boot loaders, bank A with Plinth %s, empty bank B) copied", api.Version)

	st := p.Table.Partitions[1]
	report(StepState, "ext4 %s, %s, with the configuration", LabelState, HumanSize(uint64(st.Size())))
	if err := p.mke2fs(ctx, st, LabelState, stage); err != nil {
		return fmt.Errorf("step %s: %w", StepState, err)
	}
	ds := p.Table.Partitions[2]
	report(StepDatastore, "ext4 %s, %s", LabelDatastore, HumanSize(uint64(ds.Size())))
	if err := p.mke2fs(ctx, ds, LabelDatastore, ""); err != nil {
		return fmt.Errorf("step %s: %w", StepDatastore, err)
	}

	report(StepTable, "GPT: %s, %s, %s", LabelESP, LabelState, LabelDatastore)
	if err := p.writeTable(); err != nil {
		return fmt.Errorf("step %s: %w", StepTable, err)
	}

	report(StepVerify, "reading back what was written")
	if err := p.verify(ctx, srcSum, func(done, total int64) { progress(Progress{Step: StepVerify, Done: done, Total: total}) }); err != nil {
		return fmt.Errorf("step %s: %w", StepVerify, err)
	}
	rereadPartitions(p.TargetPath)
	report(StepDone, "Plinth is installed on %s", p.TargetPath)
	return nil
}

// stageState writes the new STATE's files into dir.
func (p Plan) stageState(dir string) error {
	if err := StageState(dir, p.Env.StateDir, p.Config); err != nil {
		return err
	}
	info := fmt.Sprintf("version=%s\ninstalled=%s\nfrom=%s\n", api.Version, time.Now().UTC().Format(time.RFC3339), p.SourcePath)
	return os.WriteFile(layout.Host{State: dir}.InstalledMarker(), []byte(info), 0o644)
}

// StageState writes c into the STATE tree dir: the root password (in the
// format package auth reads, owned by mgmtd), the management network, the
// host name, NTP servers and SSH keys. What c leaves empty is carried over
// from the STATE tree cur, which may be dir itself (a stateless host's
// tmpfs STATE, configured in place at every boot).
func StageState(dir, cur string, c Config) error {
	to, from := layout.Host{State: dir}, layout.Host{State: cur}
	mg := to.AuthDir()
	if err := os.MkdirAll(mg, 0o700); err != nil {
		return err
	}
	if err := os.MkdirAll(to.ConfigDir(), 0o755); err != nil {
		return err
	}
	if c.PasswordHash != "" {
		// The format auth reads (auth/account.go: passwdFile).
		b, _ := json.MarshalIndent(map[string]any{
			"version": 1,
			"users": map[string]any{api.RootUser: map[string]any{
				"hash": c.PasswordHash, "changed_at": time.Now().UTC(),
			}},
		}, "", "  ")
		if err := os.WriteFile(filepath.Join(mg, "passwd.json"), append(b, '\n'), 0o600); err != nil {
			return err
		}
	} else if err := copyIfExists(filepath.Join(from.AuthDir(), "passwd.json"), filepath.Join(mg, "passwd.json"), 0o600); err != nil {
		return err
	}
	if err := copyIfExists(filepath.Join(from.AuthDir(), "security.json"), filepath.Join(mg, "security.json"), 0o600); err != nil {
		return err
	}
	for _, f := range []string{mg, filepath.Join(mg, "passwd.json"), filepath.Join(mg, "security.json")} {
		if err := os.Lchown(f, api.MgmtdUID, api.MgmtdGID); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	if c.Network != nil {
		n := *c.Network
		if c.Hostname != "" {
			n.Hostname = c.Hostname
		}
		if err := netconf.Save(dir, n); err != nil {
			return err
		}
	} else if err := copyIfExists(filepath.Join(cur, netconf.FileName), filepath.Join(dir, netconf.FileName), 0o644); err != nil {
		return err
	}
	if c.Hostname != "" {
		if err := os.WriteFile(to.HostnameFile(), []byte(c.Hostname+"\n"), 0o644); err != nil {
			return err
		}
	} else if err := copyIfExists(from.HostnameFile(), to.HostnameFile(), 0o644); err != nil {
		return err
	}
	if len(c.NTP) > 0 {
		if err := os.WriteFile(to.NTPFile(), []byte(strings.Join(c.NTP, "\n")+"\n"), 0o644); err != nil {
			return err
		}
	}
	if len(c.SSHKeys) > 0 {
		if err := os.WriteFile(to.SSHKeysFile(), []byte(strings.Join(c.SSHKeys, "\n")+"\n"), 0o600); err != nil {
			return err
		}
	}
	return nil
}

func copyIfExists(src, dst string, mode os.FileMode) error {
	if filepath.Clean(src) == filepath.Clean(dst) {
		return nil // carried over in place
	}
	b, err := os.ReadFile(src)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, mode)
}

// wipeTables zeroes the first and last MiB of the disk (MBR, both GPTs).
func wipeTables(dev string, size int64) error {
	f, err := os.OpenFile(dev, os.O_RDWR|unix.O_EXCL, 0)
	if err != nil {
		return fmt.Errorf("open %s exclusively: %w", dev, err)
	}
	defer f.Close()
	zero := make([]byte, 1<<20)
	if _, err := f.WriteAt(zero, 0); err != nil {
		return fmt.Errorf("wipe %s: %w", dev, err)
	}
	if _, err := f.WriteAt(zero, size-int64(len(zero))); err != nil {
		return fmt.Errorf("wipe %s: %w", dev, err)
	}
	return f.Sync()
}

// copyRange copies n bytes from src at soff to dst at doff and returns the
// SHA-256 of what it read.
func copyRange(ctx context.Context, src string, soff int64, dst string, doff, n int64, progress func(done, total int64)) ([]byte, error) {
	in, err := os.Open(src)
	if err != nil {
		return nil, err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_RDWR|unix.O_EXCL, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s exclusively: %w", dst, err)
	}
	defer out.Close()
	h := sha256.New()
	buf := make([]byte, 4<<20)
	for done := int64(0); done < n; {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		m := min(int64(len(buf)), n-done)
		if _, err := in.ReadAt(buf[:m], soff+done); err != nil {
			return nil, fmt.Errorf("read %s: %w", src, err)
		}
		if _, err := out.WriteAt(buf[:m], doff+done); err != nil {
			return nil, fmt.Errorf("write %s: %w", dst, err)
		}
		h.Write(buf[:m])
		done += m
		progress(done, n)
	}
	if err := out.Sync(); err != nil {
		return nil, fmt.Errorf("sync %s: %w", dst, err)
	}
	return h.Sum(nil), nil
}

// mke2fs makes an ext4 file system in partition part of the target
// (addressed by offset: the partition table is written last), filled from
// dir when it is not "".
func (p Plan) mke2fs(ctx context.Context, part Partition, label, dir string) error {
	args := []string{"-q", "-F", "-t", "ext4", "-L", label, "-m", "0",
		"-E", "offset=" + strconv.FormatInt(part.Offset(), 10) + ",nodiscard"}
	if dir != "" {
		args = append(args, "-d", dir)
	}
	args = append(args, p.TargetPath, strconv.FormatInt(part.Size()>>10, 10)+"k")
	cmd := exec.CommandContext(ctx, p.Env.Mke2fs, args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("mke2fs %s: %v: %s", label, err, bytes.TrimSpace(out))
	}
	return nil
}

func (p Plan) writeTable() error {
	boot, err := readAt(p.SourcePath, 0, 440)
	if err != nil {
		return fmt.Errorf("read the boot medium's MBR boot code: %w", err)
	}
	primary, backup, err := p.Table.Marshal(boot)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(p.TargetPath, os.O_RDWR|unix.O_EXCL, 0)
	if err != nil {
		return fmt.Errorf("open %s exclusively: %w", p.TargetPath, err)
	}
	defer f.Close()
	if _, err := f.WriteAt(primary, 0); err != nil {
		return err
	}
	if _, err := f.WriteAt(backup, int64(p.Table.Sectors)*SectorSize-int64(len(backup))); err != nil {
		return err
	}
	return f.Sync()
}

func readAt(path string, off int64, n int) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b := make([]byte, n)
	_, err = f.ReadAt(b, off)
	return b, err
}

// verify reads the target back: the partition table as planned, the ESP
// equal to the source's bytes, and each file system's label.
func (p Plan) verify(ctx context.Context, espSum []byte, progress func(done, total int64)) error {
	// Bypass the page cache, so the bytes come from the disk: drop it.
	if f, err := os.Open(p.TargetPath); err == nil {
		_ = unix.IoctlSetInt(int(f.Fd()), unix.BLKFLSBUF, 0)
		f.Close()
	}
	f, err := os.Open(p.TargetPath)
	if err != nil {
		return err
	}
	defer f.Close()
	t, err := ReadTable(f, int64(p.Table.Sectors)*SectorSize)
	if err != nil {
		return fmt.Errorf("%w: partition table: %v", ErrVerifyFails, err)
	}
	if len(t.Partitions) != len(p.Table.Partitions) {
		return fmt.Errorf("%w: partition table has %d partitions, want %d", ErrVerifyFails, len(t.Partitions), len(p.Table.Partitions))
	}
	for i, got := range t.Partitions {
		if got != p.Table.Partitions[i] {
			return fmt.Errorf("%w: partition %d reads back as %+v, want %+v", ErrVerifyFails, i+1, got, p.Table.Partitions[i])
		}
	}
	esp := t.Partitions[0]
	h := sha256.New()
	buf := make([]byte, 4<<20)
	for done := int64(0); done < esp.Size(); {
		if err := ctx.Err(); err != nil {
			return err
		}
		m := min(int64(len(buf)), esp.Size()-done)
		if _, err := f.ReadAt(buf[:m], esp.Offset()+done); err != nil {
			return err
		}
		h.Write(buf[:m])
		done += m
		progress(done, esp.Size())
	}
	if !bytes.Equal(h.Sum(nil), espSum) {
		return fmt.Errorf("%w: the boot partition on %s differs from the boot medium's", ErrVerifyFails, p.TargetPath)
	}
	for i, want := range []string{LabelESP, LabelState, LabelDatastore} {
		part := t.Partitions[i]
		_, label := board.Probe(io.NewSectionReader(f, part.Offset(), part.Size()))
		if label != want {
			return fmt.Errorf("%w: partition %d has file system label %q, want %q", ErrVerifyFails, i+1, label, want)
		}
	}
	return nil
}

// rereadPartitions asks the kernel to read the new partition table.
func rereadPartitions(dev string) {
	f, err := os.Open(dev)
	if err != nil {
		return
	}
	defer f.Close()
	_ = unix.IoctlSetInt(int(f.Fd()), unix.BLKRRPART, 0)
}

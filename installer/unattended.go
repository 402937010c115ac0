package installer

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/plinth/plinth/board"
)

// Where answer files come from (AnswerSource.Name).
const (
	// FWCfgName is the QEMU fw_cfg item: -fw_cfg name=opt/plinth/answer,file=answer.cfg
	FWCfgName = "opt/plinth/answer"
	// CmdlineKey is the kernel command line parameter: plinth.answer=URL
	// (http://, https:// or file://).
	CmdlineKey = "plinth.answer"
	// OEMStringPrefix starts an SMBIOS OEM string (type 11) carrying the
	// answer file in base64: -smbios type=11,value=plinth.answer.b64:BASE64
	OEMStringPrefix = "plinth.answer.b64:"
	// MediaAnswerFile is the answer file's path on the boot medium's ESP.
	MediaAnswerFile = "plinth/answer.cfg"
)

// ConfigKey is the kernel command line parameter of a stateless host:
// plinth.config=URL names the answer file whose settings (host name,
// network, root password, NTP, SSH keys) a host without STATE applies at
// every boot, without installing (plinth-pxe serve puts it there).
const ConfigKey = "plinth.config"

// AnswerEnv is where FindAnswer looks.
type AnswerEnv struct {
	Sys     string            // /sys
	Cmdline map[string]string // the kernel command line's key=value pairs
	// LoadModule loads a kernel module (qemu_fw_cfg) if it can.
	LoadModule func(name string) error
	// Env finds the boot medium (for its ESP's plinth/answer.cfg).
	Env Env
	// MountDir is an empty directory to mount the boot medium's ESP on.
	MountDir string
}

// FoundAnswer is an answer file and where it came from.
type FoundAnswer struct {
	Source string
	Data   []byte
}

// ErrNoAnswer means no answer file was given anywhere.
var ErrNoAnswer = errors.New("no answer file")

// FindAnswer looks for an answer file, in order: the kernel command line's
// plinth.answer=URL, QEMU's fw_cfg opt/plinth/answer, an SMBIOS OEM string
// plinth.answer.b64:..., the boot medium's ESP (plinth/answer.cfg). One
// from the network is used only as the command line pins it (AnswerPin):
// otherwise the error says why, wrapping ErrUnverified, and nothing of it
// is used.
func FindAnswer(ctx context.Context, e AnswerEnv) (FoundAnswer, error) {
	if u, ok := e.Cmdline[CmdlineKey]; ok && u != "" {
		pin, err := PinFromCmdline(e.Cmdline)
		if err == nil {
			err = pin.Permits(u)
		}
		var b []byte
		if err == nil {
			b, err = fetch(ctx, u, pin)
		}
		if err == nil {
			err = pin.Check(b)
		}
		if err != nil {
			return FoundAnswer{}, fmt.Errorf("%s=%s: %w", CmdlineKey, u, err)
		}
		return FoundAnswer{Source: CmdlineKey + "=" + u, Data: b}, nil
	}
	fw := filepath.Join(e.Sys, "firmware", "qemu_fw_cfg")
	if _, err := os.Stat(fw); err != nil && e.LoadModule != nil {
		_ = e.LoadModule("qemu_fw_cfg")
	}
	if b, err := os.ReadFile(filepath.Join(fw, "by_name", FWCfgName, "raw")); err == nil {
		return FoundAnswer{Source: "fw_cfg " + FWCfgName, Data: b}, nil
	}
	for _, s := range oemStrings(e.Sys) {
		if rest, ok := strings.CutPrefix(s, OEMStringPrefix); ok {
			b, err := base64.StdEncoding.DecodeString(rest)
			if err != nil {
				return FoundAnswer{}, fmt.Errorf("SMBIOS OEM string %s: %w", OEMStringPrefix, err)
			}
			return FoundAnswer{Source: "SMBIOS OEM string", Data: b}, nil
		}
	}
	if b, src, err := mediaAnswer(e); err == nil {
		return FoundAnswer{Source: src, Data: b}, nil
	}
	return FoundAnswer{}, ErrNoAnswer
}

func fetch(ctx context.Context, u string, pin AnswerPin) ([]byte, error) {
	if p, ok := strings.CutPrefix(u, "file://"); ok {
		return os.ReadFile(p)
	}
	if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
		return nil, errors.New("want an http://, https:// or file:// URL")
	}
	hc := pin.HTTPClient(10 * time.Second)
	var last error
	// The network may still be settling: a few tries, 60 s in all.
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		req, _ := http.NewRequestWithContext(cctx, http.MethodGet, u, nil)
		resp, err := hc.Do(req)
		if err == nil {
			b, rerr := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
			resp.Body.Close()
			cancel()
			if resp.StatusCode != http.StatusOK {
				return nil, fmt.Errorf("GET: %s", resp.Status)
			}
			return b, rerr
		}
		cancel()
		if errors.Is(err, ErrPinned) {
			return nil, err
		}
		last = err
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
	return nil, last
}

// oemStrings reads the strings of the SMBIOS type 11 structures.
func oemStrings(sys string) []string {
	dirs, _ := filepath.Glob(filepath.Join(sys, "firmware", "dmi", "entries", "11-*"))
	var out []string
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, "raw"))
		if err != nil || len(b) < 5 {
			continue
		}
		// A formatted area of b[1] bytes, then NUL-terminated strings.
		for _, s := range bytes.Split(b[b[1]:], []byte{0}) {
			if len(s) > 0 {
				out = append(out, string(s))
			}
		}
	}
	return out
}

// mediaAnswer reads plinth/answer.cfg from the boot medium's ESP, mounted
// read-only for the moment.
func mediaAnswer(e AnswerEnv) ([]byte, string, error) {
	if e.MountDir == "" {
		return nil, "", ErrNoAnswer
	}
	dev, err := e.Env.BootESP()
	if err != nil {
		return nil, "", ErrNoAnswer
	}
	if err := os.MkdirAll(e.MountDir, 0o755); err != nil {
		return nil, "", err
	}
	if err := unix.Mount(dev, e.MountDir, "vfat", unix.MS_RDONLY|unix.MS_NOEXEC|unix.MS_NODEV|unix.MS_NOSUID, ""); err != nil {
		return nil, "", err
	}
	defer unix.Unmount(e.MountDir, 0)
	b, err := os.ReadFile(filepath.Join(e.MountDir, MediaAnswerFile))
	if err != nil {
		return nil, "", ErrNoAnswer
	}
	return b, "boot medium " + dev + ":/" + MediaAnswerFile, nil
}

// UnattendedResult is what Unattended did.
type UnattendedResult struct {
	Source   string // where the answer file came from
	Disk     string // the target, /dev/...
	Duration time.Duration
	After    string // "poweroff" or "reboot"
}

// Unattended runs an unattended install from a, logging each step with
// logf. An error before any write says so (a bad answer file names its
// line, a disk that does not match says which disks there are).
func Unattended(ctx context.Context, e Env, a *Answer, logf func(format string, args ...any)) (UnattendedResult, error) {
	t0 := time.Now()
	res := UnattendedResult{After: a.After}
	hw, err := board.Read(board.DefaultRoot())
	if err != nil {
		return res, fmt.Errorf("reading the disks: %w", err)
	}
	cands := Candidates(hw, e)
	for _, c := range cands {
		state := "eligible"
		if c.Refused != "" {
			state = "refused: " + c.Refused
		}
		if len(c.Warnings) > 0 {
			state += " (" + strings.Join(c.Warnings, "; ") + ")"
		}
		logf("disk %s: %s, model %q, serial %q: %s", c.Disk.Name, HumanSize(c.Disk.SizeBytes), c.Disk.Model, c.Disk.Serial, state)
	}
	target, err := Select(cands, a.Disk, a.Overwrite)
	if err != nil {
		if l := firstDiskLine(a); l > 0 {
			return res, fmt.Errorf("answer file line %d: %w", l, err)
		}
		return res, err
	}
	net := a.Network
	plan, err := NewPlan(e, target, Config{PasswordHash: a.PasswordHash, Hostname: a.Hostname, Network: &net, NTP: a.NTP, SSHKeys: a.SSHKeys})
	if err != nil {
		return res, err
	}
	res.Disk = plan.TargetPath
	last := map[string]int64{}
	err = Install(ctx, plan, func(p Progress) {
		if p.Total > 0 {
			pct := p.Done * 100 / p.Total
			if pct/25 == last[p.Step]/25 && pct != 100 {
				return
			}
			last[p.Step] = pct
			logf("install [%5.1fs]: %s %d%%", time.Since(t0).Seconds(), p.Step, pct)
			return
		}
		logf("install [%5.1fs]: %s: %s", time.Since(t0).Seconds(), p.Step, p.Message)
	})
	res.Duration = time.Since(t0)
	return res, err
}

func firstDiskLine(a *Answer) int {
	for _, k := range []string{"disk", "disk.path", "disk.serial", "disk.model", "disk.min_size", "disk.max_size"} {
		if l := a.Line(k); l > 0 {
			return l
		}
	}
	return 0
}

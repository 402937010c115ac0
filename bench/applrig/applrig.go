// Package applrig boots the appliance under QEMU for benchmarks that need
// it with VMs: a STATE disk seeded with an inventory and the root password,
// a PLINTH-DS1 datastore holding qemu-test's floor guest (the image's kernel
// with the floor initramfs, told to print its marker and stay up), and an
// HTTPS session on the API once the appliance is ready.
package applrig

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/auth"
	qemutest "github.com/plinth/plinth/qemu-test"
	"github.com/plinth/plinth/vmkernel/inventory"
)

// Password is the root password the seeded STATE holds.
const Password = "Bench-Appliance-19"

// GuestCmdline is the floor guest's: it prints qemutest.FloorMarker on its
// serial console and stays up.
const GuestCmdline = "console=ttyS0 panic=-1 " + qemutest.FloorHangCmdline

// GuestSpec is a VM running the floor guest from datastore ds1.
func GuestSpec(name string, memMiB int, autostart bool) api.VMSpec {
	return api.VMSpec{
		Name: name, MemoryMiB: memMiB, Serial: true,
		Kernel:    &api.DirectBoot{Datastore: "ds1", Kernel: "vmlinuz", Initrd: "init.cpio", Cmdline: GuestCmdline},
		Autostart: api.Autostart{Enabled: autostart},
	}
}

// Disks are a seeded STATE and datastore; Reset puts them back as seeded.
type Disks struct {
	State, Datastore string // ext4 images
	// Guest is the directory with the guest's vmlinuz and init.cpio.
	Guest string
}

// Seed writes, under dir, the guest, STATE (specs in the inventory, the
// root password) and the datastore as ext4 images.
func Seed(dir, kernel string, specs ...api.VMSpec) (*Disks, error) {
	return SeedFiles(dir, kernel, nil, specs...)
}

// SeedFiles is Seed with more files on the datastore: files maps a name
// there to the file to copy (keeping its mode).
func SeedFiles(dir, kernel string, files map[string]string, specs ...api.VMSpec) (*Disks, error) {
	d := &Disks{Guest: filepath.Join(dir, "guest"), State: filepath.Join(dir, "state.img"), Datastore: filepath.Join(dir, "ds1.img")}
	if err := os.MkdirAll(d.Guest, 0o755); err != nil {
		return nil, err
	}
	if err := qemutest.InstallGuest(kernel, d.Guest, qemutest.BuildFloor); err != nil {
		return nil, err
	}
	for name, src := range files {
		b, err := os.ReadFile(src)
		if err != nil {
			return nil, err
		}
		fi, _ := os.Stat(src)
		if err := os.WriteFile(filepath.Join(d.Guest, name), b, fi.Mode().Perm()); err != nil {
			return nil, err
		}
	}
	state := filepath.Join(dir, "state-seed")
	inv, err := inventory.Open(filepath.Join(state, "vmkernel", "vms"))
	if err != nil {
		return nil, err
	}
	for _, s := range specs {
		if err := inv.Create(&s); err != nil {
			return nil, fmt.Errorf("seeding VM %s: %w", s.Name, err)
		}
	}
	if err := auth.SetPassword(filepath.Join(state, "mgmtd"), api.RootUser, Password); err != nil {
		return nil, err
	}
	for _, fs := range []struct{ label, seed, img string }{{"PLINTH-STATE", state, d.State}, {"PLINTH-DS1", d.Guest, d.Datastore}} {
		out, err := exec.Command("mke2fs", "-q", "-F", "-t", "ext4", "-L", fs.label, "-d", fs.seed, fs.img+".seed", "128M").CombinedOutput()
		if err != nil {
			return nil, fmt.Errorf("mke2fs %s: %v: %s", fs.label, err, out)
		}
	}
	return d, d.Reset()
}

// Reset copies the seeded images over the ones a boot changed.
func (d *Disks) Reset() error {
	for _, img := range []string{d.State, d.Datastore} {
		b, err := os.ReadFile(img + ".seed")
		if err != nil {
			return err
		}
		if err := os.WriteFile(img, b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// Options are QEMU options that boot the appliance with the disks, as a
// server boots it (qemutest.Options.ServerBoot: the benchmarks time what a
// server does, power-on to a VM's marker among them).
func (d *Disks) Options(kernel, initrd string, cpus, memMiB int) qemutest.Options {
	return qemutest.Options{Kernel: kernel, Initrd: initrd, CPUs: cpus, MemoryMiB: memMiB, ServerBoot: true,
		ExtraArgs: []string{"-drive", "file=" + d.State + ",if=virtio,format=raw", "-drive", "file=" + d.Datastore + ",if=virtio,format=raw"}}
}

// Session is a logged-in API client of an appliance.
type Session struct {
	base, token string
	hc          *http.Client
}

// Login logs in as root with Password.
func Login(ctx context.Context, base string) (*Session, error) {
	s := &Session{base: base, hc: &http.Client{Timeout: 30 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}} // a benchmark on loopback
	var sess api.Session
	if err := s.Do(ctx, http.MethodPost, api.MgmtdSessionsPath, api.LoginRequest{User: api.RootUser, Password: Password}, &sess); err != nil {
		return nil, fmt.Errorf("login: %w", err)
	}
	s.token = sess.Token
	return s, nil
}

// Do sends in (JSON, when not nil) to path and decodes the answer into out
// (a *string takes it as text; nil discards it).
func (s *Session) Do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, s.base+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if s.token != "" {
		req.Header.Set("Authorization", "Bearer "+s.token)
	}
	resp, err := s.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, bytes.TrimSpace(b))
	}
	switch o := out.(type) {
	case nil:
		return nil
	case *string:
		*o = string(b)
		return nil
	default:
		return json.Unmarshal(b, out)
	}
}

// VMPath is the API path of a VM.
func VMPath(name string) string { return api.MgmtdVMsPath + "/" + url.PathEscape(name) }

// WaitMarker polls the VM's console every 200 ms until it shows the
// floor's marker, for at most timeout.
func (s *Session) WaitMarker(ctx context.Context, name string, timeout time.Duration) error {
	var con string
	var err error
	for deadline := time.Now().Add(timeout); ; {
		if err = s.Do(ctx, http.MethodGet, VMPath(name)+"/console", nil, &con); err == nil && strings.Contains(con, qemutest.FloorMarker) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("VM %s: no %s on its console within %v (last: %v; %q)", name, qemutest.FloorMarker, timeout, err, tailOf(con, 300))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Accel is the appliance's acceleration for VMs.
func (s *Session) Accel(ctx context.Context) string {
	var h api.Host
	if err := s.Do(ctx, http.MethodGet, "/api/v1/host", nil, &h); err != nil {
		return "unknown"
	}
	return h.Acceleration.Mode
}

func tailOf(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// LoadAverage is the host's load average, for reports.
func LoadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return "unknown"
}

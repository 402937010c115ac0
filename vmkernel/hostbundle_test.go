package vmkernel_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/auth"
	"github.com/plinth/plinth/layout"
	"github.com/plinth/plinth/vmkernel/vmkerneltest"
)

// TestSupportBundle downloads the support bundle of a rig whose STATE
// holds every kind of secret (the root password's hash, API tokens, the
// TLS key, the SSH host key, a VM's cloud-init password hash and
// user-data): the bundle has the settings, logs, hardware, configuration,
// VM specs and events, and none of the secrets.
func TestSupportBundle(t *testing.T) {
	rig := vmkerneltest.Start(t, vmkerneltest.Options{Hardware: func() (api.Hardware, error) {
		return api.Hardware{System: api.HostSystem{Vendor: "Plinth test board"}}, nil
	}})
	c, lay := rig.Client, rig.Layout
	ctx := context.Background()
	const password = "Bundle-secret-7"
	if err := c.SetPassword(ctx, password); err != nil {
		t.Fatal(err)
	}
	var pf struct {
		Users map[string]struct{ Hash string }
	}
	b, err := os.ReadFile(filepath.Join(lay.AuthDir(), auth.PasswdFile))
	if err := errors.Join(err, json.Unmarshal(b, &pf)); err != nil || pf.Users[api.RootUser].Hash == "" {
		t.Fatalf("the password's hash: %v", err)
	}
	hash := pf.Users[api.RootUser].Hash
	if _, err := c.SetSSH(ctx, api.SSHConfig{}); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "bundle@test", "-f", filepath.Join(rig.Base, "k")).CombinedOutput()
	if err != nil {
		t.Fatalf("ssh-keygen: %v %s", err, out)
	}
	pub, _ := os.ReadFile(filepath.Join(rig.Base, "k.pub"))
	if _, err := c.AddSSHKey(ctx, string(pub)); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(lay.LogDir(), 0o755)
	os.WriteFile(lay.ServiceLog(layout.VMKernel), []byte("2026-12-06T10:00:00Z level=INFO msg=\"vmkernel: serving\"\n"), 0o644)
	os.WriteFile(lay.AuditLog(), []byte(`{"time":"2026-12-06T10:00:00Z","user":"root","action":"PUT /api/v1/host/password","status":204}`+"\n"), 0o600)
	const ciHash, ciUserData = "$6$bundlesalt$bundlehash", "#cloud-config\nchpasswd: {list: 'root:userdata-secret'}\n"
	vm, err := c.CreateVM(ctx, api.VMSpec{Name: "web1", MemoryMiB: 128,
		CloudInit: &api.CloudInit{Hostname: "web1", PasswordHash: ciHash, UserData: ciUserData}})
	if err != nil {
		t.Fatal(err)
	}

	var buf bytes.Buffer
	if _, err := c.SupportBundle(ctx, &buf); err != nil {
		t.Fatal(err)
	}
	files := untar(t, buf.Bytes())
	var names []string
	for n := range files {
		names = append(names, n)
	}
	for _, want := range []string{"README.txt", "settings.json", "services.json", "hardware.json", "host.json", "events.json",
		"vms/web1-" + vm.Spec.ID + ".json", "logs/vmkernel.log", "logs/audit.log", "config/ssh_authorized_keys", "config/ssh.json"} {
		if _, ok := files[want]; !ok {
			t.Errorf("no %s in the bundle (%v)", want, names)
		}
	}
	var s api.HostSettings
	if err := json.Unmarshal(files["settings.json"], &s); err != nil || !s.Password.Set || s.Password.ChangedAt == nil || time.Since(*s.Password.ChangedAt) > time.Minute || len(s.SSH.Keys) != 1 || s.Certificate.Fingerprint == "" {
		t.Errorf("settings.json: %+v, %v", s, err)
	}
	if !strings.Contains(string(files["hardware.json"]), "Plinth test board") {
		t.Errorf("hardware.json: %s", files["hardware.json"])
	}
	var v api.VM
	if err := json.Unmarshal(files["vms/web1-"+vm.Spec.ID+".json"], &v); err != nil || v.Spec.CloudInit == nil ||
		v.Spec.CloudInit.PasswordHash != "(removed)" || v.Spec.CloudInit.UserData != "(removed)" || v.Spec.CloudInit.Hostname != "web1" {
		t.Errorf("the VM's spec: %+v, %v", v.Spec.CloudInit, err)
	}
	if !strings.Contains(string(files["events.json"]), `"created"`) && !strings.Contains(string(files["events.json"]), vm.Spec.ID) {
		t.Errorf("events.json lacks the VM's creation: %s", files["events.json"])
	}
	secrets := []string{password, hash, ciHash, "userdata-secret", "PRIVATE KEY"}
	for name, b := range files {
		for _, sec := range secrets {
			if bytes.Contains(b, []byte(sec)) {
				t.Errorf("%s holds a secret (%.12q...)", name, sec)
			}
		}
	}
}

func untar(t *testing.T, b []byte) map[string][]byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	out := map[string][]byte{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		top, name, ok := strings.Cut(h.Name, "/")
		if !ok || !strings.HasPrefix(top, "plinth-support-") {
			t.Errorf("%s is not below the bundle's directory", h.Name)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out[name] = data
	}
}

package vmkernel_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/board"
	"github.com/plinth/plinth/installer"
	"github.com/plinth/plinth/layout"
	"github.com/plinth/plinth/upgrade"
	"github.com/plinth/plinth/vmkernel"
	"github.com/plinth/plinth/vmkernel/hostconf"
	"github.com/plinth/plinth/vmkernel/inventory"
	"github.com/plinth/plinth/vmkernel/runner"
	"github.com/plinth/plinth/vmkernel/runner/runnertest"
	"github.com/plinth/plinth/vmkernel/vswitch"
	"github.com/plinth/plinth/vmkernel/vswitch/vswitchtest"
)

// FuzzRoutes sends arbitrary bodies to every vmkernel route that takes one
// (the VM spec, disks, power, shutdown, installs, upgrade images and
// rollback, switches, the network confirmation), with every room switched
// on: the installer (on the captured q35 machine, its disks out of reach
// in a scratch /dev), upgrades (a scratch ESP, signed by a key of the
// test), switches (in a network namespace of the test's) and the network
// routes (scratch directories). No input gives a 500 or a panic, and every
// error is a problem document. QEMU is never started: the fuzzed VM is
// defined but stopped.
func FuzzRoutes(f *testing.F) {
	base := runnertest.Dir(f, "fz")
	ds := filepath.Join(base, "ds")
	os.MkdirAll(ds, 0o700)
	inv, err := inventory.Open(filepath.Join(base, "vms"))
	if err != nil {
		f.Fatal(err)
	}
	m, err := runner.New(runner.Config{QEMU: "qemu-system-x86_64", Accel: api.AccelTCG,
		Datastores: map[string]string{"ds": ds},
		RunRoot:    filepath.Join(base, "run"), StateRoot: filepath.Join(base, "vm-state")})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { m.Close() })
	ns := vswitchtest.NewNetNS(f)
	vs, err := vswitch.Open(vswitch.Config{Dir: filepath.Join(base, "switches"), NetNS: &ns})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { vs.Close() })
	fixture := board.FixtureRoot("../board/testdata/qemu-q35", "")
	inst := installer.Env{Sys: fixture.Sys, Proc: fixture.Proc, Dev: filepath.Join(base, "dev"), StateDir: filepath.Join(base, "inst-state")}
	key, err := upgrade.GenerateKey(filepath.Join(base, "upgrade.key"))
	if err != nil {
		f.Fatal(err)
	}
	esp := filepath.Join(base, "esp")
	for p, c := range map[string]string{"A/vmlinuz": "kernel", "A/initrd": "initrd", "A/VERSION": "1.0\n",
		"loader/entries/plinth-0001-a.conf": "title Plinth 1.0 (bank A)\nlinux /A/vmlinuz\ninitrd /A/initrd\noptions plinth.bank=A\n"} {
		os.MkdirAll(filepath.Dir(filepath.Join(esp, p)), 0o755)
		os.WriteFile(filepath.Join(esp, p), []byte(c), 0o644)
	}
	upgState := filepath.Join(base, "upg-state")
	srv := vmkernel.New(vmkernel.Config{Host: func() (api.Host, error) { return api.Host{Hostname: "fuzz"}, nil },
		Inventory: inv, Runner: m, Datastores: map[string]string{"ds": ds},
		Power:     func(string, string) error { return nil },
		Switches:  vs,
		Hardware:  func() (api.Hardware, error) { return board.Read(fixture) },
		Installer: &inst,
		Upgrades: &vmkernel.Upgrades{
			PublicKey: upgrade.EncodePublicKey(key.Public().(ed25519.PublicKey)),
			StageDir:  filepath.Join(base, "stage"),
			Open: func(bool) (upgrade.Host, func(), error) {
				return upgrade.Host{ESP: upgrade.ESP{Dir: esp}, StateDir: upgState, Running: "A", Version: "1.0", Release: 5, Firmware: "uefi"}, func() {}, nil
			},
		},
		// The host's settings in the rig's own directories, without a
		// network to change (its routes answer 501).
		HostConf: hostconf.New(hostconf.Config{Layout: layout.Under(base), Hostname: func() string { return "fuzz" }}),
	})
	h := srv.Handler()
	const id = "00000000-0000-4000-8000-000000000001"
	seed := api.VMSpec{ID: id, Name: "vm1", MemoryMiB: 128}
	if err := inv.Create(&seed); err != nil {
		f.Fatal(err)
	}
	var routes []vmkernel.Route
	for _, rt := range srv.Routes() {
		// Uploads are bytes, not JSON; of the power actions only shutdown
		// takes a body, and it finds the VM stopped. The others would
		// start QEMU, which the fuzzer must not: it would outlive the
		// worker holding the worker's pipes, and the fuzzing coordinator
		// would wait on them for ever.
		if (rt.Method == http.MethodPost || rt.Method == http.MethodPut) && !strings.HasSuffix(rt.Path, "/content") &&
			!startsQEMU(rt.Path) {
			routes = append(routes, rt)
		}
	}
	f.Cleanup(func() {
		if st := m.Status(id); st.State != api.VMStopped {
			m.Stop(context.Background(), id)
			f.Errorf("the fuzzed VM was left %s", st.State)
		}
	})
	spec, _ := json.Marshal(api.VMSpec{Name: "x", MemoryMiB: 128, Disks: []api.Disk{{Datastore: "ds", Path: "a.qcow2"}}})
	k, i := filepath.Join(base, "k"), filepath.Join(base, "i")
	os.WriteFile(k, []byte("a kernel"), 0o644)
	os.WriteFile(i, bytes.Repeat([]byte("an initrd "), 100), 0o644)
	var img bytes.Buffer
	if err := upgrade.Write(&img, key, "2.0", 6, k, i, time.Now()); err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{string(spec), `{"name":"y","vcpus":{"sockets":-1}}`, `{"path":"d.qcow2","size_bytes":1048576,"format":"qcow2"}`,
		`{"path":"d.qcow2","size_bytes":1}`, `{"action":"reboot","reason":"r"}`, `{"timeout_seconds":5}`, `{}`, `null`, `[]`, `{"a":`,
		`{"name":"sw1"}`, `{"name":"sw2","uplink":"lo"}`, `{"disk":"vdb","overwrite":true}`, `{"reboot":false}`, img.String()} {
		for i := range routes {
			f.Add(uint8(i), []byte(s))
		}
	}
	f.Fuzz(func(t *testing.T, which uint8, body []byte) {
		rt := routes[int(which)%len(routes)]
		name := "ds"
		if strings.HasPrefix(rt.Path, api.VMKernelPrefix+"/switches") {
			name = "sw1"
		}
		target := strings.NewReplacer("{id}", id, "{name}", name, "{action}", api.ActionShutdown).Replace(rt.Path)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		req := httptest.NewRequestWithContext(ctx, rt.Method, target, bytes.NewReader(body))
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if st := m.Status(id); st.State != api.VMStopped {
			m.Stop(context.Background(), id)
			t.Fatalf("%s %s with %q left the VM %s: the fuzzer may not start QEMU", rt.Method, target, body, st.State)
		}
		if w.Code == http.StatusInternalServerError {
			t.Fatalf("%s %s with %q: 500: %s", rt.Method, target, body, w.Body)
		}
		if w.Code >= 400 {
			var p api.Problem
			if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil || p.Status != w.Code {
				t.Fatalf("%s %s: %d answer is not a problem: %s", rt.Method, target, w.Code, w.Body)
			}
		}
	})
}

// startsQEMU says whether a route is a power action other than shutdown.
func startsQEMU(path string) bool {
	for _, a := range []string{api.ActionStart, api.ActionStop, api.ActionReset, api.ActionPause, api.ActionResume} {
		if strings.HasSuffix(path, "/{id}/"+a) {
			return true
		}
	}
	return false
}

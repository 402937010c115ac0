package qemutest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/plinth/plinth/api"
)

// TestApplianceDCUIStaticNetwork boots the appliance from scratch with a
// PLINTH-STATE disk (DHCP: 10.0.2.15), sets the password and then a static
// address, 10.0.2.20/24, through the serial console's DCUI, keeps the change
// through the API from the new address (a second port forward, to
// 10.0.2.20), and boots again from the same disk: the API reports the
// static configuration, saved and live.
func TestApplianceDCUIStaticNetwork(t *testing.T) {
	o := e2eOptions(t)
	dir := t.TempDir()
	seed := filepath.Join(dir, "seed")
	if err := os.MkdirAll(seed, 0o755); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(dir, "state.img")
	mkfs(t, "PLINTH-STATE", seed, img, "64M")
	o.CPUs, o.MemoryMiB = 2, 1024
	o.ExtraArgs = []string{"-drive", "file=" + img + ",if=virtio,format=raw"}
	c := newPinnedClient()
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()
	const static = "10.0.2.20"

	// First boot: DHCP, first-boot password.
	vm, ready, err := StartReady(ctx, o, 240*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(vm.Close)
	if ready["mode"] != "installed" || ready["addr"] != "10.0.2.15/24" {
		t.Fatalf("boot 1: ready line %v, want mode=installed addr=10.0.2.15/24", ready)
	}
	firstLogin(ctx, t, vm, c)
	var n api.HostNetwork
	c.getJSON(t, vm.APIURL()+api.Mgmtd(api.HostNetworkPath), &n)
	if n.Saved || n.Config.Mode != api.NetModeDHCP || !slices.Contains(n.Live.Addresses, "10.0.2.15/24") || n.Live.NIC != "eth0" {
		t.Errorf("boot 1, before the change: %+v", n)
	}
	// QEMU's user-mode network leases for a day; the init renews it at T1.
	if l := n.Live.DHCP; l == nil || l.Address != "10.0.2.15/24" || l.Server != "10.0.2.2" || !l.Renew.After(l.Obtained) || !l.Expires.After(l.Renew) {
		t.Errorf("boot 1: the DHCP lease in the API: %+v", l)
	}
	newURL := "https://127.0.0.1:" + strconv.Itoa(hostfwdAdd(t, vm, static))

	// Configure Management Network on the console: Tab moves down the
	// form, Space switches DHCP to static (single bytes: an escape
	// sequence split by the serial line could read as Esc).
	t0 := time.Now()
	if err := LoginViaDCUI(vm, e2ePassword); err != nil {
		t.Fatal(err)
	}
	steps := []struct{ keys, want string }{
		{"jj", "> Configure Management Network"},
		{KeyEnter, "Uplink NIC:"},
		{"\t\t ", "< static >"},
		{"\t" + static, static + "_"},
		{"\t255.255.255.0", "255.255.255.0_"},
		{"\t10.0.2.2", "10.0.2.2_"},
		{"\t\t10.0.2.3", "10.0.2.3_"}, // IPv6 (automatic), then DNS
		{"\t\tesx-net", "esx-net_"},   // search domains, then the host name
		{KeyEnter, "Keep this configuration?"},
	}
	for _, s := range steps {
		if err := vm.press(s.keys, s.want, 60*time.Second); err != nil {
			t.Fatalf("DCUI, typing %q: %v", s.keys, err)
		}
	}
	if err := vm.ExpectScreen("POST https://"+static+api.Mgmtd(api.HostNetConfirmPath), 30*time.Second); err != nil {
		t.Fatal(err)
	}
	t.Logf("static address applied through the DCUI in %v", time.Since(t0).Round(time.Millisecond))

	// Kept through the API, from the new address; the console notices.
	vm.MarkScreen()
	var ch api.NetworkChange
	if err := json.Unmarshal(c.sendJSON(t, http.MethodPost, newURL+api.Mgmtd(api.HostNetConfirmPath), nil, http.StatusOK), &ch); err != nil || !ch.Confirmed || ch.Address != static+"/24" {
		t.Fatalf("confirm: %+v, %v", ch, err)
	}
	if err := vm.ExpectScreen("Confirmed through the API from "+static, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	c.getJSON(t, newURL+api.Mgmtd(api.HostNetworkPath), &n)
	if !n.Saved || n.Config.Address != static+"/24" || n.Pending != nil || n.Live.DHCP != nil || !slices.Contains(n.Live.Addresses, static+"/24") {
		t.Errorf("boot 1, after the change: %+v", n)
	}
	if err := vm.PowerDown(); err != nil {
		t.Fatal(err)
	}
	if code, err := vm.Wait(90 * time.Second); err != nil || code != 0 {
		t.Fatalf("boot 1: power down: exit %d, %v", code, err)
	}
	vm.Close()

	// Second boot from the same disk: static from STATE.
	vm, ready, err = StartReady(ctx, o, 240*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(vm.Close)
	if ready["addr"] != static+"/24" {
		t.Errorf("boot 2: ready line %v, want addr=%s/24", ready, static)
	}
	newURL = "https://127.0.0.1:" + strconv.Itoa(hostfwdAdd(t, vm, static))
	c.login(t, newURL, e2ePassword)
	c.getJSON(t, newURL+api.Mgmtd(api.HostNetworkPath), &n)
	b, _ := json.Marshal(n)
	t.Logf("boot 2: GET %s: %s", api.Mgmtd(api.HostNetworkPath), b)
	want := api.NetworkConfig{Mode: api.NetModeStatic, Address: static + "/24", Gateway: "10.0.2.2", DNS: []string{"10.0.2.3"}, Hostname: "esx-net"}
	cfg := n.Config
	if !n.Saved || cfg.Mode != want.Mode || cfg.Address != want.Address || cfg.Gateway != want.Gateway ||
		strings.Join(cfg.DNS, ",") != "10.0.2.3" || cfg.Hostname != want.Hostname {
		t.Errorf("boot 2: saved configuration %+v, want %+v", cfg, want)
	}
	l := n.Live
	if l.NIC != "eth0" || !l.Link || !slices.Contains(l.Addresses, static+"/24") || slices.Contains(l.Addresses, "10.0.2.15/24") ||
		l.Gateway != "10.0.2.2" || !slices.Contains(l.DNS, "10.0.2.3") || l.Hostname != "esx-net" || n.Pending != nil || l.DHCP != nil || l.Problem != "" {
		t.Errorf("boot 2: live %+v (pending %+v), want eth0 with %s/24 only, via 10.0.2.2, DNS 10.0.2.3, host esx-net", l, n.Pending, static)
	}
	if err := vm.PowerDown(); err != nil {
		t.Fatal(err)
	}
	if code, err := vm.Wait(90 * time.Second); err != nil || code != 0 {
		t.Fatalf("boot 2: power down: exit %d, %v", code, err)
	}
	keepState(t, img) // scanned for secrets after the suite
}

// hostfwdAdd forwards a new localhost port to guest:443 on QEMU's user
// network (HMP hostfwd_add through QMP) and returns the port.
func hostfwdAdd(t *testing.T, vm *VM, guest string) int {
	t.Helper()
	return hostfwdAddPort(t, vm, guest, GuestAPIPort)
}

// hostfwdAddPort forwards a new localhost port to guest:guestPort.
func hostfwdAddPort(t *testing.T, vm *VM, guest string, guestPort int) int {
	t.Helper()
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	vm.qmpMu.Lock()
	defer vm.qmpMu.Unlock()
	q := vm.qmp
	if q == nil {
		t.Fatal("no QMP connection")
	}
	q.conn.SetDeadline(time.Now().Add(5 * time.Second))
	line := fmt.Sprintf("hostfwd_add n0 tcp:127.0.0.1:%d-%s:%d", port, guest, guestPort)
	req, _ := json.Marshal(map[string]any{"execute": "human-monitor-command", "arguments": map[string]string{"command-line": line}})
	if _, err := q.conn.Write(append(req, '\n')); err != nil {
		t.Fatalf("QMP %s: %v", line, err)
	}
	for {
		m, err := q.read()
		if err != nil {
			t.Fatalf("QMP %s: %v", line, err)
		}
		if m.Error != nil {
			t.Fatalf("QMP %s: %s: %s", line, m.Error.Class, m.Error.Desc)
		}
		if m.Return != nil {
			// HMP answers its errors as text.
			if out := strings.Trim(string(m.Return), `"`); strings.TrimSpace(strings.ReplaceAll(out, `\r\n`, "")) != "" {
				t.Fatalf("QMP %s: %s", line, out)
			}
			return port
		}
	}
}

package vmkernel_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/client"
	"github.com/plinth/plinth/netconf"
	"github.com/plinth/plinth/vmkernel/vmkerneltest"
)

// netnsWithDummy makes a named network namespace with a NIC hc0 (a veth
// whose peer hc1 is there too, both up) and returns its name; it goes at
// the end of the test.
func netnsWithDummy(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("needs root for a network namespace")
	}
	ns := fmt.Sprintf("plinth-hc-%d-%d", os.Getpid()%100000, time.Now().UnixNano()%1000)
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
	}
	run("ip", "netns", "add", ns)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	run("ip", "-n", ns, "link", "add", "hc0", "type", "veth", "peer", "name", "hc1")
	run("ip", "-n", ns, "link", "set", "hc0", "up")
	run("ip", "-n", ns, "link", "set", "hc1", "up")
	return ns
}

func nsAddrs(t *testing.T, ns string) string {
	t.Helper()
	out, _ := exec.Command("ip", "-n", ns, "-4", "-o", "addr", "show", "dev", "hc0").CombinedOutput()
	return string(out)
}

// waitChange polls the network until its change in flight has settled
// (or reached state), within d.
func waitChange(t *testing.T, c *client.Client, d time.Duration, done func(api.HostNetwork) bool) api.HostNetwork {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		n, err := c.HostNetwork(ctx)
		cancel()
		if err == nil && done(n) {
			return n
		}
		if time.Now().After(deadline) {
			t.Fatalf("the management network did not get there within %v: %+v (pending %+v, last %+v), %v", d, n, n.Pending, n.LastChange, err)
		}
		time.Sleep(50 * time.Millisecond) // polling the API: nothing to wait on
	}
}

func status(err error) int {
	var e *client.Error
	if errors.As(err, &e) {
		return e.Status
	}
	return 0
}

// TestHostNetworkCommitConfirm drives the management network through
// vmkernel's API, applied for real on a veth in a network namespace:
// a bad change is refused naming the field; a change is applied, refused
// confirmation from another address, kept from its own and saved; the
// next is rolled back on request, and the one after at its deadline.
func TestHostNetworkCommitConfirm(t *testing.T) {
	ns := netnsWithDummy(t)
	rig := vmkerneltest.Start(t, vmkerneltest.Options{Net: &netconf.Host{Applier: &netconf.Applier{SysRoot: "/sys", ProcRoot: "/proc",
		ResolvConf: t.TempDir() + "/resolv.conf"}, NetNS: ns}})
	c := rig.Client
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	n, err := c.HostNetwork(ctx)
	if err != nil || n.Saved || n.Pending != nil || n.Config.Mode != api.NetModeDHCP {
		t.Fatalf("nothing saved: %+v, %v", n, err)
	}
	_, err = c.ChangeNetwork(ctx, api.NetworkChangeRequest{Config: api.NetworkConfig{NIC: "hc0", Mode: "static", Address: "192.0.2.300/24"}})
	var e *client.Error
	if !errors.As(err, &e) || e.Status != http.StatusUnprocessableEntity || e.Problem.Field != "config.address" {
		t.Errorf("a bad address: %v, want 422 naming config.address", err)
	}
	_, err = c.ChangeNetwork(ctx, api.NetworkChangeRequest{Config: api.NetworkConfig{NIC: "hc0", Mode: "static", Address: "192.0.2.10/24"}, ConfirmSeconds: 5})
	if !errors.As(err, &e) || e.Problem.Field != "confirm_seconds" {
		t.Errorf("confirm_seconds 5: %v, want 422 naming it", err)
	}

	first := api.NetworkConfig{NIC: "hc0", Mode: "static", Address: "192.0.2.10/24", Gateway: "192.0.2.1", DNS: []string{"192.0.2.53"}}
	ch, err := c.ChangeNetwork(ctx, api.NetworkChangeRequest{Config: first, ConfirmSeconds: 30})
	if err != nil || ch.State != api.NetChangeApplying || ch.ID == 0 {
		t.Fatalf("change: %+v, %v", ch, err)
	}
	if _, err := c.ChangeNetwork(ctx, api.NetworkChangeRequest{Config: first}); status(err) != http.StatusConflict {
		t.Errorf("a second change while one is in flight: %v, want 409", err)
	}
	n = waitChange(t, c, 30*time.Second, func(n api.HostNetwork) bool { return n.Pending != nil && n.Pending.State == api.NetChangePending })
	if n.Pending.Address != "192.0.2.10/24" || n.Pending.Interface != "hc0" || !strings.Contains(nsAddrs(t, ns), "192.0.2.10/24") {
		t.Fatalf("pending %+v; hc0: %s", n.Pending, nsAddrs(t, ns))
	}
	if _, err := c.ConfirmNetworkFrom(ctx, "10.0.2.15"); status(err) != http.StatusConflict || !strings.Contains(err.Error(), "not on the new management address 192.0.2.10") {
		t.Errorf("confirm from another address: %v", err)
	}
	kept, err := c.ConfirmNetworkFrom(ctx, "192.0.2.10")
	if err != nil || kept.State != api.NetChangeKept || !kept.Confirmed || !strings.Contains(kept.Outcome, "through the API from 192.0.2.10") {
		t.Fatalf("confirm from the new address: %+v, %v", kept, err)
	}
	if saved, ok, err := netconf.Load(rig.Layout.State); !ok || err != nil || saved.Address.String() != "192.0.2.10/24" {
		t.Errorf("saved %+v, %v, %v", saved, ok, err)
	}

	// Rolled back on request (the console's "roll back now").
	second := first
	second.Address = "192.0.2.20/24"
	if _, err := c.ChangeNetwork(ctx, api.NetworkChangeRequest{Config: second, ConfirmSeconds: 30}); err != nil {
		t.Fatal(err)
	}
	waitChange(t, c, 30*time.Second, func(n api.HostNetwork) bool { return n.Pending != nil && n.Pending.State == api.NetChangePending })
	if _, err := c.RollbackNetwork(ctx); err != nil {
		t.Fatal(err)
	}
	n = waitChange(t, c, 30*time.Second, func(n api.HostNetwork) bool { return n.Pending == nil })
	if n.LastChange == nil || n.LastChange.State != api.NetChangeRolledBack || n.LastChange.Outcome != "rolled back on request" {
		t.Errorf("last change %+v", n.LastChange)
	}
	if a := nsAddrs(t, ns); !strings.Contains(a, "192.0.2.10/24") || strings.Contains(a, "192.0.2.20") {
		t.Errorf("after the rollback hc0 has %s", a)
	}

	// Not confirmed: rolled back by itself at its deadline.
	t0 := time.Now()
	if _, err := c.ChangeNetwork(ctx, api.NetworkChangeRequest{Config: second, ConfirmSeconds: 10}); err != nil {
		t.Fatal(err)
	}
	n = waitChange(t, c, 30*time.Second, func(n api.HostNetwork) bool {
		return n.LastChange != nil && n.LastChange.ID > kept.ID+1 && n.Pending == nil
	})
	took := time.Since(t0)
	if n.LastChange.State != api.NetChangeRolledBack || !strings.HasPrefix(n.LastChange.Outcome, "not confirmed by") || took < 10*time.Second {
		t.Errorf("after the deadline: %+v (after %v)", n.LastChange, took)
	}
	if a := nsAddrs(t, ns); !strings.Contains(a, "192.0.2.10/24") || strings.Contains(a, "192.0.2.20") {
		t.Errorf("after the deadline hc0 has %s", a)
	}
	t.Logf("an unconfirmed change (10 s) was rolled back %v after it was asked", took.Round(time.Millisecond))

	// The console keeps a change without an address check.
	if _, err := c.ChangeNetwork(ctx, api.NetworkChangeRequest{Config: second, ConfirmSeconds: 30}); err != nil {
		t.Fatal(err)
	}
	waitChange(t, c, 30*time.Second, func(n api.HostNetwork) bool { return n.Pending != nil && n.Pending.State == api.NetChangePending })
	if ch, err := c.ConfirmNetwork(ctx); err != nil || !strings.Contains(ch.Outcome, "on the console") {
		t.Errorf("console confirm: %+v, %v", ch, err)
	}
	if _, err := c.ConfirmNetwork(ctx); status(err) != http.StatusConflict {
		t.Errorf("confirm with nothing pending: %v, want 409", err)
	}
}

package vmkernel_test

import (
	"context"
	"errors"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/client"
	"github.com/plinth/plinth/vmkernel"
	"github.com/plinth/plinth/vmkernel/vswitch"
	"github.com/plinth/plinth/vmkernel/vswitch/vswitchtest"
)

func TestSwitchRoutes(t *testing.T) {
	ns := vswitchtest.NewNetNS(t)
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	if err := h.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "eth9"}, PeerName: "eth9peer"}); err != nil {
		t.Fatal(err)
	}
	vs, err := vswitch.Open(vswitch.Config{Dir: t.TempDir(), NetNS: &ns})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { vs.Close() })

	sock := filepath.Join(t.TempDir(), "vmkernel.sock")
	l, err := vmkernel.Listen(sock, 0)
	if err != nil {
		t.Fatal(err)
	}
	srv := vmkernel.New(vmkernel.Config{Host: func() (api.Host, error) { return api.Host{}, nil }, Switches: vs})
	go srv.Serve(l)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	c, err := client.NewVMKernel(sock)
	if err != nil {
		t.Fatal(err)
	}
	status := func(err error) int {
		var ce *client.Error
		if errors.As(err, &ce) {
			return ce.Status
		}
		return 0
	}

	sw, err := c.CreateSwitch(ctx(t), "mgmt", "eth9")
	if err != nil {
		t.Fatal(err)
	}
	if sw.Bridge != "pvs-mgmt" || sw.Uplink != "eth9" || !sw.Up || len(sw.Ports) != 1 {
		t.Fatalf("created %+v", sw)
	}
	for _, tc := range []struct {
		name, uplink string
		want         int
		field        string
	}{
		{"mgmt", "", http.StatusConflict, ""},
		{"bad name", "", http.StatusUnprocessableEntity, "name"},
		{"other", "eth9", http.StatusConflict, ""},
		{"other", "nosuch0", http.StatusUnprocessableEntity, "uplink"},
	} {
		_, err := c.CreateSwitch(ctx(t), tc.name, tc.uplink)
		var ce *client.Error
		if status(err) != tc.want || (tc.field != "" && (!errors.As(err, &ce) || ce.Problem.Field != tc.field)) {
			t.Errorf("create %q uplink %q: %v, want %d field %q", tc.name, tc.uplink, err, tc.want, tc.field)
		}
	}
	list, err := c.ListSwitches(ctx(t))
	if err != nil || len(list) != 1 || list[0].Name != "mgmt" {
		t.Fatalf("ListSwitches = %+v, %v", list, err)
	}
	if f, err := vs.AddTap("mgmt", "pttest0"); err != nil {
		t.Fatal(err)
	} else {
		f.Close()
	}
	if err := c.DeleteSwitch(ctx(t), "mgmt"); status(err) != http.StatusConflict {
		t.Fatalf("delete with a tap: %v, want 409", err)
	}
	if err := vs.RemoveTap("pttest0"); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteSwitch(ctx(t), "mgmt"); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteSwitch(ctx(t), "mgmt"); status(err) != http.StatusNotFound {
		t.Fatalf("delete twice: %v, want 404", err)
	}
}

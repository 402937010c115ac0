package mgmtd_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/client"
	"github.com/plinth/plinth/mgmtd"
	"github.com/plinth/plinth/vmkernel"
	"github.com/plinth/plinth/vmkernel/inventory"
	"github.com/plinth/plinth/vmkernel/runner"
	"github.com/plinth/plinth/vmkernel/vmkerneltest"
	"github.com/plinth/plinth/vmkernel/vswitch"
)

// Every route mgmtd forwards is one of vmkernel's, at the same path below
// /v1 with the same method: a route renamed on one side only fails here.
// Each forwarded path, its variables filled in, must reach a route of
// vmkernel's router (not its 404 or 405 answers).
func TestForwardedRoutesExistInVMKernel(t *testing.T) {
	srv, err := mgmtd.New(mgmtd.Config{StateDir: t.TempDir(), VMKernelSocket: "/nonexistent/vmkernel.sock"})
	if err != nil {
		t.Fatal(err)
	}
	// The table with every part present (nothing is served here).
	full := vmkernel.Config{Inventory: &inventory.Inventory{}, Runner: &runner.Manager{}, Switches: &vswitch.Manager{}}
	mux, ok := vmkernel.New(full).Handler().(*http.ServeMux)
	if !ok {
		t.Fatal("vmkernel's handler is no longer a ServeMux: adapt this test")
	}
	vars := regexp.MustCompile(`\{[a-z]+\}`)
	fwd := reflect.ValueOf(srv.ForwardHandler()).Pointer()
	n := 0
	for _, r := range srv.Routes() {
		if !r.Forwards && reflect.ValueOf(r.Handler).Pointer() != fwd {
			continue
		}
		n++
		path := api.VMKernelPrefix + strings.TrimPrefix(vars.ReplaceAllString(r.Path, "x1"), api.MgmtdPrefix)
		req := httptest.NewRequest(r.Method, path, nil)
		_, pattern := mux.Handler(req)
		if !strings.HasPrefix(r.Path, api.MgmtdPrefix+"/") || !strings.HasPrefix(pattern, r.Method+" ") {
			t.Errorf("mgmtd forwards %s %s, but vmkernel routes %s %s to %q", r.Method, r.Path, r.Method, path, pattern)
		}
	}
	if n < 40 {
		t.Errorf("only %d forwarded routes found: the test no longer sees them", n)
	}
}

// Lockdown through the API: on refuses changes; off needs the root
// password (a token alone is refused); the host settings are vmkernel's.
func TestLockdownThroughTheAPI(t *testing.T) {
	rig := vmkerneltest.Start(t, vmkerneltest.Options{})
	r := startMgmtd(t, rig.Layout.AuthDir(), rig.Socket, nil)
	c := loggedIn(t, r)
	ctx := deadline(t)
	if st, err := c.SetLockdown(ctx, api.LockdownRequest{Enabled: true}); err != nil || !st.Enabled {
		t.Fatalf("lockdown on: %+v, %v", st, err)
	}
	if err := c.RestartServices(ctx); !isStatus(err, http.StatusForbidden) {
		t.Errorf("a change in lockdown: %v, want 403", err)
	}
	if _, err := c.SetLockdown(ctx, api.LockdownRequest{}); !isStatus(err, http.StatusUnprocessableEntity) {
		t.Errorf("off without the password: %v, want 422", err)
	}
	if _, err := c.SetLockdown(ctx, api.LockdownRequest{Password: "Wrong-pass-1"}); !isStatus(err, http.StatusUnauthorized) {
		t.Errorf("off with a wrong password: %v, want 401", err)
	}
	if st, err := rig.Client.Lockdown(ctx); err != nil || !st.Enabled {
		t.Fatalf("vmkernel says %+v, %v", st, err)
	}
	if st, err := c.SetLockdown(ctx, api.LockdownRequest{Password: testPassword}); err != nil || st.Enabled {
		t.Fatalf("off with the password: %+v, %v", st, err)
	}
	if who, err := c.WhoAmI(ctx); err != nil || who.Lockdown {
		t.Errorf("whoami after lockdown off: %+v, %v", who, err)
	}
}

func isStatus(err error, status int) bool {
	var e *client.Error
	return errors.As(err, &e) && e.Status == status
}

// A password changed through the API (vmkernel's) ends every session.
func TestPasswordChangeThroughTheAPIEndsSessions(t *testing.T) {
	rig := vmkerneltest.Start(t, vmkerneltest.Options{})
	r := startMgmtd(t, rig.Layout.AuthDir(), rig.Socket, nil)
	c := loggedIn(t, r)
	other := loggedIn(t, r)
	ctx := deadline(t)
	if err := c.SetPassword(ctx, "short"); !isStatus(err, http.StatusUnprocessableEntity) {
		t.Errorf("a weak password: %v, want 422", err)
	} else if e := (*client.Error)(nil); errors.As(err, &e) && e.Problem.Field != "password" {
		t.Errorf("a weak password: field %q, want password", e.Problem.Field)
	}
	if err := c.SetPassword(ctx, "Another-pass-2"); err != nil {
		t.Fatal(err)
	}
	for _, cl := range []*client.Client{c, other} {
		if _, err := cl.WhoAmI(ctx); !isStatus(err, http.StatusUnauthorized) {
			t.Errorf("a session after the password change: %v, want 401", err)
		}
	}
	if _, err := pinned(t, r).Login(ctx, api.RootUser, "Another-pass-2"); err != nil {
		t.Errorf("login with the new password: %v", err)
	}
}

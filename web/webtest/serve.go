package webtest

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/auth"
	"github.com/plinth/plinth/mgmtd"
	"github.com/plinth/plinth/web"
)

// Serve runs a real mgmtd on l for the vmkernel at vmkSocket until the test
// ends, with root's password set where the host's settings keep it
// (authDir: as on the appliance, mgmtd's state is that directory), and
// answers its address.
func Serve(t testing.TB, authDir, vmkSocket, password string, l net.Listener) string {
	t.Helper()
	if !web.Built() {
		t.Fatal("the web client is not built: run `make web` first")
	}
	if err := auth.SetPassword(authDir, api.RootUser, password); err != nil {
		t.Fatal(err)
	}
	srv, err := mgmtd.New(mgmtd.Config{StateDir: authDir, VMKernelSocket: vmkSocket})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	return "https://" + l.Addr().String()
}

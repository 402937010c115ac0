package web_test

import (
	"net"
	"os"
	"path/filepath"
	"testing"

	qemutest "github.com/plinth/plinth/qemu-test"
	"github.com/plinth/plinth/vmkernel/vmkerneltest"
	"github.com/plinth/plinth/web/webtest"
)

const password = "Plinth-web-1"

// serve runs a real vmkernel (QEMU under TCG, datastore ds1) and a real
// mgmtd with the root password set, and answers mgmtd's address.
func serve(t *testing.T) string {
	url, _ := serveRig(t)
	return url
}

// serveRig is serve, with the vmkernel rig.
func serveRig(t *testing.T) (string, *vmkerneltest.Rig) {
	t.Helper()
	rig := vmkerneltest.Start(t, vmkerneltest.Options{Datastores: []string{"ds1"}})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return serveOn(t, rig, l), rig
}

// serveOn runs a real mgmtd for rig on l, with the root password set where
// the host's settings keep it (as on the appliance, mgmtd's state is the
// rig's mgmtd directory), and answers its address.
func serveOn(t *testing.T, rig *vmkerneltest.Rig, l net.Listener) string {
	t.Helper()
	return webtest.Serve(t, rig.Layout.AuthDir(), rig.Socket, password, l)
}

// shots is where a test's screenshots go: build/screenshots/NAME.
func shots(t *testing.T) string {
	root, err := qemutest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, "build", "screenshots", t.Name())
	os.RemoveAll(dir)
	return dir
}

// TestBrowserTour drives the client in Chromium against a local mgmtd and
// vmkernel: the whole path (webtest.Tour) with a real guest booted
// from an uploaded ISO under TCG.
func TestBrowserTour(t *testing.T) {
	kernel, err := qemutest.FindKernel()
	if err != nil {
		qemutest.NoKernel(t, "%v", err)
	}
	iso, err := qemutest.BuildFloorISO(kernel, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	url := serve(t)
	b := webtest.Start(t, shots(t), 1280, 900)
	webtest.Tour(t, b, webtest.Site{URL: url, Password: password, Datastore: "ds1", ISO: iso, Marker: qemutest.FloorMarker})
}

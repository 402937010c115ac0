package vmkernel_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/client"
	"github.com/plinth/plinth/internal/testenv"
	qemutest "github.com/plinth/plinth/qemu-test"
	"github.com/plinth/plinth/vmkernel/datastore"
	"github.com/plinth/plinth/vmkernel/runner/runnertest"
)

// testKey is the SSH key cloud-init is to install (a public key: no secret).
const testKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIM1rh0ZB2nBZ8v3jXn2Hf+Q4KcGvC5o9ZcOqk3x8xZxy plinth-test"

// debianRig is a vmkernel with the Debian guest (qemu-test's, with real
// cloud-init and qemu-ga) as a qcow2 template in datastore ds, and the
// kernel and floor initramfs that boot it.
type debianRig struct {
	*vmRig
	template string
}

func startDebian(t *testing.T) *debianRig {
	t.Helper()
	testenv.Command(t, "debootstrap")
	kernel := runnertest.Kernel(t, "../build/vmlinuz")
	modDir := runnertest.Modules(t, "../build")
	repo, err := qemutest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	img, err := qemutest.DebianGuest(filepath.Join(repo, "build", "guests"))
	if err != nil {
		t.Fatal(err)
	}
	r := startVMs(t)
	if err := qemutest.InstallGuest(kernel, r.ds, func(dir string) (string, error) {
		return qemutest.BuildFloorWithModules(dir, modDir, qemutest.DebianModules...)
	}); err != nil {
		t.Fatal(err)
	}
	// The root file system, brought into the datastore as a user's disk
	// would be (its format established at first use), made a qcow2.
	if out, err := exec.Command("cp", "--sparse=always", img, filepath.Join(r.ds, "debian.raw")).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v: %s", err, out)
	}
	ctx := ctxFor(t, 5*time.Minute)
	task, err := r.c.ConvertDisk(ctx, "ds", api.ConvertDiskRequest{Path: "debian.raw", Target: "debian/template.qcow2"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.c.WaitTask(ctx, task.ID, 100*time.Millisecond, nil); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(r.ds, "debian.raw"))
	return &debianRig{vmRig: r, template: "debian/template.qcow2"}
}

// dsOverlay makes a linked clone: a qcow2 overlay Plinth records, on
// backing.
func (r *debianRig) dsOverlay(ctx context.Context, rel, backing string) error {
	return datastore.Datastore{Name: "ds", Root: r.ds}.CreateOverlay(ctx, rel, backing)
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// debianSpec is a VM booting the Debian guest from disk.
func debianSpec(name, disk string) api.VMSpec {
	return api.VMSpec{
		Name: name, MemoryMiB: 512, Serial: true,
		Kernel: &api.DirectBoot{Datastore: "ds", Kernel: "vmlinux", Initrd: "init.cpio", Cmdline: qemutest.DebianCmdline},
		Disks:  []api.Disk{{Datastore: "ds", Path: disk}},
		NICs:   []api.NIC{{NAT: true}},
	}
}

// waitGuestLines waits for the guest's marker and returns its
// PLINTH-GUEST lines.
func waitGuestLines(t *testing.T, c *client.Client, id string, timeout time.Duration) []string {
	t.Helper()
	ctx := ctxFor(t, timeout+10*time.Second)
	runnertest.WaitConsole(t, func() ([]byte, error) { return c.VMConsole(ctx, id) }, qemutest.DebianMarker, timeout)
	con, err := c.VMConsole(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, l := range strings.Split(string(con), "\n") {
		if i := strings.Index(l, qemutest.DebianLinePrefix); i >= 0 {
			lines = append(lines, strings.TrimSpace(l[i+len(qemutest.DebianLinePrefix):]))
		}
	}
	return lines
}

// TestCloudInitAndGuestAgent boots the Debian guest (real cloud-init, real
// qemu-ga) with a cloud-init spec: cloud-init sets its host name and the
// user's SSH key from Plinth's NoCloud seed; the guest agent's facts reach
// the API; and a shutdown, which the guest's missing ACPI handling would
// turn into a hard stop at its deadline, is carried out by the agent.
func TestCloudInitAndGuestAgent(t *testing.T) {
	t.Parallel() // see startVMs
	r := startDebian(t)
	ctx := ctxFor(t, 10*time.Minute)
	if err := r.dsOverlay(ctx, "ci/disk.qcow2", r.template); err != nil {
		t.Fatal(err)
	}
	spec := debianSpec("ci-guest", "ci/disk.qcow2")
	spec.CloudInit = &api.CloudInit{User: "ops", SSHAuthorizedKeys: []string{testKey}}
	vm, err := r.c.CreateVM(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.c.VMAction(ctx, vm.Spec.ID, api.ActionStart); err != nil {
		t.Fatal(err)
	}
	lines := waitGuestLines(t, r.c, vm.Spec.ID, 5*time.Minute)
	want := []string{"hostname=ci-guest", "key ops " + testKey}
	for _, w := range want {
		if !contains(lines, w) {
			t.Errorf("the guest did not say %q; it said %q", w, lines)
		}
	}
	// The agent's facts, within a poll or two.
	var g *api.GuestInfo
	for deadline := time.Now().Add(2 * time.Minute); g == nil; time.Sleep(time.Second) {
		got, err := r.c.GetVM(ctx, vm.Spec.ID)
		if err != nil {
			t.Fatal(err)
		}
		g = got.Runtime.Guest
		if g == nil && time.Now().After(deadline) {
			t.Fatalf("no guest agent facts 2 min after the guest was up: %+v", got.Runtime)
		}
	}
	if g.Hostname != "ci-guest" || g.OSID != "debian" || !strings.Contains(g.OS, "Debian") || g.AgentVersion == "" || len(g.Interfaces) == 0 {
		t.Errorf("guest facts %+v", g)
	}
	t0 := time.Now()
	vm, err = r.c.ShutdownVM(ctx, vm.Spec.ID, 3*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(t0); vm.Runtime.State != api.VMStopped || took > 2*time.Minute || vm.Runtime.LastExit == nil ||
		!strings.Contains(vm.Runtime.LastExit.Detail, "guest-shutdown") {
		t.Errorf("shutdown through the agent: %v later %+v", took, vm.Runtime)
	}
}

func contains(list []string, s string) bool {
	for _, l := range list {
		if l == s {
			return true
		}
	}
	return false
}

// TestTenClonesWithCloudInit: a template with a cloud-init configuration
// (a user and an SSH key) deployed as ten linked clones in one call: each
// guest's real cloud-init takes its own host name (the clone's name) and
// the key; the template's disk is unchanged.
func TestTenClonesWithCloudInit(t *testing.T) {
	r := startDebian(t)
	ctx := ctxFor(t, 25*time.Minute)
	tmplDisk := filepath.Join(r.ds, r.template)
	before := sha256File(t, tmplDisk)
	spec := debianSpec("ci-template", r.template)
	spec.MemoryMiB = 384
	spec.CloudInit = &api.CloudInit{User: "ops", SSHAuthorizedKeys: []string{testKey}}
	tmpl, err := r.c.CreateVM(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.c.SetTemplate(ctx, tmpl.Spec.ID, true); err != nil {
		t.Fatal(err)
	}
	task, err := r.c.Deploy(ctx, tmpl.Spec.ID, api.DeployRequest{Count: 10, NamePattern: "ci-{n}", Start: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.c.WaitTask(ctx, task.ID, 200*time.Millisecond, nil); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for i := 1; i <= 10; i++ {
		name := fmt.Sprintf("ci-%d", i)
		vm, err := r.c.GetVM(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		lines := waitGuestLines(t, r.c, vm.Spec.ID, 15*time.Minute)
		if !contains(lines, "hostname="+name) || !contains(lines, "key ops "+testKey) {
			t.Errorf("%s said %q", name, lines)
		}
		seen["hostname="+name] = true
		info, err := r.c.DiskInfo(ctx, "ds", vm.Spec.Disks[0].Path)
		if err != nil || info.BackingFile == "" {
			t.Errorf("%s's disk is not a linked clone: %+v, %v", name, info, err)
		}
	}
	if len(seen) != 10 {
		t.Errorf("%d different host names", len(seen))
	}
	for i := 1; i <= 10; i++ {
		if _, err := r.c.VMAction(ctx, fmt.Sprintf("ci-%d", i), api.ActionStop); err != nil {
			t.Error(err)
		}
	}
	if after := sha256File(t, tmplDisk); after != before {
		t.Error("the template's disk changed")
	}
}

package vmkernel_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/client"
	"github.com/plinth/plinth/internal/testenv"
	"github.com/plinth/plinth/vmkernel/backups"
	"github.com/plinth/plinth/vmkernel/datastore"
	"github.com/plinth/plinth/vmkernel/runner/runnertest"
)

// hostile is one image of the corpus: made by qemu-img (or by hand) in a
// scratch directory, naming a file outside the datastore.
type hostile struct {
	name string
	// names is the outside file its refusal must name.
	names string
	// make writes the image at path.
	make  func(t *testing.T, path string)
	vmFmt string // the format a VM spec would say
}

// outsideFiles are host files the corpus points at, outside every datastore.
type outsideFiles struct {
	dir, secret, victim, parent string
	before                      map[string][32]byte
}

func (o *outsideFiles) snapshot(t *testing.T) {
	o.before = map[string][32]byte{}
	for _, p := range []string{o.secret, o.victim, o.parent} {
		o.before[p] = sha256File(t, p)
	}
}

// check: no outside file changed, and no process (QEMU, qemu-img, anyone
// but this test) holds one open.
func (o *outsideFiles) check(t *testing.T) {
	t.Helper()
	for p, sum := range o.before {
		if got := sha256File(t, p); got != sum {
			t.Errorf("outside file %s changed", p)
		}
	}
	for _, p := range openBy(t, o.secret, o.victim, o.parent) {
		t.Errorf("a process holds an outside file open: %s", p)
	}
}

func sha256File(t *testing.T, p string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

// openBy lists "pid: path" for every process but this one that has one of
// paths open (from /proc/PID/fd).
func openBy(t *testing.T, paths ...string) []string {
	t.Helper()
	want := map[string]bool{}
	for _, p := range paths {
		want[p] = true
	}
	self := os.Getpid()
	procs, _ := filepath.Glob("/proc/[0-9]*")
	var out []string
	for _, proc := range procs {
		if filepath.Base(proc) == strconv.Itoa(self) {
			continue
		}
		fds, _ := filepath.Glob(proc + "/fd/*")
		for _, fd := range fds {
			if l, err := os.Readlink(fd); err == nil && want[l] {
				exe, _ := os.Readlink(proc + "/exe")
				out = append(out, filepath.Base(proc)+" ("+exe+"): "+l)
			}
		}
	}
	return out
}

func qemuImg(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("qemu-img", args...).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// corpus is the hostile images, each naming an outside file its own way.
func corpus(o *outsideFiles, ds string) []hostile {
	rel, _ := filepath.Rel(ds, o.secret) // ../../tmp/...: relative, and out of the datastore
	json := `json:{"driver":"file","filename":"` + o.secret + `"}`
	return []hostile{
		{"absolute.qcow2", o.secret, func(t *testing.T, p string) {
			qemuImg(t, "create", "-q", "-f", "qcow2", "-u", "-b", o.secret, "-F", "raw", p, "1M")
		}, "qcow2"},
		{"relative.qcow2", rel, func(t *testing.T, p string) {
			qemuImg(t, "create", "-q", "-f", "qcow2", "-u", "-b", rel, "-F", "raw", p, "1M")
		}, "qcow2"},
		{"json.qcow2", o.secret, func(t *testing.T, p string) {
			qemuImg(t, "create", "-q", "-f", "qcow2", "-u", "-b", json, "-F", "raw", p, "1M")
		}, "qcow2"},
		{"probed.qcow2", o.secret, func(t *testing.T, p string) {
			// A backing file without a format: QEMU would probe it.
			qemuImg(t, "create", "-q", "-f", "qcow2", "-u", "-b", o.secret, "-F", "raw", p, "1M")
			stripBackingFormat(t, p)
		}, "qcow2"},
		{"datafile.qcow2", o.victim, func(t *testing.T, p string) {
			// qemu-img writes the data file as it makes the image: made
			// with a scratch one, then pointed at the victim.
			tmp := p + ".data"
			qemuImg(t, "create", "-q", "-f", "qcow2", "-o", "data_file="+tmp+",data_file_raw=on", p, "1M")
			qemuImg(t, "amend", "-q", "-f", "qcow2", "-o", "data_file="+o.victim, p)
			os.Remove(tmp)
		}, "qcow2"},
		{"extent.vmdk", o.secret, func(t *testing.T, p string) {
			desc := "# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\ncreateType=\"monolithicFlat\"\n\n" +
				"RW 2048 FLAT \"" + o.secret + "\" 0\n"
			if err := os.WriteFile(p, []byte(desc), 0o644); err != nil {
				t.Fatal(err)
			}
		}, "raw"},
		{"parent.vmdk", o.parent, func(t *testing.T, p string) {
			qemuImg(t, "create", "-q", "-f", "vmdk", "-b", o.parent, "-F", "vmdk", p)
		}, "raw"},
		{"backed.qed", o.secret, func(t *testing.T, p string) {
			qemuImg(t, "create", "-q", "-f", "qed", "-u", "-b", o.secret, "-F", "raw", p, "1M")
		}, "qcow2"},
	}
}

// stripBackingFormat turns a qcow2's backing format extension into the end
// of the extensions.
func stripBackingFormat(t *testing.T, p string) {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(b[:65536], binary.BigEndian.AppendUint32(nil, 0xe2792aca))
	if i < 0 {
		t.Fatal("no backing format extension")
	}
	copy(b[i:], make([]byte, 8))
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// refusedNaming checks err is a 422 whose problem names want and, when
// field is set, is about that field (or one below it).
func refusedNaming(t *testing.T, door string, err error, field, want string) {
	t.Helper()
	e := apiErr(t, err, http.StatusUnprocessableEntity)
	if !strings.Contains(e.Problem.Detail, want) {
		t.Errorf("%s: refusal %q does not name %q", door, e.Problem.Detail, want)
	}
	if field != "" && !strings.HasPrefix(e.Problem.Field, field) {
		t.Errorf("%s: refusal names field %q, want %s", door, e.Problem.Field, field)
	}
}

// hostileBackup lays down in ds a backup whose one disk file holds b, with
// a record (right checksum) as vmkernel writes one, and returns its ID.
func hostileBackup(t *testing.T, ds, name string, b []byte) string {
	t.Helper()
	vm := api.NewUUID()
	id := backups.NewID(time.Now())
	dir := backups.Dir(api.DefaultBackupFolder, vm, id)
	if err := os.MkdirAll(filepath.Join(ds, dir), 0o700); err != nil {
		t.Fatal(err)
	}
	file := dir + "/disk0.qcow2"
	if err := os.WriteFile(filepath.Join(ds, file), b, 0o600); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	spec := guest("bk-" + strings.NewReplacer(".", "-").Replace(name))
	spec.ID = vm
	spec.Disks = []api.Disk{{Datastore: "ds", Path: "bk/" + name}}
	rec := api.Backup{ID: id, VMID: vm, VMName: spec.Name, Kind: api.BackupFull, CreatedAt: time.Now().UTC(), Datastore: "ds", Path: dir, Spec: spec,
		Disks: []api.BackupFile{{File: file, SHA256: hex.EncodeToString(sum[:]), SizeBytes: int64(len(b))}}}
	if err := backups.Save(datastore.Datastore{Name: "ds", Root: ds}, rec); err != nil {
		t.Fatal(err)
	}
	return id
}

// TestHostileImages tries every image of the corpus at every door through
// the real vmkernel API: upload, disk info, convert, resize, fetch, import,
// restore (a backup whose record names it), VM create,
// update and start. Each is refused with a 422 naming the outside file; no
// outside file changes, no byte of one comes back, and no process holds
// one open. Then a raw disk carrying a qcow2 header stays raw, and a chain
// Plinth made is followed until its second link leaves the datastore.
func TestHostileImages(t *testing.T) {
	testenv.Command(t, "qemu-img")
	kernel := runnertest.Kernel(t, "../build/vmlinuz")
	r := startVMs(t)
	runnertest.Install(t, kernel, r.ds)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	o := &outsideFiles{dir: t.TempDir()}
	o.secret = filepath.Join(o.dir, "secret")
	o.victim = filepath.Join(o.dir, "victim")
	o.parent = filepath.Join(o.dir, "parent.vmdk")
	secret := make([]byte, 1<<20)
	rand.Read(secret)
	for p, b := range map[string][]byte{o.secret: secret, o.victim: bytes.Repeat([]byte("victim"), 1<<17)} {
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	qemuImg(t, "create", "-q", "-f", "vmdk", o.parent, "1M")
	scratch := t.TempDir()
	cs := corpus(o, r.ds)
	for _, h := range cs {
		h.make(t, filepath.Join(scratch, h.name))
	}
	o.snapshot(t) // after making the corpus, which writes nothing outside
	// An https server handing out the corpus, for the fetch door.
	srv := httptest.NewTLSServer(http.FileServer(http.Dir(scratch)))
	defer srv.Close()
	pinSum := sha256.Sum256(srv.TLS.Certificates[0].Certificate[0])
	pin := hex.EncodeToString(pinSum[:])

	for _, f := range []string{"qcow2", "raw"} {
		if _, err := r.c.CreateDisk(ctx, "ds", api.CreateDiskRequest{Path: "clean." + f, Format: f, SizeBytes: 1 << 20}); err != nil {
			t.Fatal(err)
		}
	}

	for _, h := range cs {
		t.Run(h.name, func(t *testing.T) {
			src, names := filepath.Join(scratch, h.name), h.names
			b, err := os.ReadFile(src)
			if err != nil {
				t.Fatal(err)
			}
			// Door 1: upload.
			_, err = r.c.UploadFile(ctx, "ds", "up/"+h.name, bytes.NewReader(b), int64(len(b)), false)
			refusedNaming(t, "upload", err, "path", names)
			if _, err := os.Stat(filepath.Join(r.ds, "up", h.name)); !os.IsNotExist(err) {
				t.Errorf("a refused upload left %s: %v", h.name, err)
			}
			// The other doors, for the same file put in the datastore
			// another way (by hand, or a disk brought along).
			if err := os.WriteFile(filepath.Join(r.ds, h.name), b, 0o644); err != nil {
				t.Fatal(err)
			}
			_, err = r.c.DiskInfo(ctx, "ds", h.name)
			refusedNaming(t, "info", err, "path", names)
			_, err = r.c.ConvertDisk(ctx, "ds", api.ConvertDiskRequest{Path: h.name, Target: h.name + ".raw", Format: "raw"})
			refusedNaming(t, "convert", err, "path", names)
			if _, err := os.Stat(filepath.Join(r.ds, h.name+".raw")); !os.IsNotExist(err) {
				t.Errorf("convert made %s.raw: %v", h.name, err)
			}
			_, err = r.c.ResizeDisk(ctx, "ds", api.ResizeDiskRequest{Path: h.name, SizeBytes: 64 << 20})
			refusedNaming(t, "resize", err, "path", names)
			// Fetched from a server, and as the disk of an OVA: the task
			// fails naming the file, and nothing is kept.
			task, err := r.c.Fetch(ctx, "ds", api.FetchRequest{URL: srv.URL + "/" + h.name, Path: "fetched/" + h.name, TLSFingerprint: pin})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := r.c.WaitTask(ctx, task.ID, 20*time.Millisecond, nil); err == nil || !strings.Contains(err.Error(), names) {
				t.Errorf("fetch: %v, want a refusal naming %s", err, names)
			}
			ova := packOVA(t, scratch, strings.NewReplacer(".", "-").Replace(h.name), src, 1<<20, false)
			upload(t, r, ova, "ova/"+filepath.Base(ova))
			task, err = r.c.ImportVM(ctx, api.ImportVMRequest{Datastore: "ds", Path: "ova/" + filepath.Base(ova), Name: "imp-" + strings.NewReplacer(".", "-").Replace(h.name)})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := r.c.WaitTask(ctx, task.ID, 20*time.Millisecond, nil); err == nil || !strings.Contains(err.Error(), names) {
				t.Errorf("import: %v, want a refusal naming %s", err, names)
			}
			// Restore: a backup folder whose record (checksum right) names
			// the image as its disk, as anyone who can write the datastore
			// could lay one down: refused before anything is written.
			bk := hostileBackup(t, r.ds, h.name, b)
			_, err = r.c.Restore(ctx, api.RestoreRequest{Datastore: "ds", Backup: bk, Name: "rest-" + strings.NewReplacer(".", "-").Replace(h.name)})
			refusedNaming(t, "restore", err, "backup", names)
			if _, err := r.c.GetVM(ctx, "rest-"+strings.NewReplacer(".", "-").Replace(h.name)); err == nil {
				t.Errorf("a refused restore made a VM")
			}
			if _, err := os.Stat(filepath.Join(r.ds, "rest-"+strings.NewReplacer(".", "-").Replace(h.name))); !os.IsNotExist(err) {
				t.Errorf("a refused restore left files: %v", err)
			}
			for _, dir := range []string{"fetched", "imp-" + strings.NewReplacer(".", "-").Replace(h.name)} {
				if des, _ := os.ReadDir(filepath.Join(r.ds, dir)); len(des) != 0 {
					t.Errorf("a refused %s left %v", dir, des)
				}
			}

			spec := guest("hostile-" + strings.NewReplacer(".", "-").Replace(h.name))
			spec.Disks = []api.Disk{{Datastore: "ds", Path: h.name, Format: h.vmFmt}}
			_, err = r.c.CreateVM(ctx, spec)
			refusedNaming(t, "create", err, "disks[0]", "")
			spec.Disks[0].Path = "clean." + h.vmFmt
			vm, err := r.c.CreateVM(ctx, spec)
			if err != nil {
				t.Fatal(err)
			}
			vm.Spec.Disks[0].Path = h.name
			_, err = r.c.UpdateVM(ctx, vm.Spec)
			refusedNaming(t, "update", err, "disks[0]", "")
			// Start: the VM names a file that is not there yet; then it is.
			vm.Spec.Disks[0].Path = "later-" + h.name
			if _, err := r.c.UpdateVM(ctx, vm.Spec); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(r.ds, "later-"+h.name), b, 0o644); err != nil {
				t.Fatal(err)
			}
			_, err = r.c.VMAction(ctx, vm.Spec.ID, api.ActionStart)
			refusedNaming(t, "start", err, "disks[0]", "")
			if got, _ := r.c.GetVM(ctx, vm.Spec.ID); got.Runtime.State != api.VMStopped || got.Runtime.PID != 0 {
				t.Errorf("after a refused start: %+v", got.Runtime)
			}
			if err := r.c.DeleteVM(ctx, vm.Spec.ID); err != nil {
				t.Fatal(err)
			}
			o.check(t)
		})
	}

	t.Run("raw disk with a qcow2 header", func(t *testing.T) {
		// A raw disk, made through the API; its guest then writes a qcow2
		// header naming the secret at its start (as any guest can).
		if _, err := r.c.CreateDisk(ctx, "ds", api.CreateDiskRequest{Path: "guest.raw", Format: "raw", SizeBytes: 4 << 20}); err != nil {
			t.Fatal(err)
		}
		hdr, err := os.ReadFile(filepath.Join(scratch, "absolute.qcow2"))
		if err != nil {
			t.Fatal(err)
		}
		f, err := os.OpenFile(filepath.Join(r.ds, "guest.raw"), os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteAt(hdr[:64<<10], 0); err != nil {
			t.Fatal(err)
		}
		f.Close()
		info, err := r.c.DiskInfo(ctx, "ds", "guest.raw")
		if err != nil || info.Format != "raw" || info.VirtualSizeBytes != 4<<20 || info.BackingFile != "" {
			t.Fatalf("info = %+v, %v; want raw, 4 MiB, no backing", info, err)
		}
		task, err := r.c.ConvertDisk(ctx, "ds", api.ConvertDiskRequest{Path: "guest.raw", Target: "copy.raw", Format: "raw"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.c.WaitTask(ctx, task.ID, 50*time.Millisecond, nil); err != nil {
			t.Fatal(err)
		}
		got := download(t, r.c, "copy.raw")
		want, _ := os.ReadFile(filepath.Join(r.ds, "guest.raw"))
		if !bytes.Equal(got, want) || bytes.Contains(got, secret[:4096]) {
			t.Fatalf("the copy of a raw disk is not its bytes (%d bytes, want %d)", len(got), len(want))
		}
		if _, err := r.c.ResizeDisk(ctx, "ds", api.ResizeDiskRequest{Path: "guest.raw", SizeBytes: 8 << 20}); err != nil {
			t.Fatal(err)
		}
		if fi, _ := os.Stat(filepath.Join(r.ds, "guest.raw")); fi.Size() != 8<<20 {
			t.Fatalf("resized as raw: %d bytes", fi.Size())
		}
		spec := guest("raw-header")
		spec.Disks = []api.Disk{{Datastore: "ds", Path: "guest.raw", Format: "qcow2"}}
		_, err = r.c.CreateVM(ctx, spec)
		refusedNaming(t, "create as qcow2", err, "disks[0].format", "raw")
		spec.Disks[0].Format = "raw"
		vm, err := r.c.CreateVM(ctx, spec)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.c.VMAction(ctx, vm.Spec.ID, api.ActionStart); err != nil {
			t.Fatal(err)
		}
		o.check(t)
		if _, err := r.c.VMAction(ctx, vm.Spec.ID, api.ActionStop); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("chain leaving at its second link", func(t *testing.T) {
		if _, err := r.c.CreateDisk(ctx, "ds", api.CreateDiskRequest{Path: "chain/base.qcow2", SizeBytes: 2 << 20}); err != nil {
			t.Fatal(err)
		}
		ds := datastore.Datastore{Name: "ds", Root: r.ds}
		if err := ds.CreateOverlay(ctx, "chain/top.qcow2", "chain/base.qcow2"); err != nil {
			t.Fatal(err)
		}
		info, err := r.c.DiskInfo(ctx, "ds", "chain/top.qcow2")
		if err != nil || info.BackingFile != "chain/base.qcow2" {
			t.Fatalf("info of Plinth's own overlay = %+v, %v", info, err)
		}
		spec := guest("chain")
		spec.Disks = []api.Disk{{Datastore: "ds", Path: "chain/top.qcow2"}}
		vm, err := r.c.CreateVM(ctx, spec)
		if err != nil {
			t.Fatal(err)
		}
		vm, err = r.c.VMAction(ctx, vm.Spec.ID, api.ActionStart)
		if err != nil {
			t.Fatal(err)
		}
		held := openBy(t, filepath.Join(r.ds, "chain/top.qcow2"), filepath.Join(r.ds, "chain/base.qcow2"))
		if !strings.Contains(strings.Join(held, "\n"), "base.qcow2") || !strings.Contains(strings.Join(held, "\n"), "top.qcow2") {
			t.Errorf("QEMU of a VM on a chain holds %q, want both links", held)
		}
		if _, err := r.c.VMAction(ctx, vm.Spec.ID, api.ActionStop); err != nil {
			t.Fatal(err)
		}
		// The base is replaced by another file (a new inode, no record)
		// whose own backing is the secret.
		evil := filepath.Join(scratch, "evil-base.qcow2")
		qemuImg(t, "create", "-q", "-f", "qcow2", "-u", "-b", o.secret, "-F", "raw", evil, "2M")
		b, _ := os.ReadFile(evil)
		tmp := filepath.Join(r.ds, "chain/new")
		os.WriteFile(tmp, b, 0o644)
		if err := os.Rename(tmp, filepath.Join(r.ds, "chain/base.qcow2")); err != nil {
			t.Fatal(err)
		}
		_, err = r.c.DiskInfo(ctx, "ds", "chain/top.qcow2")
		refusedNaming(t, "info of the chain", err, "path", o.secret)
		_, err = r.c.VMAction(ctx, vm.Spec.ID, api.ActionStart)
		refusedNaming(t, "start on the chain", err, "disks[0]", o.secret)
		o.check(t)
	})
}

func download(t *testing.T, c *client.Client, rel string) []byte {
	t.Helper()
	rc, _, err := c.DownloadFile(context.Background(), "ds", rel)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestQEMUConfined starts two VMs, each with a disk, and checks their
// QEMUs as an attacker inside one would find them: each runs as a user of
// its own, not root, with no capability, under QEMU's seccomp filter (mode
// 2) with no_new_privs; neither holds the other's disk, and neither user
// can open the other's disk, by its path or through the other QEMU's
// descriptors.
func TestQEMUConfined(t *testing.T) {
	testenv.Root(t, "QEMU is started as an unprivileged user only by a root vmkernel")
	kernel := runnertest.Kernel(t, "../build/vmlinuz")
	r := startVMs(t)
	runnertest.Install(t, kernel, r.ds)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	type running struct {
		pid, uid int
		disk     string
	}
	var vms []running
	for _, name := range []string{"a", "b"} {
		disk := name + "/disk.qcow2"
		if _, err := r.c.CreateDisk(ctx, "ds", api.CreateDiskRequest{Path: disk, SizeBytes: 8 << 20}); err != nil {
			t.Fatal(err)
		}
		spec := guest("confined-" + name)
		spec.Disks = []api.Disk{{Datastore: "ds", Path: disk}}
		vm, err := r.c.CreateVM(ctx, spec)
		if err != nil {
			t.Fatal(err)
		}
		if vm, err = r.c.VMAction(ctx, vm.Spec.ID, api.ActionStart); err != nil {
			t.Fatal(err)
		}
		runnertest.WaitConsole(t, func() ([]byte, error) { return r.c.VMConsole(ctx, vm.Spec.ID) }, runnertest.Marker, 2*time.Minute)
		if vm.Runtime.User < api.VMUIDBase || !vm.Runtime.Sandboxed {
			t.Errorf("VM %s: runtime says user %d, sandboxed %v", name, vm.Runtime.User, vm.Runtime.Sandboxed)
		}
		st := procStatus(t, vm.Runtime.PID)
		uid, _ := strconv.Atoi(strings.Fields(st["Uid"])[0])
		vms = append(vms, running{vm.Runtime.PID, uid, filepath.Join(r.ds, disk)})
		for _, f := range []string{"Uid", "Gid"} {
			for _, id := range strings.Fields(st[f]) {
				if id == "0" {
					t.Errorf("VM %s: QEMU %s %q: root", name, f, st[f])
				}
			}
		}
		for _, c := range []string{"CapInh", "CapPrm", "CapEff", "CapAmb"} {
			if st[c] != "0000000000000000" {
				t.Errorf("VM %s: QEMU %s = %s, want none", name, c, st[c])
			}
		}
		if st["Seccomp"] != "2" || st["NoNewPrivs"] != "1" {
			t.Errorf("VM %s: QEMU Seccomp %s NoNewPrivs %s, want 2 and 1", name, st["Seccomp"], st["NoNewPrivs"])
		}
	}
	if vms[0].uid == vms[1].uid {
		t.Fatalf("both VMs run as uid %d", vms[0].uid)
	}
	for i, v := range vms {
		other := vms[1-i]
		for _, h := range openBy(t, other.disk) {
			if strings.HasPrefix(h, strconv.Itoa(v.pid)+" ") {
				t.Errorf("QEMU %d holds the other VM's disk: %s", v.pid, h)
			}
		}
		// As this VM's user: the other's disk by name, and through the
		// other QEMU's descriptors.
		fds, _ := filepath.Glob("/proc/" + strconv.Itoa(other.pid) + "/fd/*")
		for _, p := range append([]string{other.disk}, fds...) {
			cmd := exec.Command("dd", "if="+p, "of=/dev/null", "bs=512", "count=1", "status=none")
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(v.uid), Gid: uint32(v.uid)}}
			if out, err := cmd.CombinedOutput(); err == nil {
				t.Errorf("uid %d read %s: %s", v.uid, p, out)
			}
		}
	}
}

// procStatus reads /proc/PID/status into a map.
func procStatus(t *testing.T, pid int) map[string]string {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok {
			m[k] = strings.TrimSpace(v)
		}
	}
	return m
}

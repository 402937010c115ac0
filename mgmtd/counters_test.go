package mgmtd_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/mgmtd"
	qemutest "github.com/plinth/plinth/qemu-test"
	"github.com/plinth/plinth/vmkernel/runner/runnertest"
	"github.com/plinth/plinth/vmkernel/vmkerneltest"
)

// getAuthed is a GET with the client's token, answering the body.
func getAuthed(t *testing.T, url, token string) []byte {
	t.Helper()
	req, _ := http.NewRequestWithContext(deadline(t), http.MethodGet, url, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := rawClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	return b
}

// TestDiskCountersMatchGuestWrites: a guest writes a known 24 MiB to its
// disk; /metrics' written-bytes counter for that disk and the history's
// write rates (summed over their steps) both say 24 MiB (plus at most the
// little a booting kernel writes: nothing, here, as the guest has no file
// system).
func TestDiskCountersMatchGuestWrites(t *testing.T) {
	kernel := runnertest.Kernel(t, "../build/vmlinuz")
	mods := runnertest.Modules(t, "../build")
	rig := vmkerneltest.Start(t, vmkerneltest.Options{Datastores: []string{"ds1"}})
	if err := qemutest.InstallGuest(kernel, rig.DS["ds1"], func(dir string) (string, error) {
		return qemutest.BuildFloorWithModules(dir, mods, runnertest.DiskModules...)
	}); err != nil {
		t.Fatal(err)
	}
	r := startMgmtd(t, t.TempDir(), rig.Socket, nil, func(c *mgmtd.Config) { c.HistoryStep = time.Second })
	c := loggedIn(t, r)
	const mib = 24
	if _, err := c.CreateDisk(deadline(t), "ds1", api.CreateDiskRequest{Path: "w/disk.qcow2", SizeBytes: 64 << 20}); err != nil {
		t.Fatal(err)
	}
	vm, err := c.CreateVM(deadline(t), api.VMSpec{Name: "writer", MemoryMiB: 256, Serial: true,
		Disks: []api.Disk{{Datastore: "ds1", Path: "w/disk.qcow2"}},
		Kernel: &api.DirectBoot{Datastore: "ds1", Kernel: "vmlinux", Initrd: "init.cpio",
			Cmdline: runnertest.FloorCmdline(fmt.Sprintf("write=%d,hang", mib))}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.VMAction(deadline(t), vm.Spec.ID, api.ActionStart); err != nil {
		t.Fatal(err)
	}
	var console string
	for end := time.Now().Add(180 * time.Second); !strings.Contains(console, "PLINTH-WROTE"); time.Sleep(500 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("the guest did not write its %d MiB in 180 s; console:\n%s", mib, console)
		}
		b, err := c.VMConsole(deadline(t), vm.Spec.ID)
		if err != nil {
			t.Fatal(err)
		}
		console = string(b)
	}
	m := regexp.MustCompile(`PLINTH-WROTE (\d+)`).FindStringSubmatch(console)
	wrote, _ := strconv.Atoi(m[1])
	if wrote != mib<<20 {
		t.Fatalf("the guest wrote %d bytes, not %d", wrote, mib<<20)
	}
	// /metrics: the disk's written bytes.
	line := regexp.MustCompile(`(?m)^plinth_vm_disk_written_bytes_total\{id="` + vm.Spec.ID + `",[^}]*\} (\S+)$`)
	var written float64
	for end := time.Now().Add(30 * time.Second); ; time.Sleep(time.Second) {
		if m := line.FindSubmatch(getAuthed(t, r.url+api.MgmtdMetricsPath, c.Token())); m != nil {
			written, _ = strconv.ParseFloat(string(m[1]), 64)
		}
		if written >= float64(wrote) || time.Now().After(end) {
			break
		}
	}
	if written < float64(wrote) || written > float64(wrote)+1<<20 {
		t.Errorf("/metrics says the disk was written %.0f bytes; the guest wrote %d", written, wrote)
	}
	// The history: the write rates times their steps add up to the same,
	// once a sample after the write is in.
	var sum float64
	for end := time.Now().Add(30 * time.Second); ; time.Sleep(time.Second) {
		var h api.HostHistory
		if err := json.NewDecoder(bytes.NewReader(getAuthed(t, r.url+api.MgmtdHistoryPath, c.Token()))).Decode(&h); err != nil {
			t.Fatal(err)
		}
		sum = 0
		for i, s := range h.Samples {
			if i > 0 {
				sum += s.DiskWriteBytesPerSecond * s.Time.Sub(h.Samples[i-1].Time).Seconds()
			}
		}
		if sum >= float64(wrote)*0.99 || time.Now().After(end) {
			break
		}
	}
	// The first sample after the VM started may miss its first step's bytes
	// only if the guest wrote before the second sample, which at 1 s steps
	// and a kernel boot first it does not.
	if sum < float64(wrote)*0.99 || sum > float64(wrote)*1.01+1<<20 {
		t.Errorf("the history's write rates add up to %.0f bytes; the guest wrote %d", sum, wrote)
	}
	t.Logf("guest wrote %d bytes; /metrics %.0f; history %.0f", wrote, written, sum)
}

package qemutest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/plinth/plinth/api"
)

// TestApplianceNetCounters: two VMs on a virtual switch of the appliance;
// one sends a known 4 MiB of broadcast frames (floor init send=4), the
// other takes them in. /metrics' network counters say the receiver got
// what was sent (a tap's transmit is what its guest receives) and the
// sender sent it, and the history's receive rates add up to the same.
func TestApplianceNetCounters(t *testing.T) {
	o := e2eOptions(t)
	dir := t.TempDir()
	seed := floorDatastore(t, o.Kernel, dir, "virtio_pci", "virtio_net")
	dsImg := filepath.Join(dir, "ds1.img")
	mkfs(t, "PLINTH-DS1", seed, dsImg, "160M")
	o.CPUs, o.MemoryMiB = 2, 2048
	o.ExtraArgs = []string{"-drive", "file=" + dsImg + ",if=virtio,format=raw"}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	vm, _, err := StartReady(ctx, o, 240*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Close()
	c := newPinnedClient()
	firstLogin(ctx, t, vm, c)
	base := vm.APIURL()
	c.sendJSON(t, "POST", base+api.MgmtdSwitchesPath, api.SwitchSpec{Name: "lan"}, 201)
	// 4 MiB, four times the tolerance below. (It was 16: the guests run on
	// KVM nested on QEMU 7.2's TCG emulation of SVM, which now and then
	// corrupts the appliance under a storm of guest interrupts, as in a
	// rehearsal on 2026-12-06 with KSM off: "stack guard page was hit" in
	// the inner QEMU, then "corrupted stack end detected inside
	// scheduler". A quarter of the traffic is a quarter of that exposure.)
	const mib = 4
	mk := func(name, mode string) api.VM {
		var v api.VM
		out := c.sendJSON(t, "POST", base+api.MgmtdVMsPath, api.VMSpec{Name: name, MemoryMiB: 256, Serial: true,
			NICs:   []api.NIC{{Model: api.NICVirtio, Switch: "lan"}},
			Kernel: &api.DirectBoot{Datastore: "ds1", Kernel: "vmlinux", Initrd: "init.cpio", Cmdline: "console=ttyS0 quiet panic=-1 " + NoSelfTests + " plinthfloor=" + mode + ",hang"}}, 201)
		if err := json.Unmarshal(out, &v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	rx, tx := mk("rx", "net"), mk("tx", fmt.Sprintf("send=%d", mib))
	waitConsole := func(v api.VM, pat string) string {
		t.Helper()
		u := base + api.MgmtdVMsPath + "/" + url.PathEscape(v.Spec.ID)
		c.sendJSON(t, "POST", u+"/start", nil, 200)
		var console string
		for end := time.Now().Add(NestedMarkerWait); !strings.Contains(console, pat); time.Sleep(time.Second) {
			if time.Now().After(end) {
				t.Fatalf("%s: no %q on the console in %v:\n%s%s", v.Spec.Name, pat, NestedMarkerWait, console, formatTail(vm.Tail(TailLines)))
			}
			console = c.getText(t, u+"/console")
		}
		return console
	}
	waitConsole(rx, "PLINTH-NIC")
	// A history sample's rates are over the time since the sample before;
	// the first one's start (mgmtd's first snapshot) is not in the answer.
	// So the sending starts once the first sample is in, and every byte of
	// it lands in a sample whose interval the sum below knows. (A CI run
	// lost the lot to the first sample: vmkernel had not answered mgmtd's
	// first snapshot, so the base came a step late.)
	for end := time.Now().Add(90 * time.Second); ; time.Sleep(2 * time.Second) {
		var h api.HostHistory
		c.getJSON(t, base+api.MgmtdHistoryPath, &h)
		if len(h.Samples) > 0 {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("no sample in the history 90 s after rx started (step %d s)", h.StepSeconds)
		}
	}
	m := regexp.MustCompile(`PLINTH-SENT (\d+)`).FindStringSubmatch(waitConsole(tx, "PLINTH-SENT"))
	sent, _ := strconv.ParseFloat(m[1], 64)
	if sent < mib<<20 {
		t.Fatalf("the sender sent %.0f bytes, not %d MiB", sent, mib)
	}
	metric := func(body, name, id string) float64 {
		m := regexp.MustCompile(`(?m)^` + name + `\{id="` + id + `",[^}]*\} (\S+)$`).FindStringSubmatch(body)
		if m == nil {
			return -1
		}
		v, _ := strconv.ParseFloat(m[1], 64)
		return v
	}
	var got, out float64
	for end := time.Now().Add(60 * time.Second); ; time.Sleep(2 * time.Second) {
		body := c.getText(t, base+api.MgmtdMetricsPath)
		got = metric(body, "plinth_vm_network_receive_bytes_total", rx.Spec.ID)
		out = metric(body, "plinth_vm_network_transmit_bytes_total", tx.Spec.ID)
		if got >= sent && out >= sent || time.Now().After(end) {
			break
		}
	}
	// Beyond the frames, only what a booting guest or the bridge sends on
	// its own (none of the guests has an address): well under 1 MiB.
	if got < sent || got > sent+1<<20 {
		t.Errorf("/metrics: the receiver got %.0f bytes; %.0f were sent", got, sent)
	}
	if out < sent || out > sent+1<<20 {
		t.Errorf("/metrics: the sender sent %.0f bytes by its tap; it sent %.0f", out, sent)
	}
	// The history (20 s steps): the receive rates add up to what the
	// receiver got, once a sample after the sending is in.
	var sum float64
	for end := time.Now().Add(90 * time.Second); ; time.Sleep(5 * time.Second) {
		var h api.HostHistory
		c.getJSON(t, base+api.MgmtdHistoryPath, &h)
		sum = 0
		for i, s := range h.Samples {
			if i > 0 {
				sum += s.NetRxBytesPerSecond * s.Time.Sub(h.Samples[i-1].Time).Seconds()
			}
		}
		if sum >= sent || time.Now().After(end) {
			break
		}
	}
	if sum < sent*0.99 || sum > got*1.01 {
		t.Errorf("the history's receive rates add up to %.0f bytes; the receiver got %.0f, %.0f were sent", sum, got, sent)
	}
	t.Logf("sent %.0f bytes; /metrics: received %.0f, transmitted %.0f; history received %.0f", sent, got, out, sum)
}

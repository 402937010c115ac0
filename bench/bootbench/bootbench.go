// Package bootbench measures how long the appliance takes to boot under QEMU
// to its ready line, against a floor booted in the same run: the same
// kernel with a static Go /init that prints a marker (qemu-test's floor
// guest). Boots alternate floor, appliance, floor, ...; one warm-up boot of
// each is discarded; the report gives each run, the medians, their
// difference and ratio, and the appliance's boot timeline (the ready line's
// *_ms moments). A Loop of further appliance boots counts stalls. Both
// boot as a server does (qemutest.Options.ServerBoot: the bzImage through
// its own decompressor, the kernel's crypto self-tests run) unless
// Options.TestBoot says to boot them as the tests do.
package bootbench

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/bench/stats"
	qemutest "github.com/plinth/plinth/qemu-test"
)

// Options configures Run.
type Options struct {
	Kernel, Initrd string // the appliance; the floor boots the same kernel
	Runs           int    // measured boots of each guest, after one warm-up each
	// Loop is how many more appliance boots follow the measured ones, to
	// count stalls (see qemutest.ErrStalled).
	Loop         int
	CPUs         int
	MemoryMiB    int
	ReadyTimeout time.Duration
	// TestBoot boots both as the tests do: through the kernel's PVH entry,
	// without the crypto self-tests (see qemutest.Options.ServerBoot).
	TestBoot bool
	Logf     func(format string, args ...any)
}

// Result is what Run measured.
type Result struct {
	Options Options
	Accel   api.Acceleration
	Date    time.Time
	Floor   []time.Duration // QEMU start to qemutest.FloorMarker
	// FloorUptime is the floor's kernel uptime (ms) when its init printed
	// the marker: the wall time minus it is firmware and QEMU's setup.
	FloorUptime []string
	Appliance   []time.Duration // QEMU start to the PLINTH-READY line
	Ready       []map[string]string
	// FloorCPU and ApplianceCPU are the CPU time QEMU used until the
	// marker or the ready line: a loaded host stretches wall time much
	// more than CPU time.
	FloorCPU, ApplianceCPU []time.Duration
	// Loop are the loop's boots, in order; LoopErr ends it (a stall).
	Loop    []time.Duration
	LoopErr error
	// Boots counts every appliance boot of the run, warm-up included.
	Boots int
	// Relaunched counts the boots qemutest started again after the rig
	// QEMU's own assertion (VM.WaitReady): not stalls, but said.
	Relaunched int
}

// Run boots the floor guest and the appliance Runs+1 times each,
// interleaved, the first of each a warm-up, then the appliance Loop more
// times. A boot that fails (a stall among them) ends the measured runs
// with an error; one in the loop ends the loop and is reported in Result.
func Run(ctx context.Context, o Options) (*Result, error) {
	if o.Runs <= 0 {
		o.Runs = 7
	}
	if o.ReadyTimeout <= 0 {
		o.ReadyTimeout = 240 * time.Second
	}
	logf := o.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	dir, err := os.MkdirTemp("", "plinth-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	floorInitrd, err := qemutest.BuildFloor(dir)
	if err != nil {
		return nil, err
	}
	res := &Result{Options: o, Date: time.Now()}
	var cpu time.Duration // of the last boot
	boot := func(initrd string, wait func(*qemutest.VM) error) (time.Duration, error) {
		vm, err := qemutest.Start(ctx, qemutest.Options{Kernel: o.Kernel, ServerBoot: !o.TestBoot, Initrd: initrd, CPUs: o.CPUs, MemoryMiB: o.MemoryMiB})
		if err != nil {
			return 0, err
		}
		defer vm.Close()
		res.Accel = vm.Accel
		err = wait(vm)
		d := time.Since(vm.Started)
		cpu, _ = vm.CPUTime()
		return d, err
	}
	floor := func() (time.Duration, string, error) {
		var line string
		d, err := boot(floorInitrd, func(vm *qemutest.VM) error {
			var err error
			line, err = vm.Expect(qemutest.FloorMarker, 120*time.Second)
			return err
		})
		_, up, _ := strings.Cut(line, "uptime_ms=")
		return d, strings.TrimSpace(up), err
	}
	appliance := func() (time.Duration, map[string]string, error) {
		var ready map[string]string
		res.Boots++
		d, err := boot(o.Initrd, func(vm *qemutest.VM) error {
			var err error
			ready, err = vm.WaitReady(o.ReadyTimeout)
			return err
		})
		return d, ready, err
	}
	relaunches := qemutest.RigRelaunches.Load()
	defer func() { res.Relaunched = int(qemutest.RigRelaunches.Load() - relaunches) }()
	for i := 0; i <= o.Runs; i++ {
		what := fmt.Sprintf("run %d/%d", i, o.Runs)
		if i == 0 {
			what = "warm-up"
		}
		d, up, err := floor()
		if err != nil {
			return nil, fmt.Errorf("floor %s: %w", what, err)
		}
		logf("%s: floor %.2fs", what, d.Seconds())
		if i > 0 {
			res.Floor = append(res.Floor, d)
			res.FloorUptime = append(res.FloorUptime, up)
			res.FloorCPU = append(res.FloorCPU, cpu)
		}
		d, ready, err := appliance()
		if err != nil {
			return nil, fmt.Errorf("appliance %s: %w", what, err)
		}
		logf("%s: appliance %.2fs %v", what, d.Seconds(), ready)
		if i > 0 {
			res.Appliance = append(res.Appliance, d)
			res.Ready = append(res.Ready, ready)
			res.ApplianceCPU = append(res.ApplianceCPU, cpu)
		}
	}
	for i := 1; i <= o.Loop; i++ {
		d, _, err := appliance()
		if err != nil {
			res.LoopErr = fmt.Errorf("loop boot %d: %w", i, err)
			logf("%v", res.LoopErr)
			break
		}
		res.Loop = append(res.Loop, d)
		logf("loop %d/%d: appliance %.2fs", i, o.Loop, d.Seconds())
	}
	return res, nil
}

func secs(d time.Duration) string { return fmt.Sprintf("%.2f", d.Seconds()) }

// Markdown writes the result as a section for docs/PERFORMANCE.md.
func (r *Result) Markdown(w io.Writer) {
	o := r.Options
	cmd := fmt.Sprintf("go run ./bench/boot -n %d", len(r.Floor))
	if o.Loop > 0 {
		cmd += fmt.Sprintf(" -loop %d", o.Loop)
	}
	fmt.Fprintf(w, "## Cold boot: floor vs appliance (%s, `%s`)\n\n", r.Date.Format("2006-01-02"), cmd)
	fmt.Fprintf(w, "- Machine: %s, %d CPUs (runtime.NumCPU), shared with other builds and tests (load average at the end: %s)\n",
		qemutest.HostCPU(), runtime.NumCPU(), loadAverage())
	fmt.Fprintf(w, "- Acceleration: %s (%s)\n", r.Accel.Mode, r.Accel.Reason)
	fmt.Fprintf(w, "- Guests: q35, %d vCPUs, %d MiB, kernel `%s` (%s); appliance initramfs `%s` (%s)\n",
		o.CPUs, o.MemoryMiB, o.Kernel, fileSize(o.Kernel), o.Initrd, fileSize(o.Initrd))
	fmt.Fprintf(w, "- Floor: the same kernel with a static Go `/init` that prints a marker.\n")
	if r.Options.TestBoot {
		fmt.Fprintf(w, "- Booted as the tests boot (`-test-boot`): the kernel uncompressed through its PVH entry, `%s`.\n", qemutest.NoSelfTests)
	} else {
		fmt.Fprintf(w, "- Booted as a server boots: the bzImage through its own decompressor, the kernel's crypto self-tests on.\n")
	}
	fmt.Fprintf(w, "- Wall time from starting QEMU to the floor's marker / the appliance's `%s` line; boots interleaved, one warm-up of each discarded.\n\n", api.ReadyPrefix)

	fmt.Fprintln(w, "| run | floor (s) | appliance (s) | floor, QEMU's CPU (s) | appliance, QEMU's CPU (s) |")
	fmt.Fprintln(w, "| --- | ---: | ---: | ---: | ---: |")
	at := func(ds []time.Duration, i int) string {
		if i < len(ds) {
			return secs(ds[i])
		}
		return "-"
	}
	for i := range r.Floor {
		fmt.Fprintf(w, "| %d | %s | %s | %s | %s |\n", i+1, secs(r.Floor[i]), at(r.Appliance, i), at(r.FloorCPU, i), at(r.ApplianceCPU, i))
	}
	mf, ma := stats.Median(r.Floor), stats.Median(r.Appliance)
	cf, ca := stats.Median(r.FloorCPU), stats.Median(r.ApplianceCPU)
	fmt.Fprintf(w, "| **median** | **%s** | **%s** | **%s** | **%s** |\n\n", secs(mf), secs(ma), secs(cf), secs(ca))
	ratio := "n/a"
	if mf > 0 {
		ratio = fmt.Sprintf("%.2f×", ma.Seconds()/mf.Seconds())
	}
	fmt.Fprintf(w, "Appliance − floor (medians): **%s s**; appliance / floor: **%s**.", secs(ma-mf), ratio)
	if cf > 0 {
		fmt.Fprintf(w, " In QEMU's CPU time, which a busy host stretches much less: appliance − floor **%s s**, appliance / floor **%.2f×**.", secs(ca-cf), ca.Seconds()/cf.Seconds())
	}
	fmt.Fprint(w, "\n\n")
	if o.Loop > 0 {
		fmt.Fprintf(w, "Stall loop: %d more appliance boots in a row", o.Loop)
		if r.LoopErr != nil {
			fmt.Fprintf(w, ": **stopped at boot %d**: %v\n\n", len(r.Loop)+1, firstLine(r.LoopErr.Error()))
		} else {
			fmt.Fprintf(w, ", each to its ready line: **no stall**; %d appliance boots in this run without one (median %s s, slowest %s s).\n\n",
				r.Boots, secs(stats.Median(r.Loop)), secs(slices.Max(r.Loop)))
		}
	}
	if r.Relaunched > 0 {
		fmt.Fprintf(w, "%d of the boots ended in the rig QEMU's own assertion (`msix_table_mmio_write`) and were booted again (qemutest's WaitReady).\n\n", r.Relaunched)
	}
	r.timeline(w, ma, mf)
}

// timeline writes the appliance's boot timeline: every *_ms key of the
// ready line is a moment, in ms since the kernel started, at which a phase
// ended (unpack_start excepted), sorted by time. Steps overlap, so a gap is
// not all the cost of its row's step alone.
func (r *Result) timeline(w io.Writer, ma, mf time.Duration) {
	keys := map[string][]string{}
	for _, m := range r.Ready {
		for k, v := range m {
			keys[k] = append(keys[k], v)
		}
	}
	if len(keys) == 0 {
		return
	}
	type moment struct {
		key string
		ms  float64
	}
	var tl []moment
	for k, vs := range keys {
		if !strings.HasSuffix(k, "_ms") {
			continue
		}
		if v, err := strconv.ParseFloat(stats.MedianValue(vs), 64); err == nil {
			tl = append(tl, moment{strings.TrimSuffix(k, "_ms"), v})
		}
	}
	sort.Slice(tl, func(i, j int) bool { return tl[i].ms < tl[j].ms })
	fmt.Fprintf(w, "Boot timeline of the appliance (medians of %d runs; ms since the kernel started):\n\n", len(r.Ready))
	fmt.Fprintln(w, "| moment | at (ms) | since previous (ms) |")
	fmt.Fprintln(w, "| --- | ---: | ---: |")
	prev := 0.0
	for _, m := range tl {
		fmt.Fprintf(w, "| %s | %.0f | %.0f |\n", m.key, m.ms, m.ms-prev)
		prev = m.ms
	}
	if len(tl) > 0 {
		fw := ma.Seconds()*1000 - tl[len(tl)-1].ms
		fmt.Fprintf(w, "\nBefore the kernel's clock starts (firmware, QEMU setup, loading kernel and initrd): about %.0f ms (wall median minus the last moment).\n", fw)
	}
	if len(r.FloorUptime) > 0 {
		if v, err := strconv.ParseFloat(stats.MedianValue(r.FloorUptime), 64); err == nil {
			fmt.Fprintf(w, "The floor's init printed its marker %.0f ms after its kernel started; %.0f ms of its wall time came before.\n", v, mf.Seconds()*1000-v)
		}
	}
	fmt.Fprintln(w)
	var other []string
	for k, vs := range keys {
		if !strings.HasSuffix(k, "_ms") {
			other = append(other, fmt.Sprintf("%s=%s", k, vs[len(vs)-1])) // the last run's
		}
	}
	sort.Strings(other)
	fmt.Fprintf(w, "Other keys of the ready line: %s.\n", strings.Join(other, " "))
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

func fileSize(path string) string {
	fi, err := os.Stat(path)
	if err != nil {
		return "missing"
	}
	return fmt.Sprintf("%.1f MB", float64(fi.Size())/1e6)
}

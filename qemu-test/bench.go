package qemutest

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
)

// BenchOptions configures BootBench.
type BenchOptions struct {
	Kernel, Initrd string // the appliance; the floor boots the same kernel
	Runs           int    // boots of each guest
	CPUs           int
	MemoryMiB      int
	ReadyTimeout   time.Duration
	Logf           func(format string, args ...any)
}

// BenchResult is what BootBench measured.
type BenchResult struct {
	Options BenchOptions
	Accel   api.Acceleration
	Date    time.Time
	Floor   []time.Duration // QEMU start to FloorMarker
	// FloorUptime is the floor's kernel uptime (ms) when its init printed
	// the marker: the wall time minus it is firmware and QEMU's setup.
	FloorUptime []string
	Appliance   []time.Duration // QEMU start to the PLINTH-READY line
	Ready       []map[string]string
}

// BootBench boots the floor guest and the appliance Runs times each,
// interleaved, and times each from QEMU's start to its marker or ready line.
func BootBench(ctx context.Context, o BenchOptions) (*BenchResult, error) {
	if o.Runs <= 0 {
		o.Runs = 5
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
	floorInitrd, err := BuildFloor(dir)
	if err != nil {
		return nil, err
	}
	res := &BenchResult{Options: o, Date: time.Now()}
	boot := func(initrd string, wait func(*VM) error) (time.Duration, *VM, error) {
		vm, err := Start(ctx, Options{Kernel: o.Kernel, Initrd: initrd, CPUs: o.CPUs, MemoryMiB: o.MemoryMiB})
		if err != nil {
			return 0, nil, err
		}
		res.Accel = vm.Accel
		err = wait(vm)
		d := time.Since(vm.Started)
		vm.Close()
		return d, vm, err
	}
	for i := 1; i <= o.Runs; i++ {
		var line string
		d, _, err := boot(floorInitrd, func(vm *VM) error {
			var err error
			line, err = vm.Expect(FloorMarker, 120*time.Second)
			return err
		})
		if _, up, ok := strings.Cut(line, "uptime_ms="); ok {
			res.FloorUptime = append(res.FloorUptime, strings.TrimSpace(up))
		}
		if err != nil {
			return nil, fmt.Errorf("floor run %d: %w", i, err)
		}
		res.Floor = append(res.Floor, d)
		logf("run %d/%d: floor %.2fs", i, o.Runs, d.Seconds())

		var ready map[string]string
		d, _, err = boot(o.Initrd, func(vm *VM) error {
			ready, err = vm.WaitReady(o.ReadyTimeout)
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("appliance run %d: %w", i, err)
		}
		res.Appliance = append(res.Appliance, d)
		res.Ready = append(res.Ready, ready)
		logf("run %d/%d: appliance %.2fs %v", i, o.Runs, d.Seconds(), ready)
	}
	return res, nil
}

// Median returns the median of ds (0 for none).
func Median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	if n := len(s); n%2 == 0 {
		return (s[n/2-1] + s[n/2]) / 2
	}
	return s[len(s)/2]
}

// medianValue is the median of values that are all numbers or all Go
// durations, formatted like them; otherwise the distinct values.
func medianValue(vals []string) string {
	nums := make([]float64, 0, len(vals))
	for _, v := range vals {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			nums = nil
			break
		}
		nums = append(nums, f)
	}
	if nums != nil {
		slices.Sort(nums)
		n := len(nums)
		m := nums[n/2]
		if n%2 == 0 {
			m = (nums[n/2-1] + nums[n/2]) / 2
		}
		return strconv.FormatFloat(m, 'f', -1, 64)
	}
	var ds []time.Duration
	for _, v := range vals {
		d, err := time.ParseDuration(v)
		if err != nil {
			ds = nil
			break
		}
		ds = append(ds, d)
	}
	if ds != nil {
		return Median(ds).String()
	}
	seen := slices.Compact(slices.Sorted(slices.Values(vals)))
	return "(not numeric) " + strings.Join(seen, ", ")
}

func secs(d time.Duration) string { return fmt.Sprintf("%.2f", d.Seconds()) }

// Markdown writes the result as a section for docs/PERFORMANCE.md.
func (r *BenchResult) Markdown(w io.Writer) {
	o := r.Options
	fmt.Fprintf(w, "## Boot time: floor vs appliance (`go run ./bench/boot -n %d`)\n\n", len(r.Floor))
	fmt.Fprintf(w, "- Date: %s; machine: %s, %d CPUs (runtime.NumCPU)\n", r.Date.Format("2006-01-02"), HostCPU(), runtime.NumCPU())
	fmt.Fprintf(w, "- Acceleration: %s (%s)\n", r.Accel.Mode, r.Accel.Reason)
	fmt.Fprintf(w, "- Guests: q35, %d vCPUs, %d MiB, kernel `%s` (%s); appliance initramfs `%s` (%s)\n",
		o.CPUs, o.MemoryMiB, o.Kernel, fileSize(o.Kernel), o.Initrd, fileSize(o.Initrd))
	fmt.Fprintf(w, "- Floor: the same kernel with a static Go `/init` that prints a marker and powers off.\n")
	fmt.Fprintf(w, "- Wall time from starting QEMU to the floor's marker / the appliance's `%s` line; runs interleaved.\n\n", api.ReadyPrefix)

	fmt.Fprintln(w, "| run | floor (s) | appliance (s) |")
	fmt.Fprintln(w, "| --- | ---: | ---: |")
	for i := range r.Floor {
		a := "-"
		if i < len(r.Appliance) {
			a = secs(r.Appliance[i])
		}
		fmt.Fprintf(w, "| %d | %s | %s |\n", i+1, secs(r.Floor[i]), a)
	}
	mf, ma := Median(r.Floor), Median(r.Appliance)
	fmt.Fprintf(w, "| **median** | **%s** | **%s** |\n\n", secs(mf), secs(ma))
	ratio := "n/a"
	if mf > 0 {
		ratio = fmt.Sprintf("%.2f×", ma.Seconds()/mf.Seconds())
	}
	fmt.Fprintf(w, "Appliance − floor (medians): **%s s**; appliance / floor: **%s**.\n\n", secs(ma-mf), ratio)

	keys := map[string][]string{}
	for _, m := range r.Ready {
		for k, v := range m {
			keys[k] = append(keys[k], v)
		}
	}
	if len(keys) == 0 {
		return
	}
	// The boot timeline: every *_ms key is a moment, in ms since the kernel
	// started, at which a phase ended (unpack_start excepted); sorted by
	// time. Some steps overlap (modules, network), so the gaps are not all
	// the cost of the row's step alone.
	type moment struct {
		key string
		ms  float64
	}
	var tl []moment
	for k, vs := range keys {
		if !strings.HasSuffix(k, "_ms") {
			continue
		}
		if v, err := strconv.ParseFloat(medianValue(vs), 64); err == nil {
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
		if v, err := strconv.ParseFloat(medianValue(r.FloorUptime), 64); err == nil {
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

func fileSize(path string) string {
	fi, err := os.Stat(path)
	if err != nil {
		return "missing"
	}
	return fmt.Sprintf("%.1f MB", float64(fi.Size())/1e6)
}

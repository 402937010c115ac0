package webbench

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/plinth/plinth/api"
	qemutest "github.com/plinth/plinth/qemu-test"
	"github.com/plinth/plinth/vmkernel/vmkerneltest"
	"github.com/plinth/plinth/web"
	"github.com/plinth/plinth/web/webtest"
)

const password = "Plinth-bench-1"

// serve runs a real vmkernel (datastore ds1) and a real mgmtd with the root
// password set, on loopback, and answers mgmtd's address and the rig.
func serve(b *testing.B) (string, *vmkerneltest.Rig) {
	b.Helper()
	rig := vmkerneltest.Start(b, vmkerneltest.Options{Datastores: []string{"ds1"}})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	return webtest.Serve(b, rig.Layout.AuthDir(), rig.Socket, password, l), rig
}

// BenchmarkClient measures the figures docs/PERFORMANCE.md gives: the
// client's size, its first page load, and the time from a click on
// "Virtual machines" to a usable list of 1000 VMs (the first page of 50
// drawn, the pager counting all 1000), against its floor, the same list
// fetched and parsed by the page with no drawing, interleaved, after a
// warm-up, medians of 5. It prints them and writes them to
// build/web-figures.txt.
func BenchmarkClient(b *testing.B) {
	url, rig := serve(b)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	const n, runs = 1000, 5
	for i := range n {
		spec := api.VMSpec{Name: fmt.Sprintf("vm-%04d", i), MemoryMiB: 64, CPU: api.CPU{Sockets: 1, Cores: 1, Threads: 1}}
		if _, err := rig.Client.CreateVM(ctx, spec); err != nil {
			b.Fatalf("creating VM %d: %v", i, err)
		}
	}
	total := 0
	for _, size := range web.Files() {
		total += size
	}
	root, err := qemutest.RepoRoot()
	if err != nil {
		b.Fatal(err)
	}
	br := webtest.Start(b, filepath.Join(root, "build", "screenshots", "BenchmarkClient"), 1280, 900)
	s := webtest.Site{URL: url, Password: password}
	b.ResetTimer()

	// First page load: navigation start to the login form drawn (a reload
	// page load: the assets are cached after the first, as in a browser).
	var loads []float64
	for i := range runs + 1 {
		br.Do("open the page", 30*time.Second, chromedp.Navigate("about:blank"))
		br.Do("open the page", 30*time.Second, chromedp.Navigate(url+"/?fresh="+fmt.Sprint(i)))
		br.WaitFor("the login form", `document.querySelector('input[name=password]')`, 20*time.Second)
		ms := webtest.Eval[float64](br, `performance.getEntriesByName('plinth-login-drawn')[0].startTime`)
		if i > 0 { // the first warms up mgmtd
			loads = append(loads, ms)
		}
	}
	webtest.Login(b, br, s)
	var list, floor []float64
	for i := range runs + 1 {
		webtest.Eval[bool](br, `(performance.clearMarks('plinth-vms-drawn'), window.__t0 = performance.now(), document.querySelector('a[href="/vms"]').click(), true)`)
		br.WaitFor("the list of 1000", `document.querySelectorAll('#vm-list tbody tr').length === 50 && document.querySelector('.pager') && document.querySelector('.pager').textContent.includes('(1000 VMs)')`, 30*time.Second)
		ms := webtest.Eval[float64](br, `performance.getEntriesByName('plinth-vms-drawn')[0].startTime - window.__t0`)
		f := webtest.Eval[float64](br, `(async () => { const t0 = performance.now(); const r = await fetch('/api/v1/vms', {headers: {Authorization: 'Bearer ' + window.plinthToken()}}); const l = await r.json(); if (l.length !== 1000) throw new Error('got ' + l.length); return performance.now() - t0 })()`)
		if i > 0 {
			list, floor = append(list, ms), append(floor, f)
		}
		webtest.Eval[bool](br, `(document.querySelector('a[href="/host"]').click(), true)`)
		br.WaitFor("the host page", `document.querySelector('#host-facts')`, 20*time.Second)
	}
	b.StopTimer()
	report := fmt.Sprintf("web client: %d bytes gzipped (%.0f KiB)\nfirst page load to the login form: median %.0f ms of %v\n"+
		"click to a usable list of %d VMs: median %.0f ms of %v\nfloor (the page fetching and parsing the same list): median %.0f ms of %v\nratio: %.2f\n",
		total, float64(total)/1024, median(loads), loads, n, median(list), list, median(floor), floor, median(list)/median(floor))
	b.Log("\n" + report)
	os.WriteFile(filepath.Join(root, "build", "web-figures.txt"), []byte(report), 0o644)
	b.ReportMetric(float64(total), "client-bytes")
	b.ReportMetric(median(loads), "load-ms")
	b.ReportMetric(median(list), "list1000-ms")
	b.ReportMetric(median(floor), "floor-ms")
	b.ReportMetric(median(list)/median(floor), "list/floor")
}

// median is the middle of xs (an odd number of them).
func median(xs []float64) float64 {
	s := slices.Sorted(slices.Values(xs))
	return s[len(s)/2]
}

package web_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/web/webtest"
)

// TestBrowserListPages: with 120 VMs defined, a click on "Virtual machines"
// draws the first page of 50 rows, sorted by name, with a pager counting all
// of them. How fast a list of 1000 is usable (against the page's own fetch
// of it) is bench/webbench's to measure, not a test's to bound.
func TestBrowserListPages(t *testing.T) {
	url, rig := serveRig(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	const n = 120
	for i := range n {
		spec := api.VMSpec{Name: fmt.Sprintf("vm-%04d", i), MemoryMiB: 64, CPU: api.CPU{Sockets: 1, Cores: 1, Threads: 1}}
		if _, err := rig.Client.CreateVM(ctx, spec); err != nil {
			t.Fatalf("creating VM %d: %v", i, err)
		}
	}
	b := webtest.Start(t, shots(t), 1280, 900)
	webtest.Login(t, b, webtest.Site{URL: url, Password: password})
	webtest.Click(t, b, "Virtual machines", `a[href="/vms"]`)
	b.WaitFor("the first page of 120", `document.querySelectorAll('#vm-list tbody tr').length === 50 && document.querySelector('.pager') && document.querySelector('.pager').textContent.includes('Page 1 of 3 (120 VMs)')`, time.Minute)
	b.Shot("vm-list-120")
	if first := webtest.Eval[string](b, `document.querySelector('#vm-list tbody tr').textContent`); !strings.Contains(first, "vm-0000") {
		t.Errorf("the first row is %q, want vm-0000", first)
	}
}

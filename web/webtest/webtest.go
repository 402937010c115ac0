// Package webtest drives the web client in Debian's Chromium, headless,
// over the DevTools protocol (chromedp), as a person would: it clicks,
// types and reads the page, and keeps a screenshot of each step. The same
// steps run against a local mgmtd (package web's test) and against the
// appliance under QEMU (qemu-test).
package webtest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/target"
	"github.com/chromedp/chromedp"
)

// Chromium is Debian's browser (scripts/deps.sh installs it).
const Chromium = "/usr/bin/chromium"

// Browser is one headless Chromium with one page.
type Browser struct {
	t     testing.TB
	ctx   context.Context
	Shots string // where screenshots go
	n     *int
}

// Start starts Chromium with a fresh profile, a window of width x height,
// and the flags this machine needs (no sandbox as root, no background
// networking: the closed network refuses it); it trusts any certificate
// (the appliance's is self-signed). Screenshots go to shots. The browser
// ends with the test.
func Start(t testing.TB, shots string, width, height int) *Browser {
	t.Helper()
	if _, err := os.Stat(Chromium); err != nil {
		t.Fatalf("no %s (scripts/deps.sh installs Debian's chromium): %v", Chromium, err)
	}
	if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(Chromium),
		chromedp.Flag("headless", "new"),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.IgnoreCertErrors,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("no-first-run", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(width, height),
	)
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithLogf(func(string, ...any) {}))
	t.Cleanup(func() { cancel(); cancelA() })
	b := &Browser{t: t, ctx: ctx, Shots: shots, n: new(int)}
	// The first call starts the browser, which lives as long as that call's
	// context: no timeout on it, a watchdog instead.
	started := make(chan error, 1)
	go func() { started <- chromedp.Do(ctx) }()
	select {
	case err := <-started:
		if err != nil {
			t.Fatalf("starting chromium: %v", err)
		}
	case <-time.After(60 * time.Second):
		cancel()
		t.Fatal("chromium did not start within 60 s")
	}
	return b
}

func (b *Browser) deadline(d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(b.ctx, d)
	b.t.Cleanup(cancel)
	return ctx
}

// Do runs actions, failing the test (with a screenshot) when one fails or
// the deadline passes.
func (b *Browser) Do(what string, d time.Duration, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.deadline(d), actions...); err != nil {
		b.Shot("failed-" + slug(what))
		b.t.Fatalf("%s: %v\npage text:\n%s", what, err, b.PageText())
	}
}

// Eval evaluates a JavaScript expression and answers its value as T (a
// promise's once it settles).
func Eval[T any](b *Browser, expr string) T {
	b.t.Helper()
	v, err := chromedp.Run(b.deadline(20*time.Second), chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("evaluating %s: %v", expr, err)
	}
	return v
}

// WaitFor polls a JavaScript expression until it is truthy.
func (b *Browser) WaitFor(what, expr string, d time.Duration) {
	b.t.Helper()
	if _, err := chromedp.Run(b.deadline(d+5*time.Second), chromedp.Poll[any](expr, chromedp.WithPollingTimeout(d), chromedp.WithPollingInterval(100*time.Millisecond))); err != nil {
		b.Shot("failed-" + slug(what))
		b.t.Fatalf("waiting %s for %s (%s): %v\npage text:\n%s", d, what, expr, err, b.PageText())
	}
}

// WaitForExplained is WaitFor whose failure also says what explain
// answers then (e.g. the same facts read through the API).
func (b *Browser) WaitForExplained(what, expr string, d time.Duration, explain func() string) {
	b.t.Helper()
	if _, err := chromedp.Run(b.deadline(d+5*time.Second), chromedp.Poll[any](expr, chromedp.WithPollingTimeout(d), chromedp.WithPollingInterval(100*time.Millisecond))); err != nil {
		b.Shot("failed-" + slug(what))
		b.t.Fatalf("waiting %s for %s (%s): %v\n%s\npage text:\n%s", d, what, expr, err, explain(), b.PageText())
	}
}

// PageText is the page's visible text (for failure messages).
func (b *Browser) PageText() string {
	v, err := chromedp.Run(b.deadline(5*time.Second), chromedp.Evaluate[string]("document.body ? document.body.innerText : ''"))
	if err != nil {
		return "(" + err.Error() + ")"
	}
	return v
}

// Shot saves a screenshot of the window as NN-name.png and answers its path.
func (b *Browser) Shot(name string) string {
	*b.n++
	png, err := chromedp.Run(b.deadline(20*time.Second), chromedp.CaptureScreenshot())
	if err != nil {
		b.t.Logf("screenshot %s: %v", name, err)
		return ""
	}
	p := filepath.Join(b.Shots, fmt.Sprintf("%02d-%s.png", *b.n, name))
	if err := os.WriteFile(p, png, 0o644); err != nil {
		b.t.Logf("screenshot %s: %v", name, err)
	}
	return p
}

// Window is the window (a popup the page opened) whose URL contains part,
// opened by the action open; its screenshots are numbered with b's.
func (b *Browser) Window(part string, d time.Duration, open chromedp.Action[chromedp.Void]) *Browser {
	b.t.Helper()
	ch := chromedp.WaitNewTarget(b.ctx, func(i *target.Info) bool { return strings.Contains(i.URL, part) })
	b.Do("open a window", d, open)
	var id target.ID
	select {
	case id = <-ch:
	case <-time.After(d):
		b.t.Fatalf("no window with %q opened within %s", part, d)
	}
	ctx, cancel := chromedp.NewContext(b.ctx, chromedp.WithTargetID(id))
	b.t.Cleanup(cancel)
	attached := make(chan error, 1)
	go func() { attached <- chromedp.Do(ctx) }() // no deadline: the tab lives as long as this call's context
	select {
	case err := <-attached:
		if err != nil {
			b.t.Fatalf("attaching to the window: %v", err)
		}
	case <-time.After(d):
		b.t.Fatalf("could not attach to the window within %s", d)
	}
	return &Browser{t: b.t, ctx: ctx, Shots: b.Shots, n: b.n}
}

// Ctx is the browser's context, for chromedp actions not wrapped here.
func (b *Browser) Ctx(d time.Duration) context.Context { return b.deadline(d) }

func slug(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		return '-'
	}, strings.ToLower(s))
}

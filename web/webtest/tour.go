package webtest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// Site is the host the tour visits.
type Site struct {
	URL       string // https://HOST:PORT
	Password  string // root's
	Datastore string // where the ISO goes
	ISO       string // a small bootable ISO on this machine (BuildFloorISO)
	// Marker is text the guest prints on its serial console once up; the
	// guest powers off when "poweroff" is typed there.
	Marker string
	// Slow stretches every wait (the appliance under TCG).
	Slow time.Duration
	// Net, when set, is the management network change the tour makes
	// (KeepNetworkChange) before it logs out.
	Net *NetChange
}

// NetChange is a static management address the tour gives the host on
// the settings page and keeps from the new address.
type NetChange struct {
	NIC     string // the host's NIC that carries it
	Address string // with its prefix length, e.g. 10.0.2.20/24
	Gateway string
	// NewURL is where this machine reaches the host at Address
	// (https://HOST:PORT): the new address itself, or a port forwarded to
	// it.
	NewURL string
}

func (s Site) wait(d time.Duration) time.Duration { return d + s.Slow }

// js quotes a Go string as a JavaScript string.
func js(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`, "\n", `\n`).Replace(s) + "'"
}

// Login logs in as root through the form, by the keyboard alone.
func Login(t testing.TB, b *Browser, s Site) {
	t.Helper()
	b.Do("open the login page", s.wait(30*time.Second), chromedp.Navigate(s.URL+"/"))
	b.WaitFor("the login form", `document.querySelector('input[name=password]')`, s.wait(20*time.Second))
	b.Shot("login")
	// The password field has the focus; Enter submits.
	b.WaitFor("the password field focused", `document.activeElement && document.activeElement.name === 'password'`, 10*time.Second)
	b.Do("type the password", 10*time.Second, chromedp.KeyEvent(s.Password+"\r"))
	b.WaitFor("the host page after login", `document.querySelector('#logout') && document.querySelector('#host-facts')`, s.wait(30*time.Second))
}

// Tour is the end-to-end path: log in; a wrong password's problem
// shown beside its field; upload an ISO with its progress shown; create a
// VM from the form (its problems beside the fields first); start it and see
// the guest's text in the serial terminal; see its screen drawn over VNC;
// type poweroff and see the state turn to stopped without a reload; log out
// and see the old session refused by the API. Screenshots of each step go
// to b.Shots. It answers the VM's name.
func Tour(t testing.TB, b *Browser, s Site) string {
	t.Helper()
	b.Do("open the login page", s.wait(30*time.Second), chromedp.Navigate(s.URL+"/"))
	b.WaitFor("the login form", `document.querySelector('input[name=password]')`, s.wait(20*time.Second))
	b.Do("a wrong password", 10*time.Second, chromedp.SendKeys(chromedp.CSS("input[name=password]"), "not-the-password\r"))
	b.WaitFor("the wrong password's problem", `document.querySelector('[role=alert]') && document.querySelector('[role=alert]').textContent.length > 0`, s.wait(20*time.Second))
	b.Shot("login-refused")
	typeInto(t, b, "input[name=password]", s.Password+"\r")
	b.WaitFor("the host page", `document.querySelector('#logout') && document.querySelector('#host-facts')`, s.wait(30*time.Second))
	b.Shot("host")

	// Upload the ISO with the upload throttled, so its progress is seen.
	b.Do("open the datastore", 20*time.Second, chromedp.Click(chromedp.CSS(`a[href="/storage"]`)))
	b.Do("open "+s.Datastore, s.wait(20*time.Second), chromedp.Click(chromedp.CSS(`a[href="/storage/`+s.Datastore+`"]`)))
	b.WaitFor("the file browser", `document.querySelector('#upload-input')`, s.wait(20*time.Second))
	throttle(t, b, 4<<20)
	Eval[bool](b, `(window.__progress = [], new MutationObserver(() => document.querySelectorAll('.uploads [role=progressbar]').forEach(e => window.__progress.push(+e.getAttribute('aria-valuenow')))).observe(document.body, {subtree: true, childList: true, attributes: true}), true)`)
	b.Do("choose the ISO", 20*time.Second, chromedp.SetUploadFiles(chromedp.CSS("#upload-input"), []string{s.ISO}))
	b.WaitFor("the upload's progress part way", `window.__progress.some(v => v > 0 && v < 100)`, s.wait(60*time.Second))
	b.Shot("upload-progress")
	b.WaitFor("the upload done", `[...document.querySelectorAll('.uploads .up-state')].some(e => e.textContent === 'done')`, s.wait(180*time.Second))
	// A second copy, cancelled part way: it says so and leaves no file.
	throttle(t, b, 1<<20)
	second := filepath.Join(t.TempDir(), "second.iso")
	if iso, err := os.ReadFile(s.ISO); err != nil || os.WriteFile(second, iso, 0o644) != nil {
		t.Fatalf("copying the ISO: %v", err)
	}
	b.Do("upload a second ISO", 20*time.Second, chromedp.SetUploadFiles(chromedp.CSS("#upload-input"), []string{second}))
	b.WaitFor("the second upload under way", `document.querySelectorAll('.uploads li').length === 2 && [...document.querySelectorAll('.uploads li')][1].querySelector('button')`, s.wait(30*time.Second))
	b.Do("cancel it", 20*time.Second, chromedp.Click(chromedp.CSS(`.uploads li:nth-child(2) button`)))
	b.WaitFor("the upload cancelled", `[...document.querySelectorAll('.uploads .up-state')].some(e => e.textContent === 'cancelled')`, s.wait(30*time.Second))
	listed := `fetch('/api/v1/datastores/` + s.Datastore + `/files?path=', {headers: {Authorization: 'Bearer ' + window.plinthToken()}}).then(r => r.json()).then(l => l.map(e => e.name).join(' '))`
	for end := time.Now().Add(s.wait(30 * time.Second)); strings.Contains(Eval[string](b, listed), "second.iso"); time.Sleep(500 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("the cancelled upload left second.iso on the datastore: %s", Eval[string](b, listed))
		}
	}
	if !strings.Contains(Eval[string](b, listed), "floor.iso") {
		t.Fatalf("floor.iso is not on the datastore: %s", Eval[string](b, listed))
	}
	throttle(t, b, -1)
	b.WaitFor("the ISO listed", `[...document.querySelectorAll('table.list td')].some(td => td.textContent === 'floor.iso')`, s.wait(20*time.Second))
	b.Shot("uploaded")

	// Create a VM: first with no name, whose problem must sit beside the
	// name field; then properly.
	b.Do("open the VM list", 20*time.Second, chromedp.Click(chromedp.CSS(`a[href="/vms"]`)))
	b.Do("open the form", 20*time.Second, chromedp.Click(chromedp.CSS(`a[href="/vms/new"]`)))
	b.WaitFor("the ISO offered", `[...document.querySelectorAll('select option')].some(o => o.value.endsWith('floor.iso'))`, s.wait(30*time.Second))
	b.Do("submit without a name", 20*time.Second, chromedp.Click(chromedp.CSS(`.vm-form button[type=submit]`)))
	b.WaitFor("the name's problem beside it", `document.querySelector('.error[data-field=name]')`, s.wait(30*time.Second))
	nameErr := Eval[string](b, `document.querySelector('.error[data-field=name]').textContent`)
	if nameErr == "" {
		t.Fatal("the name's problem is empty")
	}
	b.Shot("form-problem")
	name := "web1"
	setField(t, b, "name", name)
	setField(t, b, "memory_mib", "256")
	Eval[bool](b, `(() => { const s = [...document.querySelectorAll('.vm-form select')].find(s => [...s.options].some(o => o.value.endsWith('floor.iso'))); s.value = [...s.options].find(o => o.value.endsWith('floor.iso')).value; s.dispatchEvent(new Event('change', {bubbles: true})); return true })()`)
	setField(t, b, "disks[0].size_gib", "1")
	b.Do("create the VM", 20*time.Second, chromedp.Click(chromedp.CSS(`.vm-form button[type=submit]`)))
	b.WaitFor("the VM's page", `document.querySelector('#vm-state') && document.querySelector('#vm-h').textContent === `+js(name), s.wait(60*time.Second))
	b.Shot("vm-created")

	// Start it; the serial terminal shows the guest's text.
	b.Do("start", 20*time.Second, chromedp.Click(chromedp.CSS(`button[data-action=start]`)))
	b.WaitFor("running", `document.querySelector('#vm-state').textContent === 'running'`, s.wait(60*time.Second))
	// On failure, what the guest printed as the host kept it: did the guest
	// stop, or did its output not reach the page?
	consoleTail := func() string {
		text, err := chromedp.Run(b.deadline(20*time.Second), chromedp.Evaluate[string](`(async () => { const l = await fetch('/api/v1/vms', {headers: {Authorization: 'Bearer ' + window.plinthToken()}}).then(r => r.json()); const v = l.find(v => v.spec.name === `+js(name)+`); if (!v) return 'no VM named '+`+js(name)+`; const t = await fetch('/api/v1/vms/' + encodeURIComponent(v.spec.id) + '/console', {headers: {Authorization: 'Bearer ' + window.plinthToken()}}).then(r => r.text()); return t.slice(-3000) })()`, chromedp.EvalAwaitPromise))
		return fmt.Sprintf("the VM's console as the API has it (%v):\n%s", err, text)
	}
	b.WaitForExplained("the guest's marker in the serial terminal", terminalHas(s.Marker), s.wait(240*time.Second), consoleTail)
	b.Shot("serial-console")
	// A connection that breaks is made again by itself, and the terminal
	// shows the console from its kept tail once more.
	Eval[bool](b, `(() => { const t = document.querySelector('#serial-term'); t.terminal.reset(); t.socket.close(); return true })()`)
	b.WaitFor("the serial console reconnected", `document.querySelector('#serial-term').socket.readyState === 1 && document.querySelector('.console .conn').textContent === 'connected' && `+terminalHas(s.Marker), s.wait(30*time.Second))

	// The screen: noVNC's canvas must hold more than one colour.
	b.Do("the screen tab", 20*time.Second, chromedp.Click(chromedp.CSS(`#tab-vnc`)))
	drawn := `(() => { const c = document.querySelector('#vnc-screen canvas'); if (!c || !c.width || !c.height) return false; const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; const seen = new Set(); for (let i = 0; i < d.length; i += 4 * 7) { seen.add((d[i] << 16) | (d[i+1] << 8) | d[i+2]); if (seen.size > 1) return true; } return false })()`
	b.WaitFor("a drawn screen", drawn, s.wait(60*time.Second))
	b.Shot("vnc-screen")

	// The screen again in a window of its own, as a person opens it to
	// work beside the list.
	w := b.Window("/console/", s.wait(30*time.Second), chromedp.Click(chromedp.CSS(`#popout`)))
	w.WaitFor("a drawn screen in its own window", drawn, s.wait(60*time.Second))
	w.Shot("vnc-window")
	w.Do("close the window", 10*time.Second, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := chromedp.Run(ctx, chromedp.Evaluate[any]("window.close()"))
		return err
	}))

	// Back to the serial console: type poweroff; the guest powers off and
	// the state turns to stopped by the event stream, with no reload.
	Eval[bool](b, `(window.__noReload = true)`)
	b.Do("the serial tab", 20*time.Second, chromedp.Click(chromedp.CSS(`#tab-serial`)))
	b.WaitFor("the serial console connected", `document.querySelector('.console .conn') && document.querySelector('.console .conn').textContent === 'connected'`, s.wait(30*time.Second))
	// Text typed into xterm.js arrives as an input event (as from an input
	// method); chromedp's key events reach it twice (keydown and keypress).
	b.Do("type poweroff", 20*time.Second, chromedp.Focus(chromedp.CSS(`#serial-term textarea`)),
		chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := cdp.Call(ctx, tg, input.InsertText, input.InsertTextParams{Text: "poweroff"})
			return err
		}), chromedp.KeyEvent("\r"))
	b.WaitFor("stopped without a reload", `window.__noReload === true && document.querySelector('#vm-state').textContent === 'stopped'`, s.wait(120*time.Second))
	b.Shot("vm-stopped")

	// Stopped, it can be edited: more memory.
	b.Do("edit", 20*time.Second, chromedp.Click(chromedp.CSS(`#vm-edit`)))
	b.WaitFor("the edit form", `document.querySelector('.vm-form [name=memory_mib]')`, s.wait(20*time.Second))
	setField(t, b, "memory_mib", "384")
	b.Do("save", 20*time.Second, chromedp.Click(chromedp.CSS(`.vm-form button[type=submit]`)))
	b.WaitFor("the new memory shown", `document.querySelector('#vm-h') && document.querySelector('dl.facts').textContent.includes('384 MiB')`, s.wait(30*time.Second))

	// A host setting with its confirm step: the management network.
	if s.Net != nil {
		s = KeepNetworkChange(t, b, s)
	}

	// Log out: the page forgets the token and the API refuses the old one.
	tok := Eval[string](b, `window.plinthToken()`)
	if tok == "" {
		t.Fatal("no session token in the page before logging out")
	}
	b.Do("log out", 20*time.Second, chromedp.Click(chromedp.CSS(`#logout`)))
	// (The settings page has password fields too: wait for the login form.)
	b.WaitFor("the login page", `document.querySelector('form[aria-label="Log in"] input[name=password]')`, s.wait(20*time.Second))
	status := Eval[float64](b, `fetch('/api/v1/vms', {headers: {Authorization: 'Bearer ' + `+js(tok)+`}}).then(r => r.status)`)
	if status != 401 {
		t.Fatalf("after logging out the old session still gets %v from the API", status)
	}
	if left := Eval[string](b, `window.plinthToken()`); left != "" {
		t.Fatal("the page still holds a token after logging out")
	}
	b.Shot("logged-out")
	return name
}

// KeepNetworkChange changes the management network to s.Net's static
// address on the settings page (a bad address first, whose problem must
// sit beside its field), sees the change awaiting confirmation with a link
// to the new address, opens the host there, logs in and keeps the change.
// It answers s at its new address.
func KeepNetworkChange(t testing.TB, b *Browser, s Site) Site {
	t.Helper()
	n := s.Net
	Click(t, b, "open the host settings", `a[href="/settings"]`)
	b.WaitFor("the management network", `document.querySelector('#net-edit') && !document.querySelector('#net-edit').disabled`, s.wait(30*time.Second))
	Click(t, b, "change it", `#net-edit`)
	b.WaitFor("the network form", `document.querySelector('.net-form')`, s.wait(20*time.Second))
	choose(t, b, `.net-form [name="config.nic"]`, n.NIC)
	choose(t, b, `.net-form [name="config.mode"]`, "static")
	b.WaitFor("the address field", `document.querySelector('.net-form [name="config.address"]')`, 10*time.Second)
	ip := strings.SplitN(n.Address, "/", 2)[0]
	TypeInto(t, b, `.net-form [name="config.address"]`, ip+"/33")
	TypeInto(t, b, `.net-form [name="config.gateway"]`, n.Gateway)
	TypeInto(t, b, `.net-form [name="confirm_seconds"]`, "300")
	Click(t, b, "apply a bad address", `.net-form button[type=submit]`)
	b.WaitFor("the address's problem beside it", `document.querySelector('.net-form .error[data-field="config.address"]')`, s.wait(20*time.Second))
	b.Shot("network-bad-address")
	TypeInto(t, b, `.net-form [name="config.address"]`, n.Address)
	Click(t, b, "apply", `.net-form button[type=submit]`)
	b.WaitFor("the change awaiting confirmation, with a link to the new address", `(() => { const a = document.querySelector('#net-new-address'); return document.querySelector('#net-pending .countdown') && a && new URL(a.href).hostname === `+js(ip)+` })()`, s.wait(60*time.Second))
	Eval[bool](b, `(document.querySelector('#net-pending').scrollIntoView({block: 'center'}), true)`)
	b.Shot("network-pending")

	// The host at its new address: a new origin, so a new login; there the
	// change is kept.
	s.URL = n.NewURL
	Login(t, b, s)
	Click(t, b, "open the host settings", `a[href="/settings"]`)
	b.WaitFor("the change awaiting confirmation", `document.querySelector('#net-keep') && !document.querySelector('#net-keep').disabled`, s.wait(30*time.Second))
	Click(t, b, "keep it", `#net-keep`)
	b.WaitFor("the change kept", `(e => e && e.textContent.includes('kept'))(document.querySelector('#net-last'))`, s.wait(30*time.Second))
	b.WaitFor("the new configuration shown", `document.querySelector('#mgmt-network dl').textContent.includes(`+js(n.Address)+`)`, s.wait(20*time.Second))
	b.Shot("network-kept")
	return s
}

// choose picks value in the select css, as a person does.
func choose(t testing.TB, b *Browser, css, value string) {
	t.Helper()
	if !Eval[bool](b, `(s => { if (!s || ![...s.options].some(o => o.value === `+js(value)+`)) return false; s.value = `+js(value)+`; s.dispatchEvent(new Event('change', {bubbles: true})); return true })(document.querySelector(`+js(css)+`))`) {
		b.Shot("failed-choose-" + slug(css))
		t.Fatalf("no option %q in %s:\n%s", value, css, b.PageText())
	}
}

// Click scrolls the element css to the middle of the window, clear of the
// recent tasks bar that sticks to the bottom (a click at a button under it
// lands on the bar), and clicks it.
func Click(t testing.TB, b *Browser, what, css string) {
	t.Helper()
	if !Eval[bool](b, `(e => { if (!e) return false; e.scrollIntoView({block: 'center'}); return true })(document.querySelector(`+js(css)+`))`) {
		b.Shot("failed-no-" + slug(css))
		t.Fatalf("%s: no %s on the page:\n%s", what, css, b.PageText())
	}
	b.Do(what, 20*time.Second, chromedp.Click(chromedp.CSS(css)))
}

// TypeInto focuses the element css, selects what it holds and types text
// over it, as a user would.
func TypeInto(t testing.TB, b *Browser, css, text string) {
	t.Helper()
	typeInto(t, b, css, text)
}

// setField types into the form's input for the field name.
func setField(t testing.TB, b *Browser, name, value string) {
	t.Helper()
	typeInto(t, b, fmt.Sprintf(`.vm-form [name=%q]`, name), value)
}

// typeInto focuses the element, selects what it holds and types over it,
// as a user would.
func typeInto(t testing.TB, b *Browser, css, text string) {
	t.Helper()
	if !Eval[bool](b, `(e => { if (!e) return false; e.focus(); e.select && e.select(); return true })(document.querySelector(`+js(css)+`))`) {
		b.Shot("failed-no-" + slug(css))
		t.Fatalf("no %s on the page:\n%s", css, b.PageText())
	}
	b.Do("type into "+css, 20*time.Second, chromedp.KeyEvent(text))
}

// throttle limits the page's uploads to bytesPerSecond (-1: no limit).
func throttle(t testing.TB, b *Browser, bytesPerSecond float64) {
	t.Helper()
	b.Do("throttle uploads", 10*time.Second, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		if _, err := cdp.Call(ctx, tg, network.Enable, network.EnableParams{}); err != nil {
			return err
		}
		_, err := cdp.Call(ctx, tg, network.EmulateNetworkConditionsByRule, network.EmulateNetworkConditionsByRuleParams{
			MatchedNetworkConditions: []*network.Conditions{{DownloadThroughput: -1, UploadThroughput: bytesPerSecond}},
		})
		return err
	}))
}

// Upload uploads a file into the datastore's top folder through the file
// browser and waits until it is listed.
func Upload(t testing.TB, b *Browser, s Site, file string) {
	t.Helper()
	// No navigation by address: a reload would log out (the session lives
	// in the page's memory).
	b.Do("open storage", 20*time.Second, chromedp.Click(chromedp.CSS(`a[href="/storage"]`)))
	b.Do("open "+s.Datastore, s.wait(20*time.Second), chromedp.Click(chromedp.CSS(`a[href="/storage/`+s.Datastore+`"]`)))
	b.WaitFor("the file browser", `document.querySelector('#upload-input')`, s.wait(20*time.Second))
	b.Do("choose the file", 20*time.Second, chromedp.SetUploadFiles(chromedp.CSS("#upload-input"), []string{file}))
	b.WaitFor("the upload done", `[...document.querySelectorAll('.uploads .up-state')].some(e => e.textContent === 'done')`, s.wait(120*time.Second))
}

// Listed waits until the datastore's top folder lists name.
func Listed(t testing.TB, b *Browser, s Site, name string) {
	t.Helper()
	b.Do("open the datastore", s.wait(20*time.Second), chromedp.Click(chromedp.CSS(`a[href="/storage"]`)))
	b.Do("open "+s.Datastore, s.wait(20*time.Second), chromedp.Click(chromedp.CSS(`a[href="/storage/`+s.Datastore+`"]`)))
	b.WaitFor(name+" listed", `[...document.querySelectorAll('table.list td')].some(td => td.textContent === `+js(name)+`)`, s.wait(30*time.Second))
}

// terminalHas is a page expression: the serial terminal's buffer holds text.
func terminalHas(text string) string {
	return `(() => { const t = document.querySelector('#serial-term'); if (!t || !t.terminal) return false; const b = t.terminal.buffer.active; let s = ''; for (let i = 0; i < b.length; i++) s += b.getLine(i).translateToString(true) + '\n'; return s.includes(` + js(text) + `) })()`
}

package web_test

import (
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/plinth/plinth/web/webtest"
)

// TestBrowserPhoneKeyboard uses the client at a phone's width (390 px) with
// the keyboard alone: log in, open the menu, reach the VM list and the VM
// form, each step by Tab and Enter, every focused control visibly marked,
// and no page wider than the screen.
func TestBrowserPhoneKeyboard(t *testing.T) {
	url := serve(t)
	b := webtest.Start(t, shots(t), 500, 844) // Chromium's narrowest window
	b.Do("a phone's viewport", 10*time.Second, chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2)))
	s := webtest.Site{URL: url, Password: password}
	webtest.Login(t, b, s)
	b.Shot("phone-host")
	if w := webtest.Eval[float64](b, `window.innerWidth`); w != 390 {
		t.Fatalf("the page is %v px wide, not a phone's 390", w)
	}
	fits := `document.documentElement.scrollWidth <= window.innerWidth + 1`
	if !webtest.Eval[bool](b, fits) {
		t.Errorf("the host page is wider than the phone: %v > %v", webtest.Eval[float64](b, `document.documentElement.scrollWidth`), webtest.Eval[float64](b, `window.innerWidth`))
	}
	// tab moves the focus on until it is on an element matching css.
	tab := func(css string) {
		t.Helper()
		for i := 0; i < 30; i++ {
			b.Do("tab", 5*time.Second, chromedp.KeyEvent(kb.Tab))
			if webtest.Eval[bool](b, `document.activeElement && document.activeElement.matches(`+"'"+css+"'"+`)`) {
				if !webtest.Eval[bool](b, `getComputedStyle(document.activeElement).outlineStyle !== 'none'`) {
					t.Errorf("the focused %s shows no outline", css)
				}
				return
			}
		}
		b.Shot("failed-tab")
		t.Fatalf("30 tabs did not reach %s", css)
	}
	tab(".menu-toggle")
	b.Do("open the menu", 5*time.Second, chromedp.KeyEvent(kb.Enter))
	b.WaitFor("the menu open", `document.querySelector('#nav.open')`, 5*time.Second)
	b.Shot("phone-menu")
	tab(`a[href="/vms"]`)
	b.Do("follow the link", 5*time.Second, chromedp.KeyEvent(kb.Enter))
	b.WaitFor("the VM list", `document.querySelector('#vm-list')`, 10*time.Second)
	tab(`a[href="/vms/new"]`)
	b.Do("open the form", 5*time.Second, chromedp.KeyEvent(kb.Enter))
	b.WaitFor("the VM form", `document.querySelector('.vm-form')`, 10*time.Second)
	// Submitting the empty form by the keyboard puts the problem beside the
	// name field.
	tab(`.vm-form button[type=submit]`)
	b.Do("submit", 5*time.Second, chromedp.KeyEvent(kb.Enter))
	b.WaitFor("the name's problem", `document.querySelector('.error[data-field=name]')`, 10*time.Second)
	if !webtest.Eval[bool](b, fits) {
		t.Error("the VM form is wider than the phone")
	}
	b.Shot("phone-form")

	// The host settings fit too, and their forms answer the keyboard.
	tab(".menu-toggle")
	b.Do("open the menu", 5*time.Second, chromedp.KeyEvent(kb.Enter))
	b.WaitFor("the menu open", `document.querySelector('#nav.open')`, 5*time.Second)
	tab(`a[href="/settings"]`)
	b.Do("follow the link", 5*time.Second, chromedp.KeyEvent(kb.Enter))
	b.WaitFor("the settings", `document.querySelector('#time-facts') && document.querySelector('#ssh-state') && document.querySelector('table[aria-label=Logs]')`, 10*time.Second)
	tab(`[aria-label="Authorize an SSH key"] textarea`)
	b.Do("a key that is not one", 5*time.Second, chromedp.KeyEvent("not a key"))
	tab(`[aria-label="Authorize an SSH key"] button[type=submit]`)
	b.Do("submit", 5*time.Second, chromedp.KeyEvent(kb.Enter))
	b.WaitFor("the key's problem", `document.querySelector('#ssh .error[data-field=key]')`, 10*time.Second)
	b.Shot("phone-settings")
	if !webtest.Eval[bool](b, fits) {
		t.Errorf("the host settings are wider than the phone: %v", webtest.Eval[string](b, `[...document.querySelectorAll('main *')].filter(e => e.getBoundingClientRect().right > window.innerWidth + 1).slice(0, 5).map(e => e.tagName + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right)).join(', ')`))
	}
}

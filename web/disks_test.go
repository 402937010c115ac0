package web_test

import (
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/plinth/plinth/web/webtest"
)

// TestBrowserDisks: the storage page's disk work by a person: a new disk,
// its info, a shrink refused with the problem beside the size, a grow, and
// a conversion that runs as a task and leaves the copy listed.
func TestBrowserDisks(t *testing.T) {
	url := serve(t)
	b := webtest.Start(t, shots(t), 1280, 900)
	s := webtest.Site{URL: url, Password: password, Datastore: "ds1"}
	webtest.Login(t, b, s)
	b.Do("open storage", 20*time.Second, chromedp.Click(chromedp.CSS(`a[href="/storage"]`)))
	b.Do("open ds1", 20*time.Second, chromedp.Click(chromedp.CSS(`a[href="/storage/ds1"]`)))
	b.WaitFor("the file browser", `document.querySelector('#upload-input')`, 20*time.Second)
	click := func(what, text string) {
		t.Helper()
		if !webtest.Eval[bool](b, `(() => { const e = [...document.querySelectorAll('button')].find(b => b.textContent === `+"'"+text+"'"+`); if (!e) return false; e.click(); return true })()`) {
			b.Shot("failed-" + what)
			t.Fatalf("no button %q:\n%s", text, b.PageText())
		}
	}
	fill := func(name, value string) {
		t.Helper()
		webtest.Eval[bool](b, `(e => { e.focus(); e.select(); return true })(document.querySelector('.modal [name=`+name+`]'))`)
		b.Do("type "+name, 10*time.Second, chromedp.KeyEvent(value))
	}
	click("new disk", "New disk")
	fill("path", "d.qcow2")
	fill("size", "1")
	b.Do("create", 10*time.Second, chromedp.Click(chromedp.CSS(`.modal button[type=submit]`)))
	b.WaitFor("d.qcow2 listed", `[...document.querySelectorAll('table.list td')].some(td => td.textContent === 'd.qcow2')`, 20*time.Second)
	click("disk dialog", "Disk…")
	b.WaitFor("its info", `document.querySelector('.modal dl.facts') && document.querySelector('.modal dl.facts').textContent.includes('1.0 GiB')`, 20*time.Second)
	fill("size", "0")
	click("grow", "Grow")
	b.WaitFor("the shrink's problem beside the size", `document.querySelector('.modal .error[data-field=size]')`, 20*time.Second)
	b.Shot("disk-problem")
	fill("size", "2")
	click("grow", "Grow")
	b.WaitFor("the new size", `document.querySelector('.modal dl.facts').textContent.includes('2.0 GiB') && !document.querySelector('.modal .error[data-field=size]')`, 20*time.Second)
	fill("target", "d.raw")
	webtest.Eval[bool](b, `(s => { s.value = 'raw'; s.dispatchEvent(new Event('change', {bubbles: true})); return true })([...document.querySelectorAll('.modal select')].at(-1))`)
	click("convert", "Convert (a task)")
	b.WaitFor("the conversion as a task", `[...document.querySelectorAll('.recent table.tasks td')].some(td => td.textContent.includes('d.raw'))`, 20*time.Second)
	b.WaitFor("the task done", `[...document.querySelectorAll('.recent table.tasks tr')].some(tr => tr.textContent.includes('d.raw') && tr.textContent.includes('succeeded'))`, 60*time.Second)
	b.Do("open ds1 again", 20*time.Second, chromedp.Click(chromedp.CSS(`a[href="/storage"]`)))
	b.Do("open ds1", 20*time.Second, chromedp.Click(chromedp.CSS(`a[href="/storage/ds1"]`)))
	b.WaitFor("the copy listed", `[...document.querySelectorAll('table.list td')].some(td => td.textContent === 'd.raw')`, 20*time.Second)
	b.Shot("disks")
}

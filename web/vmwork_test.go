package web_test

import (
	"context"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/web/webtest"
)

// TestBrowserSnapshotsClonesHistory: a VM's snapshots, clones, template and
// history by a person, on a stopped VM with a small disk (qemu-img does the
// work, no guest boots): take a snapshot and see it in the tree, take a
// second, revert to the first (the confirm says what is lost; "you are
// here" moves), delete the second, a clone refused with the API's problem
// beside the name, a linked clone listed, the VM marked as a template and
// two VMs deployed from it, and the history with who and what.
func TestBrowserSnapshotsClonesHistory(t *testing.T) {
	url, rig := serveRig(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := rig.Client.CreateDisk(ctx, "ds1", api.CreateDiskRequest{Path: "w/disk0.qcow2", SizeBytes: 64 << 20}); err != nil {
		t.Fatal(err)
	}
	if _, err := rig.Client.CreateVM(ctx, api.VMSpec{Name: "w", CPU: api.CPU{Sockets: 1, Cores: 1, Threads: 1}, MemoryMiB: 64,
		Disks: []api.Disk{{Datastore: "ds1", Path: "w/disk0.qcow2"}}, Serial: true}); err != nil {
		t.Fatal(err)
	}
	b := webtest.Start(t, shots(t), 1280, 900)
	s := webtest.Site{URL: url, Password: password, Datastore: "ds1"}
	webtest.Login(t, b, s)
	b.Do("the VM list", 20*time.Second, chromedp.Click(chromedp.CSS(`a[href="/vms"]`)))
	b.WaitFor("w listed", `document.querySelector('#vm-list a[href="/vms/w"]')`, 20*time.Second)
	b.Do("open the VM", 20*time.Second, chromedp.Click(chromedp.CSS(`#vm-list a[href="/vms/w"]`)))
	b.WaitFor("its page", `document.querySelector('#vm-tab-snapshots')`, 20*time.Second)
	webtest.Click(t, b, "the snapshots tab", `#vm-tab-snapshots`)
	b.WaitFor("the snapshots", `document.querySelector('#snap-take')`, 20*time.Second)

	idle := `!document.querySelector('#snap-doing') && !document.querySelector('#snap-err')`
	take := func(name, desc string) {
		t.Helper()
		webtest.Click(t, b, "take a snapshot", `#snap-take`)
		b.WaitFor("the snapshot dialog", `document.querySelector('.modal [name=name]')`, 20*time.Second)
		webtest.TypeInto(t, b, `.modal [name=name]`, name)
		webtest.TypeInto(t, b, `.modal [name=description]`, desc)
		webtest.Click(t, b, "take", `.modal button[type=submit]`)
		b.WaitFor(name+" in the tree, the VM resting on it", `document.querySelector('li[data-snap=`+jsq(name)+`] > ul > #snap-here') && `+idle, 60*time.Second)
	}
	// a problem of the request beside its field: a name a VM could not have
	webtest.Click(t, b, "take a snapshot", `#snap-take`)
	webtest.TypeInto(t, b, `.modal [name=name]`, "bad name!")
	webtest.Click(t, b, "take", `.modal button[type=submit]`)
	b.WaitFor("the name's problem beside it", `document.querySelector('.modal .error[data-field=name]')`, 20*time.Second)
	b.Shot("snapshot-name-problem")
	webtest.Click(t, b, "cancel", `.modal button[type=button]`)

	take("before", "a clean disk")
	b.WaitFor("its description and kind", `(e => e.textContent.includes('a clean disk') && e.textContent.includes('disks only'))(document.querySelector('li[data-snap=before]'))`, 10*time.Second)
	take("after", "later")
	b.WaitFor("after under before", `document.querySelector('li[data-snap=before] li[data-snap=after]')`, 10*time.Second)
	b.Shot("snapshot-tree")

	webtest.Click(t, b, "revert to before", `li[data-snap=before] > .snap button:nth-child(1)`)
	b.WaitFor("the confirm saying what is lost", `(e => e && e.textContent.includes('Lost: every disk write'))(document.querySelector('#revert-lost'))`, 10*time.Second)
	b.Shot("revert-confirm")
	webtest.Click(t, b, "revert", `#revert-yes`)
	b.WaitFor("the VM resting on before again", `document.querySelector('li[data-snap=before] > ul > #snap-here') && `+idle, 60*time.Second)

	webtest.Click(t, b, "delete after", `li[data-snap=after] .snap button.danger`)
	webtest.Click(t, b, "delete", `#snap-delete-yes`)
	b.WaitFor("after gone", `!document.querySelector('li[data-snap=after]') && document.querySelector('li[data-snap=before]') && `+idle, 60*time.Second)
	tree, err := rig.Client.Snapshots(ctx, "w")
	if err != nil || len(tree.Snapshots) != 1 || tree.Snapshots[0].Name != "before" || tree.Current != tree.Snapshots[0].ID {
		t.Fatalf("vmkernel's tree after the page's work: %+v, %v", tree, err)
	}
	b.Shot("snapshot-deleted")

	// a clone refused: the name is the VM's own
	webtest.Click(t, b, "clone", `#vm-clone`)
	b.WaitFor("the clone dialog", `document.querySelector('.modal [name=name]')`, 20*time.Second)
	webtest.TypeInto(t, b, `.modal [name=name]`, "w")
	webtest.Click(t, b, "clone it", `.modal button[type=submit]`)
	b.WaitFor("the refusal beside the name", `(e => e && e.textContent.includes('exists'))(document.querySelector('.modal .error[data-field=name]'))`, 20*time.Second)
	b.Shot("clone-refused")
	webtest.TypeInto(t, b, `.modal [name=name]`, "w-linked")
	webtest.Click(t, b, "clone it", `.modal button[type=submit]`)
	b.WaitFor("the clone made", `document.querySelector('#clone-made')`, 60*time.Second)
	webtest.Click(t, b, "close", `.modal button`)
	b.Do("the VM list", 20*time.Second, chromedp.Click(chromedp.CSS(`a[href="/vms"]`)))
	b.WaitFor("the clone listed", `document.querySelector('#vm-list tr[data-vm=w-linked]')`, 20*time.Second)
	b.Shot("clone-listed")

	// a template, and two VMs deployed from it
	b.Do("open the VM", 20*time.Second, chromedp.Click(chromedp.CSS(`#vm-list a[href="/vms/w"]`)))
	b.WaitFor("its page", `document.querySelector('#vm-template-mark')`, 20*time.Second)
	webtest.Click(t, b, "mark as template", `#vm-template-mark`)
	b.WaitFor("the template badge", `document.querySelector('#vm-template') && !document.querySelector('[data-action=start]')`, 20*time.Second)
	webtest.Click(t, b, "deploy", `#vm-deploy`)
	b.WaitFor("the deploy dialog", `document.querySelector('.modal [name=count]')`, 20*time.Second)
	webtest.TypeInto(t, b, `.modal [name=count]`, "2")
	webtest.TypeInto(t, b, `.modal [name=name_pattern]`, "web-{n}")
	webtest.Click(t, b, "deploy them", `.modal button[type=submit]`)
	b.WaitFor("deployed", `(e => e && e.textContent.includes('Deployed 2 VMs'))(document.querySelector('#deploy-made'))`, 90*time.Second)
	b.Shot("deployed")
	webtest.Click(t, b, "close", `.modal button`)

	webtest.Click(t, b, "the history tab", `#vm-tab-history`)
	b.WaitFor("the history: created by local, then changed by root", `(rows => rows.length >= 2 && rows.at(-1).textContent.includes('created') && rows.at(-1).textContent.includes('local') &&
		rows[0].textContent.includes('root') && rows[0].textContent.includes('template: — → true'))([...document.querySelectorAll('#history tbody tr')])`, 20*time.Second)
	b.Shot("history")
	// going back to version 1 would unmark the template its clones rest on:
	// the dry run shows the change, the API's refusal is shown
	webtest.Click(t, b, "revert the definition", `#history tr[data-version="1"] button`)
	b.WaitFor("what would change", `(e => e && e.textContent.includes('template: true → —'))(document.querySelector('#def-revert-diff'))`, 20*time.Second)
	webtest.TypeInto(t, b, `.modal [name=reason]`, "undo")
	webtest.Click(t, b, "revert", `#def-revert-yes`)
	b.WaitFor("the refusal", `(e => e && e.textContent.includes('clone'))(document.querySelector('.modal .error.banner'))`, 20*time.Second)
	b.Shot("definition-revert-refused")
	webtest.Click(t, b, "cancel", `.modal button[type=button]`)

	b.Do("the VM list", 20*time.Second, chromedp.Click(chromedp.CSS(`a[href="/vms"]`)))
	b.WaitFor("the deployed VMs listed", `document.querySelector('#vm-list tr[data-vm=web-1]') && document.querySelector('#vm-list tr[data-vm=web-2]')`, 20*time.Second)
}

package qemutest

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/plinth/plinth/api"
)

func TestStripANSI(t *testing.T) {
	in := "\x1b[?1049h\x1b[H\r Plinth\x1b[K\r\n\x1b[7m <F2>\x1b[0m\x1b[2;1H ok"
	if got := StripANSI(in); got != " Plinth\n <F2> ok" {
		t.Errorf("StripANSI = %q", got)
	}
}

// TestApplianceDCUI boots the appliance (first boot, live), sets the root
// password through the serial console's DCUI, logs in to the API with it,
// and reads the boot log in View System Logs.
func TestApplianceDCUI(t *testing.T) {
	o := e2eOptions(t)
	o.CPUs, o.MemoryMiB = 2, 1024
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	vm, _, err := StartReady(ctx, o, 240*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(vm.Close)
	const pw = "Serial-Console-42"
	t0 := time.Now()
	if err := SetPasswordViaDCUI(ctx, vm, pw); err != nil {
		t.Fatal(err)
	}
	t.Logf("password set through the serial DCUI in %v", time.Since(t0).Round(time.Millisecond))

	// The API takes the password the console set.
	c := newPinnedClient()
	body, _ := json.Marshal(api.LoginRequest{User: api.RootUser, Password: pw})
	resp, err := c.Post(vm.APIURL()+api.MgmtdSessionsPath, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK, http.StatusCreated:
	default:
		t.Errorf("login with the password set on the DCUI: %s", resp.Status)
	}

	// View System Logs > Boot log shows the init's lines.
	if err := LoginViaDCUI(vm, pw); err != nil {
		t.Fatal(err)
	}
	// j is Down: a plain key, where an escape sequence split by the
	// serial line could read as Esc.
	if err := vm.press(strings.Repeat("j", 7), "> View System Logs", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	// The list of logs comes from the API after the screen's title: wait
	// for its first line, or the Enter lands on an empty list.
	if err := vm.press(KeyEnter, "> boot ", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := vm.press(KeyEnter, "Log: boot (", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	// The log opens at its end, following new lines (the init's modules
	// loaded after the ready line, the services' lines); its lines come
	// from the API a moment after the title, and a search before they are
	// there finds nothing: wait for the init's lines to be drawn.
	if err := vm.ExpectScreen("FOLLOWING new lines", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := vm.ExpectScreen(" plinth-init: ", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	// Search back to the ready line, which came before.
	if err := vm.press("/", "Search for:", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := vm.press(api.ReadyPrefix+KeyEnter, "*"+api.ReadyPrefix, 30*time.Second); err != nil {
		t.Fatal(err)
	}

	if err := vm.PowerDown(); err != nil {
		t.Fatal(err)
	}
	if code, err := vm.Wait(90 * time.Second); err != nil || code != 0 {
		t.Fatalf("power down: exit %d, %v%s", code, err, formatTail(vm.Tail(TailLines)))
	}
	con := strings.Join(vm.Console(), "\n")
	for _, want := range []string{"shutting down (ACPI power button)", "plinth-init: powering off"} {
		if !strings.Contains(con, want) {
			t.Errorf("console lacks %q after power down%s", want, formatTail(vm.Tail(TailLines)))
		}
	}
}

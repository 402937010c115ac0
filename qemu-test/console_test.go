package qemutest

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestExpect(t *testing.T) {
	c := newConsole(nil)
	fmt.Fprint(c, "booting\r\nPLINTH-READY a=1\r\nsecond match PLI")
	go func() {
		time.Sleep(20 * time.Millisecond) // output arriving later
		fmt.Fprint(c, "NTH-READY b=2\n")
	}()
	line, err := c.expect(readyLine, time.Second)
	if err != nil || line != "PLINTH-READY a=1" {
		t.Fatalf("first expect = %q, %v", line, err)
	}
	line, err = c.expect("PLINTH-READY", 5*time.Second)
	if err != nil || line != "second match PLINTH-READY b=2" {
		t.Fatalf("second expect (line split across writes) = %q, %v", line, err)
	}
}

func TestExpectTimeoutShowsTail(t *testing.T) {
	c := newConsole(nil)
	for i := range 40 {
		fmt.Fprintf(c, "line %d\n", i)
	}
	_, err := c.expect(regexp.MustCompile(`never`), 50*time.Millisecond)
	if err == nil {
		t.Fatal("expect matched nothing yet returned no error")
	}
	msg := err.Error()
	if !strings.Contains(msg, "line 39") || !strings.Contains(msg, "line 10") || strings.Contains(msg, "line 9\n") {
		t.Errorf("error should show exactly the last %d lines, got:\n%s", TailLines, msg)
	}
}

func TestExpectConsoleClosed(t *testing.T) {
	c := newConsole(nil)
	fmt.Fprint(c, "Kernel panic - not syncing")
	c.close(errors.New("qemu exited: exit status 0"))
	start := time.Now()
	_, err := c.expect("PLINTH-READY", time.Minute)
	if err == nil || !strings.Contains(err.Error(), "exit status 0") || !strings.Contains(err.Error(), "Kernel panic") {
		t.Errorf("err = %v, want QEMU's exit and the unterminated last line", err)
	}
	if time.Since(start) > 20*time.Second { // far below the minute: it did not wait
		t.Error("expect on a closed console waited for its timeout")
	}
}

func TestWaitReadyNotReady(t *testing.T) {
	vm := &VM{console: newConsole(nil)}
	fmt.Fprint(vm.console, "PLINTH-NOT-READY step api: no answer\n")
	start := time.Now()
	if _, err := vm.WaitReady(time.Minute); err == nil || !strings.Contains(err.Error(), "step api") {
		t.Errorf("WaitReady = %v, want the not-ready line", err)
	}
	if time.Since(start) > 20*time.Second { // far below the minute: it did not wait
		t.Error("WaitReady waited out its timeout after PLINTH-NOT-READY")
	}
	fmt.Fprint(vm.console, "PLINTH-READY a=b\n")
	if kv, err := vm.WaitReady(time.Second); err != nil || kv["a"] != "b" {
		t.Errorf("WaitReady = %v, %v", kv, err)
	}
}

func TestExpectBadPattern(t *testing.T) {
	if _, err := newConsole(nil).expect(42, time.Second); err == nil {
		t.Error("an int pattern was accepted")
	}
}

func TestParseReady(t *testing.T) {
	for _, tc := range []struct {
		line    string
		want    map[string]string
		wantErr bool
	}{
		{"PLINTH-READY", map[string]string{}, false},
		{"PLINTH-READY version=1.2 boot_ms=1234  api=https://10.0.2.15:443", map[string]string{"version": "1.2", "boot_ms": "1234", "api": "https://10.0.2.15:443"}, false},
		{"[   12.3] random: PLINTH-READY k=v=w", map[string]string{"k": "v=w"}, false},
		{"PLINTH-READY novalue", nil, true},
		{"hello", nil, true},
	} {
		got, err := ParseReady(tc.line)
		if (err != nil) != tc.wantErr {
			t.Errorf("ParseReady(%q) error = %v, want error %v", tc.line, err, tc.wantErr)
			continue
		}
		if fmt.Sprint(got) != fmt.Sprint(tc.want) && !tc.wantErr {
			t.Errorf("ParseReady(%q) = %v, want %v", tc.line, got, tc.want)
		}
	}
}

package qemutest

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// Keys as a VT100 serial terminal sends them, for Type.
const (
	KeyEnter = "\r"
	KeyEsc   = "\x1b"
	KeyUp    = "\x1b[A"
	KeyDown  = "\x1b[B"
	KeyF2    = "\x1bOQ"
	KeyF12   = "\x1b[24~"
)

// Type writes s to the serial console's input, as if typed.
func (vm *VM) Type(s string) error {
	if vm.stdin == nil {
		return fmt.Errorf("qemutest: no serial input")
	}
	vm.typed = true
	if _, err := vm.stdin.Write([]byte(s)); err != nil {
		return fmt.Errorf("qemutest: typing on the serial console: %w", err)
	}
	return nil
}

var ansiSeq = regexp.MustCompile(`\x1b(\[[0-9;?]*[ -/]*[@-~]|\][^\x07]*\x07|[()][0-9A-Za-z]|[=>78DEHMc])`)

// StripANSI removes terminal control sequences and carriage returns.
func StripANSI(s string) string {
	return strings.ReplaceAll(ansiSeq.ReplaceAllString(s, ""), "\r", "")
}

// screenText is what the console drew from line from on, without control
// sequences (a full-screen program repaints only changed lines, so the text
// it draws after a key press is what changed).
func (vm *VM) screenText(from int) (string, int) {
	c := vm.console
	c.mu.Lock()
	defer c.mu.Unlock()
	from = min(from, len(c.lines))
	text := strings.Join(c.lines[from:], "\n") + "\n" + string(c.partial)
	return StripANSI(text), len(c.lines)
}

// MarkScreen makes the next ExpectScreen look only at what the console
// draws from now on.
func (vm *VM) MarkScreen() {
	_, n := vm.screenText(0)
	vm.screen = n
}

// ExpectScreen waits up to timeout for text to be drawn on the serial
// console since the last MarkScreen (or the boot). The DCUI draws whole
// lines, so text must not span lines.
func (vm *VM) ExpectScreen(text string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		s, _ := vm.screenText(vm.screen)
		if strings.Contains(s, text) {
			return nil
		}
		if vm.Exited() {
			return fmt.Errorf("QEMU exited before the console showed %q%s", text, formatTail(lastLines(s, TailLines)))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the console did not show %q within %v; it drew:%s", text, timeout, formatTail(lastLines(s, TailLines)))
		}
		// The console signals complete lines only; a screen's last line
		// is often unterminated, so poll at a short interval.
		c := vm.console
		c.mu.Lock()
		changed := c.changed
		c.mu.Unlock()
		select {
		case <-changed:
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func lastLines(s string, n int) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.TrimSpace(l) != "" {
			out = append(out, l)
		}
	}
	if len(out) > n {
		out = out[len(out)-n:]
	}
	return out
}

// press types keys and waits for want to be drawn afterwards.
func (vm *VM) press(keys, want string, timeout time.Duration) error {
	vm.MarkScreen()
	if err := vm.Type(keys); err != nil {
		return err
	}
	return vm.ExpectScreen(want, timeout)
}

// SetPasswordViaDCUI sets the root password of a booted, first-boot
// appliance through the DCUI on its serial console, the way an
// administrator does: Enter (F2) on the home screen, the password twice,
// then Esc back to the home screen, logged out. Call it after WaitReady.
func SetPasswordViaDCUI(ctx context.Context, vm *VM, password string) error {
	timeout := 60 * time.Second
	if d, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(d))
	}
	if err := vm.ExpectScreen("FIRST BOOT", timeout); err != nil {
		return fmt.Errorf("DCUI home screen: %w", err)
	}
	stars := strings.Repeat("*", len([]rune(password)))
	steps := []struct{ keys, want string }{
		{KeyEnter, "New password:"},
		{password, stars},
		{KeyEnter, "> Confirm password"},
		{password, stars + "_"},
		{KeyEnter, "System Customization"},
		{KeyEsc, "Customize System"},
	}
	for _, s := range steps {
		if err := ctx.Err(); err != nil {
			return err
		}
		shown := s.keys
		if s.keys == password {
			shown = "the password"
		}
		if err := vm.press(s.keys, s.want, timeout); err != nil {
			return fmt.Errorf("setting the password through the DCUI: after typing %q: %w", shown, err)
		}
	}
	return nil
}

// LoginViaDCUI opens Customize System on the serial DCUI with the root
// password.
func LoginViaDCUI(vm *VM, password string) error {
	if err := vm.press(KeyEnter, "Password:", 30*time.Second); err != nil {
		return err
	}
	if err := vm.press(password, strings.Repeat("*", len([]rune(password))), 30*time.Second); err != nil {
		return err
	}
	return vm.press(KeyEnter, "System Customization", 30*time.Second)
}

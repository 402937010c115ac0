package dcui

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/client"
)

// sshBanner dials the SSH service on port and reads its banner ("" when
// nothing listens).
func sshBanner(t *testing.T, port int) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), 2*time.Second)
	if err != nil {
		return ""
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	line, _ := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line)
}

// says fails the test unless the console is at screen s and shows each
// of wants (on the flat screen: wrapped text is found whole).
func (h *harness) says(s screen, what string, wants ...string) {
	h.t.Helper()
	if h.m.scr != s {
		h.t.Fatalf("%s: at screen %d, want %d:\n%s", what, h.m.scr, s, h.m.View())
	}
	scr := h.flat()
	for _, w := range wants {
		if !strings.Contains(scr, w) {
			h.t.Fatalf("%s: the screen lacks %q:\n%s", what, w, h.m.View())
		}
	}
}

// troubleSSH opens Troubleshooting Options from the menu and selects its
// SSH item.
func (h *harness) troubleSSH() {
	h.t.Helper()
	h.menu("Troubleshooting Options")
	h.want(scrTrouble)
	for h.m.trouble.sel != 2 {
		h.keys("down")
	}
}

// TestTroubleshootingTurnsSSHOnAndOff turns SSH on and off from
// Troubleshooting Options against a real vmkernel (no management
// network: its SSH service listens on the loopback), after a confirmation
// each time: the service answers on its port once on and not once off,
// the rest of its configuration is kept, the home screen warns while it
// is on; under lockdown the API's refusal is said.
func TestTroubleshootingTurnsSSHOnAndOff(t *testing.T) {
	rig := plainRig(t)
	h := plainHarness(t, rig.Client, 0)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// Password login and a shell for a login, set through the API: the
	// console's switch keeps them.
	if _, err := rig.Client.SetSSH(ctx, api.SSHConfig{PasswordLogin: true, Session: api.SSHSessionShell}); err != nil {
		t.Fatal(err)
	}
	const pw = "Plinth-Test-42"
	h.keys("enter", pw, "enter", pw, "enter") // first boot: the password first
	h.want(scrMenu)

	h.troubleSSH()
	h.says(scrTrouble, "Troubleshooting Options", "> Enable SSH (SSH is off)", "SSH is off. Turned on, root can log in over the network")
	// Esc on the confirmation changes nothing.
	h.keys("enter")
	h.says(scrSSH, "the confirmation of turning SSH on", "Turn SSH ON?", "with an authorized key or the root password (0 key(s) set) and gets a root shell")
	h.keys("esc")
	h.want(scrTrouble)
	if st, err := rig.Client.SSH(ctx); err != nil || st.Config.Enabled {
		t.Fatalf("SSH after Esc: %+v, %v", st, err)
	}

	// On.
	h.keys("enter", "enter")
	h.want(scrMessage)
	st, err := rig.Client.SSH(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Config.Enabled || !st.Running || !st.Config.PasswordLogin || st.Config.Session != api.SSHSessionShell {
		t.Fatalf("after Enable SSH the API says %+v (want on, running, password login and the shell kept)", st)
	}
	h.says(scrMessage, "the result of Enable SSH", "SSH is on, on port "+strconv.Itoa(st.Port)+". WARNING: SSH is on: root can log in to this host over the network.")
	if b := sshBanner(t, st.Port); !strings.HasPrefix(b, "SSH-2.0-") {
		t.Fatalf("nothing speaks SSH on port %d once on (banner %q)", st.Port, b)
	}
	h.keys("enter")
	h.says(scrTrouble, "Troubleshooting Options after turning SSH on", "> Disable SSH (SSH is ON)", "WARNING: SSH is on: root can log in")
	// The home screen warns (Esc twice: the menu, then home, logged out).
	h.keys("esc", "esc")
	h.says(scrHome, "the home screen while SSH is on", "SSH: WARNING: SSH is on: root can log in to this host over the network")

	// Off.
	h.keys("f2", pw, "enter")
	h.want(scrMenu)
	h.troubleSSH()
	h.keys("enter")
	h.says(scrSSH, "the confirmation of turning SSH off", "Turn SSH OFF?", "0 open session(s) end now")
	h.keys("enter")
	h.says(scrMessage, "the result of Disable SSH", "SSH is off; no one can log in over SSH.")
	off, err := rig.Client.SSH(ctx)
	if err != nil || off.Config.Enabled || off.Running || !off.Config.PasswordLogin {
		t.Fatalf("after Disable SSH the API says %+v, %v", off, err)
	}
	if b := sshBanner(t, st.Port); b != "" {
		t.Fatalf("port %d still answers once SSH is off: %q", st.Port, b)
	}
	h.keys("enter", "esc", "esc")
	h.want(scrHome)
	if strings.Contains(h.flat(), "SSH:") {
		t.Fatalf("the home screen still speaks of SSH once off:\n%s", h.m.View())
	}

	// Under lockdown vmkernel refuses, and the console says so.
	if _, err := rig.Client.SetLockdown(ctx, api.LockdownRequest{Enabled: true}); err != nil {
		t.Fatal(err)
	}
	h.keys("f2", pw, "enter")
	h.want(scrMenu)
	h.troubleSSH()
	h.says(scrTrouble, "Troubleshooting Options under lockdown", "Lockdown mode is on: SSH stays off until lockdown is turned off.")
	h.keys("enter")
	h.says(scrSSH, "the confirmation under lockdown", "Lockdown mode is on: vmkernel will refuse.")
	h.keys("enter")
	// The API's own words, as a client of the API gets them.
	_, err = rig.Client.SetSSH(ctx, api.SSHConfig{Enabled: true})
	var refusal *client.Error
	if !errors.As(err, &refusal) || refusal.Status != http.StatusConflict || !strings.Contains(refusal.Problem.Detail, "lockdown mode is on") {
		t.Fatalf("the API let SSH on under lockdown, or refused otherwise: %v", err)
	}
	want := "SSH NOT TURNED ON: " + refusal.Problem.Detail + ". Turn Lockdown Mode off first (Customize System > Lockdown Mode)."
	h.says(scrMessage, "the refusal under lockdown", want)
	if st, err := rig.Client.SSH(ctx); err != nil || st.Config.Enabled || st.Running {
		t.Fatalf("SSH under lockdown: %+v, %v", st, err)
	}
	h.keys("enter")
	h.says(scrTrouble, "Troubleshooting Options after the refusal", "> Enable SSH (SSH is off)")
}

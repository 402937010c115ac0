package auth

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/internal/testenv"
)

func TestCheckStrength(t *testing.T) {
	for pw, ok := range map[string]bool{
		"short1A":                 false,
		"alllowercase":            false,
		"lower-and-digit1":        true,
		"Plinth-test-1":           true,
		"Root-pass-99":            false, // holds the user name
		"UPPER999lower":           true,
		"tab\there-Ab1":           false,
		strings.Repeat("aB1", 30): false, // > 72 bytes
	} {
		err := CheckStrength(api.RootUser, pw)
		if (err == nil) != ok {
			t.Errorf("CheckStrength(%q) = %v, want ok=%v", pw, err, ok)
		}
	}
}

func TestPasswordLifecycle(t *testing.T) {
	dir := t.TempDir()
	if set, err := PasswordSet(dir); err != nil || set {
		t.Fatalf("fresh dir: PasswordSet = %v, %v", set, err)
	}
	if err := Verify(dir, api.RootUser, "anything"); !errors.Is(err, ErrNoPassword) {
		t.Fatalf("Verify before set = %v, want ErrNoPassword", err)
	}
	if err := SetPassword(dir, api.RootUser, "weak"); err == nil {
		t.Fatal("a weak password was accepted")
	}
	if err := SetPassword(dir, "admin", "Plinth-test-1"); err == nil {
		t.Fatal("a second account was accepted")
	}
	if err := SetPassword(dir, api.RootUser, "Plinth-test-1"); err != nil {
		t.Fatal(err)
	}
	if err := Verify(dir, api.RootUser, "Plinth-test-1"); err != nil {
		t.Fatalf("Verify right password: %v", err)
	}
	for _, c := range [][2]string{{api.RootUser, "Plinth-test-2"}, {"admin", "Plinth-test-1"}} {
		if err := Verify(dir, c[0], c[1]); !errors.Is(err, ErrBadCredentials) {
			t.Errorf("Verify(%q, %q) = %v, want ErrBadCredentials", c[0], c[1], err)
		}
	}
	fi, err := os.Stat(filepath.Join(dir, PasswdFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("passwd file mode: %v %v", fi, err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, PasswdFile))
	if strings.Contains(string(b), "Plinth-test-1") {
		t.Fatal("the password is stored in clear")
	}
	// A corrupt file is an error, not "no password".
	os.WriteFile(filepath.Join(dir, PasswdFile), []byte("{"), 0o600)
	if err := Verify(dir, api.RootUser, "Plinth-test-1"); err == nil || errors.Is(err, ErrNoPassword) {
		t.Fatalf("Verify with a corrupt file = %v", err)
	}
}

func TestLockdown(t *testing.T) {
	dir := t.TempDir()
	if on, err := Lockdown(dir); err != nil || on {
		t.Fatalf("default lockdown = %v, %v", on, err)
	}
	for _, want := range []bool{true, false, true} {
		if err := SetLockdown(dir, want); err != nil {
			t.Fatal(err)
		}
		if on, err := Lockdown(dir); err != nil || on != want {
			t.Fatalf("Lockdown = %v, %v, want %v", on, err, want)
		}
	}
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) { c.mu.Lock(); defer c.mu.Unlock(); c.t = c.t.Add(d) }
func newClock() *clock               { return &clock{t: time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)} }

// withPassword is an account directory with root's password set.
func withPassword(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := SetPassword(dir, api.RootUser, "Plinth-test-1"); err != nil {
		t.Fatal(err)
	}
	return dir
}

// login logs root in as mgmtd does: the password's epoch with it.
func login(t *testing.T, dir string, tok *Tokens) api.Session {
	t.Helper()
	epoch, err := Login(dir, api.RootUser, "Plinth-test-1")
	if err != nil {
		t.Fatal(err)
	}
	return tok.NewSession(api.RootUser, epoch)
}

func TestSessionExpiryAndLogout(t *testing.T) {
	clk := newClock()
	dir := withPassword(t)
	tok, err := OpenTokens(dir, time.Hour, clk.now)
	if err != nil {
		t.Fatal(err)
	}
	s := login(t, dir, tok)
	if p, err := tok.Check(s.Token); err != nil || p.User != api.RootUser || p.Kind != "session" {
		t.Fatalf("Check fresh session = %+v, %v", p, err)
	}
	clk.add(59 * time.Minute)
	if _, err := tok.Check(s.Token); err != nil {
		t.Fatalf("session expired early: %v", err)
	}
	clk.add(time.Minute)
	if _, err := tok.Check(s.Token); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("expired session accepted: %v", err)
	}
	s2 := login(t, dir, tok)
	tok.EndSession(s2.Token)
	if _, err := tok.Check(s2.Token); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("logged-out session accepted: %v", err)
	}
	for _, bad := range []string{"", "plinth_s_", "plinth_t_x", "plinth_t_abc_def", "Bearer x", s.Token + "x"} {
		if _, err := tok.Check(bad); !errors.Is(err, ErrUnauthenticated) {
			t.Errorf("Check(%q) = %v", bad, err)
		}
	}
}

// loggedIn is root logged in to a fresh account directory: its tokens,
// the session's principal, the clock and the directory.
func loggedIn(t *testing.T) (*Tokens, Principal, *clock, string) {
	t.Helper()
	dir := withPassword(t)
	clk := newClock()
	tok, err := OpenTokens(dir, 0, clk.now)
	if err != nil {
		t.Fatal(err)
	}
	p, err := tok.Check(login(t, dir, tok).Token)
	if err != nil {
		t.Fatal(err)
	}
	return tok, p, clk, dir
}

func TestAPITokensPersistExpireAndRevoke(t *testing.T) {
	tok, p, clk, dir := loggedIn(t)
	if _, err := tok.Create(p, api.TokenRequest{Name: ""}); err == nil {
		t.Fatal("a token without a name was made")
	}
	forever, err := tok.Create(p, api.TokenRequest{Name: "ci"})
	if err != nil {
		t.Fatal(err)
	}
	short, err := tok.Create(p, api.TokenRequest{Name: "one hour", ExpiresInSeconds: 3600})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, TokensFile))
	if strings.Contains(string(b), forever.Secret) {
		t.Fatal("the token secret is stored in clear")
	}
	// A restarted mgmtd knows the tokens.
	tok2, err := OpenTokens(dir, 0, clk.now)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{forever.Secret, short.Secret} {
		if p, err := tok2.Check(s); err != nil || p.Kind != "token" {
			t.Fatalf("Check after reopen = %+v, %v", p, err)
		}
	}
	if l := tok2.List(); len(l) != 2 || l[0].Secret != "" || l[0].LastUsedAt == nil {
		t.Fatalf("List = %+v", l)
	}
	clk.add(time.Hour)
	if _, err := tok2.Check(short.Secret); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("expired token accepted: %v", err)
	}
	if err := tok2.Revoke(forever.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := tok2.Check(forever.Secret); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("revoked token accepted: %v", err)
	}
	if err := tok2.Revoke(forever.ID); !errors.Is(err, ErrNoToken) {
		t.Fatalf("second revoke = %v", err)
	}
	tok3, _ := OpenTokens(dir, 0, clk.now)
	if _, err := tok3.Check(forever.Secret); err == nil {
		t.Fatal("revoked token came back after reopen")
	}
	// A token whose secret part is altered is refused.
	if _, err := tok3.Check(short.Secret[:len(short.Secret)-1] + "A"); err == nil {
		t.Fatal("altered token accepted")
	}
}

// TestPasswordChangeEndsEverything: sessions, API tokens and tickets made
// before a password change stop working, whoever changes it (here package
// auth itself, as the DCUI does), in this process and in a reopened one;
// what is made after it works.
func TestPasswordChangeEndsEverything(t *testing.T) {
	dir := withPassword(t)
	clk := newClock()
	tok, _ := OpenTokens(dir, 0, clk.now)
	sess := login(t, dir, tok)
	p, err := tok.Check(sess.Token)
	if err != nil {
		t.Fatal(err)
	}
	api1, err := tok.Create(p, api.TokenRequest{Name: "ci"})
	if err != nil {
		t.Fatal(err)
	}
	tk, err := tok.NewTicket(p, "/api/v1/vms/a/console/ws")
	if err != nil {
		t.Fatal(err)
	}
	if err := SetPassword(dir, api.RootUser, "Changed-pass-2"); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{sess.Token, api1.Secret} {
		if _, err := tok.Check(s); !errors.Is(err, ErrUnauthenticated) {
			t.Errorf("Check(%.12s...) after a password change = %v", s, err)
		}
	}
	if _, err := tok.UseTicket(tk.Ticket, tk.Path); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("a ticket made before the change = %v", err)
	}
	if _, err := tok.Create(p, api.TokenRequest{Name: "late"}); err == nil {
		t.Error("the old session's principal made a token after the change")
	}
	if l := tok.List(); len(l) != 0 {
		t.Errorf("List still shows ended tokens: %+v", l)
	}
	reopened, _ := OpenTokens(dir, 0, clk.now)
	if _, err := reopened.Check(api1.Secret); err == nil {
		t.Error("an ended token works after a reopen")
	}
	epoch, err := Login(dir, api.RootUser, "Changed-pass-2")
	if err != nil || epoch != 2 {
		t.Fatalf("Login with the new password = %d, %v; want epoch 2", epoch, err)
	}
	s2 := tok.NewSession(api.RootUser, epoch)
	if _, err := tok.Check(s2.Token); err != nil {
		t.Errorf("a session after the change: %v", err)
	}
	// A session whose login raced the change (checked at the old epoch,
	// made after it) does not hold either.
	late := tok.NewSession(api.RootUser, 1)
	if _, err := tok.Check(late.Token); err == nil {
		t.Error("a session made with the old epoch holds")
	}
	// No password file at all (a reset): nothing holds.
	os.Remove(filepath.Join(dir, PasswdFile))
	if _, err := tok.Check(s2.Token); err == nil {
		t.Error("a session holds without a password file")
	}
}

func TestTickets(t *testing.T) {
	tok, p, clk, _ := loggedIn(t)
	const path = "/api/v1/vms/web1/console/ws"
	tk, err := tok.NewTicket(p, path)
	if err != nil || !strings.HasPrefix(tk.Ticket, "plinth_k_") || tk.Path != path {
		t.Fatalf("NewTicket = %+v, %v", tk, err)
	}
	if _, err := tok.Check(tk.Ticket); err == nil {
		t.Error("a ticket works as a bearer token")
	}
	if _, err := tok.UseTicket(tk.Ticket, "/api/v1/vms/other/console/ws"); err == nil {
		t.Error("a ticket opened another path")
	}
	// That try spent it.
	if _, err := tok.UseTicket(tk.Ticket, path); err == nil {
		t.Error("a ticket tried on another path still works")
	}
	tk, _ = tok.NewTicket(p, path)
	got, err := tok.UseTicket(tk.Ticket, path)
	if err != nil || got.User != api.RootUser || got.Kind != "ticket" {
		t.Fatalf("UseTicket = %+v, %v", got, err)
	}
	if _, err := tok.UseTicket(tk.Ticket, path); err == nil {
		t.Error("a ticket worked twice")
	}
	tk, _ = tok.NewTicket(p, path)
	clk.add(TicketTTL)
	if _, err := tok.UseTicket(tk.Ticket, path); err == nil {
		t.Error("an expired ticket worked")
	}
	for i := 0; i < MaxTickets; i++ {
		if _, err := tok.NewTicket(p, path); err != nil {
			t.Fatalf("ticket %d: %v", i, err)
		}
	}
	if _, err := tok.NewTicket(p, path); !errors.Is(err, ErrTooManyTickets) {
		t.Errorf("ticket %d = %v, want ErrTooManyTickets", MaxTickets+1, err)
	}
	clk.add(TicketTTL)
	if _, err := tok.NewTicket(p, path); err != nil {
		t.Errorf("after the others expired: %v", err)
	}
}

func TestThrottle(t *testing.T) {
	clk := newClock()
	th := NewThrottle(clk.now)
	fail := func(client, user string) {
		t.Helper()
		if _, w := th.Begin(client, user); w != 0 {
			t.Fatalf("attempt by %s as %s throttled: %v", client, user, w)
		}
	}
	wait := func(client, user string) time.Duration {
		t.Helper()
		a, w := th.Begin(client, user)
		if a != nil {
			a.Undo()
		}
		return w
	}
	for i := 0; i < FreeFailures; i++ {
		fail("10.0.0.9", "root")
	}
	if w := wait("10.0.0.9", "root"); w != time.Second {
		t.Fatalf("wait after %d failures = %v, want 1s", FreeFailures, w)
	}
	// Another stranger guessing the same account is throttled too.
	if w := wait("10.0.0.10", "root"); w == 0 {
		t.Fatal("the account is not throttled for another client")
	}
	clk.add(time.Second)
	fail("10.0.0.9", "root")
	if w := wait("10.0.0.9", "root"); w != 2*time.Second {
		t.Fatalf("wait after %d failures = %v, want 2s", FreeFailures+1, w)
	}
	for i := 0; i < 30; i++ {
		clk.add(MaxDelay)
		fail("10.0.0.9", "root")
	}
	if w := wait("10.0.0.9", "root"); w != MaxDelay {
		t.Fatalf("wait is %v, want the cap %v", w, MaxDelay)
	}
	clk.add(MaxDelay)
	a, _ := th.Begin("10.0.0.9", "root")
	a.Succeeded()
	if w := wait("10.0.0.9", "root"); w != 0 {
		t.Fatalf("still throttled after success: %v", w)
	}
	fail("192.0.2.1", "x")
	clk.add(Window + time.Second)
	if w := wait("192.0.2.1", "x"); w != 0 {
		t.Fatalf("old failure still counts: %v", w)
	}
}

// TestThrottleCountsBeforeTheCheck: attempts that all begin before any has
// been checked are counted as they begin, so only FreeFailures get
// through; an attempt that could not be checked is given back.
func TestThrottleCountsBeforeTheCheck(t *testing.T) {
	th := NewThrottle(newClock().now)
	var through []*Attempt
	for i := 0; i < 20; i++ {
		if a, w := th.Begin("10.0.0.9", "root"); a != nil {
			through = append(through, a)
		} else if w == 0 {
			t.Fatal("refused without a wait")
		}
	}
	if len(through) != FreeFailures {
		t.Fatalf("%d of 20 attempts begun at once got through, want %d", len(through), FreeFailures)
	}
	for _, a := range through {
		a.Undo()
	}
	if a, w := th.Begin("10.0.0.9", "root"); a == nil {
		t.Fatalf("throttled after every attempt was undone: %v", w)
	}
}

// TestThrottleKnownClients: a stranger's failures throttle root for other
// strangers but not for a client that has logged in before; the stranger
// stays throttled on its own record.
func TestThrottleKnownClients(t *testing.T) {
	clk := newClock()
	th := NewThrottle(clk.now)
	a, _ := th.Begin("10.0.0.5", "root")
	a.Succeeded()                   // the admin's workstation logged in once
	for failed := 0; failed < 20; { // the stranger waits out each delay
		if a, w := th.Begin("203.0.113.66", "root"); a == nil {
			clk.add(w)
		} else {
			failed++
		}
	}
	if _, w := th.Begin("203.0.113.66", "root"); w == 0 {
		t.Fatal("the stranger is not throttled")
	}
	if _, w := th.Begin("198.51.100.7", "root"); w == 0 {
		t.Fatal("another stranger is not throttled on root")
	}
	a, w := th.Begin("10.0.0.5", "root")
	if a == nil {
		t.Fatalf("the known client is throttled by a stranger's failures: %v", w)
	}
	a.Succeeded()
	// Known for KnownFor, then a stranger again.
	clk.add(KnownFor + time.Minute)
	for i := 0; i < FreeFailures; i++ {
		th.Begin("203.0.113.66", "root")
		clk.add(time.Millisecond)
	}
	if _, w := th.Begin("10.0.0.5", "root"); w == 0 {
		t.Error("a client last seen more than KnownFor ago is still known")
	}
}

// TestThrottleBounded: user names other than root share one record, an
// IPv6 /64 is one client, and a flood of addresses cannot grow the records
// past their bound or push out root's.
func TestThrottleBounded(t *testing.T) {
	clk := newClock()
	th := NewThrottle(clk.now)
	for i := 0; i < FreeFailures; i++ {
		th.Begin(fmt.Sprintf("2001:db8:1:2::%x", i+1), fmt.Sprintf("user%d", i))
	}
	if _, w := th.Begin("2001:db8:1:2::ffff", "someone"); w == 0 {
		t.Error("a /64 changing addresses and user names is not throttled")
	}
	for i := 0; i < FreeFailures; i++ {
		th.Begin("192.0.2.1", "root")
	}
	for i := 0; i < 3*maxKeys; i++ {
		th.Begin(fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255), "nobody")
	}
	if n := len(th.keys); n > maxKeys {
		t.Errorf("%d records, more than %d", n, maxKeys)
	}
	if _, w := th.Begin("198.51.100.1", "root"); w == 0 {
		t.Error("the flood pushed out root's record")
	}
	if got := ClientKey("::ffff:192.0.2.1"); got != "192.0.2.1" {
		t.Errorf("ClientKey of a mapped IPv4 address = %q", got)
	}
}

// TestPasswordFileGivenBeforeRename: the DCUI (root) writes the account
// files for mgmtd's user, the owner of their directory; each appears
// already theirs, and a symbolic link that user put at the name is never
// followed (the file it names keeps owner and content): replaced where the
// file is only written, refused where it is read first.
func TestPasswordFileGivenBeforeRename(t *testing.T) {
	testenv.Root(t, "the DCUI writes the account files as root for another user")
	const uid, gid = 4242, 4243
	dir := t.TempDir()
	if err := os.Chown(dir, uid, gid); err != nil {
		t.Fatal(err)
	}
	victim := filepath.Join(t.TempDir(), "shadow")
	os.WriteFile(victim, []byte("root:x:0:0\n"), 0o600)
	for _, name := range []string{PasswdFile, SecurityFile} {
		if err := os.Symlink(victim, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	if err := SetPassword(dir, api.RootUser, "Plinth-test-1"); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Fatalf("SetPassword over a link = %v, want a refusal naming the link", err)
	}
	if _, err := Lockdown(dir); err == nil {
		t.Error("Lockdown read through a link")
	}
	os.Remove(filepath.Join(dir, PasswdFile))
	if err := SetPassword(dir, api.RootUser, "Plinth-test-1"); err != nil {
		t.Fatal(err)
	}
	if err := SetLockdown(dir, true); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{PasswdFile, SecurityFile} {
		fi, err := os.Lstat(filepath.Join(dir, name))
		if err != nil || !fi.Mode().IsRegular() {
			t.Fatalf("%s: %v, %v", name, fi, err)
		}
		if u, g := statOwner(fi); u != uid || g != gid {
			t.Errorf("%s is owned by %d:%d, want %d:%d", name, u, g, uid, gid)
		}
	}
	fi, _ := os.Stat(victim)
	b, _ := os.ReadFile(victim)
	if u, _ := statOwner(fi); u != 0 || string(b) != "root:x:0:0\n" {
		t.Errorf("the link's target was changed: owner %d, %q", u, b)
	}
}

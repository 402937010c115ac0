package auth

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/plinth/plinth/api"
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

func TestSessionExpiryAndLogout(t *testing.T) {
	clk := newClock()
	tok, err := OpenTokens(t.TempDir(), time.Hour, clk.now)
	if err != nil {
		t.Fatal(err)
	}
	s := tok.NewSession(api.RootUser)
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
	s2 := tok.NewSession(api.RootUser)
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

func TestAPITokensPersistExpireAndRevoke(t *testing.T) {
	dir := t.TempDir()
	clk := newClock()
	tok, _ := OpenTokens(dir, 0, clk.now)
	if _, err := tok.Create(api.RootUser, api.TokenRequest{Name: ""}); err == nil {
		t.Fatal("a token without a name was made")
	}
	forever, err := tok.Create(api.RootUser, api.TokenRequest{Name: "ci"})
	if err != nil {
		t.Fatal(err)
	}
	short, err := tok.Create(api.RootUser, api.TokenRequest{Name: "one hour", ExpiresInSeconds: 3600})
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

func TestThrottle(t *testing.T) {
	clk := newClock()
	th := NewThrottle(clk.now)
	keys := []string{"client:10.0.0.9", "user:root"}
	for i := 0; i < FreeFailures-1; i++ {
		if w := th.Wait(keys...); w != 0 {
			t.Fatalf("throttled after %d failures: %v", i, w)
		}
		th.Fail(keys...)
	}
	th.Fail(keys...)
	if w := th.Wait(keys...); w != time.Second {
		t.Fatalf("wait after %d failures = %v, want 1s", FreeFailures, w)
	}
	// Another client guessing the same account is throttled too.
	if w := th.Wait("client:10.0.0.10", "user:root"); w == 0 {
		t.Fatal("the account is not throttled for another client")
	}
	clk.add(time.Second)
	th.Fail(keys...)
	if w := th.Wait(keys...); w != 2*time.Second {
		t.Fatalf("wait after %d failures = %v, want 2s", FreeFailures+1, w)
	}
	for i := 0; i < 30; i++ {
		th.Fail(keys...)
	}
	if w := th.Wait(keys...); w != MaxDelay {
		t.Fatalf("wait is %v, want the cap %v", w, MaxDelay)
	}
	th.Succeed(keys...)
	if w := th.Wait(keys...); w != 0 {
		t.Fatalf("still throttled after success: %v", w)
	}
	th.Fail("client:x")
	clk.add(Window + time.Second)
	if w := th.Wait("client:x"); w != 0 {
		t.Fatalf("old failure still counts: %v", w)
	}
}

package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"

	"golang.org/x/term"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/client"
)

// login checks the server's certificate against known_hosts (asking to
// trust it on first contact), logs in, and stores the session's token.
func (a *app) login(ctx context.Context, args []string) error {
	fs := a.flags("login")
	user := fs.String("user", api.RootUser, "user name")
	pwStdin := fs.Bool("password-stdin", false, "read the password from the first line of standard input")
	yes := fs.Bool("yes", false, "trust the server's certificate on first contact without asking (scripts; prefer --fingerprint)")
	want := fs.String("fingerprint", "", "the SHA-256 `fingerprint` the server must present (as the host's console shows it)")
	if _, err := parse(fs, args, "", 0, 0); err != nil {
		return err
	}
	dir, err := a.dir()
	if err != nil {
		return err
	}
	cfg, err := loadConfig(dir)
	if err != nil {
		return err
	}
	addr, err := a.serverAddr(cfg)
	if err != nil {
		return err
	}
	if *want != "" {
		if *want, err = normalizeFingerprint(*want); err != nil {
			return withCode(ExitUsage, err)
		}
	}
	kh, err := LoadKnownHosts(filepath.Join(dir, KnownHostsFile))
	if err != nil {
		return err
	}
	presented, err := presentedFingerprint(ctx, addr)
	if err != nil {
		return err
	}
	if err := a.trust(kh, addr, presented, *want, *yes); err != nil {
		return err
	}

	password, err := a.password(*user, addr, *pwStdin)
	if err != nil {
		return err
	}
	c, err := client.New("https://"+addr, client.WithPinnedFingerprint(presented), client.WithTimeout(defaultTimeout))
	if err != nil {
		return err
	}
	s, err := c.Login(ctx, *user, password)
	if err != nil {
		return a.explain(ctx, addr, err)
	}
	if cfg.Servers == nil {
		cfg.Servers = map[string]ServerLogin{}
	}
	cfg.Servers[addr] = ServerLogin{User: s.User, Token: s.Token, ExpiresAt: s.ExpiresAt}
	cfg.Server = addr
	if err := saveConfig(dir, cfg); err != nil {
		return err
	}
	if a.json {
		s.Token = "" // the token stays in the configuration file
		return writeJSON(a.out, s)
	}
	msg := fmt.Sprintf("Logged in to %s as %s", addr, s.User)
	if !s.ExpiresAt.IsZero() {
		msg += "; the session expires " + localTime(s.ExpiresAt)
	}
	fmt.Fprintln(a.errw, msg+".")
	return nil
}

// trust checks presented against the pin for addr. On first contact it
// pins presented when it equals want (--fingerprint), when yes (--yes), or
// when the user says so at the terminal.
func (a *app) trust(kh *KnownHosts, addr, presented, want string, yes bool) error {
	err := kh.Check(addr, presented)
	if !errors.Is(err, ErrUnknownHost) {
		if err == nil && want != "" && want != presented {
			return withCode(ExitFingerprint, fmt.Errorf("%s presents fingerprint %s, not the %s given with --fingerprint", addr, presented, want))
		}
		return err // nil (the pin matches) or a *MismatchError
	}
	switch {
	case want != "":
		if want != presented {
			return withCode(ExitFingerprint, fmt.Errorf(
				"%s presents certificate fingerprint\n  %s\nnot the one given with --fingerprint\n  %s\nNot connecting.", addr, presented, want))
		}
	case yes:
		fmt.Fprintf(a.errw, "Trusting %s on first use (--yes); its certificate's SHA-256 fingerprint is\n  %s\n", addr, presented)
	default:
		if _, ok := terminal(a.env.Stdin); !ok {
			return withCode(ExitFingerprint, fmt.Errorf(
				"%s is not a known host and there is no terminal to ask: its certificate's SHA-256 fingerprint is\n  %s\n"+
					"compare it with the host's console (DCUI), then pass --fingerprint %s (or --yes)", addr, presented, presented))
		}
		fmt.Fprintf(a.errw, "The authenticity of %s can't be established.\n"+
			"Its certificate's SHA-256 fingerprint is\n  %s\n"+
			"Compare it with the fingerprint on the host's console (DCUI).\n"+
			"Trust this certificate and connect (yes/no)? ", addr, presented)
		line, err := a.in.ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		if ans := strings.ToLower(strings.TrimSpace(line)); ans != "yes" && ans != "y" {
			return withCode(ExitFingerprint, fmt.Errorf("certificate of %s not trusted; not connecting", addr))
		}
	}
	if err := kh.Add(addr, presented); err != nil {
		return err
	}
	fmt.Fprintf(a.errw, "Pinned the certificate of %s in %s.\n", addr, kh.Path)
	return nil
}

// password reads the password: without echo at a terminal, else (or with
// --password-stdin) the first line of standard input.
func (a *app) password(user, addr string, fromStdin bool) (string, error) {
	if fd, ok := terminal(a.env.Stdin); ok && !fromStdin {
		fmt.Fprintf(a.errw, "Password for %s@%s: ", user, addr)
		b, err := term.ReadPassword(fd)
		fmt.Fprintln(a.errw)
		if err != nil {
			return "", fmt.Errorf("read password: %w", err)
		}
		return string(b), nil
	}
	line, err := a.in.ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read password from standard input: %w", err)
	}
	pw := strings.TrimRight(line, "\r\n")
	if pw == "" {
		return "", usageErrorf("no password on standard input")
	}
	return pw, nil
}

// logout ends the session on the server (when it still exists) and removes
// the token from the configuration.
func (a *app) logout(ctx context.Context, args []string) error {
	fs := a.flags("logout")
	if _, err := parse(fs, args, "", 0, 0); err != nil {
		return err
	}
	dir, err := a.dir()
	if err != nil {
		return err
	}
	cfg, err := loadConfig(dir)
	if err != nil {
		return err
	}
	addr, err := a.serverAddr(cfg)
	if err != nil {
		return err
	}
	if cfg.Servers[addr].Token == "" {
		fmt.Fprintf(a.errw, "Not logged in to %s.\n", addr)
		return nil
	}
	err = a.call(ctx, defaultTimeout, func(c *client.Client) error {
		c.SetToken(cfg.Servers[addr].Token) // this session, not $PLINTH_TOKEN
		return c.Logout(ctx)
	})
	var ae *client.Error
	if errors.As(err, &ae) && ae.Status == http.StatusUnauthorized {
		err = nil // the session had already ended
	}
	if err != nil {
		return err
	}
	delete(cfg.Servers, addr)
	if err := saveConfig(dir, cfg); err != nil {
		return err
	}
	fmt.Fprintf(a.errw, "Logged out of %s.\n", addr)
	return nil
}

func (a *app) whoami(ctx context.Context, args []string) error {
	fs := a.flags("whoami")
	if _, err := parse(fs, args, "", 0, 0); err != nil {
		return err
	}
	return a.call(ctx, defaultTimeout, func(c *client.Client) error {
		w, err := c.WhoAmI(ctx)
		if err != nil {
			return err
		}
		if a.json {
			return writeJSON(a.out, w)
		}
		t := newTable(a.out)
		t.row("user", w.User)
		t.row("kind", w.Kind)
		if w.TokenID != "" {
			t.row("token", w.TokenID)
		}
		if w.ExpiresAt != nil {
			t.row("expires", localTime(*w.ExpiresAt))
		}
		t.row("lockdown", fmt.Sprint(w.Lockdown))
		return t.flush()
	})
}

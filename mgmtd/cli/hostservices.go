package cli

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/client"
)

// hostTime shows the clock and the NTP client.
func (a *app) hostTime(ctx context.Context, args []string) error {
	fs := a.flags("host time")
	if _, err := parse(fs, args, "", 0, 0); err != nil {
		return err
	}
	return a.call(ctx, defaultTimeout, func(c *client.Client) error {
		st, err := c.Time(ctx)
		if err != nil {
			return err
		}
		return a.showTime(st)
	})
}

// hostTimeSet sets the NTP servers (none: the answer file's or DHCP's),
// or turns the NTP client off.
func (a *app) hostTimeSet(ctx context.Context, args []string) error {
	fs := a.flags("host time set")
	off := fs.Bool("off", false, "turn the NTP client off (the clock is left as it is)")
	pos, err := parse(fs, args, "[SERVER[:PORT]...]", 0, 8)
	if err != nil {
		return err
	}
	if *off && len(pos) > 0 {
		return usageErrorf("host time set: --off takes no servers")
	}
	return a.call(ctx, defaultTimeout, func(c *client.Client) error {
		st, err := c.SetTime(ctx, api.TimeConfig{Enabled: !*off, Servers: append([]string{}, pos...)})
		if err != nil {
			return err
		}
		return a.showTime(st)
	})
}

// hostTimeSync asks the NTP servers now.
func (a *app) hostTimeSync(ctx context.Context, args []string) error {
	fs := a.flags("host time sync")
	if _, err := parse(fs, args, "", 0, 0); err != nil {
		return err
	}
	return a.call(ctx, defaultTimeout, func(c *client.Client) error {
		st, err := c.SyncTime(ctx)
		if err != nil {
			return err
		}
		if err := a.showTime(st); err != nil {
			return err
		}
		if !st.Synced {
			return fmt.Errorf("not synced: %s", orDefault(st.Problem, "the NTP client is off"))
		}
		return nil
	})
}

func (a *app) showTime(st api.TimeStatus) error {
	if a.json {
		return writeJSON(a.out, st)
	}
	t := newTable(a.out)
	t.row("now", st.Now.UTC().Format(time.RFC3339))
	t.row("ntp", map[bool]string{true: "on", false: "off"}[st.Config.Enabled])
	var servers []string
	for _, s := range st.Servers {
		v := s.Address + " (" + s.Source + ")"
		if s.LastError != "" {
			v += ": " + s.LastError
		}
		servers = append(servers, v)
	}
	t.row("servers", strings.Join(servers, "; "))
	if st.LastSync != nil {
		t.row("synced", fmt.Sprintf("%v, %s ago with %s (stratum %d), offset %+.3f s", st.Synced,
			time.Since(*st.LastSync).Round(time.Second), st.Server, st.Stratum, st.OffsetSeconds))
	} else {
		t.row("synced", "never")
	}
	if st.Problem != "" {
		t.row("problem", st.Problem)
	}
	return t.flush()
}

// hostSyslog shows remote logging's targets and their state.
func (a *app) hostSyslog(ctx context.Context, args []string) error {
	fs := a.flags("host syslog")
	if _, err := parse(fs, args, "", 0, 0); err != nil {
		return err
	}
	return a.call(ctx, defaultTimeout, func(c *client.Client) error {
		st, err := c.Syslog(ctx)
		if err != nil {
			return err
		}
		return a.showSyslog(st)
	})
}

// hostSyslogSet sends the host's log lines to the targets given (none:
// remote logging off).
func (a *app) hostSyslogSet(ctx context.Context, args []string) error {
	fs := a.flags("host syslog set")
	ca := fs.String("ca", "", "PEM file of the CA that signed the tls:// servers' certificates")
	pos, err := parse(fs, args, "[udp|tcp|tls://HOST[:PORT]...]", 0, 4)
	if err != nil {
		return err
	}
	cfg := api.SyslogConfig{Targets: append([]string{}, pos...)}
	if *ca != "" {
		b, err := os.ReadFile(*ca)
		if err != nil {
			return withCode(ExitUsage, err)
		}
		cfg.CAPEM = string(b)
	}
	return a.call(ctx, defaultTimeout, func(c *client.Client) error {
		st, err := c.SetSyslog(ctx, cfg)
		if err != nil {
			return err
		}
		return a.showSyslog(st)
	})
}

func (a *app) showSyslog(st api.SyslogStatus) error {
	if a.json {
		return writeJSON(a.out, st)
	}
	if len(st.Targets) == 0 {
		fmt.Fprintln(a.out, "remote logging is off")
		return nil
	}
	t := newTable(a.out, "TARGET", "CONNECTED", "SENT", "DROPPED", "PROBLEM")
	for _, tg := range st.Targets {
		t.row(tg.URL, strconv.FormatBool(tg.Connected), strconv.FormatUint(tg.Sent, 10), strconv.FormatUint(tg.Dropped, 10), tg.Problem)
	}
	return t.flush()
}

// hostSSH shows the SSH service.
func (a *app) hostSSH(ctx context.Context, args []string) error {
	fs := a.flags("host ssh")
	if _, err := parse(fs, args, "", 0, 0); err != nil {
		return err
	}
	return a.call(ctx, defaultTimeout, func(c *client.Client) error {
		st, err := c.SSH(ctx)
		if err != nil {
			return err
		}
		return a.showSSH(st)
	})
}

// hostSSHSwitch turns SSH on (with its options) or off.
func hostSSHSwitch(on bool) func(*app, context.Context, []string) error {
	return func(a *app, ctx context.Context, args []string) error {
		name := map[bool]string{true: "host ssh on", false: "host ssh off"}[on]
		fs := a.flags(name)
		var pwLogin *bool
		var session *string
		if on {
			pwLogin = fs.Bool("password-login", false, "allow the root password besides keys")
			session = fs.String("session", api.SSHSessionDCUI, "what a login gets: dcui (the console's screens) or shell")
		}
		if _, err := parse(fs, args, "", 0, 0); err != nil {
			return err
		}
		return a.call(ctx, defaultTimeout, func(c *client.Client) error {
			cfg := api.SSHConfig{Enabled: on}
			if on {
				cfg.PasswordLogin, cfg.Session = *pwLogin, *session
			} else if cur, err := c.SSH(ctx); err == nil {
				cfg.PasswordLogin, cfg.Session = cur.Config.PasswordLogin, cur.Config.Session
			}
			st, err := c.SetSSH(ctx, cfg)
			if err != nil {
				return err
			}
			return a.showSSH(st)
		})
	}
}

func (a *app) showSSH(st api.SSHStatus) error {
	if a.json {
		return writeJSON(a.out, st)
	}
	t := newTable(a.out)
	state := "off"
	if st.Config.Enabled {
		state = fmt.Sprintf("on (port %d, %d sessions)", st.Port, st.Sessions)
	}
	t.row("ssh", state)
	login := "keys"
	if st.Config.PasswordLogin {
		login = "keys or the root password"
	}
	t.row("login", login)
	t.row("session", st.Config.Session)
	t.row("host key", st.HostKeyFingerprint)
	t.row("keys", strconv.Itoa(len(st.Keys)))
	if st.Warning != "" {
		t.row("warning", st.Warning)
	}
	if st.Problem != "" {
		t.row("problem", st.Problem)
	}
	return t.flush()
}

// hostSSHKeys lists root's authorized keys.
func (a *app) hostSSHKeys(ctx context.Context, args []string) error {
	fs := a.flags("host ssh keys")
	if _, err := parse(fs, args, "", 0, 0); err != nil {
		return err
	}
	return a.call(ctx, defaultTimeout, func(c *client.Client) error {
		keys, err := c.SSHKeys(ctx)
		if err != nil {
			return err
		}
		if a.json {
			return writeJSON(a.out, keys)
		}
		t := newTable(a.out, "ID", "TYPE", "FINGERPRINT", "COMMENT")
		for _, k := range keys {
			t.row(k.ID, k.Type, k.Fingerprint, k.Comment)
		}
		return t.flush()
	})
}

// hostSSHKeyAdd authorizes the key in FILE (- : standard input).
func (a *app) hostSSHKeyAdd(ctx context.Context, args []string) error {
	fs := a.flags("host ssh keys add")
	pos, err := parse(fs, args, "FILE.pub|-", 1, 1)
	if err != nil {
		return err
	}
	var b []byte
	if pos[0] == "-" {
		line, err := a.in.ReadString('\n')
		if err != nil && line == "" {
			return withCode(ExitUsage, fmt.Errorf("read the key from standard input: %w", err))
		}
		b = []byte(line)
	} else if b, err = os.ReadFile(pos[0]); err != nil {
		return withCode(ExitUsage, err)
	}
	return a.call(ctx, defaultTimeout, func(c *client.Client) error {
		k, err := c.AddSSHKey(ctx, strings.TrimSpace(string(b)))
		if err != nil {
			return err
		}
		if a.json {
			return writeJSON(a.out, k)
		}
		fmt.Fprintf(a.out, "authorized %s (%s), id %s\n", k.Fingerprint, orDash(k.Comment), k.ID)
		return nil
	})
}

// hostSSHKeyRemove removes an authorized key by its id.
func (a *app) hostSSHKeyRemove(ctx context.Context, args []string) error {
	fs := a.flags("host ssh keys rm")
	pos, err := parse(fs, args, "ID", 1, 1)
	if err != nil {
		return err
	}
	return a.call(ctx, defaultTimeout, func(c *client.Client) error {
		return c.DeleteSSHKey(ctx, pos[0])
	})
}

// hostSupportBundle downloads a support bundle to FILE (default
// plinth-support-HOST-TIME.tar.gz here; - : standard output).
func (a *app) hostSupportBundle(ctx context.Context, args []string) error {
	fs := a.flags("host support-bundle")
	pos, err := parse(fs, args, "[FILE|-]", 0, 1)
	if err != nil {
		return err
	}
	return a.call(ctx, 0, func(c *client.Client) error {
		if len(pos) == 1 && pos[0] == "-" {
			_, err := c.SupportBundle(ctx, a.out)
			return err
		}
		name := "plinth-support-" + time.Now().UTC().Format("20060102T150405Z") + ".tar.gz"
		if len(pos) == 1 {
			name = pos[0]
		}
		f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return withCode(ExitUsage, err)
		}
		n, err := c.SupportBundle(ctx, f)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(name)
			return err
		}
		fmt.Fprintf(a.errw, "%s: %s\n", name, humanBytes(uint64(n)))
		return nil
	})
}

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

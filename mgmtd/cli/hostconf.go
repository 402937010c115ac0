package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/client"
)

// The host's settings (vmkernel's, through mgmtd): plinth host network,
// password, lockdown, certificate, services, reset, logs.

// hostNetwork shows the management network: saved, live, a change in
// flight and the last one settled.
func (a *app) hostNetwork(ctx context.Context, args []string) error {
	fs := a.flags("host network")
	if _, err := parse(fs, args, "", 0, 0); err != nil {
		return err
	}
	return a.call(ctx, defaultTimeout, func(c *client.Client) error {
		n, err := c.HostNetwork(ctx)
		if err != nil {
			return err
		}
		if a.json {
			return writeJSON(a.out, n)
		}
		t := newTable(a.out)
		cfg, live := n.Config, n.Live
		saved := "saved"
		if !n.Saved {
			saved = "default (nothing saved)"
		}
		t.row("configuration", saved)
		t.row("nic", orDash(cfg.NIC))
		if cfg.VLAN > 0 {
			t.row("vlan", strconv.Itoa(cfg.VLAN))
		}
		t.row("ipv4", strings.TrimSpace(cfg.Mode+" "+cfg.Address+" "+gwText(cfg.Gateway)))
		t.row("ipv6", strings.TrimSpace(orDefault(cfg.IPv6, "auto")+" "+cfg.IPv6Address))
		t.row("dns", orDash(strings.Join(cfg.DNS, ", ")))
		t.row("hostname", orDash(cfg.Hostname))
		t.row("live", fmt.Sprintf("%s on %s, gateway %s, dns %s", orDash(strings.Join(live.Addresses, ", ")), orDash(live.Interface),
			orDash(live.Gateway), orDash(strings.Join(live.DNS, ", "))))
		if live.Problem != "" {
			t.row("problem", live.Problem)
		}
		if p := n.Pending; p != nil {
			t.row("change", fmt.Sprintf("%d %s: %s on %s, rolled back at %s unless confirmed", p.ID, p.State, orDash(p.Address),
				orDash(p.Interface), p.Deadline.Local().Format(time.TimeOnly)))
		}
		if l := n.LastChange; l != nil {
			t.row("last change", fmt.Sprintf("%d %s: %s", l.ID, l.State, l.Outcome))
		}
		return t.flush()
	})
}

func gwText(gw string) string {
	if gw == "" {
		return ""
	}
	return "via " + gw
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

func orDash(s string) string { return orDefault(s, "-") }

// hostNetworkSet changes the management network from flags. The change is
// applied a second after the host answers and rolled back at its deadline
// unless confirmed from the new address (plinth host network confirm, with
// --server NEW-ADDRESS); --wait waits until it awaits confirmation.
func (a *app) hostNetworkSet(ctx context.Context, args []string) error {
	fs := a.flags("host network set")
	nic := fs.String("nic", "", "the uplink NIC (default: the first with a link)")
	vlan := fs.Int("vlan", 0, "802.1Q VLAN ID (0: none)")
	dhcp := fs.Bool("dhcp", false, "IPv4 from DHCP")
	addr := fs.String("address", "", "static IPv4 address with prefix length, e.g. 192.0.2.10/24")
	gw := fs.String("gateway", "", "default gateway (static)")
	ipv6 := fs.String("ipv6", "", "IPv6: auto, static or off")
	ipv6Addr := fs.String("ipv6-address", "", "static IPv6 address with prefix length")
	dns := fs.String("dns", "", "DNS servers, comma-separated (at most 3)")
	search := fs.String("search", "", "search domains, comma-separated")
	hostname := fs.String("hostname", "", "the host's name")
	confirm := fs.Int("confirm-seconds", 0, "how long the change waits to be confirmed (10 to 600; default 60)")
	if _, err := parse(fs, args, "", 0, 0); err != nil {
		return err
	}
	if *dhcp == (*addr != "") {
		return usageErrorf("host network set: give either --dhcp or --address")
	}
	cfg := api.NetworkConfig{NIC: *nic, VLAN: *vlan, Mode: api.NetModeDHCP, IPv6: *ipv6, IPv6Address: *ipv6Addr, Hostname: *hostname,
		DNS: splitComma(*dns), Search: splitComma(*search)}
	if *addr != "" {
		cfg.Mode, cfg.Address, cfg.Gateway = api.NetModeStatic, *addr, *gw
	}
	return a.call(ctx, defaultTimeout, func(c *client.Client) error {
		ch, err := c.ChangeNetwork(ctx, api.NetworkChangeRequest{Config: cfg, ConfirmSeconds: *confirm})
		if err != nil {
			return err
		}
		if a.json {
			return writeJSON(a.out, ch)
		}
		fmt.Fprintf(a.out, "Change %d accepted: it is applied in a second and rolled back by itself unless confirmed in time.\n", ch.ID)
		if p, err := netip.ParsePrefix(cfg.Address); err == nil {
			fmt.Fprintf(a.out, "Confirm it from the new address: plinth --server %s host network confirm\n", p.Addr())
		} else {
			fmt.Fprintln(a.out, "Confirm it from the new address (see the host's console): plinth --server ADDRESS host network confirm")
		}
		return nil
	})
}

func splitComma(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// hostNetworkAction is confirm, rollback, restart or restore.
func hostNetworkAction(name string) func(*app, context.Context, []string) error {
	return func(a *app, ctx context.Context, args []string) error {
		fs := a.flags("host network " + name)
		if _, err := parse(fs, args, "", 0, 0); err != nil {
			return err
		}
		return a.call(ctx, defaultTimeout, func(c *client.Client) error {
			var ch api.NetworkChange
			var err error
			switch name {
			case "confirm":
				ch, err = c.ConfirmNetwork(ctx)
			case "rollback":
				ch, err = c.RollbackNetwork(ctx)
			case "restart":
				ch, err = c.RestartNetwork(ctx)
			case "restore":
				ch, err = c.RestoreNetwork(ctx, 0)
			}
			if err != nil {
				return err
			}
			if a.json {
				return writeJSON(a.out, ch)
			}
			fmt.Fprintf(a.out, "Change %d: %s. %s\n", ch.ID, ch.State, ch.Outcome)
			return nil
		})
	}
}

// hostNetworkTest pings the gateway and DNS servers, resolves the name.
func (a *app) hostNetworkTest(ctx context.Context, args []string) error {
	fs := a.flags("host network test")
	if _, err := parse(fs, args, "", 0, 0); err != nil {
		return err
	}
	return a.call(ctx, defaultTimeout, func(c *client.Client) error {
		checks, err := c.TestNetwork(ctx)
		if err != nil {
			return err
		}
		if a.json {
			return writeJSON(a.out, checks)
		}
		t := newTable(a.out, "CHECK", "RESULT", "INFO")
		failed := 0
		for _, ch := range checks {
			r := "ok"
			if !ch.OK {
				r, failed = "FAILED", failed+1
			}
			t.row(ch.What, r, ch.Info)
		}
		if err := t.flush(); err != nil {
			return err
		}
		if failed > 0 {
			return fmt.Errorf("%d of %d checks failed", failed, len(checks))
		}
		return nil
	})
}

// hostPassword sets the root password: typed twice at a terminal, or the
// first line of standard input with --password-stdin. Every session and
// API token ends, this CLI's included.
func (a *app) hostPassword(ctx context.Context, args []string) error {
	fs := a.flags("host password")
	stdin := fs.Bool("password-stdin", false, "read the new password from the first line of standard input")
	if _, err := parse(fs, args, "", 0, 0); err != nil {
		return err
	}
	pw, err := a.password("the new root", "the host", *stdin)
	if err != nil {
		return err
	}
	if _, ok := terminal(a.env.Stdin); ok && !*stdin {
		again, err := a.password("the new root (again)", "the host", false)
		if err != nil {
			return err
		}
		if again != pw {
			return errors.New("the two passwords differ; nothing was changed")
		}
	}
	if err := api.CheckPassword(api.RootUser, pw); err != nil {
		return withCode(ExitUsage, err)
	}
	return a.call(ctx, defaultTimeout, func(c *client.Client) error {
		if err := c.SetPassword(ctx, pw); err != nil {
			return err
		}
		fmt.Fprintln(a.errw, "The root password is changed: every session and API token has ended; log in again.")
		return nil
	})
}

// hostLockdown shows lockdown mode, or turns it on or off (off asks for
// the root password: every other change is refused while it is on).
func (a *app) hostLockdown(ctx context.Context, args []string) error {
	fs := a.flags("host lockdown")
	stdin := fs.Bool("password-stdin", false, "read the root password (to turn lockdown off) from standard input")
	pos, err := parse(fs, args, "[on|off]", 0, 1)
	if err != nil {
		return err
	}
	return a.call(ctx, defaultTimeout, func(c *client.Client) error {
		if len(pos) == 0 {
			st, err := c.Lockdown(ctx)
			if err != nil {
				return err
			}
			if a.json {
				return writeJSON(a.out, st)
			}
			fmt.Fprintln(a.out, map[bool]string{true: "lockdown is on", false: "lockdown is off"}[st.Enabled])
			return nil
		}
		req := api.LockdownRequest{}
		switch pos[0] {
		case "on":
			req.Enabled = true
		case "off":
			pw, err := a.password(api.RootUser, "the host", *stdin)
			if err != nil {
				return err
			}
			req.Password = pw
		default:
			return usageErrorf("host lockdown: %q is not on or off", pos[0])
		}
		st, err := c.SetLockdown(ctx, req)
		if err != nil {
			return err
		}
		if a.json {
			return writeJSON(a.out, st)
		}
		fmt.Fprintln(a.out, map[bool]string{true: "lockdown is on: only the console can change the host", false: "lockdown is off"}[st.Enabled])
		return nil
	})
}

// hostCertificate shows mgmtd's certificate, or with CERT KEY (PEM files)
// replaces it.
func (a *app) hostCertificate(ctx context.Context, args []string) error {
	fs := a.flags("host certificate")
	pos, err := parse(fs, args, "[CERT.pem KEY.pem]", 0, 2)
	if err != nil {
		return err
	}
	if len(pos) == 1 {
		return usageErrorf("host certificate: give both the certificate and its key")
	}
	return a.call(ctx, defaultTimeout, func(c *client.Client) error {
		var info api.CertificateInfo
		var err error
		if len(pos) == 2 {
			certPEM, err := os.ReadFile(pos[0])
			if err != nil {
				return withCode(ExitUsage, err)
			}
			keyPEM, err := os.ReadFile(pos[1])
			if err != nil {
				return withCode(ExitUsage, err)
			}
			info, err = c.SetCertificate(ctx, api.CertificateRequest{CertificatePEM: string(certPEM), KeyPEM: string(keyPEM)})
			if err != nil {
				return err
			}
			fmt.Fprintln(a.errw, "Replaced: pin the new fingerprint (plinth login) on every client.")
		} else if info, err = c.Certificate(ctx); err != nil {
			return err
		}
		if a.json {
			return writeJSON(a.out, info)
		}
		t := newTable(a.out)
		t.row("fingerprint", info.Fingerprint)
		t.row("subject", info.Subject)
		t.row("valid", info.NotBefore.Format(time.DateOnly)+" to "+info.NotAfter.Format(time.DateOnly))
		t.row("self-signed", strconv.FormatBool(info.SelfSigned))
		return t.flush()
	})
}

// hostServices lists the services, or restarts some (restart [NAME...]:
// none named restarts the management agents).
func (a *app) hostServices(ctx context.Context, args []string) error {
	fs := a.flags("host services")
	pos, err := parse(fs, args, "[restart [NAME...]]", 0, 8)
	if err != nil {
		return err
	}
	return a.call(ctx, defaultTimeout, func(c *client.Client) error {
		if len(pos) > 0 {
			if pos[0] != "restart" {
				return usageErrorf("host services: %q is not restart", pos[0])
			}
			if err := c.RestartServices(ctx, pos[1:]...); err != nil {
				return err
			}
			fmt.Fprintln(a.errw, "Restarting; a restarted mgmtd ends every session: log in again.")
			return nil
		}
		svcs, err := c.Services(ctx)
		if err != nil {
			return err
		}
		if a.json {
			return writeJSON(a.out, svcs)
		}
		t := newTable(a.out, "SERVICE", "STATE", "RESTART", "WHAT")
		for _, s := range svcs {
			t.row(s.Name, s.State, map[bool]string{true: "yes", false: "-"}[s.Restartable], s.Description)
		}
		return t.flush()
	})
}

// hostReset forgets the host's configuration and restarts it; the host's
// name confirms it (typed at a terminal, or --confirm NAME).
func (a *app) hostReset(ctx context.Context, args []string) error {
	fs := a.flags("host reset")
	confirm := fs.String("confirm", "", "the host's name (scripts; else asked at a terminal)")
	if _, err := parse(fs, args, "", 0, 0); err != nil {
		return err
	}
	return a.call(ctx, defaultTimeout, func(c *client.Client) error {
		name := *confirm
		if name == "" {
			h, err := c.Host(ctx)
			if err != nil {
				return err
			}
			if _, ok := terminal(a.env.Stdin); !ok {
				return withCode(ExitUsage, errors.New("a reset forgets the host's configuration: confirm at a terminal, or pass --confirm HOSTNAME"))
			}
			fmt.Fprintf(a.errw, "This forgets %s's network, password, lockdown and API tokens (VMs are kept) and restarts it. Type its name (%s) to go on: ", h.Hostname, h.Hostname)
			line, err := a.in.ReadString('\n')
			if err != nil && !errors.Is(err, io.EOF) {
				return err
			}
			if name = strings.TrimSpace(line); name != h.Hostname {
				return errors.New("not confirmed; nothing was changed")
			}
		}
		if err := c.ResetConfig(ctx, name); err != nil {
			return err
		}
		fmt.Fprintln(a.errw, "The configuration is reset; the host is restarting as on its first boot.")
		return nil
	})
}

// hostLogs lists the host's logs, or prints the end of one.
func (a *app) hostLogs(ctx context.Context, args []string) error {
	fs := a.flags("host logs")
	tail := fs.Int64("bytes", 64<<10, "how much of the log's end")
	pos, err := parse(fs, args, "[NAME]", 0, 1)
	if err != nil {
		return err
	}
	return a.call(ctx, defaultTimeout, func(c *client.Client) error {
		if len(pos) == 1 {
			b, err := c.LogTail(ctx, pos[0], *tail)
			if err != nil {
				return err
			}
			_, err = a.out.Write(b)
			return err
		}
		logs, err := c.Logs(ctx)
		if err != nil {
			return err
		}
		if a.json {
			return writeJSON(a.out, logs)
		}
		t := newTable(a.out, "LOG", "SIZE", "WHAT")
		for _, l := range logs {
			t.row(l.Name, humanBytes(uint64(l.Size)), l.Description)
		}
		return t.flush()
	})
}

// hostPower reboots or shuts the host down (running VMs are shut down
// first); the host's name confirms it (typed at a terminal, or --confirm).
func (a *app) hostPower(ctx context.Context, args []string) error {
	fs := a.flags("host power")
	reason := fs.String("reason", "", "why, for the audit log (required)")
	confirm := fs.String("confirm", "", "the host's name (scripts; else asked at a terminal)")
	pos, err := parse(fs, args, "reboot|shutdown", 1, 1)
	if err != nil {
		return err
	}
	if pos[0] != api.PowerReboot && pos[0] != api.PowerShutdown {
		return usageErrorf("host power: %q is not reboot or shutdown", pos[0])
	}
	if strings.TrimSpace(*reason) == "" {
		return usageErrorf("host power: --reason is required (the audit log keeps it)")
	}
	return a.call(ctx, defaultTimeout, func(c *client.Client) error {
		name := *confirm
		if name == "" {
			h, err := c.Host(ctx)
			if err != nil {
				return err
			}
			if _, ok := terminal(a.env.Stdin); !ok {
				return withCode(ExitUsage, errors.New("confirm at a terminal, or pass --confirm HOSTNAME"))
			}
			fmt.Fprintf(a.errw, "%s %s? Type its name (%s) to go on: ", pos[0], h.Hostname, h.Hostname)
			line, err := a.in.ReadString('\n')
			if err != nil && !errors.Is(err, io.EOF) {
				return err
			}
			if name = strings.TrimSpace(line); name != h.Hostname {
				return errors.New("not confirmed; nothing was done")
			}
		}
		if err := c.HostPower(ctx, pos[0], *reason, name); err != nil {
			return err
		}
		fmt.Fprintf(a.errw, "The host is going down (%s).\n", pos[0])
		return nil
	})
}

// CommandPaths are the CLI's commands ("host network set", ...), for the
// tests that hold other faces of the API (the DCUI) to it.
func CommandPaths() []string {
	out := make([]string, len(commands))
	for i, c := range commands {
		out[i] = c.path
	}
	return out
}

package appinit

// Stateless mode: a network-booted host with no STATE partition whose
// kernel command line names its configuration (plinth.config=URL, put there
// by plinth-pxe serve: the host's own answer file on the PXE server). At
// every boot the init fetches that answer file once the management network
// is up (used only as the command line pins it: plinth.answer_sha256=,
// which plinth-pxe puts there, or plinth.answer_fingerprint= for https) (with the command line's settings, which plinth-pxe takes from the
// same file), parses it with the installer's parser and writes it into the
// tmpfs STATE with the installer's own staging code, before the services
// start: host name, management network (applied again if it differs from
// what the command line brought up), root password, NTP servers, SSH keys.
// What is changed on the host afterwards lasts until the next boot, as on
// ESXi Auto Deploy. When the answer file cannot be had or is wrong, the
// host runs live instead and says why on the console, the ready line
// (mode=live) and the DCUI.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	neturl "net/url"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/installer"
	"github.com/plinth/plinth/netconf"
)

// Kernel command line parameters of stateless mode.
const (
	// ConfigKey names a stateless host's configuration: plinth.config=URL
	// (http:// or https://), an answer file (docs/INSTALL.md).
	ConfigKey = installer.ConfigKey
	// ConfigTimeoutKey bounds the fetch, in seconds (default 60).
	ConfigTimeoutKey = "plinth.config_timeout"
)

// fetchTry is how long one HTTP request for the configuration may take;
// fetchPause is the wait between tries.
const (
	fetchTry   = 10 * time.Second
	fetchPause = 2 * time.Second
)

// permanentError is a fetch failure that another try will not mend (a 4xx
// answer, a request that cannot be made).
type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }

// FetchConfig gets the answer file at url, trying again on network errors
// and server errors (5xx) until deadline has passed; a client error (404:
// the server has no file for this host) ends it at once. Each failed try is
// reported through logf. It is fetched and used only as pin (from the
// kernel command line) says: an http:// URL needs the file's sha256, an
// https:// one the sha256 or the server certificate's fingerprint.
func FetchConfig(ctx context.Context, url string, pin installer.AnswerPin, deadline time.Duration, logf func(string, ...any)) ([]byte, error) {
	if !strings.HasPrefix(url, "http://") && !strings.HasPrefix(url, "https://") {
		return nil, errors.New("want an http:// or https:// URL")
	}
	if err := pin.Permits(url); err != nil {
		return nil, err
	}
	hc := pin.HTTPClient(fetchTry)
	ctx, cancel := context.WithTimeout(ctx, deadline)
	defer cancel()
	for try := 1; ; try++ {
		b, err := fetchOnce(ctx, hc, url)
		if err == nil {
			if err := pin.Check(b); err != nil {
				return nil, err
			}
			return b, nil
		}
		if pe := (permanentError{}); errors.As(err, &pe) {
			return nil, pe.err
		}
		logf("stateless: GET %s (try %d): %v", url, try, err)
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("no answer in %s (%d tries; last: %w)", deadline, try, err)
		case <-time.After(fetchPause):
		}
	}
}

func fetchOnce(ctx context.Context, hc *http.Client, url string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, fetchTry)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, permanentError{err}
	}
	resp, err := hc.Do(req)
	if ue := (*neturl.Error)(nil); errors.As(err, &ue) {
		if errors.Is(ue.Err, installer.ErrPinned) {
			return nil, permanentError{ue.Err}
		}
		return nil, ue.Err // without the URL: the caller names it
	}
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	switch {
	case resp.StatusCode >= 400 && resp.StatusCode < 500:
		return nil, permanentError{errors.New(resp.Status)}
	case resp.StatusCode != http.StatusOK:
		return nil, errors.New(resp.Status)
	}
	return b, err
}

// StageAnswer writes a stateless host's answer file into its (tmpfs) STATE
// at stateDir, as the unattended installer stages a new disk's STATE. The
// answer's disk and after keys are for installs and have no effect here.
func StageAnswer(stateDir string, a *installer.Answer) error {
	n := a.Network
	return installer.StageState(stateDir, stateDir, installer.Config{
		PasswordHash: a.PasswordHash,
		Hostname:     a.Hostname,
		Network:      &n,
		NTP:          a.NTP,
		SSHKeys:      a.SSHKeys,
	})
}

// applyNet brings the management network up with cfg (a variable so tests
// run without netlink).
var applyNet = func(ctx context.Context, cfg netconf.Config, logf func(string, ...any)) (netconf.Result, error) {
	a := netconf.System(logf)
	a.SetHostname = nil // the hostname step decides
	return a.Apply(ctx, cfg)
}

// noState is the state step's word when there is no STATE partition (why):
// stateless when the command line names a configuration, else live.
func (p *initProc) noState(why error) {
	u := p.cfg.Cmdline[ConfigKey]
	if u == "" {
		p.goLive(why.Error())
		return
	}
	p.mode = api.BootMode{Mode: api.BootStateless, Source: u}
	banner := strings.Repeat("*", 72)
	p.logf("%s", banner)
	p.logf("STATELESS MODE: %v.", why)
	p.logf("The configuration comes from %s at every boot;", u)
	p.logf("changes made on this host are LOST at power-off.")
	p.logf("%s", banner)
}

// goLive says loudly that the host runs live, and why.
func (p *initProc) goLive(reason string) {
	p.mode = api.BootMode{Mode: api.BootLive, Reason: reason}
	banner := strings.Repeat("*", 72)
	p.logf("%s", banner)
	p.logf("LIVE MODE: %s.", reason)
	p.logf("Configuration, passwords and VM definitions are kept in RAM and are LOST at power-off.")
	p.logf("Install Plinth to a disk, or add an ext4 file system labelled %s, to keep them.", StateLabel)
	p.logf("%s", banner)
}

// bootMode settles the boot mode once the network is up: a stateless host
// gets its configuration (or, failing that, runs live, saying why); then
// the mode is written to the run directory for the DCUI. Called from Run
// before the hostname step and the services.
func (p *initProc) bootMode() {
	if p.mode.Mode == api.BootStateless {
		var why error
		if p.step("stateless", func() error { why = p.stateless(); return why }) != nil {
			p.goLive(fmt.Sprintf("no stateless configuration: %v", why))
		}
	}
	if p.mode.Mode == "" && p.live { // not even a tmpfs for STATE
		p.mode = api.BootMode{Mode: api.BootLive, Reason: "no STATE"}
	} else if p.mode.Mode == "" {
		p.mode.Mode = api.BootInstalled
	}
	if err := writeBootMode(p.cfg.Layout.BootModeFile(), p.mode); err != nil {
		p.logf("boot mode: %v", err)
	}
}

// stateless fetches, parses and applies the host's answer file.
func (p *initProc) stateless() error {
	url := p.mode.Source
	deadline := 60 * time.Second
	if v, ok := p.cfg.Cmdline[ConfigTimeoutKey]; ok {
		if n, err := strconv.Atoi(v); err == nil && n > 0 {
			deadline = time.Duration(n) * time.Second
		} else {
			p.logf("%s=%q is not a number of seconds; using %s", ConfigTimeoutKey, v, deadline)
		}
	}
	pin, err := installer.PinFromCmdline(p.cfg.Cmdline)
	if err != nil {
		return err
	}
	b, err := FetchConfig(context.Background(), url, pin, deadline, p.logf)
	if err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	a, err := installer.ParseAnswer(strings.NewReader(string(b)))
	if err != nil {
		return fmt.Errorf("%s: %w", url, err)
	}
	if err := StageAnswer(p.cfg.Layout.State, a); err != nil {
		return fmt.Errorf("writing it to STATE: %w", err)
	}
	p.logf("stateless: configuration from %s: host name %s, network %s, root password set", url, orDash(a.Hostname), a.Network.Mode)
	// The command line brought the network up with the same file's
	// settings (plinth-pxe puts them there); what it cannot carry (a VLAN,
	// search domains) or a command line that disagrees means another go.
	want, have := a.Network, p.netcfg
	want.Hostname, have.Hostname = "", ""
	if !reflect.DeepEqual(want, have) {
		p.logf("stateless: applying the answer file's management network (the command line's differs)")
		ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
		defer cancel()
		r, err := applyNet(ctx, a.Network, p.logf)
		if err != nil {
			return fmt.Errorf("management network: %w", err)
		}
		p.net = r
		p.logf("management network: %s %s (%s)", r.Interface, r.Address, r.Method)
	}
	p.netcfg = a.Network
	return nil
}

// writeBootMode writes m as JSON to path.
func writeBootMode(path string, m api.BootMode) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

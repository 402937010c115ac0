package hostconf

import (
	"bufio"
	"context"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/netconf"
	"github.com/plinth/plinth/sntp"
)

// The clock is kept by an SNTP client (package sntp) in the background:
// the servers are the API's (config/time.json), else the answer file's
// (config/ntp), else those the DHCP server named (option 42). Each round
// asks every server at once and takes the best answer (lowest stratum,
// then shortest round trip); the clock is slewed when it is less than
// stepThreshold off, stepped otherwise. A failing round is retried soon,
// a good one after timePoll. Nothing waits for it: the boot goes on, the
// API says what is wrong.

// Time sources (api.TimeServer.Source).
const (
	SourceAPI        = "api"
	SourceAnswerFile = "answer file"
	SourceDHCP       = "dhcp"
)

const (
	maxTimeServers = 8
	stepThreshold  = 128 * time.Millisecond
	// timePoll is the wait after a good round; a failing one is retried
	// after timeRetryMin, doubling up to timeRetryMax.
	timePoll     = 17 * time.Minute
	timeRetryMin = 5 * time.Second
	timeRetryMax = 64 * time.Second
	// queryTimeout bounds one server's answer.
	queryTimeout = 3 * time.Second
	// syncedFor is how long a sync counts (TimeStatus.Synced).
	syncedFor = time.Hour
)

// timeState is the NTP client's state.
type timeState struct {
	mu      sync.Mutex
	round   sync.Mutex // one round at a time
	servers []api.TimeServer
	last    *time.Time
	server  string
	offset  time.Duration
	stratum int
	problem string
}

// TimeConfig is the NTP client's saved configuration (enabled, no
// servers of its own, when none is saved).
func (h *Host) TimeConfig() (api.TimeConfig, error) {
	cfg := api.TimeConfig{Enabled: true}
	_, err := loadJSON(h.cfg.Layout.TimeFile(), &cfg)
	if cfg.Servers == nil {
		cfg.Servers = []string{}
	}
	return cfg, err
}

// Time is the clock and the NTP client's state.
func (h *Host) Time() api.TimeStatus {
	cfg, err := h.TimeConfig()
	t := &h.time
	t.mu.Lock()
	defer t.mu.Unlock()
	out := api.TimeStatus{Config: cfg, Servers: slices.Clone(t.servers), Now: h.now(), Problem: t.problem}
	if out.Servers == nil {
		out.Servers = h.timeServers(cfg)
	}
	if t.last != nil {
		last := *t.last
		out.LastSync, out.Server, out.Stratum = &last, t.server, t.stratum
		out.OffsetSeconds = t.offset.Seconds()
		out.Synced = cfg.Enabled && out.Now.Sub(last) < syncedFor
	}
	if err != nil {
		out.Problem = err.Error()
	}
	return out
}

// SetTime saves the NTP client's configuration and, when it is enabled,
// asks the servers at once (at most a few seconds).
func (h *Host) SetTime(ctx context.Context, cfg api.TimeConfig) (api.TimeStatus, error) {
	var probs []api.FieldProblem
	if len(cfg.Servers) > maxTimeServers {
		probs = append(probs, api.FieldProblem{Field: "servers", Message: fmt.Sprintf("%d servers: at most %d", len(cfg.Servers), maxTimeServers)})
	}
	clean := []string{}
	for i, s := range cfg.Servers {
		if err := checkServer(s); err != nil {
			probs = append(probs, api.FieldProblem{Field: fmt.Sprintf("servers[%d]", i), Message: err.Error()})
			continue
		}
		clean = append(clean, strings.TrimSpace(s))
	}
	if len(probs) > 0 {
		return api.TimeStatus{}, &api.ValidationError{Subject: "time configuration", Problems: probs}
	}
	cfg.Servers = clean
	if err := saveJSON(h.cfg.Layout.TimeFile(), cfg); err != nil {
		return api.TimeStatus{}, err
	}
	h.log.Info("hostconf: time configuration", "enabled", cfg.Enabled, "servers", strings.Join(clean, ","))
	if !cfg.Enabled {
		h.time.mu.Lock()
		h.time.problem, h.time.servers = "", nil
		h.time.mu.Unlock()
		return h.Time(), nil
	}
	return h.SyncTime(ctx), nil
}

// checkServer checks an NTP server: a host name or address, with an
// optional port.
func checkServer(s string) error {
	addr, err := sntp.Addr(s)
	if err != nil {
		return err
	}
	host := addr[:strings.LastIndex(addr, ":")]
	host = strings.Trim(host, "[]")
	if _, err := netip.ParseAddr(host); err == nil {
		return nil
	}
	if !netconf.ValidHostname(host) {
		return fmt.Errorf("%q is not a host name or IP address", host)
	}
	return nil
}

// timeServers are the servers in use under cfg and where they came from.
func (h *Host) timeServers(cfg api.TimeConfig) []api.TimeServer {
	var out []api.TimeServer
	if len(cfg.Servers) > 0 {
		for _, s := range cfg.Servers {
			out = append(out, api.TimeServer{Address: s, Source: SourceAPI})
		}
		return out
	}
	if f, err := os.Open(h.cfg.Layout.NTPFile()); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() && len(out) < maxTimeServers {
			l := strings.TrimSpace(sc.Text())
			if l == "" || strings.HasPrefix(l, "#") || checkServer(l) != nil {
				continue
			}
			out = append(out, api.TimeServer{Address: l, Source: SourceAnswerFile})
		}
		f.Close()
		if len(out) > 0 {
			return out
		}
	}
	if ap, ok, _ := netconf.ReadApplied(h.cfg.Layout.Run); ok {
		if ack, _, ok := ap.Lease(); ok {
			for _, ip := range ack.NTPServers() {
				if len(out) < maxTimeServers {
					out = append(out, api.TimeServer{Address: ip.String(), Source: SourceDHCP})
				}
			}
		}
	}
	return out
}

// SyncTime asks the servers now and sets the clock from the best answer.
func (h *Host) SyncTime(ctx context.Context) api.TimeStatus {
	h.syncTime(ctx)
	return h.Time()
}

// syncTime is one round; ok reports whether the clock was set.
func (h *Host) syncTime(ctx context.Context) (ok bool) {
	t := &h.time
	t.round.Lock()
	defer t.round.Unlock()
	cfg, err := h.TimeConfig()
	if err != nil {
		h.setTimeProblem(nil, err.Error())
		return false
	}
	if !cfg.Enabled {
		h.setTimeProblem(nil, "")
		return false
	}
	servers := h.timeServers(cfg)
	if len(servers) == 0 {
		h.setTimeProblem(servers, "no NTP server: set one through the API, the answer file or DHCP")
		return false
	}
	type result struct {
		r   sntp.Response
		err error
	}
	results := make([]result, len(servers))
	var wg sync.WaitGroup
	for i, s := range servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			qctx, cancel := context.WithTimeout(ctx, queryTimeout)
			defer cancel()
			r, err := sntp.Query(qctx, s.Address)
			results[i] = result{r, err}
		}()
	}
	wg.Wait()
	best := -1
	var errs []string
	for i, res := range results {
		if res.err != nil {
			servers[i].LastError = res.err.Error()
			errs = append(errs, res.err.Error())
			continue
		}
		if b := results[max(best, 0)].r; best < 0 || res.r.Stratum < b.Stratum || res.r.Stratum == b.Stratum && res.r.RTT < b.RTT {
			best = i
		}
	}
	if best < 0 {
		h.setTimeProblem(servers, "no NTP server answers: "+strings.Join(errs, "; "))
		h.log.Warn("hostconf: no NTP server answers", "errors", strings.Join(errs, "; "))
		return false
	}
	r := results[best].r
	if err := h.setClock(r.Offset); err != nil {
		h.setTimeProblem(servers, "cannot set the clock: "+err.Error())
		h.log.Error("hostconf: setting the clock", "err", err)
		return false
	}
	now := h.now()
	t.mu.Lock()
	t.servers, t.problem = servers, ""
	t.last, t.server, t.offset, t.stratum = &now, servers[best].Address, r.Offset, r.Stratum
	t.mu.Unlock()
	if r.Offset.Abs() >= stepThreshold {
		h.log.Warn("hostconf: clock stepped", "by", r.Offset.Round(time.Millisecond), "server", servers[best].Address, "stratum", r.Stratum)
	} else {
		h.log.Info("hostconf: clock synced", "offset", r.Offset, "server", servers[best].Address, "stratum", r.Stratum)
	}
	return true
}

func (h *Host) setTimeProblem(servers []api.TimeServer, problem string) {
	h.time.mu.Lock()
	h.time.servers, h.time.problem = servers, problem
	h.time.mu.Unlock()
}

// setClock moves the clock by off: slewed when small, stepped otherwise.
func (h *Host) setClock(off time.Duration) error {
	if h.cfg.SetClock != nil {
		return h.cfg.SetClock(off)
	}
	if off.Abs() < stepThreshold {
		tx := unix.Timex{Modes: unix.ADJ_OFFSET_SINGLESHOT, Offset: off.Microseconds()}
		_, err := unix.Adjtimex(&tx)
		return err
	}
	ts := unix.NsecToTimespec(time.Now().Add(off).UnixNano())
	return unix.ClockSettime(unix.CLOCK_REALTIME, &ts)
}

// keepTime runs rounds until ctx ends: soon again after a failure (5 s,
// doubling to 64 s), timePoll after a good one.
func (h *Host) keepTime(ctx context.Context) {
	retry := timeRetryMin
	for {
		wait := timePoll
		if !h.syncTime(ctx) {
			wait, retry = retry, min(retry*2, timeRetryMax)
		} else {
			retry = timeRetryMin
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		t.Stop()
	}
}

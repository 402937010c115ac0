package vmkernel

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/layout"
	"github.com/plinth/plinth/netconf"
)

// NetworkPaths are where the management network routes find things: the
// saved configuration (StateDir/network.json, which the DCUI writes), the
// change awaiting confirmation (RunDir/network-pending.json), sysfs and
// the resolver's file. Empty fields are the appliance's paths.
type NetworkPaths struct {
	StateDir, RunDir, SysRoot, ResolvConf string
}

func (n NetworkPaths) withDefaults() NetworkPaths {
	for _, f := range []struct {
		p   *string
		def string
	}{{&n.StateDir, layout.StateDir}, {&n.RunDir, layout.RunDir}, {&n.SysRoot, "/sys"}, {&n.ResolvConf, layout.ResolvConf}} {
		if *f.p == "" {
			*f.p = f.def
		}
	}
	return n
}

// hostNetwork answers the management network: saved, live, and a change
// awaiting confirmation.
func (s *Server) hostNetwork(w http.ResponseWriter, r *http.Request) {
	var out api.HostNetwork
	cfg, saved, err := netconf.Load(s.net.StateDir)
	if err != nil {
		out.SavedError = err.Error()
	}
	out.Saved, out.Config = saved, cfg.API()
	out.Live = netconf.Live(cfg, s.net.SysRoot, s.net.ResolvConf)
	if ap, ok, err := netconf.ReadApplied(s.net.RunDir); err != nil {
		s.cfg.Log.Warn("vmkernel: management network record", "err", err)
	} else if ok {
		out.Live.DHCP, out.Live.Problem = ap.API(), ap.Problem
	}
	ch, confirmed, ok, err := netconf.ReadPending(s.net.RunDir, time.Now())
	if err != nil {
		s.cfg.Log.Warn("vmkernel: pending network change", "err", err)
	}
	if ok {
		p := ch.API(confirmed)
		out.Pending = &p
	}
	writeJSON(w, http.StatusOK, out)
}

// confirmNetwork keeps the pending management-network change for a request
// that arrived (at mgmtd) on the change's new address.
func (s *Server) confirmNetwork(w http.ResponseWriter, r *http.Request) {
	var req api.NetworkConfirmRequest
	if err := decodeSmall(w, r, &req); err != nil {
		s.problem(w, err)
		return
	}
	local, err := netip.ParseAddr(strings.TrimSpace(req.LocalAddress))
	if err != nil {
		WriteProblem(w, api.Problem{Status: http.StatusBadRequest, Field: "local_address",
			Detail: fmt.Sprintf("%q is not an IP address", req.LocalAddress)})
		return
	}
	ch, err := netconf.Confirm(s.net.RunDir, s.net.StateDir, local, time.Now())
	switch {
	case errors.Is(err, netconf.ErrNothingPending), errors.Is(err, netconf.ErrExpired), errors.Is(err, netconf.ErrWrongAddress):
		WriteProblem(w, api.Problem{Status: http.StatusConflict, Detail: err.Error()})
		return
	case err != nil:
		s.cfg.Log.Error("vmkernel: confirm network change", "err", err)
		WriteProblem(w, api.Problem{Status: http.StatusInternalServerError, Detail: err.Error()})
		return
	}
	s.cfg.Log.Info("vmkernel: management network change confirmed through the API", "address", ch.Address, "from", local)
	writeJSON(w, http.StatusOK, ch.API(true))
}

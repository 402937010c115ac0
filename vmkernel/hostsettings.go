package vmkernel

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/vmkernel/hostconf"
)

// errNoHostConf: this vmkernel does not own the host's settings (501).
var errNoHostConf = fmt.Errorf("%w: this vmkernel does not manage the host's settings", hostconf.ErrUnavailable)

// hostRoutes are the host settings (package hostconf), each path defined
// once in package api below VMKernelPrefix.
func (s *Server) hostRoutes() []Route {
	get, post, put, del := http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete
	v := api.VMKernel
	return []Route{
		{get, v(api.HostSettingsPath), s.hostSettings},
		{get, v(api.HostNetworkPath), s.hostNetwork},
		{put, v(api.HostNetworkPath), s.changeNetwork},
		{post, v(api.HostNetConfirmPath), s.confirmNetwork},
		{post, v(api.HostNetRollbackPath), s.rollbackNetwork},
		{post, v(api.HostNetRestartPath), s.restartNetwork},
		{post, v(api.HostNetRestorePath), s.restoreNetwork},
		{post, v(api.HostNetTestPath), s.testNetwork},
		{get, v(api.HostPasswordPath), s.passwordStatus},
		{put, v(api.HostPasswordPath), s.setPassword},
		{post, v(api.HostPasswordVerifyPath), s.verifyPassword},
		{get, v(api.HostLockdownPath), s.lockdown},
		{put, v(api.HostLockdownPath), s.setLockdown},
		{get, v(api.HostCertificatePath), s.certificate},
		{put, v(api.HostCertificatePath), s.setCertificate},
		{get, v(api.HostServicesPath), s.services},
		{post, v(api.HostServicesRestartPath), s.restartServices},
		{post, v(api.HostResetPath), s.reset},
		{get, v(api.HostTimePath), s.timeStatus},
		{put, v(api.HostTimePath), s.setTime},
		{post, v(api.HostTimeSyncPath), s.syncTime},
		{get, v(api.HostSyslogPath), s.syslogStatus},
		{put, v(api.HostSyslogPath), s.setSyslog},
		{get, v(api.HostSSHPath), s.sshStatus},
		{put, v(api.HostSSHPath), s.setSSH},
		{get, v(api.HostSSHKeysPath), s.sshKeys},
		{post, v(api.HostSSHKeysPath), s.addSSHKey},
		{del, v(api.HostSSHKeysPath) + "/{id}", s.deleteSSHKey},
		{get, v(api.HostSupportBundlePath), s.supportBundle},
		{get, v(api.HostLogsPath), s.logs},
		{get, v(api.HostLogsPath) + "/{name}", s.logTail},
	}
}

// hc is the host's settings, or answers 501.
func (s *Server) hc(w http.ResponseWriter) *hostconf.Host {
	if s.cfg.HostConf == nil {
		s.hostProblem(w, errNoHostConf)
	}
	return s.cfg.HostConf
}

// hostProblem answers err from package hostconf.
func (s *Server) hostProblem(w http.ResponseWriter, err error) {
	var verr *api.ValidationError
	p := api.Problem{Status: http.StatusInternalServerError, Detail: err.Error()}
	switch {
	case errors.As(err, &verr):
		s.problem(w, err)
		return
	case errors.Is(err, errBadRequest):
		p.Status = http.StatusBadRequest
		// A value of the wrong JSON type ("vlan": "20") names its field.
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			msg := fmt.Sprintf("is a JSON %s, want %s", te.Value, te.Type)
			p.Detail, p.Field = te.Field+": "+msg, te.Field
			p.Problems = []api.FieldProblem{{Field: te.Field, Message: msg}}
		}
	case errors.Is(err, hostconf.ErrConflict):
		p.Status = http.StatusConflict
	case errors.Is(err, hostconf.ErrNotFound):
		p.Status = http.StatusNotFound
	case errors.Is(err, hostconf.ErrDenied):
		p.Status = http.StatusUnauthorized
	case errors.Is(err, hostconf.ErrUnavailable):
		p.Status = http.StatusNotImplemented
	default:
		s.cfg.Log.Error("vmkernel: host settings", "err", err)
	}
	WriteProblem(w, p)
}

func (s *Server) hostSettings(w http.ResponseWriter, r *http.Request) {
	if h := s.hc(w); h != nil {
		writeJSON(w, http.StatusOK, h.Settings(r.Context()))
	}
}

func (s *Server) hostNetwork(w http.ResponseWriter, r *http.Request) {
	if h := s.hc(w); h != nil {
		writeJSON(w, http.StatusOK, h.Network())
	}
}

// changeNetwork accepts a change (202): it is applied a second later, so
// this answer reaches the client over the old address.
func (s *Server) changeNetwork(w http.ResponseWriter, r *http.Request) {
	h := s.hc(w)
	if h == nil {
		return
	}
	var req api.NetworkChangeRequest
	if err := decodeSmall(w, r, &req); err != nil {
		s.hostProblem(w, err)
		return
	}
	ch, err := h.ChangeNetwork(req)
	if err != nil {
		s.hostProblem(w, err)
		return
	}
	writeJSON(w, http.StatusAccepted, ch)
}

// confirmNetwork keeps the pending change: for mgmtd, only when the
// client's request arrived on the change's new address (local_address);
// a request without one comes from the console (this socket is the
// host's own).
func (s *Server) confirmNetwork(w http.ResponseWriter, r *http.Request) {
	h := s.hc(w)
	if h == nil {
		return
	}
	var req api.NetworkConfirmRequest
	if r.ContentLength != 0 {
		if err := decodeSmall(w, r, &req); err != nil {
			s.hostProblem(w, err)
			return
		}
	}
	var local netip.Addr
	console := strings.TrimSpace(req.LocalAddress) == ""
	if !console {
		var err error
		if local, err = netip.ParseAddr(strings.TrimSpace(req.LocalAddress)); err != nil {
			WriteProblem(w, api.Problem{Status: http.StatusBadRequest, Field: "local_address",
				Detail: fmt.Sprintf("%q is not an IP address", req.LocalAddress)})
			return
		}
	}
	ch, err := h.ConfirmNetwork(local, console)
	if err != nil {
		s.hostProblem(w, err)
		return
	}
	writeJSON(w, http.StatusOK, ch)
}

func (s *Server) rollbackNetwork(w http.ResponseWriter, r *http.Request) {
	if h := s.hc(w); h != nil {
		ch, err := h.RollbackNetwork()
		if err != nil {
			s.hostProblem(w, err)
			return
		}
		writeJSON(w, http.StatusAccepted, ch)
	}
}

func (s *Server) restartNetwork(w http.ResponseWriter, r *http.Request) {
	if h := s.hc(w); h != nil {
		ch, err := h.RestartNetwork()
		if err != nil {
			s.hostProblem(w, err)
			return
		}
		writeJSON(w, http.StatusAccepted, ch)
	}
}

func (s *Server) restoreNetwork(w http.ResponseWriter, r *http.Request) {
	h := s.hc(w)
	if h == nil {
		return
	}
	var req api.NetworkChangeRequest
	if r.ContentLength != 0 {
		if err := decodeSmall(w, r, &req); err != nil {
			s.hostProblem(w, err)
			return
		}
	}
	ch, err := h.RestoreNetwork(req.ConfirmSeconds)
	if err != nil {
		s.hostProblem(w, err)
		return
	}
	writeJSON(w, http.StatusAccepted, ch)
}

func (s *Server) testNetwork(w http.ResponseWriter, r *http.Request) {
	if h := s.hc(w); h != nil {
		out, err := h.TestNetwork(r.Context())
		if err != nil {
			s.hostProblem(w, err)
			return
		}
		writeJSON(w, http.StatusOK, out)
	}
}

func (s *Server) passwordStatus(w http.ResponseWriter, r *http.Request) {
	if h := s.hc(w); h != nil {
		st, err := h.PasswordStatus()
		if err != nil {
			s.hostProblem(w, err)
			return
		}
		writeJSON(w, http.StatusOK, st)
	}
}

func (s *Server) setPassword(w http.ResponseWriter, r *http.Request) {
	h := s.hc(w)
	if h == nil {
		return
	}
	var req api.PasswordRequest
	if err := decodeSmall(w, r, &req); err != nil {
		s.hostProblem(w, err)
		return
	}
	if err := h.SetPassword(req.Password); err != nil {
		s.hostProblem(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// verifyPassword checks the root password for the console's login.
func (s *Server) verifyPassword(w http.ResponseWriter, r *http.Request) {
	h := s.hc(w)
	if h == nil {
		return
	}
	var req api.PasswordRequest
	if err := decodeSmall(w, r, &req); err != nil {
		s.hostProblem(w, err)
		return
	}
	if err := h.VerifyPassword("console", req.Password); err != nil {
		s.hostProblem(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) lockdown(w http.ResponseWriter, r *http.Request) {
	if h := s.hc(w); h != nil {
		st, err := h.Lockdown()
		if err != nil {
			s.hostProblem(w, err)
			return
		}
		writeJSON(w, http.StatusOK, st)
	}
}

// setLockdown switches lockdown mode. The password mgmtd needs to turn it
// off is mgmtd's to check; this socket is the host's own.
func (s *Server) setLockdown(w http.ResponseWriter, r *http.Request) {
	h := s.hc(w)
	if h == nil {
		return
	}
	var req api.LockdownRequest
	if err := decodeSmall(w, r, &req); err != nil {
		s.hostProblem(w, err)
		return
	}
	if err := h.SetLockdown(req.Enabled); err != nil {
		s.hostProblem(w, err)
		return
	}
	writeJSON(w, http.StatusOK, api.LockdownStatus{Enabled: req.Enabled})
}

func (s *Server) certificate(w http.ResponseWriter, r *http.Request) {
	if h := s.hc(w); h != nil {
		info, err := h.Certificate()
		if err != nil {
			s.hostProblem(w, err)
			return
		}
		writeJSON(w, http.StatusOK, info)
	}
}

func (s *Server) setCertificate(w http.ResponseWriter, r *http.Request) {
	h := s.hc(w)
	if h == nil {
		return
	}
	var req api.CertificateRequest
	if err := decodeSmall(w, r, &req); err != nil {
		s.hostProblem(w, err)
		return
	}
	info, err := h.SetCertificate(req)
	if err != nil {
		s.hostProblem(w, err)
		return
	}
	writeJSON(w, http.StatusOK, info)
}

func (s *Server) services(w http.ResponseWriter, r *http.Request) {
	if h := s.hc(w); h != nil {
		writeJSON(w, http.StatusOK, h.Services())
	}
}

func (s *Server) restartServices(w http.ResponseWriter, r *http.Request) {
	h := s.hc(w)
	if h == nil {
		return
	}
	var req api.ServicesRestartRequest
	if r.ContentLength != 0 {
		if err := decodeSmall(w, r, &req); err != nil {
			s.hostProblem(w, err)
			return
		}
	}
	if err := h.RestartServices(req.Services); err != nil {
		s.hostProblem(w, err)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

func (s *Server) reset(w http.ResponseWriter, r *http.Request) {
	h := s.hc(w)
	if h == nil {
		return
	}
	var req api.ResetRequest
	if err := decodeSmall(w, r, &req); err != nil {
		s.hostProblem(w, err)
		return
	}
	if err := h.Reset(req.Confirm); err != nil {
		s.hostProblem(w, err)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

func (s *Server) logs(w http.ResponseWriter, r *http.Request) {
	if h := s.hc(w); h != nil {
		writeJSON(w, http.StatusOK, h.Logs())
	}
}

// logTail answers the end of a log as text (?tail_bytes=N, default 256
// KiB); X-Log-Size is the whole log's size.
func (s *Server) logTail(w http.ResponseWriter, r *http.Request) {
	h := s.hc(w)
	if h == nil {
		return
	}
	n := int64(256 << 10)
	if v := r.URL.Query().Get("tail_bytes"); v != "" {
		var err error
		if n, err = strconv.ParseInt(v, 10, 64); err != nil || n < 0 || n > hostconf.MaxLogTail {
			WriteProblem(w, api.Problem{Status: http.StatusUnprocessableEntity, Field: "tail_bytes",
				Problems: []api.FieldProblem{{Field: "tail_bytes", Message: fmt.Sprintf("%q is not a number from 0 to %d", v, hostconf.MaxLogTail)}},
				Detail:   fmt.Sprintf("tail_bytes: %q is not a number from 0 to %d", v, hostconf.MaxLogTail)})
			return
		}
	}
	b, size, err := h.LogTail(r.PathValue("name"), n)
	if err != nil {
		s.hostProblem(w, err)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Log-Size", strconv.FormatInt(size, 10))
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Write(b)
}

func (s *Server) timeStatus(w http.ResponseWriter, r *http.Request) {
	if h := s.hc(w); h != nil {
		writeJSON(w, http.StatusOK, h.Time())
	}
}

// setTime saves the NTP client's configuration and asks the servers at
// once (a few seconds at most), answering the state after.
func (s *Server) setTime(w http.ResponseWriter, r *http.Request) {
	h := s.hc(w)
	if h == nil {
		return
	}
	var req api.TimeConfig
	if err := decodeSmall(w, r, &req); err != nil {
		s.hostProblem(w, err)
		return
	}
	st, err := h.SetTime(r.Context(), req)
	if err != nil {
		s.hostProblem(w, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func (s *Server) syncTime(w http.ResponseWriter, r *http.Request) {
	if h := s.hc(w); h != nil {
		writeJSON(w, http.StatusOK, h.SyncTime(r.Context()))
	}
}

func (s *Server) syslogStatus(w http.ResponseWriter, r *http.Request) {
	if h := s.hc(w); h != nil {
		writeJSON(w, http.StatusOK, h.Syslog())
	}
}

func (s *Server) setSyslog(w http.ResponseWriter, r *http.Request) {
	h := s.hc(w)
	if h == nil {
		return
	}
	var req api.SyslogConfig
	if err := decodeSmall(w, r, &req); err != nil {
		s.hostProblem(w, err)
		return
	}
	st, err := h.SetSyslog(req)
	if err != nil {
		s.hostProblem(w, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func (s *Server) sshStatus(w http.ResponseWriter, r *http.Request) {
	if h := s.hc(w); h != nil {
		writeJSON(w, http.StatusOK, h.SSH())
	}
}

func (s *Server) setSSH(w http.ResponseWriter, r *http.Request) {
	h := s.hc(w)
	if h == nil {
		return
	}
	var req api.SSHConfig
	if err := decodeSmall(w, r, &req); err != nil {
		s.hostProblem(w, err)
		return
	}
	st, err := h.SetSSH(req)
	if err != nil {
		s.hostProblem(w, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func (s *Server) sshKeys(w http.ResponseWriter, r *http.Request) {
	if h := s.hc(w); h != nil {
		keys, err := h.SSHKeys()
		if err != nil {
			s.hostProblem(w, err)
			return
		}
		writeJSON(w, http.StatusOK, keys)
	}
}

func (s *Server) addSSHKey(w http.ResponseWriter, r *http.Request) {
	h := s.hc(w)
	if h == nil {
		return
	}
	var req api.SSHKeyRequest
	if err := decodeSmall(w, r, &req); err != nil {
		s.hostProblem(w, err)
		return
	}
	k, err := h.AddSSHKey(req.Key)
	if err != nil {
		s.hostProblem(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, k)
}

func (s *Server) deleteSSHKey(w http.ResponseWriter, r *http.Request) {
	if h := s.hc(w); h != nil {
		if err := h.DeleteSSHKey(r.PathValue("id")); err != nil {
			s.hostProblem(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}
}

// supportBundle streams the support bundle: hostconf's part (settings,
// logs, hardware, configuration) and vmkernel's (host facts, VM specs
// with cloud-init's secrets removed, recent events).
func (s *Server) supportBundle(w http.ResponseWriter, r *http.Request) {
	h := s.hc(w)
	if h == nil {
		return
	}
	var extra []hostconf.BundleFile
	if s.cfg.Host != nil {
		host, err := s.cfg.Host()
		if err != nil {
			extra = append(extra, hostconf.BundleFile{Name: "host-error.txt", Data: []byte(err.Error() + "\n")})
		}
		extra = append(extra, hostconf.JSONFile("host.json", host))
	}
	if s.cfg.Inventory != nil && s.cfg.Runner != nil {
		for _, spec := range s.cfg.Inventory.List() {
			extra = append(extra, hostconf.JSONFile("vms/"+spec.Name+"-"+spec.ID+".json", s.vm(redactSpec(spec))))
		}
	}
	extra = append(extra, hostconf.JSONFile("events.json", s.cfg.Events.Recent()))
	name := "plinth-support-" + time.Now().UTC().Format("20060102T150405Z") + ".tar.gz"
	w.Header().Set("Content-Type", "application/gzip")
	w.Header().Set("Content-Disposition", `attachment; filename="`+name+`"`)
	if err := h.SupportBundle(r.Context(), w, extra); err != nil {
		// Half sent: the client sees a broken archive.
		s.cfg.Log.Error("vmkernel: support bundle", "err", err)
	}
}

// redactSpec is spec without cloud-init's secrets: the password hash
// and raw user-data (which may hold anything).
func redactSpec(spec api.VMSpec) api.VMSpec {
	if spec.CloudInit == nil {
		return spec
	}
	ci := *spec.CloudInit
	if ci.PasswordHash != "" {
		ci.PasswordHash = "(removed)"
	}
	if ci.UserData != "" {
		ci.UserData = "(removed)"
	}
	spec.CloudInit = &ci
	return spec
}

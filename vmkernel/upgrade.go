package vmkernel

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/upgrade"
)

// errNoUpgrades: this vmkernel does not upgrade the host (501).
var errNoUpgrades = errors.New("system upgrades are not offered by this vmkernel (it runs with -upgrades on the appliance)")

// Upgrades is how vmkernel reaches the system banks (Config.Upgrades).
type Upgrades struct {
	// Open mounts the boot disk's ESP (read-write when write, to change
	// it) and describes the running system; release unmounts it. An error
	// means the host has no bank to upgrade (booted live, from an ISO or
	// the network) or the ESP is busy (upgrade.ErrBusy).
	Open func(write bool) (h upgrade.Host, release func(), err error)
	// PublicKey checks the images' signatures.
	PublicKey string
	// StageDir is a scratch directory for an image being checked (tmpfs:
	// RAM, never the boot disk).
	StageDir string
}

// upgradeStatus serves GET /v1/host/upgrade.
func (s *Server) upgradeStatus(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Upgrades == nil {
		s.problem(w, errNoUpgrades)
		return
	}
	h, release, err := s.cfg.Upgrades.Open(false)
	if err != nil {
		writeJSON(w, http.StatusOK, api.UpgradeStatus{Supported: false, Reason: err.Error(), Version: api.Version})
		return
	}
	defer release()
	writeJSON(w, http.StatusOK, h.Status())
}

// upgradeRefused maps a refused image to 422 naming why.
func upgradeRefused(err error) error {
	if errors.Is(err, upgrade.ErrDowngrade) {
		return &api.ValidationError{Subject: "upgrade image", Problems: []api.FieldProblem{{Field: "allow_downgrade",
			Message: err.Error() + "; nothing was written: to install it anyway, send allow_downgrade=true and confirm=HOSTNAME"}}}
	}
	if errors.Is(err, upgrade.ErrSignature) || errors.Is(err, upgrade.ErrChecksum) || errors.Is(err, upgrade.ErrFormat) || errors.Is(err, upgrade.ErrNoKey) {
		return &api.ValidationError{Subject: "upgrade image", Problems: []api.FieldProblem{{Field: "body", Message: err.Error() + "; nothing was written"}}}
	}
	return err
}

// upgradeSystem serves POST /v1/host/upgrade?sha256=HEX&reboot=true: the body is
// a signed image (upgrade.Open), checked while it streams in and staged in
// RAM; only when its signature, its files' checksums and the whole body's
// sha256 (when given) match is it written to the bank not running, as a
// task, and the host rebooted into it on trial when reboot=true. A refused
// image is a 422 naming why, with nothing written. An image of an older
// release than the running one (its signed manifest says) is refused
// before its payload is read unless the request says allow_downgrade=true
// and names this host in confirm=, as a power request does.
func (s *Server) upgradeSystem(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Upgrades == nil {
		s.problem(w, errNoUpgrades)
		return
	}
	q := r.URL.Query()
	want := strings.ToLower(q.Get("sha256"))
	if want != "" {
		if b, err := hex.DecodeString(want); err != nil || len(b) != sha256.Size {
			s.problem(w, &api.ValidationError{Subject: "upgrade request", Problems: []api.FieldProblem{{Field: "sha256", Message: "is not a hex sha256"}}})
			return
		}
	}
	reboot := q.Get("reboot") == "true"
	if v := q.Get("reboot"); v != "" && v != "true" && v != "false" {
		s.problem(w, &api.ValidationError{Subject: "upgrade request", Problems: []api.FieldProblem{{Field: "reboot", Message: "is true or false"}}})
		return
	}
	if reboot && s.cfg.Power == nil {
		s.problem(w, fmt.Errorf("%w: reboot=true, but host power is not managed here", errNotManaged))
		return
	}
	allowDowngrade, err := s.downgradeAsked(q)
	if err != nil {
		s.problem(w, err)
		return
	}
	pub, err := upgrade.ParsePublicKey(s.cfg.Upgrades.PublicKey)
	if err != nil {
		s.problem(w, upgradeRefused(err))
		return
	}
	// Whether the host can take an upgrade at all is known before a byte
	// of the image is read; the ESP is locked for writing only once the
	// image has been checked, so the status stays readable meanwhile.
	openWrite := func() (upgrade.Host, func(), error) {
		h, release, err := s.cfg.Upgrades.Open(true)
		if errors.Is(err, upgrade.ErrBusy) {
			return h, nil, err
		}
		if err != nil {
			return h, nil, &api.ValidationError{Subject: "upgrade request", Problems: []api.FieldProblem{{Field: "host", Message: "cannot be upgraded: " + err.Error()}}}
		}
		return h, sync.OnceFunc(release), nil
	}
	h, release, err := s.cfg.Upgrades.Open(false)
	if err != nil {
		s.problem(w, &api.ValidationError{Subject: "upgrade request", Problems: []api.FieldProblem{{Field: "host", Message: "cannot be upgraded: " + err.Error()}}})
		return
	}
	release()
	target := upgrade.Other(h.Running)
	if err := os.MkdirAll(s.cfg.Upgrades.StageDir, 0o700); err != nil {
		s.problem(w, err)
		return
	}
	dir, err := os.MkdirTemp(s.cfg.Upgrades.StageDir, "image-")
	if err != nil {
		s.problem(w, err)
		return
	}
	t := s.tasks.Start("upgrade", "bank "+target, "", max(r.ContentLength, 0))
	s.cfg.Log.Warn("vmkernel: receiving a system upgrade", "task", t.ID(), "bytes", r.ContentLength)
	rc := http.NewResponseController(w)
	// An image is staged in RAM, not a datastore: no space to reserve.
	body := &uploadBody{r: r.Body, extend: func() { rc.SetReadDeadline(time.Now().Add(uploadIdleTimeout)) }, wrote: func(int64) {}}
	sum := sha256.New()
	counted := io.TeeReader(body, io.MultiWriter(sum, progressWriter{t}))
	st, err := upgrade.OpenChecked(counted, pub, dir, nil, func(m upgrade.Manifest) error {
		return upgrade.CheckRelease(h.Release, m.Release, allowDowngrade)
	})
	if err == nil {
		io.Copy(sum, body) // tar's end-of-archive blocks count in the body's checksum
		if got := hex.EncodeToString(sum.Sum(nil)); want != "" && got != want {
			err = fmt.Errorf("%w: the image's sha256 is %s, the request says %s", upgrade.ErrChecksum, got, want)
		}
	}
	if err != nil {
		os.RemoveAll(dir)
		// The client is still sending: read the rest (bounded) so it gets
		// this answer rather than a broken pipe (through mgmtd's proxy, a
		// 502 instead of the 422 that says why).
		io.Copy(io.Discard, io.LimitReader(body, maxRefusedDrain))
		s.tasks.Finish(t, err)
		s.cfg.Log.Warn("vmkernel: system upgrade refused", "task", t.ID(), "err", err)
		s.problem(w, upgradeRefused(err))
		return
	}
	h, release, err = openWrite()
	if err != nil {
		os.RemoveAll(dir)
		s.tasks.Finish(t, err)
		if errors.Is(err, upgrade.ErrBusy) {
			WriteProblem(w, api.Problem{Status: http.StatusConflict, Detail: err.Error()})
			return
		}
		s.problem(w, err)
		return
	}
	go func() {
		defer release()
		defer os.RemoveAll(dir)
		_, err := h.Apply(st, func(step string) { s.cfg.Log.Warn("vmkernel: upgrade: " + step) })
		s.tasks.Finish(t, err)
		if err != nil {
			s.cfg.Log.Error("vmkernel: system upgrade failed", "task", t.ID(), "err", err)
			return
		}
		s.cfg.Log.Warn("vmkernel: system upgrade written", "version", st.Manifest.Version, "bank", target, "reboot", reboot)
		if reboot {
			release() // unmounted (and synced) before the reboot
			if err := s.cfg.Power(api.PowerReboot, "upgrade to "+st.Manifest.Version); err != nil {
				s.cfg.Log.Error("vmkernel: reboot into the upgrade", "err", err)
			}
		}
	}()
	task, _ := s.tasks.Get(t.ID())
	task.Target = fmt.Sprintf("bank %s: %s", target, st.Manifest.Version)
	w.Header().Set("Location", api.VMKernelPrefix+"/tasks/"+t.ID())
	writeJSON(w, http.StatusAccepted, task)
}

// downgradeAsked reads allow_downgrade= and confirm= of an upgrade
// request: a downgrade is allowed only when asked for with this host's
// name, so a script aimed at the wrong host, or replaying an old image,
// does nothing.
func (s *Server) downgradeAsked(q url.Values) (bool, error) {
	bad := func(field, msg string) error {
		return &api.ValidationError{Subject: "upgrade request", Problems: []api.FieldProblem{{Field: field, Message: msg}}}
	}
	switch q.Get("allow_downgrade") {
	case "", "false":
		return false, nil
	case "true":
	default:
		return false, bad("allow_downgrade", "is true or false")
	}
	host, err := s.cfg.Host()
	if err != nil {
		return false, err
	}
	if q.Get("confirm") != host.Hostname || host.Hostname == "" {
		return false, bad("confirm", fmt.Sprintf("must be this host's name, %q, to allow a downgrade", host.Hostname))
	}
	return true, nil
}

// maxRefusedDrain bounds what is read of a refused image before answering:
// a whole image (two files at their limit) and a margin.
const maxRefusedDrain = 2*upgrade.MaxFileSize + 1<<20

// progressWriter counts bytes into a task.
type progressWriter struct{ t interface{ Add(int64) } }

func (p progressWriter) Write(b []byte) (int, error) {
	p.t.Add(int64(len(b)))
	return len(b), nil
}

// rollback serves POST /v1/host/upgrade/rollback.
func (s *Server) rollback(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Upgrades == nil {
		s.problem(w, errNoUpgrades)
		return
	}
	var req api.UpgradeRollbackRequest
	if err := decodeSmall(w, r, &req); err != nil {
		s.problem(w, err)
		return
	}
	if req.Reboot && s.cfg.Power == nil {
		s.problem(w, fmt.Errorf("%w: reboot=true, but host power is not managed here", errNotManaged))
		return
	}
	h, release, err := s.cfg.Upgrades.Open(true)
	if errors.Is(err, upgrade.ErrBusy) {
		WriteProblem(w, api.Problem{Status: http.StatusConflict, Detail: err.Error()})
		return
	}
	if err != nil {
		s.problem(w, &api.ValidationError{Subject: "upgrade request", Problems: []api.FieldProblem{{Field: "host", Message: "has no banks to roll back: " + err.Error()}}})
		return
	}
	res, err := h.Rollback()
	release()
	if errors.Is(err, upgrade.ErrBusy) {
		WriteProblem(w, api.Problem{Status: http.StatusConflict, Detail: err.Error()})
		return
	}
	if err != nil {
		s.problem(w, err)
		return
	}
	s.cfg.Log.Warn("vmkernel: rollback", "result", res.Result, "bank", res.Bank, "version", res.ToVersion, "reboot", req.Reboot)
	if req.Reboot {
		if err := s.cfg.Power(api.PowerReboot, "rollback to "+res.ToVersion); err != nil {
			s.problem(w, err)
			return
		}
	}
	writeJSON(w, http.StatusOK, res)
}

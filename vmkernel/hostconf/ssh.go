package hostconf

import (
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"strings"
	"sync"

	"golang.org/x/crypto/ssh"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/atomicfile"
	"github.com/plinth/plinth/sshd"
)

// The SSH service (package sshd) is off by default; turned on from the
// console or the API, it is said loudly (SSHStatus.Warning, the console's
// home screen) and lockdown turns it off. root logs in with a key of
// config/ssh_authorized_keys (the answer file's, and those added through
// the API), or with the root password when PasswordLogin allows it
// (throttled per address as mgmtd's logins are), and gets the console's
// screens or a root shell.

const (
	maxSSHKeys    = 64
	maxSSHKeyLine = 16 << 10
	sshWarning    = "SSH is on: root can log in to this host over the network"
)

type sshState struct {
	mu      sync.Mutex
	cfg     api.SSHConfig
	srv     *sshd.Server
	problem string
	hostFP  string
}

// SSHConfig is the SSH service's saved configuration (off when none).
func (h *Host) SSHConfig() (api.SSHConfig, error) {
	cfg := api.SSHConfig{Session: api.SSHSessionDCUI}
	_, err := loadJSON(h.cfg.Layout.SSHFile(), &cfg)
	return cfg, err
}

// SSH is the SSH service's state.
func (h *Host) SSH() api.SSHStatus {
	cfg, err := h.SSHConfig()
	keys, kerr := h.SSHKeys()
	s := &h.ssh
	s.mu.Lock()
	defer s.mu.Unlock()
	out := api.SSHStatus{Config: cfg, Keys: keys, HostKeyFingerprint: s.hostFP, Problem: s.problem}
	if s.srv != nil {
		out.Running = true
		out.Port = s.srv.Addr().(*net.TCPAddr).Port
		out.Sessions = s.srv.Sessions()
	}
	if cfg.Enabled {
		out.Warning = sshWarning
	}
	if err = errors.Join(err, kerr); err != nil {
		out.Problem = err.Error()
	}
	return out
}

// SetSSH saves the SSH service's configuration and starts or stops it.
// It cannot be turned on while lockdown is.
func (h *Host) SetSSH(cfg api.SSHConfig) (api.SSHStatus, error) {
	if cfg.Session == "" {
		cfg.Session = api.SSHSessionDCUI
	}
	if cfg.Session != api.SSHSessionDCUI && cfg.Session != api.SSHSessionShell {
		return api.SSHStatus{}, invalid("SSH configuration", "session", "%q is not %q or %q", cfg.Session, api.SSHSessionDCUI, api.SSHSessionShell)
	}
	if cfg.Enabled {
		if ld, err := h.Lockdown(); err != nil || ld.Enabled {
			return api.SSHStatus{}, conflict("lockdown mode is on: SSH stays off until it is turned off")
		}
	}
	if err := saveJSON(h.cfg.Layout.SSHFile(), cfg); err != nil {
		return api.SSHStatus{}, err
	}
	h.applySSH(cfg)
	return h.SSH(), nil
}

// applySSH starts or stops the service as cfg says.
func (h *Host) applySSH(cfg api.SSHConfig) {
	s := &h.ssh
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cfg = cfg
	if !cfg.Enabled {
		if s.srv != nil {
			s.srv.Close() // every session ends
			s.srv = nil
			h.log.Warn("hostconf: SSH is off")
		}
		s.problem = ""
		return
	}
	if s.srv != nil {
		return
	}
	key, err := sshd.LoadHostKey(h.cfg.Layout.SSHHostKey())
	if err != nil {
		s.problem = "host key: " + err.Error()
		h.log.Error("hostconf: SSH not started", "err", err)
		return
	}
	s.hostFP = ssh.FingerprintSHA256(key.PublicKey())
	addr := h.cfg.SSHAddr
	if addr == "" {
		addr = ":22"
	}
	srv, err := sshd.Listen(addr, sshd.Config{
		HostKey: key,
		AuthorizedKeys: func() []ssh.PublicKey {
			var out []ssh.PublicKey
			for _, k := range h.authorizedKeys() {
				out = append(out, k.Key)
			}
			return out
		},
		Password: func(remote, pw string) error {
			s.mu.Lock()
			allowed := s.cfg.PasswordLogin
			s.mu.Unlock()
			if !allowed {
				return errors.New("password login is off")
			}
			return h.VerifyPassword(remote, pw)
		},
		Commands: h.cfg.SSHCommands,
		Default: func() string {
			s.mu.Lock()
			defer s.mu.Unlock()
			return s.cfg.Session
		},
		Env: []string{"HOME=/root"},
		Log: h.log,
	})
	if err != nil {
		s.problem = err.Error()
		h.log.Error("hostconf: SSH not started", "err", err)
		return
	}
	s.srv, s.problem = srv, ""
	h.log.Warn("hostconf: SSH is on", "addr", srv.Addr().String(), "host_key", s.hostFP)
}

// sshOffForLockdown turns SSH off as lockdown goes on.
func (h *Host) sshOffForLockdown() error {
	cfg, err := h.SSHConfig()
	if err != nil || !cfg.Enabled {
		return err
	}
	cfg.Enabled = false
	if err := saveJSON(h.cfg.Layout.SSHFile(), cfg); err != nil {
		return err
	}
	h.applySSH(cfg)
	h.log.Warn("hostconf: lockdown turned SSH off")
	return nil
}

func (h *Host) authorizedKeys() []sshd.Key {
	b, err := os.ReadFile(h.cfg.Layout.SSHKeysFile())
	if err != nil {
		return nil
	}
	return sshd.ParseKeys(b)
}

// keyID is a key's ID: its SHA-256, base64 for URLs.
func keyID(k ssh.PublicKey) string {
	sum := sha256.Sum256(k.Marshal())
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

func apiKey(k sshd.Key) api.SSHKey {
	return api.SSHKey{ID: keyID(k.Key), Type: k.Key.Type(), Fingerprint: ssh.FingerprintSHA256(k.Key), Comment: k.Comment}
}

// SSHKeys are root's authorized keys.
func (h *Host) SSHKeys() ([]api.SSHKey, error) {
	out := []api.SSHKey{}
	if _, err := os.Stat(h.cfg.Layout.SSHKeysFile()); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return out, err
	}
	for _, k := range h.authorizedKeys() {
		out = append(out, apiKey(k))
	}
	return out, nil
}

// AddSSHKey adds an authorized key (one authorized_keys line; options
// are refused: a key here logs in as root to what the service offers).
func (h *Host) AddSSHKey(line string) (api.SSHKey, error) {
	line = strings.TrimSpace(line)
	if len(line) > maxSSHKeyLine || strings.ContainsAny(line, "\r\n") {
		return api.SSHKey{}, invalid("SSH key", "key", "want one authorized_keys line of at most %d bytes", maxSSHKeyLine)
	}
	k, comment, opts, rest, err := ssh.ParseAuthorizedKey([]byte(line))
	switch {
	case err != nil:
		return api.SSHKey{}, invalid("SSH key", "key", "not an SSH public key (%v)", err)
	case len(opts) > 0:
		return api.SSHKey{}, invalid("SSH key", "key", "options (%s) are not taken: give the key alone", strings.Join(opts, ","))
	case len(strings.TrimSpace(string(rest))) > 0:
		return api.SSHKey{}, invalid("SSH key", "key", "one key only")
	}
	keys := h.authorizedKeys()
	for _, old := range keys {
		if keyID(old.Key) == keyID(k) {
			return api.SSHKey{}, conflict("the key %s is already authorized", ssh.FingerprintSHA256(k))
		}
	}
	if len(keys) >= maxSSHKeys {
		return api.SSHKey{}, invalid("SSH key", "key", "%d keys already: at most %d", len(keys), maxSSHKeys)
	}
	added := sshd.Key{Key: k, Comment: comment, Line: strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k))) + commentSuffix(comment)}
	if err := h.writeKeys(append(keys, added)); err != nil {
		return api.SSHKey{}, err
	}
	h.log.Warn("hostconf: SSH key added", "fingerprint", ssh.FingerprintSHA256(k))
	return apiKey(added), nil
}

func commentSuffix(c string) string {
	if c = strings.TrimSpace(c); c != "" {
		return " " + c
	}
	return ""
}

// DeleteSSHKey removes the authorized key id.
func (h *Host) DeleteSSHKey(id string) error {
	keys := h.authorizedKeys()
	for i, k := range keys {
		if keyID(k.Key) == id {
			if err := h.writeKeys(append(keys[:i:i], keys[i+1:]...)); err != nil {
				return err
			}
			h.log.Warn("hostconf: SSH key removed", "fingerprint", ssh.FingerprintSHA256(k.Key))
			return nil
		}
	}
	return fmt.Errorf("%w: no authorized key %q", ErrNotFound, id)
}

func (h *Host) writeKeys(keys []sshd.Key) error {
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(k.Line + "\n")
	}
	if err := os.MkdirAll(h.cfg.Layout.ConfigDir(), 0o755); err != nil {
		return err
	}
	return atomicfile.Write(h.cfg.Layout.SSHKeysFile(), []byte(b.String()), 0o600)
}

// runSSH starts the service when it was left on (and lockdown is off).
func (h *Host) runSSH() {
	cfg, err := h.SSHConfig()
	if err != nil {
		h.log.Error("hostconf: SSH configuration", "err", err)
		return
	}
	if ld, err := h.Lockdown(); cfg.Enabled && (err != nil || ld.Enabled) {
		h.log.Warn("hostconf: SSH stays off: lockdown mode is on")
		return
	}
	if cfg.Enabled {
		h.applySSH(cfg)
	}
}

// stopSSH ends the service (vmkernel stops).
func (h *Host) stopSSH() {
	h.ssh.mu.Lock()
	defer h.ssh.mu.Unlock()
	if h.ssh.srv != nil {
		h.ssh.srv.Close()
		h.ssh.srv = nil
	}
}

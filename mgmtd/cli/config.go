package cli

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/plinth/plinth/atomicfile"
)

// Files in the configuration directory.
const (
	ConfigFile     = "config.json"
	KnownHostsFile = "known_hosts"
)

// Config is what the CLI remembers between runs (config.json, mode 0600:
// it holds bearer tokens).
type Config struct {
	// Server is the host:port used when neither --server nor
	// $PLINTH_SERVER says otherwise: the last one logged in to.
	Server string `json:"server,omitempty"`
	// Servers holds the session of each host:port logged in to.
	Servers map[string]ServerLogin `json:"servers,omitempty"`
}

// ServerLogin is one server's session.
type ServerLogin struct {
	User      string    `json:"user"`
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at,omitzero"`
}

// configDir is $PLINTH_CONFIG_DIR, else the user's configuration
// directory ($XDG_CONFIG_HOME or ~/.config) + "/plinth".
func configDir(getenv func(string) string) (string, error) {
	if d := getenv("PLINTH_CONFIG_DIR"); d != "" {
		return d, nil
	}
	if d := getenv("XDG_CONFIG_HOME"); d != "" {
		return filepath.Join(d, "plinth"), nil
	}
	home := getenv("HOME")
	if home == "" {
		h, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("no configuration directory: set $PLINTH_CONFIG_DIR or $HOME: %w", err)
		}
		home = h
	}
	return filepath.Join(home, ".config", "plinth"), nil
}

// loadConfig reads dir/config.json; a missing file is an empty Config.
func loadConfig(dir string) (Config, error) {
	path := filepath.Join(dir, ConfigFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return Config{}, nil
	}
	if err != nil {
		return Config{}, fmt.Errorf("read %s: %w", path, err)
	}
	var c Config
	if err := json.Unmarshal(b, &c); err != nil {
		return Config{}, fmt.Errorf("read %s: %w", path, err)
	}
	return c, nil
}

// saveConfig writes dir/config.json atomically, readable only by its owner.
func saveConfig(dir string, c Config) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("save configuration: %w", err)
	}
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return fmt.Errorf("save configuration: %w", err)
	}
	path := filepath.Join(dir, ConfigFile)
	if err := atomicfile.Write(path, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("save configuration: %w", err)
	}
	return nil
}

// normalizeServer turns "host", "host:port", "[v6]:port" or
// "https://host[:port][/]" into the canonical "host:port" (port 443 by
// default) that keys the configuration and known_hosts.
func normalizeServer(s string) (string, error) {
	in := strings.TrimSpace(s)
	if in == "" {
		return "", errors.New("empty server address")
	}
	if strings.Contains(in, "://") {
		u, err := url.Parse(in)
		if err != nil || u.Scheme != "https" || u.Host == "" || (u.Path != "" && u.Path != "/") {
			return "", fmt.Errorf("server %q: want host[:port] or https://host[:port]", s)
		}
		in = u.Host
	}
	host, port, err := net.SplitHostPort(in)
	if err != nil {
		// No port: a bare name, IPv4, or IPv6 with or without brackets.
		host, port = strings.TrimSuffix(strings.TrimPrefix(in, "["), "]"), "443"
	}
	if host == "" || strings.ContainsAny(host, " /@?#") {
		return "", fmt.Errorf("server %q: bad host name", s)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "", fmt.Errorf("server %q: bad port %q", s, port)
	}
	return net.JoinHostPort(strings.ToLower(host), port), nil
}

// normalizeFingerprint returns a SHA-256 fingerprint as colon-separated
// upper-case hex (the form mgmtd logs and the DCUI shows), accepting it with
// or without colons and in any case, with an optional "SHA256:" prefix.
func normalizeFingerprint(s string) (string, error) {
	t := strings.TrimSpace(s)
	if len(t) > 7 && strings.EqualFold(t[:7], "sha256:") {
		t = t[7:]
	}
	clean := strings.ReplaceAll(t, ":", "")
	b, err := hex.DecodeString(clean)
	if err != nil || len(b) != 32 {
		return "", fmt.Errorf("fingerprint %q is not a SHA-256 in hex (64 hex digits, colons optional)", s)
	}
	h := strings.ToUpper(clean)
	var out strings.Builder
	for i := 0; i < len(h); i += 2 {
		if i > 0 {
			out.WriteByte(':')
		}
		out.WriteString(h[i : i+2])
	}
	return out.String(), nil
}

// KnownHosts is the known_hosts file: one "host:port FINGERPRINT" a line,
// '#' starting a comment, like ssh's. A host's first fingerprint is pinned;
// a different one is refused until its line is removed.
type KnownHosts struct {
	Path    string
	entries []knownHost
}

type knownHost struct {
	addr, fingerprint string
	line              int
}

// LoadKnownHosts reads the file at path; a missing file has no entries.
// Malformed lines are errors naming the line, so a damaged pin is never
// silently ignored.
func LoadKnownHosts(path string) (*KnownHosts, error) {
	k := &KnownHosts{Path: path}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return k, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 2 {
			return nil, fmt.Errorf("%s line %d: want \"host:port fingerprint\"", path, n)
		}
		addr, err := normalizeServer(f[0])
		if err != nil {
			return nil, fmt.Errorf("%s line %d: %w", path, n, err)
		}
		fp, err := normalizeFingerprint(f[1])
		if err != nil {
			return nil, fmt.Errorf("%s line %d: %w", path, n, err)
		}
		k.entries = append(k.entries, knownHost{addr: addr, fingerprint: fp, line: n})
	}
	return k, sc.Err()
}

// Lookup returns the fingerprint pinned for addr (host:port) and its line.
func (k *KnownHosts) Lookup(addr string) (fingerprint string, line int, ok bool) {
	for _, e := range k.entries {
		if e.addr == addr {
			return e.fingerprint, e.line, true
		}
	}
	return "", 0, false
}

// Add pins fingerprint for addr, appending a line to the file (made with
// mode 0600, its directory 0700, when missing).
func (k *KnownHosts) Add(addr, fingerprint string) error {
	fp, err := normalizeFingerprint(fingerprint)
	if err != nil {
		return err
	}
	if old, _, ok := k.Lookup(addr); ok {
		if old == fp {
			return nil
		}
		return fmt.Errorf("%s already has a different fingerprint for %s", k.Path, addr)
	}
	if err := os.MkdirAll(filepath.Dir(k.Path), 0o700); err != nil {
		return fmt.Errorf("pin %s: %w", addr, err)
	}
	old, err := os.ReadFile(k.Path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("pin %s: %w", addr, err)
	}
	if len(old) > 0 && old[len(old)-1] != '\n' {
		old = append(old, '\n')
	}
	lines := bytes.Count(old, []byte("\n"))
	data := append(old, []byte(addr+" "+fp+"\n")...)
	if err := atomicfile.Write(k.Path, data, 0o600); err != nil {
		return fmt.Errorf("pin %s: %w", addr, err)
	}
	k.entries = append(k.entries, knownHost{addr: addr, fingerprint: fp, line: lines + 1})
	return nil
}

// Check compares the fingerprint a server presents with the pin: nil when
// they are equal, ErrUnknownHost when addr has no pin yet, a
// *MismatchError when they differ.
func (k *KnownHosts) Check(addr, presented string) error {
	fp, err := normalizeFingerprint(presented)
	if err != nil {
		return err
	}
	pinned, line, ok := k.Lookup(addr)
	switch {
	case !ok:
		return ErrUnknownHost
	case pinned != fp:
		return &MismatchError{Addr: addr, Pinned: pinned, Presented: fp, Path: k.Path, Line: line}
	}
	return nil
}

// ErrUnknownHost: the server has no pinned fingerprint yet.
var ErrUnknownHost = errors.New("server not in known_hosts")

// MismatchError is a server presenting another certificate than the one
// pinned for it: a replaced certificate, or someone in the middle.
type MismatchError struct {
	Addr, Pinned, Presented string
	// Path and Line locate the pin in known_hosts.
	Path string
	Line int
}

func (e *MismatchError) Error() string {
	const warning = "WARNING: THE SERVER'S CERTIFICATE HAS CHANGED. NOT CONNECTING."
	bar := strings.Repeat("@", len(warning)+6)
	return fmt.Sprintf(`%s
@  %s  @
%s
Someone could be intercepting your connection to %s (a
man-in-the-middle attack), or the host's certificate was replaced.
  pinned fingerprint (SHA-256):    %s
  presented fingerprint (SHA-256): %s
Compare the presented one with the fingerprint on the host's console
(DCUI). If the certificate was replaced on purpose, remove the stale
entry, line %d of %s:
  sed -i '%dd' %s
and run "plinth login --server %s" again.`,
		bar, warning, bar, e.Addr, e.Pinned, e.Presented, e.Line, e.Path, e.Line, shellQuote(e.Path), e.Addr)
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("/._-+:@%", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

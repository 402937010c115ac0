package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/plinth/plinth/api"
)

// TokensFile holds the API tokens (hashes only) in the account directory.
const TokensFile = "tokens.json"

// Token prefixes: a bearer token says what it is, so a leaked one is easy to
// recognise (and to grep for) and the server knows where to look it up.
const (
	sessionPrefix = "plinth_s_"
	apiPrefix     = "plinth_t_"
	ticketPrefix  = "plinth_k_"
)

// DefaultSessionTTL is how long a login session lasts.
const DefaultSessionTTL = 8 * time.Hour

// MaxTokens bounds the API tokens one host keeps.
const MaxTokens = 100

// Errors of the token functions.
var (
	// ErrUnauthenticated: no token, an unknown one, an expired one or a revoked one.
	ErrUnauthenticated = errors.New("missing, unknown, expired or revoked bearer token")
	// ErrNoToken: no API token has this ID.
	ErrNoToken = errors.New("no such API token")
	// ErrTooManyTokens: the host already keeps MaxTokens API tokens.
	ErrTooManyTokens = fmt.Errorf("there are already %d API tokens; revoke some first", MaxTokens)
)

// Principal is who a request comes from.
type Principal struct {
	User string
	// Kind is "session", "token" or "ticket".
	Kind      string
	TokenID   string
	ExpiresAt time.Time // zero: never
	// Epoch is the password epoch the credential was made under.
	Epoch uint64
}

type session struct {
	user    string
	expires time.Time
	epoch   uint64
}

type storedToken struct {
	ID         string     `json:"id"`
	Name       string     `json:"name"`
	User       string     `json:"user"`
	Hash       string     `json:"sha256"`
	CreatedAt  time.Time  `json:"created_at"`
	ExpiresAt  *time.Time `json:"expires_at,omitempty"`
	LastUsedAt *time.Time `json:"last_used_at,omitempty"`
	// Epoch is the password epoch of the session that made the token;
	// a password change ends it.
	Epoch uint64 `json:"password_epoch,omitempty"`
}

type tokensFile struct {
	Version int           `json:"version"`
	Tokens  []storedToken `json:"tokens"`
}

// Tokens issues and checks bearer tokens: login sessions (in memory; a
// restart of mgmtd logs everyone out), API tokens (hashed in dir, kept
// across restarts) and websocket tickets (in memory, single use). Each is
// bound to the epoch of the password it was made under, read from the
// account files in the same dir: a password change, by whoever makes it
// (the DCUI, an API), ends every session, token and ticket made before it.
type Tokens struct {
	dir string
	ttl time.Duration
	now func() time.Time

	mu        sync.Mutex
	sessions  map[string]session // by SHA-256 of the token
	tickets   map[string]ticket  // by SHA-256 of the ticket
	tokens    []storedToken
	lastFlush time.Time
	epochs    epochCache
}

// epochCache keeps the password file's epochs, read again when the file
// changes (an atomic write replaces it: a new inode).
type epochCache struct {
	ino, size int64
	mtime     time.Time
	loaded    bool
	err       error
	epochs    map[string]uint64
}

// OpenTokens loads the API tokens kept in dir. ttl is the session lifetime
// (DefaultSessionTTL when 0); now is the clock (time.Now when nil).
func OpenTokens(dir string, ttl time.Duration, now func() time.Time) (*Tokens, error) {
	if ttl <= 0 {
		ttl = DefaultSessionTTL
	}
	if now == nil {
		now = time.Now
	}
	t := &Tokens{dir: dir, ttl: ttl, now: now, sessions: map[string]session{}, tickets: map[string]ticket{}}
	b, err := os.ReadFile(filepath.Join(dir, TokensFile))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return t, nil
	case err != nil:
		return nil, fmt.Errorf("open tokens: %w", err)
	}
	var tf tokensFile
	if err := json.Unmarshal(b, &tf); err != nil {
		return nil, fmt.Errorf("open tokens: %s: %w", filepath.Join(dir, TokensFile), err)
	}
	if tf.Version != 1 {
		return nil, fmt.Errorf("open tokens: %s: schema version %d is not 1", filepath.Join(dir, TokensFile), tf.Version)
	}
	t.tokens = tf.Tokens
	return t, nil
}

func random(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func hashOf(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// epochLocked is user's current password epoch; false when it cannot be
// known (no password, an unreadable file): then no credential holds.
func (t *Tokens) epochLocked(user string) (uint64, bool) {
	c := &t.epochs
	fi, err := os.Stat(filepath.Join(t.dir, PasswdFile))
	if err != nil {
		c.loaded = false
		return 0, false
	}
	ino := inodeOf(fi)
	if !c.loaded || c.ino != ino || c.size != fi.Size() || !c.mtime.Equal(fi.ModTime()) {
		c.ino, c.size, c.mtime, c.loaded = ino, fi.Size(), fi.ModTime(), true
		c.epochs, c.err = map[string]uint64{}, nil
		pf, err := readPasswd(t.dir)
		if err != nil {
			c.err = err
		}
		for u, h := range pf.Users {
			c.epochs[u] = h.Epoch
		}
	}
	if c.err != nil {
		return 0, false
	}
	e, ok := c.epochs[user]
	return e, ok
}

// live reports whether a credential of user made under epoch still holds.
func (t *Tokens) liveLocked(user string, epoch uint64) bool {
	cur, ok := t.epochLocked(user)
	return ok && cur == epoch
}

// NewSession starts a login session for user, whose password of epoch
// (what Login returned) was just checked, and returns its token.
func (t *Tokens) NewSession(user string, epoch uint64) api.Session {
	token := sessionPrefix + random(32)
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	for h, s := range t.sessions { // sweep expired sessions as we go
		if !now.Before(s.expires) {
			delete(t.sessions, h)
		}
	}
	exp := now.Add(t.ttl)
	t.sessions[hashOf(token)] = session{user: user, expires: exp, epoch: epoch}
	return api.Session{Token: token, User: user, ExpiresAt: exp.UTC()}
}

// EndSession logs a session token out; other tokens are left alone.
func (t *Tokens) EndSession(token string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.sessions, hashOf(token))
}

// Check says who a bearer token belongs to, or ErrUnauthenticated.
func (t *Tokens) Check(token string) (Principal, error) {
	now := t.now()
	switch {
	case strings.HasPrefix(token, sessionPrefix):
		t.mu.Lock()
		defer t.mu.Unlock()
		h := hashOf(token)
		s, ok := t.sessions[h]
		if !ok {
			return Principal{}, ErrUnauthenticated
		}
		if !now.Before(s.expires) || !t.liveLocked(s.user, s.epoch) {
			delete(t.sessions, h)
			return Principal{}, ErrUnauthenticated
		}
		return Principal{User: s.user, Kind: "session", ExpiresAt: s.expires, Epoch: s.epoch}, nil
	case strings.HasPrefix(token, apiPrefix):
		id, secret, ok := strings.Cut(strings.TrimPrefix(token, apiPrefix), "_")
		if !ok || secret == "" {
			return Principal{}, ErrUnauthenticated
		}
		t.mu.Lock()
		defer t.mu.Unlock()
		i := t.index(id)
		if i < 0 {
			return Principal{}, ErrUnauthenticated
		}
		st := &t.tokens[i]
		want, _ := hex.DecodeString(st.Hash)
		got := sha256.Sum256([]byte(token))
		if subtle.ConstantTimeCompare(want, got[:]) != 1 {
			return Principal{}, ErrUnauthenticated
		}
		if st.ExpiresAt != nil && !now.Before(*st.ExpiresAt) || !t.liveLocked(st.User, st.Epoch) {
			return Principal{}, ErrUnauthenticated
		}
		used := now.UTC()
		st.LastUsedAt = &used
		p := Principal{User: st.User, Kind: "token", TokenID: st.ID, Epoch: st.Epoch}
		if st.ExpiresAt != nil {
			p.ExpiresAt = *st.ExpiresAt
		}
		// Last-use times are kept at most once a minute: a busy script
		// must not turn every request into a disk write.
		if now.Sub(t.lastFlush) > time.Minute {
			t.lastFlush = now
			_ = t.saveLocked()
		}
		return p, nil
	}
	return Principal{}, ErrUnauthenticated
}

func (t *Tokens) index(id string) int {
	return slices.IndexFunc(t.tokens, func(st storedToken) bool { return st.ID == id })
}

// ValidateTokenRequest lists what is wrong with req.
func ValidateTokenRequest(req api.TokenRequest) []api.FieldProblem {
	var probs []api.FieldProblem
	name := strings.TrimSpace(req.Name)
	switch {
	case name == "":
		probs = append(probs, api.FieldProblem{Field: "name", Message: "is empty"})
	case len([]rune(req.Name)) > 64:
		probs = append(probs, api.FieldProblem{Field: "name", Message: "is longer than 64 characters"})
	case strings.IndexFunc(req.Name, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0:
		probs = append(probs, api.FieldProblem{Field: "name", Message: "has characters that are not printable"})
	}
	if req.ExpiresInSeconds < 0 {
		probs = append(probs, api.FieldProblem{Field: "expires_in_seconds", Message: "is negative (0 means never)"})
	}
	if req.ExpiresInSeconds > 10*365*24*3600 {
		probs = append(probs, api.FieldProblem{Field: "expires_in_seconds", Message: "is more than ten years"})
	}
	return probs
}

// Create makes an API token for p (who made the request); the answer holds
// its secret, which is not kept. The token is bound to p's password epoch.
func (t *Tokens) Create(p Principal, req api.TokenRequest) (api.APIToken, error) {
	if probs := ValidateTokenRequest(req); len(probs) > 0 {
		return api.APIToken{}, fmt.Errorf("create token: %s %s", probs[0].Field, probs[0].Message)
	}
	user := p.User
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.liveLocked(user, p.Epoch) {
		return api.APIToken{}, ErrUnauthenticated
	}
	t.pruneLocked()
	if len(t.tokens) >= MaxTokens {
		return api.APIToken{}, ErrTooManyTokens
	}
	id := strings.ToLower(random(6))
	id = strings.NewReplacer("-", "x", "_", "y").Replace(id)
	secret := apiPrefix + id + "_" + random(32)
	now := t.now().UTC()
	st := storedToken{ID: id, Name: strings.TrimSpace(req.Name), User: user, Hash: hashOf(secret), CreatedAt: now, Epoch: p.Epoch}
	if req.ExpiresInSeconds > 0 {
		exp := now.Add(time.Duration(req.ExpiresInSeconds) * time.Second)
		st.ExpiresAt = &exp
	}
	t.tokens = append(t.tokens, st)
	if err := t.saveLocked(); err != nil {
		t.tokens = t.tokens[:len(t.tokens)-1]
		return api.APIToken{}, fmt.Errorf("create token: %w", err)
	}
	out := public(st)
	out.Secret = secret
	return out, nil
}

// pruneLocked forgets the API tokens a password change has ended (in
// memory; the file follows at the next save). An epoch that cannot be
// read (no password file for the moment) prunes nothing: Check refuses
// them meanwhile.
func (t *Tokens) pruneLocked() {
	t.tokens = slices.DeleteFunc(t.tokens, func(st storedToken) bool {
		cur, ok := t.epochLocked(st.User)
		return ok && cur != st.Epoch
	})
}

// List lists the API tokens that still hold, without secrets.
func (t *Tokens) List() []api.APIToken {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.pruneLocked()
	out := make([]api.APIToken, 0, len(t.tokens))
	for _, st := range t.tokens {
		out = append(out, public(st))
	}
	return out
}

// Revoke deletes the API token with this ID; it stops working at once.
func (t *Tokens) Revoke(id string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	i := t.index(id)
	if i < 0 {
		return fmt.Errorf("revoke token %q: %w", id, ErrNoToken)
	}
	old := slices.Clone(t.tokens)
	t.tokens = slices.Delete(t.tokens, i, i+1)
	if err := t.saveLocked(); err != nil {
		t.tokens = old
		return fmt.Errorf("revoke token %q: %w", id, err)
	}
	return nil
}

func public(st storedToken) api.APIToken {
	return api.APIToken{ID: st.ID, Name: st.Name, User: st.User, CreatedAt: st.CreatedAt,
		ExpiresAt: st.ExpiresAt, LastUsedAt: st.LastUsedAt}
}

func (t *Tokens) saveLocked() error {
	return writeJSON(t.dir, TokensFile, tokensFile{Version: 1, Tokens: t.tokens})
}

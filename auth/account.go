// Package auth is who may manage a Plinth host: the root account's password
// (kept as a bcrypt hash in STATE), the lockdown switch, login sessions,
// long-lived API tokens and the throttle on failed logins. The DCUI (as
// root, on the console) sets the password and lockdown with SetPassword
// and SetLockdown; mgmtd (unprivileged) reads them on every login, so a
// change on the console holds at once without restarting anything.
package auth

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/atomicfile"
)

// Files in the account directory (STATE/mgmtd on the appliance).
const (
	PasswdFile   = "passwd.json"
	SecurityFile = "security.json"
)

// MinPasswordLength is the shortest password SetPassword accepts.
const MinPasswordLength = api.MinPasswordLength

// Errors of the account functions.
var (
	// ErrNoPassword: the root password has not been set yet (first boot).
	ErrNoPassword = errors.New("the root password is not set yet: set it on the host's console (DCUI)")
	// ErrBadCredentials: unknown user or wrong password; which one is not said.
	ErrBadCredentials = errors.New("wrong user name or password")
)

// bcryptCost is the hashing cost: about 60 ms a check on this project's
// 2-core test machine, slow enough to make guessing expensive.
var bcryptCost = bcrypt.DefaultCost

type passwdFile struct {
	Version int                 `json:"version"`
	Users   map[string]userHash `json:"users"`
}

type userHash struct {
	Hash      string    `json:"hash"`
	ChangedAt time.Time `json:"changed_at"`
	// Epoch counts the password's changes. Every session and API token is
	// bound to the epoch of the password that made it, so a change ends
	// them all, whoever makes it (see Tokens.Check).
	Epoch uint64 `json:"epoch,omitempty"`
}

type securityFile struct {
	Version  int  `json:"version"`
	Lockdown bool `json:"lockdown"`
}

// CheckStrength says why password is too weak for user, or nil (the
// rule is api.CheckPassword's, which clients check as the user types).
func CheckStrength(user, password string) error { return api.CheckPassword(user, password) }

// SetPassword checks password's strength and stores its hash for user
// (only api.RootUser exists) in dir, atomically.
func SetPassword(dir, user, password string) error {
	if user != api.RootUser {
		return fmt.Errorf("set password: no user %q (the only account is %q)", user, api.RootUser)
	}
	if err := CheckStrength(user, password); err != nil {
		return fmt.Errorf("set password: %w", err)
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcryptCost)
	if err != nil {
		return fmt.Errorf("set password: %w", err)
	}
	pf, err := readPasswd(dir)
	if err != nil && !errors.Is(err, ErrNoPassword) {
		return fmt.Errorf("set password: %w", err)
	}
	if pf.Users == nil {
		pf.Users = map[string]userHash{}
	}
	pf.Version = 1
	pf.Users[user] = userHash{Hash: string(hash), ChangedAt: time.Now().UTC(), Epoch: pf.Users[user].Epoch + 1}
	if err := writeJSON(dir, PasswdFile, pf); err != nil {
		return fmt.Errorf("set password: %w", err)
	}
	return nil
}

// PasswordSet reports whether the root password has been set.
func PasswordSet(dir string) (bool, error) {
	pf, err := readPasswd(dir)
	if errors.Is(err, ErrNoPassword) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	_, ok := pf.Users[api.RootUser]
	return ok, nil
}

// PasswordChanged is when the root password was last set (zero: never,
// or by a Plinth that did not record it).
func PasswordChanged(dir string) (time.Time, error) {
	pf, err := readPasswd(dir)
	if errors.Is(err, ErrNoPassword) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, err
	}
	return pf.Users[api.RootUser].ChangedAt, nil
}

// Verify checks user's password: nil, ErrNoPassword, ErrBadCredentials or
// an error reading the file.
func Verify(dir, user, password string) error {
	_, err := Login(dir, user, password)
	return err
}

// Login checks user's password as Verify does and returns the password's
// epoch, to which a session or token made from this login is bound.
func Login(dir, user, password string) (uint64, error) {
	pf, err := readPasswd(dir)
	if err != nil {
		return 0, err
	}
	u, ok := pf.Users[user]
	if !ok {
		if user == api.RootUser {
			return 0, ErrNoPassword
		}
		// Spend the same time as a real check, so timing does not tell
		// which user names exist.
		bcrypt.CompareHashAndPassword(dummyHash(), []byte(password))
		return 0, ErrBadCredentials
	}
	if bcrypt.CompareHashAndPassword([]byte(u.Hash), []byte(password)) != nil {
		return 0, ErrBadCredentials
	}
	return u.Epoch, nil
}

// PasswordEpoch is the epoch of user's password (ErrNoPassword when none
// is set).
func PasswordEpoch(dir, user string) (uint64, error) {
	pf, err := readPasswd(dir)
	if err != nil {
		return 0, err
	}
	u, ok := pf.Users[user]
	if !ok {
		return 0, ErrNoPassword
	}
	return u.Epoch, nil
}

// dummyHash is made at the first failed look-up, not when the package is
// initialised: every program in the appliance's busybox runs every linked
// package's init, and a bcrypt hash there cost each of them (the init,
// vmkernel, mgmtd, the DCUIs, the kernel's modprobe helper) 0.1 to 0.3 s of
// CPU natively, seconds under TCG.
var dummyHash = sync.OnceValue(func() []byte {
	h, _ := bcrypt.GenerateFromPassword([]byte("plinth-dummy-password"), bcryptCost)
	return h
})

// SetLockdown turns lockdown mode on or off: when on, mgmtd refuses every
// change to the host and its VMs; only the DCUI can change anything.
func SetLockdown(dir string, on bool) error {
	if err := writeJSON(dir, SecurityFile, securityFile{Version: 1, Lockdown: on}); err != nil {
		return fmt.Errorf("set lockdown: %w", err)
	}
	return nil
}

// Lockdown reports whether lockdown mode is on (off when never set).
func Lockdown(dir string) (bool, error) {
	b, err := readFile(filepath.Join(dir, SecurityFile))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read lockdown: %w", err)
	}
	var sf securityFile
	if err := json.Unmarshal(b, &sf); err != nil {
		return false, fmt.Errorf("read lockdown: %s: %w", filepath.Join(dir, SecurityFile), err)
	}
	return sf.Lockdown, nil
}

// readFile reads an account file, never through a symbolic link: the
// directory belongs to mgmtd's user, and root (the DCUI) reads it too.
func readFile(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if errors.Is(err, syscall.ELOOP) {
		return nil, fmt.Errorf("%s is a symbolic link, not an account file", path)
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, 1<<20))
}

func readPasswd(dir string) (passwdFile, error) {
	path := filepath.Join(dir, PasswdFile)
	b, err := readFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return passwdFile{}, ErrNoPassword
	}
	if err != nil {
		return passwdFile{}, fmt.Errorf("read %s: %w", path, err)
	}
	var pf passwdFile
	if err := json.Unmarshal(b, &pf); err != nil {
		return passwdFile{}, fmt.Errorf("read %s: %w", path, err)
	}
	if pf.Version != 1 {
		return passwdFile{}, fmt.Errorf("read %s: schema version %d is not 1", path, pf.Version)
	}
	return pf, nil
}

// writeJSON writes v to dir/name atomically, readable only by its owner;
// when running as root (the DCUI) it gives the file to the directory's
// owner, mgmtd's user, who reads it, before it appears under its name
// (atomicfile.WriteOwned says why).
func writeJSON(dir, name string, v any) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	path := filepath.Join(dir, name)
	if os.Geteuid() == 0 {
		uid, gid, err := ownerOf(dir)
		if err != nil {
			return err
		}
		return atomicfile.WriteOwned(path, append(b, '\n'), 0o600, uid, gid)
	}
	return atomicfile.Write(path, append(b, '\n'), 0o600)
}

// ownerOf is the owner of dir, which the appliance init gives to mgmtd.
func ownerOf(dir string) (int, int, error) {
	fi, err := os.Stat(dir)
	if err != nil {
		return 0, 0, err
	}
	uid, gid := statOwner(fi)
	return uid, gid, nil
}

package qemutest

import (
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/plinth/plinth/installer"
)

// No secret in any log: after the end-to-end suite, every log it left is
// read (the serial consoles of every boot, build/e2e-*.log, and every
// file of each appliance's STATE the tests kept: the services' logs, the
// audit log, the VMs' console logs, the boot log) and must hold no bearer
// token, session, API token or ticket (they say what they are:
// plinth_s_, plinth_t_, plinth_k_) and none of the passwords the tests
// type. TestMain runs the scan and fails the suite on a finding.

// e2eSecrets are the passwords the end-to-end tests use, right and wrong.
var e2eSecrets = []string{e2ePassword, pxePassword, wrongE2EPassword, hostSettingsPassword}

// wrongE2EPassword is a wrong password some tests try, so that the failed
// login's path through mgmtd is in the logs scanned.
const wrongE2EPassword = "Wrong-e2e-secret-9"

var tokenPattern = regexp.MustCompile(`plinth_[stk]_[A-Za-z0-9_-]{6,}`)

var kept struct {
	mu    sync.Mutex
	dirs  []string
	start time.Time
}

func init() { kept.start = time.Now() }

// keepState copies the STATE file system of img (a bare ext4 image, or an
// installed disk whose GPT names a STATE partition) to build/e2e-state/
// for the scan after the suite (and for whoever reads a failure). Call it
// once the appliance is down.
func keepState(t *testing.T, img string) {
	t.Helper()
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	dev := img
	if f, err := os.Open(img); err == nil {
		fi, _ := f.Stat()
		if tbl, err := installer.ReadTable(f, fi.Size()); err == nil {
			if p, ok := tbl.Find(installer.LabelState); ok {
				dev = fmt.Sprintf("%s?offset=%d", img, p.Offset())
			}
		}
		f.Close()
	}
	dir := filepath.Join(root, "build", "e2e-state", strings.ReplaceAll(t.Name(), "/", "-")+"-"+filepath.Base(img))
	os.RemoveAll(dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("debugfs", "-R", "rdump / "+dir, dev).CombinedOutput(); err != nil {
		t.Fatalf("dumping STATE of %s: %v: %s", img, err, out)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) == 0 {
		t.Fatalf("STATE of %s dumped nothing", img)
	}
	kept.mu.Lock()
	kept.dirs = append(kept.dirs, dir)
	kept.mu.Unlock()
}

// scanForSecrets reads the suite's logs and kept STATE files and returns
// what it found, one line each; none is what is wanted.
func scanForSecrets() ([]string, int) {
	root, err := RepoRoot()
	if err != nil {
		return []string{err.Error()}, 0
	}
	var files []string
	logs, _ := filepath.Glob(filepath.Join(root, "build", "e2e-*.log"))
	for _, l := range logs {
		if fi, err := os.Stat(l); err == nil && !fi.ModTime().Before(kept.start) {
			files = append(files, l)
		}
	}
	kept.mu.Lock()
	for _, d := range kept.dirs {
		filepath.WalkDir(d, func(p string, e fs.DirEntry, err error) error {
			if err == nil && e.Type().IsRegular() {
				files = append(files, p)
			}
			return nil
		})
	}
	kept.mu.Unlock()
	var found []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			found = append(found, fmt.Sprintf("%s: %v", f, err))
			continue
		}
		for _, m := range tokenPattern.FindAll(b, 5) {
			found = append(found, fmt.Sprintf("%s holds a token: %.14s...", f, m))
		}
		for _, s := range e2eSecrets {
			if strings.Contains(string(b), s) {
				found = append(found, fmt.Sprintf("%s holds the password %q", f, s))
			}
		}
	}
	return found, len(files)
}

// scanAfterSuite is TestMain's check once the end-to-end tests ran: the
// process fails when a log holds a secret.
func scanAfterSuite() bool {
	if os.Getenv("PLINTH_E2E") != "1" {
		return true
	}
	found, n := scanForSecrets()
	fmt.Printf("no secret in any log: %d files read (consoles, kept STATE)\n", n)
	for _, f := range found {
		fmt.Printf("FAIL: secret in a log: %s\n", f)
	}
	return len(found) == 0
}

// TestSecretScanFinds: the scan that runs after the suite finds a token
// and a password planted in a kept STATE file, and nothing in a clean one
// (so a suite that passes it has really been read).
func TestSecretScanFinds(t *testing.T) {
	dir := t.TempDir()
	clean := filepath.Join(dir, "clean.log")
	os.WriteFile(clean, []byte("mgmtd: audit target=/api/v1/vms/x/console/ws?ticket=REDACTED\n"), 0o644)
	kept.mu.Lock()
	saved := kept.dirs
	kept.dirs = []string{dir}
	kept.mu.Unlock()
	defer func() { kept.mu.Lock(); kept.dirs = saved; kept.mu.Unlock() }()
	if found, n := scanForSecrets(); len(found) != 0 || n < 1 {
		t.Fatalf("a clean log: %v (%d files)", found, n)
	}
	os.WriteFile(filepath.Join(dir, "audit.log"), []byte(`{"target":"/ws?access_token=plinth_s_AbCdEfGhIjKl"}`+"\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "mgmtd.log"), []byte("login user=root password="+e2ePassword+"\n"), 0o600)
	found, _ := scanForSecrets()
	if len(found) != 2 {
		t.Fatalf("planted a token and a password, found %v", found)
	}
}

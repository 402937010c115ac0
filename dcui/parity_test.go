package dcui

import (
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/mgmtd"
	"github.com/plinth/plinth/mgmtd/cli"
)

// parity is every action of the console (DCUI) with the API route and the
// CLI command that do the same: the console is one face of the API among
// others. docs/HOST-SETTINGS.md's table is made from it (go test ./dcui
// -update-parity rewrites it); TestParity holds both to the console's
// menus, mgmtd's route table and the CLI's commands.
var parity = []struct {
	where, action  string // the screen, the action as the console names it
	method, path   string // mgmtd's route (path below api.MgmtdPrefix)
	cli            string // the plinth command
	consoleOnlyWhy string // an action without a route says why
}{
	{"home", "host facts, VMs, management URL, certificate fingerprint", http.MethodGet, api.HostSettingsPath, "plinth host info", ""},
	{"home", "time: synced with whom, or NOT SYNCED and why (each NTP server's error)", http.MethodGet, api.HostTimePath, "plinth host time", ""},
	{"home", "remote logging: where to, or FAILING and why", http.MethodGet, api.HostSyslogPath, "plinth host syslog", ""},
	{"home", "SSH: a warning while it is on", http.MethodGet, api.HostSSHPath, "plinth host ssh", ""},
	{"home", "F2: log in (root password)", http.MethodPost, "/sessions", "plinth login", ""},
	{"home", "F12: Shut Down/Restart", http.MethodPost, "/host/power", "plinth host power", ""},
	{"menu", "Change Root Password", http.MethodPut, api.HostPasswordPath, "plinth host password", ""},
	{"menu", "Lockdown Mode", http.MethodPut, api.HostLockdownPath, "plinth host lockdown", ""},
	{"menu", "Configure Management Network", http.MethodPut, api.HostNetworkPath, "plinth host network set", ""},
	{"Configure Management Network", "Y: keep the change", http.MethodPost, api.HostNetConfirmPath, "plinth host network confirm", ""},
	{"Configure Management Network", "N: roll back now", http.MethodPost, api.HostNetRollbackPath, "plinth host network rollback", ""},
	{"menu", "Restart Management Network", http.MethodPost, api.HostNetRestartPath, "plinth host network restart", ""},
	{"menu", "Test Management Network", http.MethodPost, api.HostNetTestPath, "plinth host network test", ""},
	{"menu", "Network Restore Options", http.MethodPost, api.HostNetRestorePath, "plinth host network restore", ""},
	{"menu", "Troubleshooting Options", "", "", "", "a menu of the three below"},
	{"Troubleshooting Options", "Restart Management Agents", http.MethodPost, api.HostServicesRestartPath, "plinth host services", ""},
	{"Troubleshooting Options", "Local Shell", "", "", "",
		"a root shell on the host's own terminal; from remote, SSH (`PUT /api/v1/host/ssh`, then `ssh -t HOST shell`)"},
	{"Troubleshooting Options", sshItem, http.MethodPut, api.HostSSHPath, "plinth host ssh", ""},
	{"menu", "View System Logs", http.MethodGet, api.HostLogsPath + "/{name}", "plinth host logs", ""},
	{"menu", "View Support Information", http.MethodGet, "/host/hardware", "plinth host hardware", ""},
	{"menu", "Reset System Configuration", http.MethodPost, api.HostResetPath, "plinth host reset", ""},
	{"menu", "Install Plinth to Disk", http.MethodPost, "/host/install", "plinth host install", ""},
}

var updateParity = flag.Bool("update-parity", false, "rewrite the parity table in docs/HOST-SETTINGS.md")

// TestParity walks the console's menus: every action has a row, and every
// row's route is one mgmtd serves and its command one the CLI has (or the
// row says why the action is the console's alone); the table in docs is
// the one made from the rows.
func TestParity(t *testing.T) {
	rows := map[string]bool{}
	for _, p := range parity {
		rows[p.action] = true
	}
	var walked []string
	walked = append(walked, menuItems...)
	walked = append(walked, troubleItems...)
	for _, a := range walked {
		if !rows[a] {
			t.Errorf("the console's action %q has no row in the parity table (an API route and a CLI command)", a)
		}
	}
	srv, err := mgmtd.New(mgmtd.Config{StateDir: t.TempDir(), VMKernelSocket: "/nonexistent/vmkernel.sock"})
	if err != nil {
		t.Fatal(err)
	}
	router := srv.Handler()
	vars := regexp.MustCompile(`\{[a-z]+\}`)
	cmds := cli.CommandPaths()
	for _, p := range parity {
		if p.path == "" {
			if p.consoleOnlyWhy == "" {
				t.Errorf("%q has neither a route nor a reason to have none", p.action)
			}
			continue
		}
		// An unknown route answers 404 "no route" or 405 before any
		// token is asked: a known one asks for the token (401).
		req := httptest.NewRequest(p.method, api.Mgmtd(vars.ReplaceAllString(p.path, "x1")), nil)
		rec := httptest.NewRecorder()
		router.ServeHTTP(rec, req)
		if rec.Code == http.StatusNotFound || rec.Code == http.StatusMethodNotAllowed {
			t.Errorf("%q: mgmtd has no route %s %s (%d)", p.action, p.method, api.Mgmtd(p.path), rec.Code)
		}
		if !slices.Contains(cmds, strings.TrimPrefix(p.cli, "plinth ")) {
			t.Errorf("%q: the CLI has no command %q", p.action, p.cli)
		}
	}

	var b strings.Builder
	b.WriteString("| screen | console (DCUI) action | API route | CLI command |\n| --- | --- | --- | --- |\n")
	for _, p := range parity {
		route, cmd := "-", "-"
		if p.path != "" {
			route, cmd = "`"+p.method+" "+api.Mgmtd(p.path)+"`", "`"+p.cli+"`"
		} else {
			route = p.consoleOnlyWhy
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", p.where, p.action, route, cmd)
	}
	doc := filepath.Join("..", "docs", "HOST-SETTINGS.md")
	text, err := os.ReadFile(doc)
	if err != nil {
		t.Fatal(err)
	}
	const start, end = "<!-- parity table: go test ./dcui -update-parity -->\n", "<!-- end of the parity table -->"
	i, j := strings.Index(string(text), start), strings.Index(string(text), end)
	if i < 0 || j < i {
		t.Fatalf("%s lacks the parity table's markers", doc)
	}
	got := string(text[i+len(start) : j])
	if *updateParity {
		out := string(text[:i+len(start)]) + b.String() + string(text[j:])
		if err := os.WriteFile(doc, []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if got != b.String() {
		t.Errorf("the parity table in %s is not the one the console's actions make (go test ./dcui -run TestParity -update-parity rewrites it):\n%s", doc, b.String())
	}
}

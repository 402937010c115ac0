// Package cli is plinth, the command-line client of a Plinth host's remote
// API (mgmtd), for people at a terminal and for scripts. Run is the whole
// program; mgmtd/cmd/plinth only hands it the process's arguments, streams
// and signals.
//
// The first "plinth login" pins the server's certificate by its SHA-256
// fingerprint in known_hosts, as ssh does, after the user compared it with
// the one on the host's console (or passed it with --fingerprint); every
// later connection must present the same certificate. The session's token
// goes to config.json (mode 0600). Both live in $PLINTH_CONFIG_DIR, else
// ~/.config/plinth. The server is --server, else $PLINTH_SERVER, else the
// last one logged in to; $PLINTH_TOKEN, when set, is sent instead of the
// stored session token (an API token made with "plinth token create").
//
// Read commands print tables for people and, with --json, JSON for scripts.
// Exit codes are stable:
//
//	code  meaning
//	0     success
//	1     any other error (network, server, validation (422), a failed task)
//	2     usage: unknown command or flag, bad or missing argument
//	3     authentication: not logged in, session expired, wrong password (401),
//	      or not allowed (403, e.g. lockdown mode)
//	4     not found (404): no such VM, datastore, file, task or token
//	5     conflict (409): e.g. the VM is running, the name or file exists
//	6     TLS: the server's certificate does not match the pinned fingerprint,
//	      the server is not trusted yet, or the TLS handshake failed
package cli

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/term"

	"github.com/plinth/plinth/client"
)

// Env is what the CLI reads and writes besides its arguments: the process's
// streams and environment, or a test's.
type Env struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// Getenv reads an environment variable; nil is os.Getenv.
	Getenv func(string) string
}

// app is one run of the CLI.
type app struct {
	env    Env
	in     *bufio.Reader // Stdin, buffered once for every prompt
	out    io.Writer
	errw   io.Writer
	server string // --server
	json   bool   // --json
}

// Run runs the CLI with args (without the program name) and returns the
// exit code; errors have been printed on env.Stderr. ctx ends long commands
// (events, console, waits) cleanly.
func Run(ctx context.Context, env Env, args []string) int {
	if env.Getenv == nil {
		env.Getenv = os.Getenv
	}
	if env.Stdin == nil {
		env.Stdin = strings.NewReader("")
	}
	if env.Stdout == nil {
		env.Stdout = io.Discard
	}
	if env.Stderr == nil {
		env.Stderr = io.Discard
	}
	a := &app{env: env, in: bufio.NewReader(env.Stdin), out: env.Stdout, errw: env.Stderr}
	err := a.run(ctx, args)
	if errors.Is(err, flag.ErrHelp) {
		return ExitOK
	}
	if err != nil {
		// A failed login needs no advice to log in.
		printError(a.errw, err, len(args) == 0 || !slices.Contains(args, "login"))
	}
	return ExitCode(err)
}

// command is one leaf of the command tree.
type command struct {
	path  string // e.g. "vm start"
	args  string // the positional arguments' synopsis
	help  string
	run   func(a *app, ctx context.Context, args []string) error
	flags []string // flags besides --server and --json, for completion
}

// commands is the command tree, in the order "plinth help" lists it (set
// in init: help and completion refer to it).
var commands []command

func init() {
	commands = []command{
		{path: "login", help: "log in and pin the server's certificate", run: (*app).login,
			flags: []string{"--user", "--password-stdin", "--yes", "--fingerprint"}},
		{path: "logout", help: "end the session and forget its token", run: (*app).logout},
		{path: "whoami", help: "who the token belongs to", run: (*app).whoami},
		{path: "host info", help: "host facts", run: (*app).hostInfo},
		{path: "host hardware", help: "the board inventory: system, CPU, memory, NICs, disks", run: (*app).hostHardware},
		{path: "host install", help: "list the disks Plinth can be installed to, or install it to DISK", run: (*app).hostInstall,
			flags: []string{"--overwrite", "--yes"}},
		{path: "host devices", help: "the host's PCI and USB devices and whether each can be given to a VM (and why not)", run: (*app).hostDevices},
		{path: "host version", help: "the running version and both system banks, the last upgrade's result", run: (*app).hostVersion},
		{path: "host upgrade", args: "FILE", help: "upgrade the host with a signed image (plinth-VERSION.upgrade), kept only if it comes up",
			run: (*app).hostUpgrade, flags: []string{"--reboot", "--allow-downgrade"}},
		{path: "host rollback", help: "boot the standby bank from now on (or cancel an upgrade not yet booted)",
			run: (*app).hostRollback, flags: []string{"--reboot"}},
		{path: "host network", help: "the management network: saved, live, a change awaiting confirmation", run: (*app).hostNetwork},
		{path: "host network set", help: "change the management network (rolled back unless confirmed from the new address)",
			run: (*app).hostNetworkSet, flags: []string{"--nic", "--vlan", "--dhcp", "--address", "--gateway", "--ipv6", "--ipv6-address",
				"--dns", "--search", "--hostname", "--confirm-seconds"}},
		{path: "host network confirm", help: "keep the change awaiting confirmation (from its new address)", run: hostNetworkAction("confirm")},
		{path: "host network rollback", help: "roll the change awaiting confirmation back now", run: hostNetworkAction("rollback")},
		{path: "host network restart", help: "apply the saved configuration again", run: hostNetworkAction("restart")},
		{path: "host network restore", help: "back to DHCP on the first NIC with a link (to be confirmed)", run: hostNetworkAction("restore")},
		{path: "host network test", help: "ping the gateway and DNS servers, resolve the host name", run: (*app).hostNetworkTest},
		{path: "host password", help: "set the root password (every session and API token ends)", run: (*app).hostPassword,
			flags: []string{"--password-stdin"}},
		{path: "host lockdown", args: "[on|off]", help: "lockdown mode: show, turn on, or off (with the root password)",
			run: (*app).hostLockdown, flags: []string{"--password-stdin"}},
		{path: "host certificate", args: "[CERT.pem KEY.pem]", help: "the TLS certificate, or replace it", run: (*app).hostCertificate},
		{path: "host services", args: "[restart [NAME...]]", help: "the host's services, or restart them (none named: mgmtd)", run: (*app).hostServices},
		{path: "host reset", help: "forget the configuration (VMs kept) and restart", run: (*app).hostReset, flags: []string{"--confirm"}},
		{path: "host power", args: "reboot|shutdown", help: "restart or shut the host down (running VMs are shut down first)",
			run: (*app).hostPower, flags: []string{"--reason", "--confirm"}},
		{path: "host time", help: "the clock and the NTP client: servers, last sync, offset", run: (*app).hostTime},
		{path: "host time set", args: "[SERVER[:PORT]...]", help: "set the NTP servers (none: the answer file's or DHCP's), or --off",
			run: (*app).hostTimeSet, flags: []string{"--off"}},
		{path: "host time sync", help: "ask the NTP servers now and set the clock", run: (*app).hostTimeSync},
		{path: "host syslog", help: "remote logging: the syslog servers and their state", run: (*app).hostSyslog},
		{path: "host syslog set", args: "[udp|tcp|tls://HOST[:PORT]...]", help: "send the host's log lines to syslog servers (none: off)",
			run: (*app).hostSyslogSet, flags: []string{"--ca"}},
		{path: "host ssh", help: "the SSH service: on or off, port, host key, keys", run: (*app).hostSSH},
		{path: "host ssh on", help: "turn SSH on (a login gets the DCUI, or --session shell)", run: hostSSHSwitch(true),
			flags: []string{"--password-login", "--session"}},
		{path: "host ssh off", help: "turn SSH off (every SSH session ends)", run: hostSSHSwitch(false)},
		{path: "host ssh keys", help: "root's authorized SSH keys", run: (*app).hostSSHKeys},
		{path: "host ssh keys add", args: "FILE.pub|-", help: "authorize an SSH key for root", run: (*app).hostSSHKeyAdd},
		{path: "host ssh keys rm", args: "ID", help: "remove an authorized SSH key", run: (*app).hostSSHKeyRemove},
		{path: "host support-bundle", args: "[FILE|-]", help: "download a support bundle (logs, hardware, settings without secrets, VM specs, recent events)",
			run: (*app).hostSupportBundle},
		{path: "host logs", args: "[NAME]", help: "the host's logs, or the end of one", run: (*app).hostLogs, flags: []string{"--bytes"}},
		{path: "vm list", help: "list VMs", run: (*app).vmList, flags: []string{"--state"}},
		{path: "vm create", help: "define a VM from flags or a JSON spec", run: (*app).vmCreate,
			flags: []string{"--name", "--cpus", "--memory", "--disk", "--cdrom", "--nic", "--firmware",
				"--machine", "--autostart", "--serial", "--vnc", "--kernel", "--initrd", "--cmdline", "--boot", "--file", "--start",
				"--tpm", "--pci", "--usb", "--balloon", "--hugepages"}},
		{path: "vm show", args: "VM", help: "one VM's spec and state", run: (*app).vmShow},
		{path: "vm start", args: "VM...", help: "power on", run: vmPower("start")},
		{path: "vm stop", args: "VM...", help: "power off at once (pull the plug)", run: vmPower("stop")},
		{path: "vm shutdown", args: "VM...", help: "press the ACPI power button, stop hard after --timeout",
			run: vmPower("shutdown"), flags: []string{"--timeout"}},
		{path: "vm reset", args: "VM...", help: "hard reset", run: vmPower("reset")},
		{path: "vm delete", args: "VM...", help: "delete stopped VMs (--disks: and their disks)",
			run: (*app).vmDelete, flags: []string{"--disks"}},
		{path: "vm disk add", args: "VM DS:PATH", help: "plug a disk into a running VM (or add it to a stopped one)", run: (*app).vmDiskAdd},
		{path: "vm disk rm", args: "VM INDEX", help: "unplug a VM's disk (the guest must let it go)",
			run: vmDeviceRemove("disk", (*client.Client).RemoveDisk)},
		{path: "vm nic add", args: "VM SWITCH|nat", help: "plug a NIC into a running VM (or add it to a stopped one)", run: (*app).vmNICAdd},
		{path: "vm nic rm", args: "VM INDEX", help: "unplug a VM's NIC", run: vmDeviceRemove("nic", (*client.Client).RemoveNIC)},
		{path: "vm usb add", args: "VM VENDOR:PRODUCT|PORT", help: "give a host USB device to a VM (plinth host devices lists them)", run: (*app).vmUSBAdd},
		{path: "vm usb rm", args: "VM INDEX", help: "take a USB device away from a VM", run: vmDeviceRemove("usb device", (*client.Client).RemoveUSB)},
		{path: "vm balloon", args: "VM [TARGET]", help: "show a running VM's balloon, or set its target (e.g. 1G), live", run: (*app).vmBalloon},
		{path: "vm console", args: "VM", help: "attach to the serial console (Ctrl-] quits)", run: (*app).vmConsole},
		{path: "vm vnc", args: "VM", help: "serve the VM's screen on a local port for any VNC viewer (until interrupted)",
			run: (*app).vmVNC, flags: []string{"--listen"}},
		{path: "vm import", args: "DS:PATH", help: "import the VM of an OVA or OVF on a datastore (disks to qcow2; what cannot be mapped is listed)",
			run: (*app).vmImport, flags: []string{"--name", "--folder"}},
		{path: "vm export", args: "VM DS:PATH", help: "export a stopped VM as an OVA to a datastore", run: (*app).vmExport},
		{path: "vm backup", args: "VM", help: "back a VM up, running or stopped, to a datastore folder (incremental where it can be)",
			run: (*app).vmBackup, flags: []string{"--ds", "--full"}},
		{path: "vm backups", args: "[VM]", help: "list a VM's backups, or every backup in --ds DS[:FOLDER]",
			run: (*app).vmBackups, flags: []string{"--ds"}},
		{path: "vm restore", args: "BACKUP", help: "restore a backup (checksums checked) as a new VM, or --replace over its stopped VM",
			run: (*app).vmRestore, flags: []string{"--ds", "--name", "--target-ds", "--replace", "--start"}},
		{path: "vm snapshot ls", args: "VM", help: "a VM's snapshot tree: names, descriptions, times, memory or not, the current one marked",
			run: (*app).vmSnapshotList},
		{path: "vm snapshot take", args: "VM NAME", help: "snapshot a VM, running or stopped (its file systems frozen when its guest agent answers)",
			run: (*app).vmSnapshotTake, flags: []string{"--description", "--memory"}},
		{path: "vm snapshot revert", args: "VM SNAPSHOT", help: "take a VM back to a snapshot (to a memory snapshot: the guest resumes where it was)",
			run: (*app).vmSnapshotRevert, flags: []string{"--start"}},
		{path: "vm snapshot rm", args: "VM SNAPSHOT", help: "delete a snapshot (its data merged: the chain one shorter)", run: (*app).vmSnapshotRemove},
		{path: "vm clone", args: "VM NEWNAME", help: "a new VM of a stopped VM or of one of its snapshots, full or --linked",
			run: (*app).vmClone, flags: []string{"--linked", "--snapshot", "--start"}},
		{path: "vm template", args: "VM", help: "mark a VM as a template (never started; deploy from it), or --off",
			run: (*app).vmTemplate, flags: []string{"--off"}},
		{path: "vm deploy", args: "TEMPLATE", help: "make --count VMs of a template named by --name-pattern (linked clones unless --full)",
			run: (*app).vmDeploy, flags: []string{"--count", "--name-pattern", "--first", "--full", "--start"}},
		{path: "vm history", args: "VM", help: "the versions of a VM's definition: who changed it, when and why", run: (*app).vmHistory},
		{path: "vm history diff", args: "VM [FROM [TO]]", help: "what differs between two versions (default: the newest and the one before)",
			run: (*app).vmHistoryDiff},
		{path: "vm history revert", args: "VM VERSION", help: "make an earlier version the VM's definition again (--dry-run: show the change)",
			run: (*app).vmHistoryRevert, flags: []string{"--reason", "--dry-run"}},
		{path: "ds ls", args: "[DS[:PATH]]", help: "list datastores, or a datastore directory", run: (*app).dsList},
		{path: "ds fetch", args: "URL DS:PATH", help: "fetch a file (disk image, ISO, OVA) from an https:// URL into a datastore",
			run: (*app).dsFetch, flags: []string{"--sha256", "--fingerprint"}},
		{path: "ds upload", args: "FILE DS:PATH", help: "upload a file (an ISO) to a datastore",
			run: (*app).dsUpload, flags: []string{"--overwrite"}},
		{path: "ds rm", args: "DS:PATH", help: "delete a datastore file", run: (*app).dsRemove},
		{path: "task ls", help: "list tasks", run: (*app).taskList},
		{path: "task wait", args: "ID", help: "wait for a task, showing its progress", run: (*app).taskWait,
			flags: []string{"--interval"}},
		{path: "events", help: "stream VM events until interrupted", run: (*app).events},
		{path: "token ls", help: "list API tokens", run: (*app).tokenList},
		{path: "token create", args: "NAME", help: "make an API token (its secret is shown once)",
			run: (*app).tokenCreate, flags: []string{"--expires"}},
		{path: "token revoke", args: "ID...", help: "revoke API tokens", run: (*app).tokenRevoke},
		{path: "audit", help: "the audit log, newest last", run: (*app).audit, flags: []string{"--limit"}},
		{path: "completion", args: "bash|zsh", help: "print a shell completion script", run: (*app).completion},
		{path: "help", help: "this list", run: (*app).help},
	}
}

func (a *app) run(ctx context.Context, args []string) error {
	fs := a.flags("plinth")
	fs.Usage = func() { a.usage(a.errw) }
	if err := fs.Parse(args); err != nil {
		return err
	}
	args = fs.Args()
	if len(args) == 0 {
		a.usage(a.errw)
		return usageErrorf("no command")
	}
	if args[0] == "__complete" {
		return a.complete(ctx, args[1:])
	}
	// The longest command path that the arguments start with.
	var best *command
	for i := range commands {
		c := &commands[i]
		words := strings.Fields(c.path)
		if len(words) <= len(args) && strings.Join(args[:len(words)], " ") == c.path &&
			(best == nil || len(words) > len(strings.Fields(best.path))) {
			best = c
		}
	}
	if best == nil {
		// The longest run of the arguments that starts commands ("vm
		// snapshot"): what may follow it.
		for n := len(args); n > 0; n-- {
			prefix := strings.Join(args[:n], " ") + " "
			var subs []string
			for _, c := range commands {
				if rest, ok := strings.CutPrefix(c.path, prefix); ok {
					subs = append(subs, rest)
				}
			}
			if len(subs) > 0 {
				return usageErrorf("%s: want one of %s", strings.TrimSpace(prefix), strings.Join(subs, ", "))
			}
		}
		return usageErrorf("unknown command %q (see plinth help)", args[0])
	}
	return best.run(a, ctx, args[len(strings.Fields(best.path)):])
}

func (a *app) usage(w io.Writer) {
	fmt.Fprintln(w, "usage: plinth [--server HOST[:PORT]] [--json] COMMAND [ARGS]")
	fmt.Fprintln(w, "\ncommands:")
	t := newTable(w)
	for _, c := range commands {
		t.row("  "+strings.TrimSpace(c.path+" "+c.args), c.help)
	}
	t.flush()
	fmt.Fprintln(w, "\nexit codes: 0 ok, 1 error, 2 usage, 3 auth, 4 not found, 5 conflict, 6 certificate/TLS")
}

func (a *app) help(_ context.Context, args []string) error {
	a.usage(a.out)
	return nil
}

// flags makes a command's flag set with the global flags on it, so they
// may come before the command or after it.
func (a *app) flags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(a.errw)
	fs.StringVar(&a.server, "server", a.server, "the host's API: HOST[:PORT] (default port 443); else $PLINTH_SERVER, else the last login")
	fs.BoolVar(&a.json, "json", a.json, "print JSON for scripts instead of tables")
	return fs
}

// parse parses flags anywhere among the positional arguments ("--" ends the
// flags) and checks the positional count is within [min, max] (max < 0: no
// limit). Its errors are usage errors (or flag.ErrHelp).
func parse(fs *flag.FlagSet, args []string, synopsis string, min, max int) ([]string, error) {
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: plinth %s [flags] %s\n", fs.Name(), synopsis)
		fs.PrintDefaults()
	}
	var pos []string
	for len(args) > 0 {
		if err := fs.Parse(args); err != nil {
			return nil, flagErr(err)
		}
		rest := fs.Args()
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			// flag.Parse swallowed "--": all after it is positional.
			pos = append(pos, rest...)
			break
		}
		if len(rest) == 0 {
			break
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
	switch {
	case len(pos) < min:
		fs.Usage()
		return nil, usageErrorf("%s: missing argument (%s)", fs.Name(), synopsis)
	case max >= 0 && len(pos) > max:
		fs.Usage()
		return nil, usageErrorf("%s: unexpected argument %q", fs.Name(), pos[max])
	}
	return pos, nil
}

func flagErr(err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return err
	}
	return withCode(ExitUsage, err)
}

// stringList is a repeatable flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

// terminal returns the file descriptor of s when it is a terminal.
func terminal(s any) (int, bool) {
	f, ok := s.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return 0, false
	}
	return int(f.Fd()), true
}

// dir is the configuration directory.
func (a *app) dir() (string, error) { return configDir(a.env.Getenv) }

// serverAddr is the canonical host:port of --server, $PLINTH_SERVER or the
// configuration's last login.
func (a *app) serverAddr(cfg Config) (string, error) {
	s := a.server
	if s == "" {
		s = a.env.Getenv("PLINTH_SERVER")
	}
	if s == "" {
		s = cfg.Server
	}
	if s == "" {
		return "", usageErrorf("which server? pass --server HOST[:PORT], set $PLINTH_SERVER, or log in once with plinth login --server HOST")
	}
	addr, err := normalizeServer(s)
	if err != nil {
		return "", withCode(ExitUsage, err)
	}
	return addr, nil
}

// connect makes a client of the server with its pinned fingerprint and the
// stored (or $PLINTH_TOKEN) token. timeout bounds each request (0: none).
func (a *app) connect(ctx context.Context, timeout time.Duration) (*client.Client, string, error) {
	dir, err := a.dir()
	if err != nil {
		return nil, "", err
	}
	cfg, err := loadConfig(dir)
	if err != nil {
		return nil, "", err
	}
	addr, err := a.serverAddr(cfg)
	if err != nil {
		return nil, "", err
	}
	kh, err := LoadKnownHosts(filepath.Join(dir, KnownHostsFile))
	if err != nil {
		return nil, "", err
	}
	fp, _, ok := kh.Lookup(addr)
	if !ok {
		return nil, "", withCode(ExitFingerprint, fmt.Errorf(
			"%s is not a known host: run \"plinth login --server %s\" to check and pin its certificate", addr, addr))
	}
	token := a.env.Getenv("PLINTH_TOKEN")
	if token == "" {
		token = cfg.Servers[addr].Token
	}
	if token == "" {
		return nil, "", withCode(ExitAuth, fmt.Errorf("not logged in to %s: run \"plinth login --server %s\"", addr, addr))
	}
	c, err := client.New("https://"+addr, client.WithPinnedFingerprint(fp), client.WithToken(token),
		client.WithTimeout(timeout))
	if err != nil {
		return nil, "", err
	}
	return c, addr, nil
}

// defaultTimeout bounds one ordinary request.
const defaultTimeout = 60 * time.Second

// call connects and runs f; a certificate that no longer matches its pin is
// turned into the loud *MismatchError with both fingerprints.
func (a *app) call(ctx context.Context, timeout time.Duration, f func(c *client.Client) error) error {
	c, addr, err := a.connect(ctx, timeout)
	if err != nil {
		return err
	}
	// Nothing outlives the command: a Run called again and again in one
	// process (tests, a program embedding the CLI) leaves no connection
	// open to count against mgmtd's per-client bound.
	defer c.CloseIdleConnections()
	return a.explain(ctx, addr, f(c))
}

// explain replaces a fingerprint mismatch by a *MismatchError naming both
// fingerprints and the known_hosts line.
func (a *app) explain(ctx context.Context, addr string, err error) error {
	if !errors.Is(err, client.ErrFingerprintMismatch) {
		return err
	}
	dir, derr := a.dir()
	if derr != nil {
		return err
	}
	kh, kerr := LoadKnownHosts(filepath.Join(dir, KnownHostsFile))
	if kerr != nil {
		return err
	}
	presented, perr := presentedFingerprint(ctx, addr)
	if perr != nil {
		return err
	}
	if merr := kh.Check(addr, presented); merr != nil {
		return merr
	}
	return err
}

// presentedFingerprint connects to addr and returns the SHA-256
// fingerprint of the certificate it presents, trusting nothing: the caller
// compares it with the pin or shows it to the user.
func presentedFingerprint(ctx context.Context, addr string) (string, error) {
	d := tls.Dialer{Config: &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}}
	dctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	conn, err := d.DialContext(dctx, "tcp", addr)
	if err != nil {
		return "", fmt.Errorf("connect to %s: %w", addr, err)
	}
	defer conn.Close()
	certs := conn.(*tls.Conn).ConnectionState().PeerCertificates
	if len(certs) == 0 {
		return "", withCode(ExitFingerprint, fmt.Errorf("%s presented no certificate", addr))
	}
	return client.Fingerprint(certs[0].Raw), nil
}

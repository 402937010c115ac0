package cli

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/client"
)

func TestParseSize(t *testing.T) {
	for _, c := range []struct {
		in   string
		bare int64
		want int64
		bad  bool
	}{
		{"512M", 1, 512 << 20, false},
		{"2G", 1, 2 << 30, false},
		{"2g", 1, 2 << 30, false},
		{"1.5GiB", 1, 3 << 29, false},
		{"10GB", 1, 10 << 30, false},
		{"4096", 1, 4096, false},
		{"4096", 1 << 20, 4096 << 20, false},
		{"100B", 1 << 20, 100, false},
		{"1T", 1, 1 << 40, false},
		{"64K", 1, 64 << 10, false},
		{"", 1, 0, true},
		{"G", 1, 0, true},
		{"12X", 1, 0, true},
		{"-1G", 1, 0, true},
		{"1.5", 1, 0, true}, // not a whole number of bytes
		{"9999999999T", 1, 0, true},
	} {
		got, err := parseSize(c.in, c.bare)
		if (err != nil) != c.bad || (!c.bad && got != c.want) {
			t.Errorf("parseSize(%q, %d) = %d, %v; want %d (error %v)", c.in, c.bare, got, err, c.want, c.bad)
		}
	}
}

func TestParseMemoryMiB(t *testing.T) {
	for in, want := range map[string]int{"512M": 512, "2G": 2048, "512": 512, "1.5G": 1536} {
		if got, err := parseMemoryMiB(in); err != nil || got != want {
			t.Errorf("parseMemoryMiB(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"1000K", "abc", "0.5M"} {
		if got, err := parseMemoryMiB(in); err == nil {
			t.Errorf("parseMemoryMiB(%q) = %d; want an error", in, got)
		}
	}
}

func TestNormalizeServer(t *testing.T) {
	for in, want := range map[string]string{
		"plinth1":                   "plinth1:443",
		"Plinth1.Example.com:8443":  "plinth1.example.com:8443",
		"https://10.0.0.5":          "10.0.0.5:443",
		"https://10.0.0.5:8443/":    "10.0.0.5:8443",
		"[::1]:8443":                "[::1]:8443",
		"::1":                       "[::1]:443",
		"[fe80::1]":                 "[fe80::1]:443",
		" 127.0.0.1:8443 ":          "127.0.0.1:8443",
		"https://host.example:9000": "host.example:9000",
	} {
		if got, err := normalizeServer(in); err != nil || got != want {
			t.Errorf("normalizeServer(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "http://host", "host:0", "host:99999", "https://host/api", "user@host", "host:port"} {
		if got, err := normalizeServer(in); err == nil {
			t.Errorf("normalizeServer(%q) = %q; want an error", in, got)
		}
	}
}

const (
	fpA = "AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99"
	fpB = "11:22:33:44:55:66:77:88:99:00:AA:BB:CC:DD:EE:FF:11:22:33:44:55:66:77:88:99:00:AA:BB:CC:DD:EE:FF"
)

func TestNormalizeFingerprint(t *testing.T) {
	for _, in := range []string{fpA, strings.ToLower(fpA), strings.ReplaceAll(fpA, ":", ""), "SHA256:" + fpA, " " + fpA + "\n"} {
		if got, err := normalizeFingerprint(in); err != nil || got != fpA {
			t.Errorf("normalizeFingerprint(%q) = %q, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "AA:BB", fpA + ":00", strings.Replace(fpA, "AA", "ZZ", 1)} {
		if _, err := normalizeFingerprint(in); err == nil {
			t.Errorf("normalizeFingerprint(%q): want an error", in)
		}
	}
}

// TestKnownHosts covers first use, a match, a mismatch (exit 6, both
// fingerprints and how to remove the line), and persistence.
func TestKnownHosts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", KnownHostsFile)
	kh, err := LoadKnownHosts(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := kh.Check("h:443", fpA); !errors.Is(err, ErrUnknownHost) {
		t.Fatalf("first use: %v; want ErrUnknownHost", err)
	}
	if err := kh.Add("h:443", strings.ToLower(fpA)); err != nil {
		t.Fatal(err)
	}
	if err := kh.Add("other:8443", fpB); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("known_hosts mode: %v, %v", fi, err)
	}
	b, _ := os.ReadFile(path)
	if want := "h:443 " + fpA + "\nother:8443 " + fpB + "\n"; string(b) != want {
		t.Errorf("known_hosts:\n%s\nwant\n%s", b, want)
	}

	kh, err = LoadKnownHosts(path) // from the file
	if err != nil {
		t.Fatal(err)
	}
	if err := kh.Check("h:443", strings.ReplaceAll(fpA, ":", "")); err != nil {
		t.Errorf("match: %v", err)
	}
	err = kh.Check("other:8443", fpA)
	var mm *MismatchError
	if !errors.As(err, &mm) || mm.Pinned != fpB || mm.Presented != fpA || mm.Line != 2 {
		t.Fatalf("mismatch: %#v", err)
	}
	if code := ExitCode(err); code != ExitFingerprint {
		t.Errorf("mismatch exit code %d, want %d", code, ExitFingerprint)
	}
	msg := err.Error()
	for _, want := range []string{"WARNING", fpA, fpB, "line 2 of " + path, "sed -i '2d'", "plinth login --server other:8443"} {
		if !strings.Contains(msg, want) {
			t.Errorf("mismatch message lacks %q:\n%s", want, msg)
		}
	}
	if err := kh.Add("other:8443", fpA); err == nil {
		t.Error("Add replaced a pin")
	}

	// A damaged file is an error naming the line, never an empty list.
	os.WriteFile(path, []byte("# comment\n\nh:443 "+fpA+"\nh2:443 nothex\n"), 0o600)
	if _, err := LoadKnownHosts(path); err == nil || !strings.Contains(err.Error(), "line 4") {
		t.Errorf("damaged known_hosts: %v; want an error naming line 4", err)
	}
}

func TestParseInterspersed(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.SetOutput(new(bytes.Buffer))
	j := fs.Bool("json", false, "")
	n := fs.String("n", "", "")
	pos, err := parse(fs, []string{"a", "--json", "b", "-n", "v", "--", "--c", "-d"}, "A...", 1, -1)
	if err != nil || !*j || *n != "v" || strings.Join(pos, " ") != "a b --c -d" {
		t.Errorf("parse = %q, %v (json %v, n %q)", pos, err, *j, *n)
	}
	for _, c := range []struct {
		args     []string
		min, max int
	}{
		{[]string{}, 1, 1},
		{[]string{"a", "b"}, 1, 1},
		{[]string{"--nope"}, 0, 0},
		{[]string{"-n"}, 0, 0},
	} {
		_, err := parse(fs, c.args, "A", c.min, c.max)
		if ExitCode(err) != ExitUsage {
			t.Errorf("parse(%q, %d, %d): %v; want a usage error", c.args, c.min, c.max, err)
		}
	}
	if _, err := parse(fs, []string{"-h"}, "A", 0, 1); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: %v", err)
	}
}

// run runs the CLI with a fresh configuration directory unless env says.
func run(t *testing.T, env map[string]string, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Run(context.Background(), Env{Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errb,
		Getenv: func(k string) string { return env[k] }}, args)
	return code, out.String(), errb.String()
}

func TestUsageExitCodes(t *testing.T) {
	env := map[string]string{"PLINTH_CONFIG_DIR": t.TempDir()}
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{nil, ExitUsage, "usage: plinth"},
		{[]string{"frobnicate"}, ExitUsage, "unknown command"},
		{[]string{"vm"}, ExitUsage, "want one of list, create"},
		{[]string{"vm", "bogus"}, ExitUsage, "want one of"},
		{[]string{"vm", "show"}, ExitUsage, "missing argument"},
		{[]string{"vm", "list", "--nope"}, ExitUsage, "flag provided but not defined"},
		{[]string{"vm", "list"}, ExitUsage, "which server?"},
		{[]string{"--server", "h:0", "vm", "list"}, ExitUsage, "bad port"},
		{[]string{"--server", "h", "vm", "list"}, ExitFingerprint, "not a known host"},
		{[]string{"completion", "fish"}, ExitUsage, "want bash or zsh"},
		{[]string{"vm", "create", "--server", "h"}, ExitUsage, "--name is required"},
		{[]string{"vm", "create", "--name", "x", "--memory", "lots"}, ExitUsage, "--memory"},
		{[]string{"ds", "rm", "nocolon"}, ExitUsage, "DATASTORE:PATH"},
		{[]string{"ds", "rm", "ds1:../etc"}, ExitUsage, ".."},
		{[]string{"token", "create", "x", "--expires", "soon"}, ExitUsage, "--expires"},
		{[]string{"vm", "snapshot"}, ExitUsage, "vm snapshot: want one of ls, take, revert, rm"},
		{[]string{"vm", "snapshot", "bogus"}, ExitUsage, "vm snapshot: want one of ls"},
		{[]string{"vm", "snapshot", "take", "x"}, ExitUsage, "missing argument (VM NAME)"},
		{[]string{"vm", "snapshot", "take", "x", "y", "--description", "a\x01b"}, ExitUsage, "control character"},
		{[]string{"vm", "snapshot", "revert", "x"}, ExitUsage, "missing argument (VM SNAPSHOT)"},
		{[]string{"vm", "clone", "x", "bad/name"}, ExitUsage, "name"},
		{[]string{"vm", "deploy", "t"}, ExitUsage, "name_pattern"},
		{[]string{"vm", "deploy", "t", "--count", "0", "--name-pattern", "web-{n}"}, ExitUsage, "count"},
		{[]string{"vm", "history", "diff", "x", "one"}, ExitUsage, "version \"one\""},
		{[]string{"vm", "history", "revert", "x"}, ExitUsage, "missing argument (VM VERSION)"},
		{[]string{"help"}, ExitOK, ""},
		{[]string{"vm", "list", "--help"}, ExitOK, ""},
	} {
		code, _, stderr := run(t, env, "", c.args...)
		if code != c.code || !strings.Contains(stderr, c.want) {
			t.Errorf("plinth %q: exit %d, stderr %q; want exit %d and %q", c.args, code, stderr, c.code, c.want)
		}
	}
	// A known host but no token: exit 3.
	kh, _ := LoadKnownHosts(filepath.Join(env["PLINTH_CONFIG_DIR"], KnownHostsFile))
	kh.Add("h:443", fpA)
	if code, _, stderr := run(t, env, "", "--server", "h", "vm", "list"); code != ExitAuth || !strings.Contains(stderr, "not logged in") {
		t.Errorf("no token: exit %d, %q", code, stderr)
	}
}

func TestExitCode(t *testing.T) {
	for _, c := range []struct {
		err  error
		want int
	}{
		{nil, 0},
		{errors.New("x"), 1},
		{&client.Error{Status: 401}, 3},
		{fmt.Errorf("wrapped: %w", &client.Error{Status: 403}), 3},
		{&client.Error{Status: 404}, 4},
		{&client.Error{Status: 409}, 5},
		{&client.Error{Status: 422}, 1},
		{&client.Error{Status: 500}, 1},
		{fmt.Errorf("get: %w", client.ErrFingerprintMismatch), 6},
		{usageErrorf("x"), 2},
	} {
		if got := ExitCode(c.err); got != c.want {
			t.Errorf("ExitCode(%v) = %d, want %d", c.err, got, c.want)
		}
	}
}

func TestPrintErrorShowsProblemAndFields(t *testing.T) {
	var b bytes.Buffer
	printError(&b, &client.Error{Status: 422, Problem: api.Problem{Title: "Unprocessable Entity", Status: 422,
		Detail: "invalid VM spec", Field: "memory_mib", Problems: []api.FieldProblem{
			{Field: "memory_mib", Message: "must be between 16 and 4194304"}, {Field: "name", Message: "required"}}}}, true)
	want := "plinth: 422 Unprocessable Entity: invalid VM spec (field memory_mib)\n" +
		"  memory_mib: must be between 16 and 4194304\n  name: required\n"
	if b.String() != want {
		t.Errorf("printError:\n%s\nwant\n%s", b.String(), want)
	}
}

func TestVMCreateSpec(t *testing.T) {
	f := vmCreateFlags{name: "web1", cpus: 2, memory: "2G", firmware: "uefi", serial: true, autostart: true,
		disks:  stringList{"ds1:web1/disk0.qcow2,size=10G", "ds1:data.raw,format=raw,bus=sata"},
		cdrom:  "ds1:iso/debian.iso",
		nics:   stringList{"nat", "lan,model=e1000e,mac=02:00:00:00:00:01"},
		kernel: "ds1:vmlinuz", initrd: "ds1:initrd.img", cmdline: "console=ttyS0", boot: "cdrom,disk"}
	spec, mk, err := f.spec(nil)
	if err != nil {
		t.Fatal(err)
	}
	want := api.VMSpec{Name: "web1", CPU: api.CPU{Sockets: 1, Cores: 2, Threads: 1}, MemoryMiB: 2048,
		Firmware: "uefi", Serial: true, Autostart: api.Autostart{Enabled: true},
		Disks: []api.Disk{{Datastore: "ds1", Path: "web1/disk0.qcow2"},
			{Datastore: "ds1", Path: "data.raw", Format: "raw", Bus: "sata"}},
		CDROM: &api.CDROM{Datastore: "ds1", Path: "iso/debian.iso"},
		NICs:  []api.NIC{{NAT: true}, {Switch: "lan", Model: "e1000e", MAC: "02:00:00:00:00:01"}},
		Kernel: &api.DirectBoot{Datastore: "ds1", Kernel: "vmlinuz", Initrd: "initrd.img",
			Cmdline: "console=ttyS0"},
		BootOrder: []string{"cdrom", "disk"}}
	if !reflect.DeepEqual(spec, want) {
		t.Errorf("spec\n%+v\nwant\n%+v", spec, want)
	}
	if len(mk) != 1 || mk[0].size != 10<<30 || mk[0].disk.Path != "web1/disk0.qcow2" {
		t.Errorf("disks to make: %+v", mk)
	}

	for _, bad := range []vmCreateFlags{
		{cpus: 1, memory: "1G"}, // no name
		{name: "x", cpus: 0, memory: "1G"},
		{name: "x", cpus: 1, memory: "1G", disks: stringList{"ds1"}},
		{name: "x", cpus: 1, memory: "1G", disks: stringList{"ds1:a,speed=9"}},
		{name: "x", cpus: 1, memory: "1G", nics: stringList{"bad name"}},
		{name: "x", cpus: 1, memory: "1G", initrd: "ds1:i"},
		{name: "x", cpus: 1, memory: "1G", kernel: "ds1:k", initrd: "ds2:i"},
		{file: "spec.json", name: "x", set: map[string]bool{"file": true, "name": true}},
	} {
		if _, _, err := bad.spec(func(string) ([]byte, error) { return []byte("{}"), nil }); ExitCode(err) != ExitUsage {
			t.Errorf("spec(%+v): %v; want a usage error", bad, err)
		}
	}

	// The guest hardware of issue 18.
	hw := vmCreateFlags{name: "win11", cpus: 2, memory: "4G", firmware: "uefi-secure", tpm: true, hugePages: true, balloon: "1G",
		pcis: stringList{"0000:03:00.0", "10DE:1EB8"}, usbs: stringList{"0781:5567", "1-2.3"}}
	spec, _, err = hw.spec(nil)
	if err != nil {
		t.Fatal(err)
	}
	if !spec.TPM || !spec.HugePages || spec.Balloon == nil || spec.Balloon.MinMiB != 1024 || spec.Firmware != "uefi-secure" ||
		!reflect.DeepEqual(spec.PCIDevices, []api.PCIPassthrough{{Address: "0000:03:00.0"}, {VendorID: "10de", DeviceID: "1eb8"}}) ||
		!reflect.DeepEqual(spec.USBDevices, []api.USBPassthrough{{VendorID: "0781", ProductID: "5567"}, {Port: "1-2.3"}}) {
		t.Errorf("hardware spec: %+v", spec)
	}
	for _, bad := range []string{"1-0", "78:5567", "usb1"} {
		if _, err := parseUSB(bad); ExitCode(err) != ExitUsage {
			t.Errorf("parseUSB(%q): %v; want a usage error", bad, err)
		}
	}

	// --file: strict JSON.
	file := vmCreateFlags{file: "s.json", set: map[string]bool{"file": true, "start": true}}
	spec, _, err = file.spec(func(string) ([]byte, error) { return []byte(`{"name":"f","memory_mib":256}`), nil })
	if err != nil || spec.Name != "f" || spec.MemoryMiB != 256 {
		t.Errorf("--file: %+v, %v", spec, err)
	}
	if _, _, err := file.spec(func(string) ([]byte, error) { return []byte(`{"name":"f","memroy":1}`), nil }); err == nil ||
		!strings.Contains(err.Error(), "memroy") {
		t.Errorf("--file with an unknown field: %v", err)
	}
}

func TestTables(t *testing.T) {
	started := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	vms := []api.VM{
		{Spec: api.VMSpec{Name: "web1", ID: "0e4c3b4e-6a43-4d8e-9d62-1f0f7f1d1c11", CPU: api.CPU{Sockets: 1, Cores: 2, Threads: 1},
			MemoryMiB: 2048, Firmware: "uefi", Autostart: api.Autostart{Enabled: true}},
			Runtime: api.VMRuntime{State: api.VMRunning, PID: 42, StartedAt: &started}},
		{Spec: api.VMSpec{Name: "db", ID: "5f2f0a55-1d1e-4c6a-8f3b-2a6e0d0c9b22", CPU: api.CPU{Sockets: 1, Cores: 1, Threads: 1},
			MemoryMiB: 512, Firmware: "bios"}, Runtime: api.VMRuntime{State: api.VMStopped}},
	}
	var b bytes.Buffer
	if err := printVMTable(&b, vms); err != nil {
		t.Fatal(err)
	}
	want := `NAME  ID                                    STATE    CPUS  MEMORY   FIRMWARE  AUTOSTART
web1  0e4c3b4e-6a43-4d8e-9d62-1f0f7f1d1c11  running  2     2.0 GiB  uefi      yes
db    5f2f0a55-1d1e-4c6a-8f3b-2a6e0d0c9b22  stopped  1     512 MiB  bios      no
`
	if b.String() != want {
		t.Errorf("vm table:\n%s\nwant\n%s", b.String(), want)
	}

	b.Reset()
	printEntries(&b, []api.DatastoreEntry{
		{Name: "z.iso", Kind: api.EntryFile, SizeBytes: 3 << 20, Format: api.FileFormatISO},
		{Name: "vms", Kind: api.EntryDir},
		{Name: "a\tb", Kind: api.EntryFile, SizeBytes: 10},
	})
	want = `NAME   KIND  SIZE     FORMAT
vms/   dir   -        -
a b    file  10 B     -
z.iso  file  3.0 MiB  iso
`
	if b.String() != want {
		t.Errorf("entries table:\n%s\nwant\n%s", b.String(), want)
	}

	b.Reset()
	printVM(&b, vms[0])
	for _, s := range []string{"state       running (pid 42)", "memory      2.0 GiB", "autostart   yes (order 0, delay 0s)"} {
		if !strings.Contains(b.String(), s) {
			t.Errorf("vm show lacks %q:\n%s", s, b.String())
		}
	}

	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 1536: "1.5 KiB",
		100 << 20: "100 MiB", 5 << 40: "5.0 TiB"} {
		if got := humanBytes(n); got != want {
			t.Errorf("humanBytes(%d) = %q, want %q", n, got, want)
		}
	}
	for d, want := range map[time.Duration]string{45 * time.Second: "45s", 192 * time.Second: "3m12s",
		5*time.Hour + 3*time.Minute: "5h3m", 12*24*time.Hour + 4*time.Hour: "12d4h"} {
		if got := humanDuration(d); got != want {
			t.Errorf("humanDuration(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestProgressLinesWithoutTerminal(t *testing.T) {
	var b bytes.Buffer
	p := &progress{w: &b, label: "upload ds1:a.iso", total: 1000, start: time.Now(), lastPct: -1}
	for done := int64(0); done <= 1000; done += 50 {
		p.set(done, 1000)
	}
	p.finish(true)
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 11 || lines[0] != "upload ds1:a.iso: 0% (0 B of 1000 B)" || lines[10] != "upload ds1:a.iso: 100% (1000 B of 1000 B)" {
		t.Errorf("progress lines:\n%s", b.String())
	}
	p = &progress{label: "x", total: 200, done: 50, start: time.Now()}
	if got := p.bar(10); !strings.HasPrefix(got, "x [==>       ]  25%  50 B/200 B") {
		t.Errorf("bar = %q", got)
	}
}

func TestCopyUntilEscape(t *testing.T) {
	var b bytes.Buffer
	if err := copyUntilEscape(&b, strings.NewReader("ls\r\x1dnot sent")); err != nil || b.String() != "ls\r" {
		t.Errorf("copyUntilEscape: %q, %v", b.String(), err)
	}
	b.Reset()
	if err := copyUntilEscape(&b, strings.NewReader("all of it")); err != nil || b.String() != "all of it" {
		t.Errorf("copyUntilEscape to EOF: %q, %v", b.String(), err)
	}
}

func TestCompletionScripts(t *testing.T) {
	for _, sh := range []string{"bash", "zsh"} {
		code, out, stderr := run(t, nil, "", "completion", sh)
		if code != 0 || !strings.Contains(out, "complete -o default -F _plinth_complete plinth") ||
			!strings.Contains(out, `"vm create") flags+=" --name --cpus --memory`) {
			t.Fatalf("completion %s: exit %d %s\n%s", sh, code, stderr, out)
		}
		if _, err := exec.LookPath(sh); err != nil {
			continue
		}
		cmd := exec.Command(sh, "-n")
		cmd.Stdin = strings.NewReader(out)
		if msg, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("%s -n: %v\n%s", sh, err, msg)
		}
	}
	// The completed words of "plinth vm <TAB>", run through bash itself.
	if _, err := exec.LookPath("bash"); err == nil {
		_, script, _ := run(t, nil, "", "completion", "bash")
		cmd := exec.Command("bash", "-c", script+`
COMP_WORDS=(plinth vm ""); COMP_CWORD=2; _plinth_complete; echo "${COMPREPLY[*]}"
COMP_WORDS=(plinth vm create --me); COMP_CWORD=3; _plinth_complete; echo "${COMPREPLY[*]}"
COMP_WORDS=(plinth vm snapshot ""); COMP_CWORD=3; _plinth_complete; echo "snapshot: ${COMPREPLY[*]}"
COMP_WORDS=(plinth vm snapshot take web1 --me); COMP_CWORD=5; _plinth_complete; echo "take: ${COMPREPLY[*]}"
COMP_WORDS=(plinth host ssh keys ""); COMP_CWORD=4; _plinth_complete; echo "keys: ${COMPREPLY[*]}"`)
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "list create show start") || !strings.Contains(string(out), "--memory") ||
			!strings.Contains(string(out), "snapshot: ls take revert rm\n") || !strings.Contains(string(out), "take: --memory\n") ||
			!strings.Contains(string(out), "keys: add rm\n") || strings.Contains(string(out), "snapshot ls snapshot") {
			t.Errorf("bash completion: %v\n%s", err, out)
		}
	}
}

// TestLoginRefusesChangedCertificate: a pinned host presenting another
// certificate is refused with exit 6, before any password is sent.
func TestLoginRefusesChangedCertificate(t *testing.T) {
	var posted bool
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { posted = true }))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "https://")
	dir := t.TempDir()
	env := map[string]string{"PLINTH_CONFIG_DIR": dir}
	kh, _ := LoadKnownHosts(filepath.Join(dir, KnownHostsFile))
	if err := kh.Add(addr, fpA); err != nil {
		t.Fatal(err)
	}
	presented := client.Fingerprint(srv.Certificate().Raw)

	code, _, stderr := run(t, env, "pw\n", "login", "--server", addr, "--yes", "--password-stdin")
	if code != ExitFingerprint || !strings.Contains(stderr, fpA) || !strings.Contains(stderr, presented) ||
		!strings.Contains(stderr, "HAS CHANGED") {
		t.Errorf("login to a changed host: exit %d\n%s", code, stderr)
	}
	if posted {
		t.Error("the password was sent to a host with a changed certificate")
	}

	// Unknown host, no terminal, neither --yes nor --fingerprint: exit 6
	// showing the fingerprint to compare.
	os.Remove(filepath.Join(dir, KnownHostsFile))
	code, _, stderr = run(t, env, "pw\n", "login", "--server", addr)
	if code != ExitFingerprint || !strings.Contains(stderr, presented) || !strings.Contains(stderr, "--fingerprint") {
		t.Errorf("login to an unknown host without a terminal: exit %d\n%s", code, stderr)
	}
	// A wrong --fingerprint: exit 6, nothing pinned.
	code, _, stderr = run(t, env, "pw\n", "login", "--server", addr, "--fingerprint", fpB)
	if code != ExitFingerprint || !strings.Contains(stderr, fpB) {
		t.Errorf("login with a wrong --fingerprint: exit %d\n%s", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, KnownHostsFile)); err == nil {
		t.Error("a refused certificate was pinned")
	}
	if posted {
		t.Error("the password was sent to an untrusted host")
	}
}

// Command plinth-e2e runs the appliance tests for make e2e: `go test
// -json` on the package, its output printed as `go test -v` prints it. A
// test that failed because the test rig's QEMU lost the appliance (a
// triple fault, or its kernel's stack corrupted: the harness says so with
// a line starting with qemutest.RigLostGuest) is run again, alone, up to
// -reruns times, and the run says which and how that went; any other
// failure fails the run at once.
//
// The appliance's VMs run nested on the rig's TCG emulation of AMD's SVM,
// and there the appliance's kernel now and then triple-faults, printing
// nothing, or panics on a corrupted stack (docs/PERFORMANCE.md, "The
// vanishing appliance"): about one nested-guest test in four loses it in
// a full run. Running it again is what a person would do by hand; a test
// lost more than -reruns times in a row fails.
//
//	go run ./qemu-test/cmd/plinth-e2e -timeout 60m -reruns 3 -rerun-timeout 20m -run '^TestAppliance' ./qemu-test/
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strings"

	qemutest "github.com/plinth/plinth/qemu-test"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "plinth-e2e: %v\n", err)
		os.Exit(1)
	}
}

func run(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("plinth-e2e", flag.ContinueOnError)
	timeout := fs.String("timeout", "75m", "go test's -timeout")
	reruns := fs.Int("reruns", 1, "how many more times a test the rig lost the appliance in runs")
	rerunTimeout := fs.String("rerun-timeout", "20m", "go test's -timeout for each run again")
	pattern := fs.String("run", "^TestAppliance", "go test's -run")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 || *reruns < 0 {
		return errors.New("want one package (e.g. ./qemu-test/) and -reruns of 0 or more")
	}
	pkg := fs.Arg(0)
	res, err := goTest(out, pkg, *pattern, *timeout)
	if err != nil {
		return err
	}
	var lost []string // every test the rig lost, in the order they were
	for n := 1; !res.passed(); n++ {
		again, others := res.rigLost()
		if len(others) > 0 || len(again) == 0 {
			if n > 1 {
				return fmt.Errorf("failed on run %d, after the rig lost the appliance: %s", n, res.describe())
			}
			return fmt.Errorf("failed: %s", res.describe())
		}
		lost = append(lost, again...)
		if n > *reruns {
			return fmt.Errorf("the rig lost the appliance %d times in a row in %s", n, strings.Join(again, ", "))
		}
		fmt.Fprintf(out, "plinth-e2e: the rig lost the appliance in %s (%q above); running %s again (run %d)\n",
			strings.Join(again, ", "), qemutest.RigLostGuest, plural(len(again), "it", "them"), n+1)
		if res, err = goTest(out, pkg, "^("+strings.Join(quoteAll(again), "|")+")$", *rerunTimeout); err != nil {
			return err
		}
	}
	if len(lost) > 0 {
		fmt.Fprintf(out, "plinth-e2e: passed; the rig lost the appliance %d %s on the way: %s\n",
			len(lost), plural(len(lost), "time", "times"), strings.Join(lost, ", "))
	}
	return nil
}

// result is what one `go test -json` run said: each top-level test's
// output, which failed, and the package's own output (outside any test:
// a build error, a panic, the deadline's).
type result struct {
	output     map[string]*strings.Builder
	failed     map[string]bool
	pkgOutput  strings.Builder
	exitStatus int
}

func (r result) passed() bool { return r.exitStatus == 0 && len(r.failed) == 0 }

// rigLost splits the failed tests into those whose output has the
// harness's line for a guest the rig lost and the others; a run that
// failed outside its tests (no failed test, or a panic: the deadline's
// among them) counts as an other.
func (r result) rigLost() (rig, others []string) {
	for name := range r.failed {
		if strings.Contains(r.output[name].String(), qemutest.RigLostGuest) {
			rig = append(rig, name)
		} else {
			others = append(others, name)
		}
	}
	if len(r.failed) == 0 || strings.Contains(r.pkgOutput.String(), "panic: ") {
		others = append(others, "(the package itself)")
	}
	sort.Strings(rig)
	sort.Strings(others)
	return rig, others
}

func (r result) describe() string {
	var names []string
	for n := range r.failed {
		names = append(names, n)
	}
	sort.Strings(names)
	if len(names) == 0 {
		return fmt.Sprintf("go test exited with status %d", r.exitStatus)
	}
	return strings.Join(names, ", ")
}

// event is one line of `go test -json` (cmd/test2json).
type event struct {
	Action string
	Test   string
	Output string
}

// goTest runs go test -json on pkg with pattern, printing the tests'
// output as it comes.
func goTest(out io.Writer, pkg, pattern, timeout string) (result, error) {
	cmd := exec.Command("go", "test", "-count=1", "-json", "-timeout", timeout, "-run", pattern, pkg)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return result{}, err
	}
	if err := cmd.Start(); err != nil {
		return result{}, fmt.Errorf("go test: %w", err)
	}
	r, rerr := read(stdout, out)
	werr := cmd.Wait()
	var exit *exec.ExitError
	switch {
	case errors.As(werr, &exit):
		r.exitStatus = exit.ExitCode()
	case werr != nil:
		return r, fmt.Errorf("go test: %w", werr)
	}
	if rerr != nil {
		return r, fmt.Errorf("reading go test's output: %w", rerr)
	}
	return r, nil
}

// read takes go test's JSON events from in, writes their output to out,
// and gathers the result.
func read(in io.Reader, out io.Writer) (result, error) {
	r := result{output: map[string]*strings.Builder{}, failed: map[string]bool{}}
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var ev event
		if err := json.Unmarshal(line, &ev); err != nil || ev.Action == "" {
			// Not an event (go test prints a build failure as text).
			fmt.Fprintf(out, "%s\n", line)
			continue
		}
		io.WriteString(out, ev.Output)
		top, _, _ := strings.Cut(ev.Test, "/")
		if top == "" {
			r.pkgOutput.WriteString(ev.Output)
			continue
		}
		if r.output[top] == nil {
			r.output[top] = &strings.Builder{}
		}
		r.output[top].WriteString(ev.Output)
		if ev.Action == "fail" && top == ev.Test {
			r.failed[top] = true
		}
	}
	return r, sc.Err()
}

var testName = regexp.MustCompile(`^Test[A-Za-z0-9_]*$`)

// quoteAll makes test names safe in a -run pattern (they are Go
// identifiers already; anything else is quoted).
func quoteAll(names []string) []string {
	q := make([]string, len(names))
	for i, n := range names {
		if testName.MatchString(n) {
			q[i] = n
		} else {
			q[i] = regexp.QuoteMeta(n)
		}
	}
	return q
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// Command dcui measures how long the DCUI takes to draw its home screen and
// how much memory it keeps: the real dcui binary against a real vmkernel and
// mgmtd (built from this tree, in temporary directories), in an 80x24 tmux
// pane. Each run respawns the pane with the DCUI, and with a shell that
// prints the same words at once (tmux's respawn, its drawing and the polling:
// the floor), interleaved, after one discarded warm-up of each; the DCUI's
// own start is the median of its runs minus the floor's. Resident memory is
// read from /proc after a refresh. It prints a markdown section for
// docs/PERFORMANCE.md.
//
//	go run ./bench/dcui -n 11
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/plinth/plinth/bench/stats"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		log.Fatal(err)
	}
}

// homeScreen is on the DCUI's first frame; facts is drawn once its first
// refresh has asked vmkernel.
const (
	homeScreen = "Customize System"
	facts      = "VMs:        0 running, 0 total"
)

func run(args []string) error {
	fs := flag.NewFlagSet("dcui", flag.ContinueOnError)
	n := fs.Int("n", 11, "measured runs of each (after one warm-up each)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if _, err := exec.LookPath("tmux"); err != nil {
		return errors.New("tmux is not installed (make deps)")
	}
	base, err := os.MkdirTemp("", "plinth-dcuibench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(base)
	if err := os.Chmod(base, 0o755); err != nil { // vmkernel's run root must let VM users through
		return err
	}
	bin := filepath.Join(base, "bin")
	for _, pkg := range []string{"dcui", "vmkernel", "mgmtd"} {
		path := map[string]string{"dcui": "./dcui/cmd/dcui", "vmkernel": "./vmkernel/cmd/vmkernel", "mgmtd": "./mgmtd/cmd/mgmtd"}[pkg]
		if out, err := exec.Command("go", "build", "-o", filepath.Join(bin, pkg), path).CombinedOutput(); err != nil {
			return fmt.Errorf("go build %s: %v\n%s", path, err, out)
		}
	}
	state, runDir := filepath.Join(base, "state"), filepath.Join(base, "run")
	stop, err := startServices(bin, state, runDir)
	defer stop()
	if err != nil {
		return err
	}
	sock := fmt.Sprintf("plinth-dcuibench-%d", os.Getpid())
	tmux := func(args ...string) ([]byte, error) {
		return exec.Command("tmux", append([]string{"-L", sock}, args...)...).CombinedOutput()
	}
	if out, err := tmux("-f", "/dev/null", "new-session", "-d", "-s", "b", "-x", "80", "-y", "24", "sleep 600"); err != nil {
		return fmt.Errorf("tmux: %v: %s", err, out)
	}
	defer tmux("kill-server")
	wait := func(want string, timeout time.Duration) (string, error) {
		deadline := time.Now().Add(timeout)
		for {
			b, _ := tmux("capture-pane", "-p", "-t", "b")
			if strings.Contains(string(b), want) {
				return string(b), nil
			}
			if time.Now().After(deadline) {
				return "", fmt.Errorf("the pane did not show %q within %v:\n%s", want, timeout, b)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	respawn := func(cmd string) (time.Duration, error) {
		t0 := time.Now()
		if out, err := tmux("respawn-pane", "-k", "-t", "b", "-e", "TERM=xterm-256color", cmd+"; sleep 600"); err != nil {
			return 0, fmt.Errorf("tmux respawn-pane: %v: %s", err, out)
		}
		_, err := wait(homeScreen, 30*time.Second)
		return time.Since(t0), err
	}
	dcuiCmd := strings.Join([]string{filepath.Join(bin, "dcui"), "-run", runDir}, " ")
	var dcuiT, floorT []time.Duration
	for i := 0; i <= *n; i++ {
		f, err := respawn("printf '" + homeScreen + "\\n'")
		if err != nil {
			return err
		}
		d, err := respawn(dcuiCmd)
		if err != nil {
			return err
		}
		if _, err := wait(facts, 30*time.Second); err != nil {
			return err
		}
		if i > 0 { // the first of each is a warm-up
			floorT, dcuiT = append(floorT, f), append(dcuiT, d)
		}
		log.Printf("run %d: floor %v, dcui %v", i, f.Round(time.Millisecond), d.Round(time.Millisecond))
	}
	time.Sleep(6 * time.Second) // through a refresh, for a fair memory figure
	pane, _ := tmux("display", "-p", "-t", "b", "#{pane_pid}")
	rss, err := childRSS(strings.TrimSpace(string(pane)), "dcui")
	if err != nil {
		return err
	}
	md, mf := stats.Median(dcuiT), stats.Median(floorT)
	fmt.Printf("## DCUI start and memory (%s, `go run ./bench/dcui -n %d`)\n\n", time.Now().Format("2006-01-02"), *n)
	fmt.Printf("- Machine: %d CPUs, shared with other builds and tests (load average at the end: %s)\n", runtime.NumCPU(), loadAverage())
	fmt.Printf("- The real `dcui` binary against a real vmkernel and mgmtd in an 80x24 tmux pane; runs interleaved with the floor (a shell printing the same words), one warm-up of each discarded.\n\n")
	fmt.Println("| run | floor (ms) | home screen drawn (ms) |")
	fmt.Println("| --- | ---: | ---: |")
	for i := range dcuiT {
		fmt.Printf("| %d | %.0f | %.0f |\n", i+1, ms(floorT[i]), ms(dcuiT[i]))
	}
	fmt.Printf("| **median** | **%.0f** | **%.0f** |\n\n", ms(mf), ms(md))
	fmt.Printf("The DCUI's own start (medians, home screen − floor): **%.0f ms** (target 200 ms: %s); resident memory after a refresh: **%.1f MiB** (target 32 MiB: %s).\n",
		ms(md-mf), met(md-mf <= 200*time.Millisecond), float64(rss)/1024, met(rss <= 32<<10))
	return nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func met(ok bool) string {
	if ok {
		return "met"
	}
	return "missed"
}

// startServices starts vmkernel and mgmtd on state and runDir and waits
// for mgmtd's /healthz; stop ends them.
func startServices(bin, state, runDir string) (stop func(), err error) {
	authDir, vmkSock := filepath.Join(state, "mgmtd"), filepath.Join(runDir, "vmkernel.sock")
	for _, d := range []string{authDir, runDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return func() {}, err
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return func() {}, err
	}
	addr := l.Addr().String()
	l.Close()
	cmds := []*exec.Cmd{
		exec.Command(filepath.Join(bin, "vmkernel"), "-socket", vmkSock, "-state", filepath.Join(state, "vmkernel"),
			"-run", filepath.Join(runDir, "vms"), "-accel", "tcg", "-socket-gid", strconv.Itoa(os.Getgid()),
			"-host-state", state, "-host-run", runDir, "-resolv-conf", filepath.Join(state, "resolv.conf"), "-set-hostname=false"),
		exec.Command(filepath.Join(bin, "mgmtd"), "-listen", addr, "-state", authDir, "-vmkernel", vmkSock),
	}
	var started []*exec.Cmd
	stop = func() {
		for _, c := range started {
			c.Process.Kill()
			c.Wait()
		}
	}
	for _, c := range cmds {
		c.Stdout, c.Stderr = io.Discard, io.Discard
		if err := c.Start(); err != nil {
			return stop, err
		}
		started = append(started, c)
	}
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+addr+"/healthz", nil)
		if resp, err := hc.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return stop, nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return stop, errors.New("mgmtd did not answer /healthz within 60 s")
}

// childRSS is the resident memory (KiB) of the child named name of the
// process shellPID.
func childRSS(shellPID, name string) (int, error) {
	b, _ := os.ReadFile("/proc/" + shellPID + "/task/" + shellPID + "/children")
	for _, f := range strings.Fields(string(b)) {
		comm, _ := os.ReadFile("/proc/" + f + "/comm")
		if strings.TrimSpace(string(comm)) != name {
			continue
		}
		st, _ := os.ReadFile("/proc/" + f + "/status")
		for _, l := range strings.Split(string(st), "\n") {
			if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
				return strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			}
		}
	}
	return 0, fmt.Errorf("no %s process under the tmux pane (pid %s)", name, shellPID)
}

func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return "unknown"
}

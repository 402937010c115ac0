// Package supervisor runs the appliance's services and keeps them running.
//
// Each service is a process started from a Spec. Its output goes line by line
// into a ring buffer (the last lines are always at hand, for the console and the
// DCUI), to the console prefixed with the service's name, and to a log file.
// A service that exits is restarted after a back-off that doubles from
// Spec.MinBackoff up to Spec.MaxBackoff; one that exits more than
// Spec.MaxRestarts times within Spec.Window is given up on and reported with its
// last lines, instead of being looped forever.
package supervisor

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// Spec describes one service.
type Spec struct {
	Name string
	Path string
	Args []string
	Env  []string
	// UID and GID, when Credential is set, are the identity the service runs as.
	Credential *syscall.Credential
	// ExtraFiles are inherited as fd 3, 4, ... (e.g. a listening socket).
	ExtraFiles []*os.File
	// LogFile, when set, receives every line too (appended; rotated at 1 MiB).
	LogFile string
	// PIDFile, when set, holds the running process's ID (written at each
	// start): how vmkernel finds the management agent it restarts.
	PIDFile string

	MinBackoff  time.Duration // default 500ms
	MaxBackoff  time.Duration // default 30s
	MaxRestarts int           // default 5
	Window      time.Duration // default 2m
	// StopTimeout is how long Stop waits after SIGTERM before SIGKILL (default 10s).
	StopTimeout time.Duration
}

func (s *Spec) defaults() {
	if s.MinBackoff == 0 {
		s.MinBackoff = 500 * time.Millisecond
	}
	if s.MaxBackoff == 0 {
		s.MaxBackoff = 30 * time.Second
	}
	if s.MaxRestarts == 0 {
		s.MaxRestarts = 5
	}
	if s.Window == 0 {
		s.Window = 2 * time.Minute
	}
	if s.StopTimeout == 0 {
		s.StopTimeout = 10 * time.Second
	}
}

// State of a service.
type State string

const (
	Starting State = "starting"
	Running  State = "running"
	Backoff  State = "backoff"
	Failed   State = "failed" // gave up after too many restarts
	Stopped  State = "stopped"
)

// Status is a snapshot of one service.
type Status struct {
	Name     string    `json:"name"`
	State    State     `json:"state"`
	PID      int       `json:"pid,omitempty"`
	Restarts int       `json:"restarts"`
	Since    time.Time `json:"since"`
	LastExit string    `json:"last_exit,omitempty"`
}

// Supervisor runs a set of services.
type Supervisor struct {
	console io.Writer
	mu      sync.Mutex
	svcs    map[string]*service
	order   []string
}

// New returns a Supervisor that echoes service output to console (may be nil).
func New(console io.Writer) *Supervisor {
	if console == nil {
		console = io.Discard
	}
	return &Supervisor{console: console, svcs: map[string]*service{}}
}

type service struct {
	spec   Spec
	ring   *Ring
	sup    *Supervisor
	mu     sync.Mutex
	status Status
	cmd    *exec.Cmd
	stop   chan struct{}
	done   chan struct{}
	exited chan struct{} // closed when the current process has been reaped
	log    *rotatingFile
}

// Start starts a service and keeps it running until Stop. It returns once the
// first process has started, or with the error that prevented it.
func (s *Supervisor) Start(spec Spec) error {
	spec.defaults()
	s.mu.Lock()
	if _, dup := s.svcs[spec.Name]; dup {
		s.mu.Unlock()
		return fmt.Errorf("start service %q: already supervised", spec.Name)
	}
	svc := &service{spec: spec, ring: NewRing(2000), sup: s, stop: make(chan struct{}), done: make(chan struct{})}
	svc.status = Status{Name: spec.Name, State: Starting, Since: time.Now()}
	if spec.LogFile != "" {
		svc.log = &rotatingFile{path: spec.LogFile, max: 1 << 20}
	}
	s.svcs[spec.Name] = svc
	s.order = append(s.order, spec.Name)
	s.mu.Unlock()

	if err := svc.spawn(); err != nil {
		svc.setState(Failed, err.Error())
		close(svc.done)
		return fmt.Errorf("start service %q: %w", spec.Name, err)
	}
	go svc.loop()
	return nil
}

// Status returns every service's status in start order.
func (s *Supervisor) Status() []Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Status, 0, len(s.order))
	for _, n := range s.order {
		svc := s.svcs[n]
		svc.mu.Lock()
		out = append(out, svc.status)
		svc.mu.Unlock()
	}
	return out
}

// Lines returns the last n lines a service printed (all kept lines if n <= 0).
func (s *Supervisor) Lines(name string, n int) ([]string, error) {
	s.mu.Lock()
	svc, ok := s.svcs[name]
	s.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("no service %q", name)
	}
	return svc.ring.Last(n), nil
}

// StopAll stops the services in reverse start order; each gets SIGTERM and,
// after its StopTimeout, SIGKILL. It returns when all have exited or ctx ends.
func (s *Supervisor) StopAll(ctx context.Context) error {
	s.mu.Lock()
	order := append([]string(nil), s.order...)
	s.mu.Unlock()
	var errs []error
	for i := len(order) - 1; i >= 0; i-- {
		if err := s.Stop(ctx, order[i]); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Stop stops one service and waits for it.
func (s *Supervisor) Stop(ctx context.Context, name string) error {
	s.mu.Lock()
	svc, ok := s.svcs[name]
	s.mu.Unlock()
	if !ok {
		return fmt.Errorf("stop service %q: not supervised", name)
	}
	svc.mu.Lock()
	select {
	case <-svc.stop:
	default:
		close(svc.stop)
	}
	svc.mu.Unlock()
	select {
	case <-svc.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("stop service %q: %w", name, ctx.Err())
	}
}

func (svc *service) setState(st State, lastExit string) {
	svc.mu.Lock()
	defer svc.mu.Unlock()
	svc.status.State = st
	svc.status.Since = time.Now()
	if lastExit != "" {
		svc.status.LastExit = lastExit
	}
	if st != Running {
		svc.status.PID = 0
	}
}

// spawn starts one process of the service.
func (svc *service) spawn() error {
	sp := svc.spec
	cmd := exec.Command(sp.Path, sp.Args...)
	cmd.Env = append(os.Environ(), sp.Env...)
	cmd.ExtraFiles = sp.ExtraFiles
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: sp.Credential}
	pr, pw, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("pipe: %w", err)
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := startOwned(cmd); err != nil {
		pr.Close()
		pw.Close()
		return err
	}
	pw.Close()
	exited := make(chan struct{})
	svc.mu.Lock()
	svc.cmd = cmd
	svc.exited = exited
	svc.status.State = Running
	svc.status.PID = cmd.Process.Pid
	svc.status.Since = time.Now()
	svc.mu.Unlock()
	if sp.PIDFile != "" {
		if err := os.WriteFile(sp.PIDFile, []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o644); err != nil {
			svc.note("pid file: %v", err)
		}
	}
	go svc.pump(pr)
	return nil
}

// pump copies the service's output into the ring, the console and the log.
func (svc *service) pump(r io.ReadCloser) {
	defer r.Close()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		svc.line(sc.Text())
	}
}

func (svc *service) line(l string) {
	svc.ring.Add(l)
	fmt.Fprintf(svc.sup.console, "[%s] %s\n", svc.spec.Name, l)
	if svc.log != nil {
		svc.log.WriteLine(time.Now().UTC().Format(time.RFC3339Nano) + " " + l)
	}
}

// note records a supervisor message in the service's own log stream.
func (svc *service) note(format string, args ...any) {
	svc.line("supervisor: " + fmt.Sprintf(format, args...))
}

func (svc *service) loop() {
	defer close(svc.done)
	var exits []time.Time
	backoff := svc.spec.MinBackoff
	for {
		svc.mu.Lock()
		cmd := svc.cmd
		exited := svc.exited
		svc.mu.Unlock()
		waitErr := make(chan error, 1)
		go func() {
			err := cmd.Wait()
			disown(cmd.Process.Pid)
			waitErr <- err
			close(exited)
		}()
		started := time.Now()
		var err error
		select {
		case err = <-waitErr:
		case <-svc.stop:
			svc.terminate(cmd, waitErr)
			svc.setState(Stopped, "stopped")
			return
		}
		how := describeExit(err)
		svc.note("exited after %s: %s", time.Since(started).Round(time.Millisecond), how)

		now := time.Now()
		if now.Sub(started) > svc.spec.Window {
			backoff = svc.spec.MinBackoff // it ran well for a while: start afresh
		}
		exits = append(exits, now)
		for len(exits) > 0 && now.Sub(exits[0]) > svc.spec.Window {
			exits = exits[1:]
		}
		svc.mu.Lock()
		svc.status.Restarts++
		svc.mu.Unlock()
		if len(exits) > svc.spec.MaxRestarts {
			svc.setState(Failed, how)
			fmt.Fprintf(svc.sup.console, "supervisor: SERVICE FAILED: %s exited %d times within %s (last: %s); not restarting it. Its last lines:\n",
				svc.spec.Name, len(exits), svc.spec.Window, how)
			for _, l := range svc.ring.Last(15) {
				fmt.Fprintf(svc.sup.console, "supervisor:   %s\n", l)
			}
			return
		}
		svc.setState(Backoff, how)
		select {
		case <-time.After(backoff):
		case <-svc.stop:
			svc.setState(Stopped, how)
			return
		}
		backoff *= 2
		if backoff > svc.spec.MaxBackoff {
			backoff = svc.spec.MaxBackoff
		}
		if err := svc.spawn(); err != nil {
			svc.note("restart failed: %v", err)
			svc.setState(Failed, err.Error())
			return
		}
	}
}

// terminate sends SIGTERM to the service's process group, then SIGKILL after
// StopTimeout, and waits for the process.
func (svc *service) terminate(cmd *exec.Cmd, waitErr <-chan error) {
	pgid := cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case err := <-waitErr:
		svc.note("stopped: %s", describeExit(err))
	case <-time.After(svc.spec.StopTimeout):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		err := <-waitErr
		svc.note("killed after %s: %s", svc.spec.StopTimeout, describeExit(err))
	}
}

func describeExit(err error) string {
	if err == nil {
		return "exit status 0"
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return "killed by signal " + ws.Signal().String()
		}
		return fmt.Sprintf("exit status %d", ee.ExitCode())
	}
	return err.Error()
}

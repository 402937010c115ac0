package dcui

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"golang.org/x/sys/unix"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/client"
)

// SystemConfig says where the real host's pieces are.
type SystemConfig struct {
	VMKernel  string // vmkernel's socket (layout.Host.VMKernelSocket)
	TTY       string // the console's device, for the shell's inactivity check
	Shell     string // the local shell (/bbin/gosh)
	ShellIdle time.Duration
}

// System returns Deps backed by the host: vmkernel's API on its socket.
func System(c SystemConfig) (Deps, error) {
	vmk, err := client.NewVMKernel(c.VMKernel)
	if err != nil {
		return Deps{}, err
	}
	d := Deps{Version: api.Version, API: vmk, Tick: tea.Tick, ShellIdle: c.ShellIdle}
	if c.Shell != "" {
		if _, err := os.Stat(c.Shell); err == nil {
			d.Shell = func() tea.ExecCommand { return &idleShell{path: c.Shell, tty: c.TTY, idle: c.ShellIdle} }
		}
	}
	return d, nil
}

// idleShell is a root shell on the console that is killed after idle
// without input: the terminal's access time, which the kernel updates on
// input (every few seconds at most), tells. It looks every 5 s, or every
// quarter of idle when that is shorter (tests give a second).
type idleShell struct {
	path, tty      string
	idle           time.Duration
	stdin          io.Reader
	stdout, stderr io.Writer
}

func (s *idleShell) SetStdin(r io.Reader)  { s.stdin = r }
func (s *idleShell) SetStdout(w io.Writer) { s.stdout = w }
func (s *idleShell) SetStderr(w io.Writer) { s.stderr = w }

func (s *idleShell) Run() error {
	cmd := exec.Command(s.path)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = s.stdin, s.stdout, s.stderr
	cmd.Env = append(os.Environ(), "PS1=plinth# ")
	// Its own session with the console as controlling terminal, so Ctrl-C
	// reaches what it runs.
	if f, ok := s.stdin.(*os.File); ok && isTerminal(f) {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	} else {
		// Its own process group all the same: the timeout kills the group.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	}
	fmt.Fprintf(s.stdout, "\r\nPlinth local shell. It ends after %s without input; type exit to go back to the DCUI.\r\n", s.idle)
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t := time.NewTicker(min(5*time.Second, max(s.idle/4, 10*time.Millisecond)))
	defer t.Stop()
	started := time.Now()
	for {
		select {
		case err := <-done:
			return err
		case <-t.C:
			last := started
			var st unix.Stat_t
			if s.tty != "" && unix.Stat(s.tty, &st) == nil {
				if at := time.Unix(st.Atim.Unix()); at.After(last) {
					last = at
				}
			}
			if s.idle > 0 && time.Since(last) > s.idle {
				_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
				<-done
				return fmt.Errorf("no input for %s", s.idle)
			}
		}
	}
}

func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

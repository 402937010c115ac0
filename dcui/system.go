package dcui

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/auth"
	"github.com/plinth/plinth/board"
	"github.com/plinth/plinth/client"
	"github.com/plinth/plinth/layout"
	"github.com/plinth/plinth/netconf"
)

// SystemConfig says where the real host's pieces are.
type SystemConfig struct {
	Layout      layout.Host
	VMKernel    string // vmkernel's socket (Layout.VMKernelSocket)
	AuthDir     string // Layout.AuthDir
	InitPID     int    // the appliance init: SIGTERM powers off, SIGUSR1 restarts
	ResolvConf  string // /etc/resolv.conf
	TTY         string // the console's device, for the shell's inactivity check
	Shell       string // the local shell (/bbin/gosh)
	ShellIdle   time.Duration
	SetHostname bool // false in tests that must not rename the machine
}

// System returns Deps backed by the host: vmkernel's socket, STATE, netlink,
// signals to the init.
func System(c SystemConfig) (Deps, error) {
	vmk, err := client.NewVMKernel(c.VMKernel)
	if err != nil {
		return Deps{}, err
	}
	ap := netconf.System(nil)
	ap.RunDir = c.Layout.Run
	if c.ResolvConf != "" {
		ap.ResolvConf = c.ResolvConf
	}
	if !c.SetHostname {
		ap.SetHostname = nil
	}
	d := Deps{
		Version:  api.Version,
		AuthDir:  c.AuthDir,
		Host:     vmk.Host,
		VMs:      vmk.ListVMs,
		Upgrades: vmk.UpgradeStatus,
		ShutdownVM: func(ctx context.Context, id string, t time.Duration) error {
			_, err := vmk.ShutdownVM(ctx, id, t)
			return err
		},
		StopVM: func(ctx context.Context, id string) error {
			_, err := vmk.VMAction(ctx, id, "stop")
			return err
		},
		Hardware: hardware,
		// The install runs in vmkernel (as a task): the console follows it.
		InstallTargets: vmk.InstallTargets,
		Install: func(ctx context.Context, disk string, overwrite bool, progress func(api.InstallProgress)) error {
			task, err := vmk.Install(ctx, api.InstallRequest{Disk: disk, Overwrite: overwrite})
			if err != nil {
				return err
			}
			t, err := vmk.WaitTask(ctx, task.ID, time.Second, func(t api.Task) {
				progress(api.InstallProgress{Step: "writing and checking " + disk, Done: t.Done, Total: t.Total})
			})
			if errors.Is(err, client.ErrTaskFailed) {
				return errors.New(t.Error)
			}
			return err
		},
		Fingerprint: func() string {
			b, _ := os.ReadFile(filepath.Join(c.AuthDir, "tls", "fingerprint"))
			return strings.TrimSpace(string(b))
		},
		Addresses: netconf.Addresses,
		NetProblem: func() string {
			ap, _, _ := netconf.ReadApplied(c.Layout.Run)
			return ap.Problem
		},
		LoadNet: func() (netconf.Config, error) {
			cfg, _, err := netconf.Load(c.Layout.State)
			return cfg, err
		},
		ApplyNet:         ap.Apply,
		SaveNet:          func(cfg netconf.Config) error { return netconf.Save(c.Layout.State, cfg) },
		MarkPending:      func(ch netconf.Change) error { return netconf.MarkPending(c.Layout.Run, ch) },
		SettlePending:    func() (bool, error) { return netconf.Settle(c.Layout.Run) },
		PendingConfirmed: func() bool { return netconf.Confirmed(c.Layout.Run) },
		TestNet: func(ctx context.Context, cfg netconf.Config) []netconf.Check {
			h := cfg.Hostname
			if h == "" {
				h, _ = os.Hostname()
			}
			return netconf.Test(ctx, cfg, netconf.Live(cfg, "/sys", ap.ResolvConf), h)
		},
		Power: func(reboot bool) error {
			if c.InitPID <= 0 {
				return errors.New("the init's pid is unknown (-init-pid)")
			}
			sig := syscall.SIGTERM
			if reboot {
				sig = syscall.SIGUSR1
			}
			return syscall.Kill(c.InitPID, sig)
		},
		RestartAgents: func() error { return signalByName("mgmtd", syscall.SIGTERM) },
		ResetConfig: func() error {
			var errs []error
			for _, p := range []string{
				filepath.Join(c.Layout.State, netconf.FileName),
				c.Layout.HostnameFile(),
				filepath.Join(c.AuthDir, auth.PasswdFile),
				filepath.Join(c.AuthDir, auth.SecurityFile),
				filepath.Join(c.AuthDir, auth.TokensFile),
			} {
				if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
					errs = append(errs, err)
				}
			}
			return errors.Join(errs...)
		},
		Logs: []LogFile{
			{"Boot log", c.Layout.BootLog()},
			{"vmkernel", c.Layout.ServiceLog(layout.VMKernel)},
			{"mgmtd", c.Layout.ServiceLog(layout.Mgmtd)},
		},
		Tick:      tea.Tick,
		ShellIdle: c.ShellIdle,
	}
	d.BootMode = readBootMode(c.Layout.BootModeFile())
	if c.Shell != "" {
		if _, err := os.Stat(c.Shell); err == nil {
			d.Shell = func() tea.ExecCommand { return &idleShell{path: c.Shell, tty: c.TTY, idle: c.ShellIdle} }
		}
	}
	return d, nil
}

// readBootMode reads the boot mode the init wrote; without the file (an
// older init, a test host) the mode is unknown and the home screen says
// nothing of it.
func readBootMode(path string) api.BootMode {
	var m api.BootMode
	if b, err := os.ReadFile(path); err == nil {
		_ = json.Unmarshal(b, &m)
	}
	return m
}

// signalByName signals every process whose command name is name.
func signalByName(name string, sig syscall.Signal) error {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return err
	}
	n := 0
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "comm"))
		if err != nil || strings.TrimSpace(string(b)) != name {
			continue
		}
		if err := syscall.Kill(pid, sig); err == nil {
			n++
		}
	}
	if n == 0 {
		return fmt.Errorf("no %s process is running", name)
	}
	return nil
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

// hardware is board's inventory, plus the interfaces without a device that
// can carry the management network (dummy, veth: test hosts, namespaces).
func hardware() (api.Hardware, error) {
	hw, err := board.Read(board.DefaultRoot())
	have := map[string]bool{}
	for _, n := range hw.NICs {
		have[n.Name] = true
	}
	links, _ := netlink.LinkList()
	sort.Slice(links, func(i, j int) bool { return links[i].Attrs().Name < links[j].Attrs().Name })
	for _, l := range links {
		a := l.Attrs()
		if have[a.Name] || a.Flags&net.FlagLoopback != 0 || a.MasterIndex != 0 {
			continue
		}
		switch l.Type() {
		case "dummy", "veth":
		default:
			continue
		}
		hw.NICs = append(hw.NICs, api.HostNIC{Name: a.Name, MAC: a.HardwareAddr.String(), Driver: l.Type(),
			Link: a.OperState == netlink.OperUp || a.OperState == netlink.OperUnknown})
	}
	return hw, err
}

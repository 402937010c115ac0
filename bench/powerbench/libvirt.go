package powerbench

// The libvirt peer: the same guest as a libvirt domain (type 'qemu' for TCG),
// started with `virsh start` against a libvirtd this package runs itself
// under a child subreaper (see reaper.go). Debian's libvirt is installed on
// demand (SetupLibvirt), only when bench/poweron is given -libvirt.

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/plinth/plinth/api"
)

// LibvirtPackages are the Debian packages SetupLibvirt installs: the daemon
// with its QEMU driver (libvirt-daemon-system also creates the libvirt-qemu
// user, without which the QEMU driver refuses to start even when told to run
// QEMU as root) and virsh.
var LibvirtPackages = []string{"libvirt-daemon-system", "libvirt-daemon-driver-qemu", "libvirt-clients"}

// Paths of Debian's libvirt.
var (
	Libvirtd        = "/usr/sbin/libvirtd"
	Virsh           = "/usr/bin/virsh"
	LibvirtQEMUConf = "/etc/libvirt/qemu.conf"
	libvirtSock     = "/run/libvirt/libvirt-sock"
)

const libvirtURI = "qemu:///system"

// qemuConfBlock is appended to qemu.conf once. Without user/group root,
// libvirt 9.0 sees this host's kvm_pvm /dev/kvm as usable, finds it
// root-only for its QEMU user, and re-probes for ~4 s on every call; without
// stdio_handler "file" it wants a virtlogd, which nothing starts here.
const qemuConfBlock = `
# Added by Plinth's bench/poweron -libvirt: QEMU runs as root (else libvirt's
# KVM probe stalls ~4 s per call on a root-only /dev/kvm); QEMU's output goes
# to a file, as no virtlogd runs.
user = "root"
group = "root"
stdio_handler = "file"
`

// SetupLibvirt installs LibvirtPackages with apt-get unless libvirtd and
// virsh are there, and makes sure qemu.conf runs QEMU as root. It changes
// the host: call it only when asked to (bench/poweron -libvirt).
func SetupLibvirt(ctx context.Context, logf func(string, ...any)) error {
	_, errD := os.Stat(Libvirtd)
	_, errV := os.Stat(Virsh)
	if errD != nil || errV != nil {
		logf("installing %s with apt-get", strings.Join(LibvirtPackages, " "))
		ctx, cancel := context.WithTimeout(ctx, 15*time.Minute)
		defer cancel()
		args := append([]string{"install", "-y", "--no-install-recommends",
			"-o", "Dpkg::Options::=--force-confdef", "-o", "Dpkg::Options::=--force-confold"}, LibvirtPackages...)
		cmd := exec.CommandContext(ctx, "apt-get", args...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("apt-get install %s: %v: %s", strings.Join(LibvirtPackages, " "), err, tail(string(out), 2000))
		}
	}
	conf, err := os.ReadFile(LibvirtQEMUConf)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	switch v := confValue(string(conf), "user"); v {
	case "root":
		return nil
	case "":
		logf("appending user/group root and stdio_handler file to %s", LibvirtQEMUConf)
		f, err := os.OpenFile(LibvirtQEMUConf, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			return err
		}
		_, err = f.WriteString(qemuConfBlock)
		if err2 := f.Close(); err == nil {
			err = err2
		}
		return err
	default:
		return fmt.Errorf("%s sets user = %q: the benchmark needs QEMU run as root (see docs/PERFORMANCE.md)", LibvirtQEMUConf, v)
	}
}

// confValue is the string value of key in a libvirt configuration file, ""
// when it is unset (commented out or absent).
func confValue(conf, key string) string {
	for line := range strings.Lines(conf) {
		k, v, ok := strings.Cut(line, "=")
		if !ok || strings.TrimSpace(k) != key {
			continue
		}
		return strings.Trim(strings.TrimSpace(v), `"`)
	}
	return ""
}

// LibvirtGuest is what DomainXML needs beyond the spec: the acceleration,
// where the spec's datastores are, the QEMU binary, and where to put the
// serial socket.
type LibvirtGuest struct {
	Spec       api.VMSpec // with defaults applied
	Accel      string     // api.AccelTCG or api.AccelKVM
	Datastores map[string]string
	Emulator   string
	SerialSock string
}

// ErrUnsupported is returned by DomainXML for a spec using something the
// libvirt peer does not translate.
var ErrUnsupported = errors.New("not translated to a libvirt domain")

type domainXML struct {
	XMLName  xml.Name `xml:"domain"`
	Type     string   `xml:"type,attr"`
	Name     string   `xml:"name"`
	UUID     string   `xml:"uuid"`
	Memory   sizeXML  `xml:"memory"`
	VCPU     int      `xml:"vcpu"`
	OS       osXML    `xml:"os"`
	Features struct {
		ACPI *struct{} `xml:"acpi"`
	} `xml:"features"`
	CPU        cpuXML     `xml:"cpu"`
	OnPoweroff string     `xml:"on_poweroff"`
	OnReboot   string     `xml:"on_reboot"`
	OnCrash    string     `xml:"on_crash"`
	Devices    devicesXML `xml:"devices"`
}

type sizeXML struct {
	Unit  string `xml:"unit,attr"`
	Value int    `xml:",chardata"`
}

type osXML struct {
	Type struct {
		Arch    string `xml:"arch,attr"`
		Machine string `xml:"machine,attr"`
		Value   string `xml:",chardata"`
	} `xml:"type"`
	Kernel  string `xml:"kernel,omitempty"`
	Initrd  string `xml:"initrd,omitempty"`
	Cmdline string `xml:"cmdline,omitempty"`
}

type cpuXML struct {
	Mode     string `xml:"mode,attr"`
	Check    string `xml:"check,attr"`
	Topology struct {
		Sockets int `xml:"sockets,attr"`
		Cores   int `xml:"cores,attr"`
		Threads int `xml:"threads,attr"`
	} `xml:"topology"`
}

type controllerXML struct {
	Type  string `xml:"type,attr"`
	Model string `xml:"model,attr"`
}

type serialXML struct {
	Type   string `xml:"type,attr"`
	Source struct {
		Mode string `xml:"mode,attr"`
		Path string `xml:"path,attr"`
	} `xml:"source"`
}

type devicesXML struct {
	Emulator   string          `xml:"emulator"`
	Controller []controllerXML `xml:"controller"`
	Serial     *serialXML      `xml:"serial"`
	Video      struct {
		Model struct {
			Type string `xml:"type,attr"`
		} `xml:"model"`
	} `xml:"video"`
	MemBalloon struct {
		Model string `xml:"model,attr"`
	} `xml:"memballoon"`
	RNG struct {
		Model   string `xml:"model,attr"`
		Backend struct {
			Model string `xml:"model,attr"`
			Value string `xml:",chardata"`
		} `xml:"backend"`
	} `xml:"rng"`
}

// DomainXML is the libvirt domain for g's spec, made to match what
// qemu.Cmdline gives vmkernel's QEMU: of type 'qemu' (TCG) with `-cpu max`,
// or 'kvm' with `-cpu host`; same machine type, topology, memory, direct kernel boot, serial console on a unix
// socket QEMU listens on, virtio-rng, and no other devices (no USB
// controller, video or memory balloon, which libvirt would otherwise add).
// Disks, CD-ROMs, NICs, VNC and UEFI are not translated: the benchmark's
// guest has none.
func DomainXML(g LibvirtGuest) ([]byte, error) {
	s := g.Spec
	switch {
	case len(s.Disks) > 0:
		return nil, fmt.Errorf("disks: %w", ErrUnsupported)
	case s.CDROM != nil:
		return nil, fmt.Errorf("cdrom: %w", ErrUnsupported)
	case len(s.NICs) > 0:
		return nil, fmt.Errorf("nics: %w", ErrUnsupported)
	case s.VNC:
		return nil, fmt.Errorf("vnc: %w", ErrUnsupported)
	case s.Firmware != "" && s.Firmware != api.FirmwareBIOS:
		return nil, fmt.Errorf("firmware %q: %w", s.Firmware, ErrUnsupported)
	case s.Machine == api.MachineMicroVM:
		return nil, fmt.Errorf("machine %q: %w", s.Machine, ErrUnsupported)
	}
	typ, cpuMode := "qemu", "maximum"
	switch g.Accel {
	case api.AccelTCG:
	case api.AccelKVM:
		typ, cpuMode = "kvm", "host-passthrough"
	default:
		return nil, fmt.Errorf("accel %q: %w", g.Accel, ErrUnsupported)
	}
	d := domainXML{Type: typ, Name: s.Name, UUID: s.ID,
		Memory:     sizeXML{Unit: "MiB", Value: s.MemoryMiB},
		VCPU:       s.CPU.Sockets * s.CPU.Cores * s.CPU.Threads,
		OnPoweroff: "destroy", OnReboot: "restart", OnCrash: "destroy"}
	d.OS.Type.Arch, d.OS.Type.Machine, d.OS.Type.Value = "x86_64", s.Machine, "hvm"
	if k := s.Kernel; k != nil {
		root, ok := g.Datastores[k.Datastore]
		if !ok {
			return nil, fmt.Errorf("kernel.datastore %q: unknown", k.Datastore)
		}
		d.OS.Kernel = filepath.Join(root, k.Kernel)
		if k.Initrd != "" {
			d.OS.Initrd = filepath.Join(root, k.Initrd)
		}
		d.OS.Cmdline = k.Cmdline
	}
	d.Features.ACPI = &struct{}{} // QEMU's default; libvirt passes -no-acpi without it
	d.CPU.Mode, d.CPU.Check = cpuMode, "none"
	d.CPU.Topology.Sockets, d.CPU.Topology.Cores, d.CPU.Topology.Threads = s.CPU.Sockets, s.CPU.Cores, s.CPU.Threads
	dev := &d.Devices
	dev.Emulator = g.Emulator
	dev.Controller = []controllerXML{{Type: "usb", Model: "none"}}
	if s.Serial {
		dev.Serial = &serialXML{Type: "unix"}
		dev.Serial.Source.Mode, dev.Serial.Source.Path = "bind", g.SerialSock
	}
	dev.Video.Model.Type = "none"
	dev.MemBalloon.Model = "none"
	dev.RNG.Model, dev.RNG.Backend.Model, dev.RNG.Backend.Value = "virtio", "random", "/dev/urandom"
	out, err := xml.MarshalIndent(d, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(out, '\n'), nil
}

// libvirtd is a libvirtd this package started, under the reaper.
type libvirtd struct {
	cmd    *exec.Cmd
	exited chan struct{}
	log    string
}

// startLibvirtd runs libvirtd in the foreground under self (this program,
// as the reaper: see Reap), its output to logPath, and waits until virsh
// can talk to it. It refuses to share a libvirtd that is already running.
func startLibvirtd(ctx context.Context, self, logPath string) (*libvirtd, error) {
	if c, err := net.DialTimeout("unix", libvirtSock, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("a libvirtd already answers on %s: stop it; the benchmark runs its own under a child subreaper", libvirtSock)
	}
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command(self, Libvirtd)
	cmd.Env = append(os.Environ(), reaperEnv+"=1")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting libvirtd: %w", err)
	}
	l := &libvirtd{cmd: cmd, exited: make(chan struct{}), log: logPath}
	go func() { cmd.Wait(); close(l.exited) }()
	dctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for {
		if _, err := virsh(dctx, "version"); err == nil {
			return l, nil
		}
		select {
		case <-l.exited:
			return nil, fmt.Errorf("libvirtd exited: %s", l.tail())
		case <-dctx.Done():
			l.stop()
			return nil, fmt.Errorf("libvirtd did not answer within 60 s: %s", l.tail())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (l *libvirtd) tail() string {
	b, _ := os.ReadFile(l.log)
	return tail(strings.TrimSpace(string(b)), 1500)
}

// stop asks libvirtd to stop (the reaper forwards SIGTERM), then kills
// the reaper's process group after a deadline.
func (l *libvirtd) stop() {
	l.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-l.exited:
	case <-time.After(20 * time.Second):
		syscall.Kill(-l.cmd.Process.Pid, syscall.SIGKILL)
		<-l.exited
	}
}

// virsh runs virsh against the system URI with a deadline and returns its
// trimmed standard output.
func virsh(ctx context.Context, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, Virsh, append([]string{"-q", "-c", libvirtURI}, args...)...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = time.Second
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("virsh %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(stdout.String()), nil
}

// versions sums up the output of `virsh version --daemon` as "libvirtd
// 9.0.0, QEMU 7.2.22", or returns it whole when it has neither line.
func versions(out string) string {
	var daemon, hv string
	for line := range strings.Lines(out) {
		k, v, ok := strings.Cut(line, ":")
		switch v = strings.TrimSpace(v); {
		case !ok:
		case strings.TrimSpace(k) == "Running against daemon":
			daemon = "libvirtd " + v
		case strings.TrimSpace(k) == "Running hypervisor":
			hv = v
		}
	}
	if daemon == "" || hv == "" {
		return strings.Join(strings.Fields(out), " ")
	}
	return daemon + ", " + hv
}

// peer is a defined libvirt domain on a running libvirtd.
type peer struct {
	d       *libvirtd
	name    string
	version string
}

// startPeer starts libvirtd and defines the domain for g.
func startPeer(ctx context.Context, self, dir string, g LibvirtGuest) (_ *peer, err error) {
	x, err := DomainXML(g)
	if err != nil {
		return nil, err
	}
	xmlPath := filepath.Join(dir, "domain.xml")
	if err := os.WriteFile(xmlPath, x, 0o600); err != nil {
		return nil, err
	}
	d, err := startLibvirtd(ctx, self, filepath.Join(dir, "libvirtd.log"))
	if err != nil {
		return nil, err
	}
	p := &peer{d: d, name: g.Spec.Name}
	defer func() {
		if err != nil {
			p.close()
		}
	}()
	// A domain of the same name left by an interrupted run goes first.
	virsh(ctx, "destroy", p.name)
	virsh(ctx, "undefine", p.name)
	if _, err := virsh(ctx, "define", xmlPath); err != nil {
		return nil, err
	}
	v, err := virsh(ctx, "version", "--daemon")
	if err != nil {
		return nil, err
	}
	p.version = versions(v)
	return p, nil
}

// start times `virsh start` of the domain: libvirt returns once QEMU runs
// with its CPUs resumed (QMP "cont" done). Then it checks the state and
// destroys the domain, untimed.
func (p *peer) start(ctx context.Context) (time.Duration, error) {
	t0 := time.Now()
	_, err := virsh(ctx, "start", p.name)
	d := time.Since(t0)
	if err != nil {
		return 0, err
	}
	state, err := virsh(ctx, "domstate", p.name)
	if err == nil && state != "running" {
		err = fmt.Errorf("state %q after virsh start, want running", state)
	}
	if _, err2 := virsh(ctx, "destroy", p.name); err == nil {
		err = err2
	}
	return d, err
}

// close destroys and undefines the domain and stops libvirtd.
func (p *peer) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	virsh(ctx, "destroy", p.name)
	virsh(ctx, "undefine", p.name)
	p.d.stop()
}

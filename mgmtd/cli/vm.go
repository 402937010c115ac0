package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/client"
)

func (a *app) hostInfo(ctx context.Context, args []string) error {
	fs := a.flags("host info")
	if _, err := parse(fs, args, "", 0, 0); err != nil {
		return err
	}
	return a.call(ctx, defaultTimeout, func(c *client.Client) error {
		h, err := c.Host(ctx)
		if err != nil {
			return err
		}
		if a.json {
			return writeJSON(a.out, h)
		}
		t := newTable(a.out)
		t.row("hostname", h.Hostname)
		t.row("version", h.Version)
		t.row("kernel", h.Kernel)
		t.row("cpu", fmt.Sprintf("%d x %s", h.CPUCount, h.CPUModel))
		t.row("memory", humanBytes(h.MemoryBytes))
		t.row("uptime", humanDuration(time.Duration(h.UptimeSeconds*float64(time.Second))))
		accel := h.Acceleration.Mode
		if r := h.Acceleration.Reason; r != "" {
			accel += " (" + r + ")"
		}
		t.row("acceleration", accel)
		t.row("qemu", h.QEMU)
		return t.flush()
	})
}

func vcpus(s api.VMSpec) string {
	if s.CPU.VCPUs() == 0 {
		return "-"
	}
	return strconv.Itoa(s.CPU.VCPUs())
}

func (a *app) vmList(ctx context.Context, args []string) error {
	fs := a.flags("vm list")
	state := fs.String("state", "", "only VMs in this `state` (running, stopped, ...)")
	if _, err := parse(fs, args, "", 0, 0); err != nil {
		return err
	}
	return a.call(ctx, defaultTimeout, func(c *client.Client) error {
		vms, err := c.ListVMs(ctx)
		if err != nil {
			return err
		}
		if *state != "" {
			vms = slices.DeleteFunc(vms, func(v api.VM) bool { return v.Runtime.State != *state })
		}
		slices.SortFunc(vms, func(x, y api.VM) int { return strings.Compare(x.Spec.Name, y.Spec.Name) })
		if a.json {
			if vms == nil {
				vms = []api.VM{}
			}
			return writeJSON(a.out, vms)
		}
		return printVMTable(a.out, vms)
	})
}

// printVMTable writes one line a VM.
func printVMTable(w io.Writer, vms []api.VM) error {
	t := newTable(w, "NAME", "ID", "STATE", "CPUS", "MEMORY", "FIRMWARE", "AUTOSTART")
	for _, v := range vms {
		auto := "no"
		if v.Spec.Autostart.Enabled {
			auto = "yes"
		}
		t.row(v.Spec.Name, v.Spec.ID, v.Runtime.State, vcpus(v.Spec),
			humanBytes(int64(v.Spec.MemoryMiB)<<20), v.Spec.Firmware, auto)
	}
	return t.flush()
}

func (a *app) vmShow(ctx context.Context, args []string) error {
	fs := a.flags("vm show")
	pos, err := parse(fs, args, "VM", 1, 1)
	if err != nil {
		return err
	}
	return a.call(ctx, defaultTimeout, func(c *client.Client) error {
		v, err := c.GetVM(ctx, pos[0])
		if err != nil {
			return err
		}
		if a.json {
			return writeJSON(a.out, v)
		}
		return printVM(a.out, v)
	})
}

// printVM writes one VM's spec and state for people.
func printVM(w io.Writer, v api.VM) error {
	s, r := v.Spec, v.Runtime
	t := newTable(w)
	t.row("name", s.Name)
	t.row("id", s.ID)
	state := r.State
	if r.PID > 0 {
		state += fmt.Sprintf(" (pid %d)", r.PID)
	}
	t.row("state", state)
	if r.StartedAt != nil {
		t.row("started", localTime(*r.StartedAt))
	}
	if e := r.LastExit; e != nil {
		t.row("last exit", fmt.Sprintf("%s, %s, %s", localTime(e.Time), e.Reason, e.Status))
	}
	t.row("cpus", fmt.Sprintf("%s (%d sockets x %d cores x %d threads)", vcpus(s), s.CPU.Sockets, s.CPU.Cores, s.CPU.Threads))
	t.row("memory", humanBytes(int64(s.MemoryMiB)<<20))
	t.row("firmware", s.Firmware)
	t.row("machine", s.Machine)
	t.row("boot order", strings.Join(s.BootOrder, ","))
	for i, d := range s.Disks {
		ro := ""
		if d.ReadOnly {
			ro = ", read-only"
		}
		t.row(fmt.Sprintf("disk %d", i), fmt.Sprintf("%s:%s (%s, %s%s)", d.Datastore, d.Path, d.Format, d.Bus, ro))
	}
	if cd := s.CDROM; cd != nil {
		t.row("cdrom", cd.Datastore+":"+cd.Path)
	}
	for i, n := range s.NICs {
		on := "nat"
		if !n.NAT {
			on = "switch " + n.Switch
		}
		t.row(fmt.Sprintf("nic %d", i), fmt.Sprintf("%s %s on %s", n.Model, n.MAC, on))
	}
	if k := s.Kernel; k != nil {
		t.row("kernel", k.Datastore+":"+k.Kernel)
		if k.Initrd != "" {
			t.row("initrd", k.Datastore+":"+k.Initrd)
		}
		t.row("cmdline", k.Cmdline)
	}
	for i, p := range s.PCIDevices {
		t.row(fmt.Sprintf("pci %d", i), p.String())
	}
	for i, u := range s.USBDevices {
		t.row(fmt.Sprintf("usb %d", i), u.String())
	}
	if len(r.PCI) > 0 {
		t.row("pci held", strings.Join(r.PCI, " "))
	}
	for _, u := range r.USB {
		state := "attached"
		if !u.Present {
			state = "not attached"
		}
		if u.Problem != "" {
			state += ": " + u.Problem
		}
		t.row("usb "+u.Spec.String(), state)
	}
	if s.TPM {
		t.row("tpm", "2.0")
	}
	if b := s.Balloon; b != nil {
		t.row("balloon", "down to "+humanBytes(int64(b.MinMiB)<<20))
	}
	if s.HugePages {
		t.row("huge pages", "yes")
	}
	if s.CPU.Model != "" {
		t.row("cpu model", s.CPU.Model)
	}
	t.row("serial", fmt.Sprint(s.Serial))
	t.row("vnc", fmt.Sprint(s.VNC))
	auto := "no"
	if s.Autostart.Enabled {
		auto = fmt.Sprintf("yes (order %d, delay %ds)", s.Autostart.Order, s.Autostart.DelaySeconds)
	}
	t.row("autostart", auto)
	t.row("on crash", s.OnCrash)
	return t.flush()
}

// splitDSPath splits "ds:path" (path may be empty when allowEmpty).
func splitDSPath(s string, allowEmpty bool) (ds, rel string, err error) {
	ds, rel, ok := strings.Cut(s, ":")
	if ds == "" || (!ok && !allowEmpty) || (rel == "" && !allowEmpty) {
		return "", "", fmt.Errorf("%q: want DATASTORE:PATH, e.g. ds1:iso/debian.iso", s)
	}
	if msg := api.CheckName(ds); msg != "" {
		return "", "", fmt.Errorf("%q: datastore name: %s", s, msg)
	}
	rel = strings.TrimSuffix(rel, "/")
	if rel != "" {
		if msg := api.CheckRelPath(rel); msg != "" {
			return "", "", fmt.Errorf("%q: path: %s", s, msg)
		}
	}
	return ds, rel, nil
}

// diskFlag is --disk DS:PATH[,size=SIZE][,format=F][,bus=B][,ro]; a size
// makes the disk before the VM.
type diskFlag struct {
	disk api.Disk
	size int64
}

func parseDiskFlag(s string) (diskFlag, error) {
	parts := strings.Split(s, ",")
	ds, rel, err := splitDSPath(parts[0], false)
	if err != nil {
		return diskFlag{}, err
	}
	d := diskFlag{disk: api.Disk{Datastore: ds, Path: rel}}
	for _, p := range parts[1:] {
		k, v, _ := strings.Cut(p, "=")
		switch k {
		case "size":
			if d.size, err = parseSize(v, 1<<30); err != nil {
				return diskFlag{}, fmt.Errorf("--disk %s: %w", s, err)
			}
		case "format":
			d.disk.Format = v
		case "bus":
			d.disk.Bus = v
		case "cache":
			d.disk.Cache = v
		case "ro":
			d.disk.ReadOnly = true
		default:
			return diskFlag{}, fmt.Errorf("--disk %s: unknown option %q (size=, format=, bus=, cache=, ro)", s, k)
		}
	}
	return d, nil
}

// parseNICFlag reads --nic SWITCH|nat[,model=M][,mac=MAC].
func parseNICFlag(s string) (api.NIC, error) {
	parts := strings.Split(s, ",")
	var n api.NIC
	if parts[0] == "nat" {
		n.NAT = true
	} else if msg := api.CheckName(parts[0]); msg != "" {
		return n, fmt.Errorf("--nic %s: switch name: %s (or \"nat\")", s, msg)
	} else {
		n.Switch = parts[0]
	}
	for _, p := range parts[1:] {
		k, v, _ := strings.Cut(p, "=")
		switch k {
		case "model":
			n.Model = v
		case "mac":
			n.MAC = v
		default:
			return n, fmt.Errorf("--nic %s: unknown option %q (model=, mac=)", s, k)
		}
	}
	return n, nil
}

// vmCreateFlags are vm create's flags, parsed into a spec by spec.
type vmCreateFlags struct {
	name, memory, cdrom, firmware, machine, kernel, initrd, cmdline, boot, file string
	cpus                                                                        int
	disks, nics, pcis, usbs                                                     stringList
	autostart, serial, vnc, start, tpm, hugePages                               bool
	balloon                                                                     string
	set                                                                         map[string]bool
}

func (a *app) vmCreateFlagSet(f *vmCreateFlags) *flag.FlagSet {
	fs := a.flags("vm create")
	fs.StringVar(&f.name, "name", "", "the VM's `name` (letters, digits, '.', '_', '-')")
	fs.IntVar(&f.cpus, "cpus", 1, "virtual CPUs")
	fs.StringVar(&f.memory, "memory", "512M", "guest memory, e.g. 512M or 2G (a bare number is MiB)")
	fs.Var(&f.disks, "disk", "a disk `DS:PATH[,size=10G][,format=qcow2|raw][,bus=virtio-blk|virtio-scsi|sata][,ro]`; with size= it is made first (repeatable)")
	fs.StringVar(&f.cdrom, "cdrom", "", "an ISO as CD-ROM, `DS:PATH`")
	fs.Var(&f.nics, "nic", "a NIC on a virtual switch or on NAT: `SWITCH|nat[,model=virtio-net|e1000e][,mac=MAC]` (repeatable)")
	fs.StringVar(&f.firmware, "firmware", "bios", "bios, uefi or uefi-secure (Secure Boot, Microsoft's keys; uefi needs q35)")
	fs.BoolVar(&f.tpm, "tpm", false, "a TPM 2.0 (software TPM; its state kept with the VM)")
	fs.Var(&f.pcis, "pci", "a host PCI device for the VM, `ADDRESS` (0000:03:00.0) or VENDOR:DEVICE (plinth host devices; repeatable)")
	fs.Var(&f.usbs, "usb", "a host USB device for the VM, `VENDOR:PRODUCT` or a port like 1-2 (repeatable)")
	fs.StringVar(&f.balloon, "balloon", "", "a balloon whose target can be lowered while the VM runs, down to this `minimum` (e.g. 512M)")
	fs.BoolVar(&f.hugePages, "hugepages", false, "back the guest's memory with 2 MiB huge pages")
	fs.StringVar(&f.machine, "machine", "", "q35 (default), pc or microvm")
	fs.BoolVar(&f.autostart, "autostart", false, "start with the host")
	fs.BoolVar(&f.serial, "serial", true, "a serial console (plinth vm console)")
	fs.BoolVar(&f.vnc, "vnc", false, "a VNC display")
	fs.StringVar(&f.kernel, "kernel", "", "boot this Linux kernel directly, `DS:PATH`")
	fs.StringVar(&f.initrd, "initrd", "", "with --kernel: its initrd, `DS:PATH` (same datastore)")
	fs.StringVar(&f.cmdline, "cmdline", "", "with --kernel: the kernel command line")
	fs.StringVar(&f.boot, "boot", "", "boot `order`, e.g. cdrom,disk")
	fs.StringVar(&f.file, "file", "", "read the whole api.VMSpec from this JSON `file` (- for standard input) instead of flags")
	fs.BoolVar(&f.start, "start", false, "start the VM once defined")
	return fs
}

// spec builds the VM spec from the flags, and lists the disks to make first.
func (f *vmCreateFlags) spec(readFile func(string) ([]byte, error)) (api.VMSpec, []diskFlag, error) {
	var spec api.VMSpec
	if f.file != "" {
		for name := range f.set {
			if name != "file" && name != "start" && name != "server" && name != "json" {
				return spec, nil, usageErrorf("vm create: --file and --%s do not go together: put everything in the file", name)
			}
		}
		b, err := readFile(f.file)
		if err != nil {
			return spec, nil, withCode(ExitUsage, fmt.Errorf("vm create: %w", err))
		}
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&spec); err != nil {
			return spec, nil, withCode(ExitUsage, fmt.Errorf("vm create: %s: %w", f.file, err))
		}
		return spec, nil, nil
	}
	if f.name == "" {
		return spec, nil, usageErrorf("vm create: --name is required (or --file)")
	}
	if f.cpus < 1 || f.cpus > api.MaxVCPUs {
		return spec, nil, usageErrorf("vm create: --cpus %d: want 1 to %d", f.cpus, api.MaxVCPUs)
	}
	mem, err := parseMemoryMiB(f.memory)
	if err != nil {
		return spec, nil, withCode(ExitUsage, fmt.Errorf("vm create: --memory: %w", err))
	}
	spec = api.VMSpec{
		Name: f.name, CPU: api.CPU{Sockets: 1, Cores: f.cpus, Threads: 1}, MemoryMiB: mem,
		Firmware: f.firmware, Machine: f.machine, Serial: f.serial, VNC: f.vnc,
		Autostart: api.Autostart{Enabled: f.autostart},
	}
	spec.TPM, spec.HugePages = f.tpm, f.hugePages
	if f.balloon != "" {
		min, err := parseMemoryMiB(f.balloon)
		if err != nil {
			return spec, nil, withCode(ExitUsage, fmt.Errorf("vm create: --balloon: %w", err))
		}
		spec.Balloon = &api.Balloon{MinMiB: min}
	}
	for _, p := range f.pcis {
		d := api.PCIPassthrough{Address: strings.ToLower(p)}
		if v, dev, ok := strings.Cut(p, ":"); ok && !api.IsPCIAddress(d.Address) && len(v) == 4 && len(dev) == 4 {
			d = api.PCIPassthrough{VendorID: strings.ToLower(v), DeviceID: strings.ToLower(dev)}
		}
		spec.PCIDevices = append(spec.PCIDevices, d)
	}
	for _, u := range f.usbs {
		dev, err := parseUSB(u)
		if err != nil {
			return spec, nil, err
		}
		spec.USBDevices = append(spec.USBDevices, dev)
	}
	var makeDisks []diskFlag
	for _, s := range f.disks {
		d, err := parseDiskFlag(s)
		if err != nil {
			return spec, nil, withCode(ExitUsage, fmt.Errorf("vm create: %w", err))
		}
		spec.Disks = append(spec.Disks, d.disk)
		if d.size > 0 {
			makeDisks = append(makeDisks, d)
		}
	}
	if f.cdrom != "" {
		ds, rel, err := splitDSPath(f.cdrom, false)
		if err != nil {
			return spec, nil, withCode(ExitUsage, fmt.Errorf("vm create: --cdrom %w", err))
		}
		spec.CDROM = &api.CDROM{Datastore: ds, Path: rel}
	}
	for _, s := range f.nics {
		n, err := parseNICFlag(s)
		if err != nil {
			return spec, nil, withCode(ExitUsage, fmt.Errorf("vm create: %w", err))
		}
		spec.NICs = append(spec.NICs, n)
	}
	if f.kernel != "" {
		ds, rel, err := splitDSPath(f.kernel, false)
		if err != nil {
			return spec, nil, withCode(ExitUsage, fmt.Errorf("vm create: --kernel %w", err))
		}
		spec.Kernel = &api.DirectBoot{Datastore: ds, Kernel: rel, Cmdline: f.cmdline}
		if f.initrd != "" {
			ids, irel, err := splitDSPath(f.initrd, false)
			if err != nil {
				return spec, nil, withCode(ExitUsage, fmt.Errorf("vm create: --initrd %w", err))
			}
			if ids != ds {
				return spec, nil, usageErrorf("vm create: --initrd must be on the kernel's datastore %s", ds)
			}
			spec.Kernel.Initrd = irel
		}
	} else if f.initrd != "" || f.cmdline != "" {
		return spec, nil, usageErrorf("vm create: --initrd and --cmdline need --kernel")
	}
	if f.boot != "" {
		spec.BootOrder = strings.Split(f.boot, ",")
	}
	return spec, makeDisks, nil
}

func (a *app) vmCreate(ctx context.Context, args []string) error {
	var f vmCreateFlags
	fs := a.vmCreateFlagSet(&f)
	if _, err := parse(fs, args, "", 0, 0); err != nil {
		return err
	}
	f.set = map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { f.set[fl.Name] = true })
	spec, makeDisks, err := f.spec(func(name string) ([]byte, error) {
		if name == "-" {
			return io.ReadAll(a.in)
		}
		return os.ReadFile(name)
	})
	if err != nil {
		return err
	}
	return a.call(ctx, defaultTimeout, func(c *client.Client) error {
		for _, d := range makeDisks {
			info, err := c.CreateDisk(ctx, d.disk.Datastore, api.CreateDiskRequest{Path: d.disk.Path, Format: d.disk.Format, SizeBytes: d.size})
			if err != nil {
				return fmt.Errorf("make disk %s:%s: %w", d.disk.Datastore, d.disk.Path, err)
			}
			if !a.json {
				fmt.Fprintf(a.errw, "Made disk %s:%s (%s, %s).\n", d.disk.Datastore, info.Path, info.Format, humanBytes(info.VirtualSizeBytes))
			}
		}
		vm, err := c.CreateVM(ctx, spec)
		if err != nil {
			return err
		}
		if f.start {
			started, err := c.VMAction(ctx, vm.Spec.ID, api.ActionStart)
			if err != nil {
				return fmt.Errorf("VM %s (%s) defined, but: start: %w", vm.Spec.Name, vm.Spec.ID, err)
			}
			vm = started
		}
		if a.json {
			return writeJSON(a.out, vm)
		}
		fmt.Fprintf(a.out, "%s %s %s\n", vm.Spec.Name, vm.Spec.ID, vm.Runtime.State)
		return nil
	})
}

// vmPower is vm start, stop, shutdown or reset of each VM named.
func vmPower(action string) func(a *app, ctx context.Context, args []string) error {
	return func(a *app, ctx context.Context, args []string) error {
		fs := a.flags("vm " + action)
		timeout := 60 * time.Second
		if action == api.ActionShutdown {
			fs.DurationVar(&timeout, "timeout", timeout, "how long the guest gets to power off before it is stopped hard")
		}
		pos, err := parse(fs, args, "VM...", 1, -1)
		if err != nil {
			return err
		}
		reqTimeout := defaultTimeout
		if action == api.ActionShutdown {
			reqTimeout += timeout
		}
		return a.call(ctx, reqTimeout, func(c *client.Client) error {
			var done []api.VM
			for _, id := range pos {
				var vm api.VM
				var err error
				if action == api.ActionShutdown {
					vm, err = c.ShutdownVM(ctx, id, timeout)
				} else {
					vm, err = c.VMAction(ctx, id, action)
				}
				if err != nil {
					return fmt.Errorf("%s %s: %w", action, id, err)
				}
				if !a.json {
					fmt.Fprintf(a.out, "%s: %s\n", vm.Spec.Name, vm.Runtime.State)
				}
				done = append(done, vm)
			}
			if a.json {
				return writeJSON(a.out, done)
			}
			return nil
		})
	}
}

func (a *app) vmDelete(ctx context.Context, args []string) error {
	fs := a.flags("vm delete")
	disks := fs.Bool("disks", false, "also delete the VM's disk files no other VM uses (never its ISO or kernel)")
	pos, err := parse(fs, args, "VM...", 1, -1)
	if err != nil {
		return err
	}
	return a.call(ctx, defaultTimeout, func(c *client.Client) error {
		var results []api.DeleteVMResult
		for _, id := range pos {
			if !*disks {
				if err := c.DeleteVM(ctx, id); err != nil {
					return fmt.Errorf("delete %s: %w", id, err)
				}
				if !a.json {
					fmt.Fprintf(a.out, "%s: deleted\n", id)
				}
				continue
			}
			res, err := c.DeleteVMWithDisks(ctx, id)
			if err != nil {
				return fmt.Errorf("delete %s: %w", id, err)
			}
			results = append(results, res)
			if !a.json {
				fmt.Fprintf(a.out, "%s: deleted\n", id)
				for _, f := range res.RemovedFiles {
					fmt.Fprintf(a.out, "  removed %s:%s\n", f.Datastore, f.Path)
				}
				for _, f := range res.KeptFiles {
					fmt.Fprintf(a.out, "  kept %s:%s (another VM uses it)\n", f.Datastore, f.Path)
				}
			}
		}
		if a.json && *disks {
			return writeJSON(a.out, results)
		}
		return nil
	})
}

// hostHardware prints the board inventory: system, CPU, memory, NICs and
// disks (--json: all of api.Hardware, PCI devices and sensors included).
func (a *app) hostHardware(ctx context.Context, args []string) error {
	fs := a.flags("host hardware")
	if _, err := parse(fs, args, "", 0, 0); err != nil {
		return err
	}
	return a.call(ctx, defaultTimeout, func(c *client.Client) error {
		hw, err := c.Hardware(ctx)
		if err != nil {
			return err
		}
		if a.json {
			return writeJSON(a.out, hw)
		}
		s, cpu := hw.System, hw.CPU
		t := newTable(a.out)
		t.row("system", strings.TrimSpace(s.Vendor+" "+s.Product))
		t.row("serial", s.Serial)
		t.row("firmware", strings.TrimSpace(fmt.Sprintf("%s %s %s (%s boot)", s.BIOSVendor, s.BIOSVersion, s.BIOSDate, s.BootMode)))
		t.row("cpu", fmt.Sprintf("%s: %d sockets, %d cores, %d threads", cpu.Model, cpu.Sockets, cpu.Cores, cpu.Threads))
		virt := strings.TrimSpace(cpu.Virtualization + " " + cpu.SecondLevelPaging + " " + cpu.KVMModule)
		t.row("virtualization", virt)
		t.row("memory", humanBytes(hw.Memory.TotalBytes))
		t.row("pci devices", strconv.Itoa(len(hw.PCI)))
		if err := t.flush(); err != nil {
			return err
		}
		if len(hw.NICs) > 0 {
			fmt.Fprintln(a.out)
			t = newTable(a.out, "NIC", "MAC", "DRIVER", "LINK", "SPEED")
			for _, n := range hw.NICs {
				link, speed := "down", "-"
				if n.Link {
					link = "up"
				}
				if n.SpeedMbps > 0 {
					speed = fmt.Sprintf("%d Mb/s", n.SpeedMbps)
				}
				t.row(n.Name, n.MAC, n.Driver, link, speed)
			}
			t.flush()
		}
		if len(hw.Disks) > 0 {
			fmt.Fprintln(a.out)
			t = newTable(a.out, "DISK", "MODEL", "SIZE", "TRANSPORT")
			for _, d := range hw.Disks {
				t.row(d.Name, d.Model, humanBytes(d.SizeBytes), d.Transport)
			}
			t.flush()
		}
		for _, g := range hw.Gaps {
			fmt.Fprintf(a.errw, "plinth: not known: %s\n", g)
		}
		return nil
	})
}

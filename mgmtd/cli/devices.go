package cli

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/client"
)

// A VM's devices while it runs (plugged in and out; on a stopped VM its
// spec changes), the balloon, and the host's devices with their
// passthrough verdicts.

// deviceTimeout allows for a guest slow to let a device go (the runner
// waits up to a minute for it).
const deviceTimeout = 3 * time.Minute

// parseUSB reads VENDOR:PRODUCT (hex) or a bus-port path like 1-2.3.
func parseUSB(s string) (api.USBPassthrough, error) {
	var u api.USBPassthrough
	if v, p, ok := strings.Cut(s, ":"); ok {
		u = api.USBPassthrough{VendorID: strings.ToLower(v), ProductID: strings.ToLower(p)}
	} else {
		u = api.USBPassthrough{Port: s}
	}
	if msg := u.Check(); msg != "" {
		return u, usageErrorf("%q: %s (want VENDOR:PRODUCT, e.g. 0781:5567, or a port like 1-2)", s, msg)
	}
	return u, nil
}

// vmDevice runs one device change on the VM named in pos[0] and prints
// the VM as it is after it.
func (a *app) vmDevice(ctx context.Context, name string, pos []string, f func(c *client.Client, id string) (api.VM, error)) error {
	return a.call(ctx, deviceTimeout, func(c *client.Client) error {
		v, err := c.GetVM(ctx, pos[0])
		if err != nil {
			return err
		}
		v, err = f(c, v.Spec.ID)
		if err != nil {
			return err
		}
		if a.json {
			return writeJSON(a.out, v)
		}
		return printVM(a.out, v)
	})
}

func (a *app) vmDiskAdd(ctx context.Context, args []string) error {
	pos, err := parse(a.flags("vm disk add"), args, "VM DS:PATH[,format=qcow2|raw][,cache=C][,ro]", 2, 2)
	if err != nil {
		return err
	}
	d, err := parseDiskFlag(pos[1])
	if err != nil || d.size != 0 {
		if err == nil {
			err = fmt.Errorf("size= makes a disk at vm create only; make it first (POST .../disks of the datastore)")
		}
		return withCode(ExitUsage, fmt.Errorf("vm disk add: %w", err))
	}
	return a.vmDevice(ctx, "vm disk add", pos, func(c *client.Client, id string) (api.VM, error) { return c.AddDisk(ctx, id, d.disk) })
}

func (a *app) vmNICAdd(ctx context.Context, args []string) error {
	pos, err := parse(a.flags("vm nic add"), args, "VM SWITCH|nat[,model=virtio-net|e1000e][,mac=MAC]", 2, 2)
	if err != nil {
		return err
	}
	n, err := parseNICFlag(pos[1])
	if err != nil {
		return withCode(ExitUsage, fmt.Errorf("vm nic add: %w", err))
	}
	return a.vmDevice(ctx, "vm nic add", pos, func(c *client.Client, id string) (api.VM, error) { return c.AddNIC(ctx, id, n) })
}

func (a *app) vmUSBAdd(ctx context.Context, args []string) error {
	pos, err := parse(a.flags("vm usb add"), args, "VM VENDOR:PRODUCT|PORT", 2, 2)
	if err != nil {
		return err
	}
	u, err := parseUSB(pos[1])
	if err != nil {
		return err
	}
	return a.vmDevice(ctx, "vm usb add", pos, func(c *client.Client, id string) (api.VM, error) { return c.AddUSB(ctx, id, u) })
}

// vmDeviceRemove is vm disk rm, vm nic rm and vm usb rm.
func vmDeviceRemove(kind string, rm func(c *client.Client, ctx context.Context, id string, i int) (api.VM, error)) func(a *app, ctx context.Context, args []string) error {
	return func(a *app, ctx context.Context, args []string) error {
		name := "vm " + kind + " rm"
		pos, err := parse(a.flags(name), args, "VM INDEX", 2, 2)
		if err != nil {
			return err
		}
		i, err := strconv.Atoi(pos[1])
		if err != nil || i < 0 {
			return usageErrorf("%s: INDEX %q: want the %s's number as vm show lists it (0, 1, ...)", name, pos[1], kind)
		}
		return a.vmDevice(ctx, name, pos, func(c *client.Client, id string) (api.VM, error) { return rm(c, ctx, id, i) })
	}
}

func (a *app) vmBalloon(ctx context.Context, args []string) error {
	pos, err := parse(a.flags("vm balloon"), args, "VM [TARGET, e.g. 1G]", 1, 2)
	if err != nil {
		return err
	}
	target := 0
	if len(pos) == 2 {
		if target, err = parseMemoryMiB(pos[1]); err != nil {
			return withCode(ExitUsage, fmt.Errorf("vm balloon: %w", err))
		}
	}
	return a.call(ctx, defaultTimeout, func(c *client.Client) error {
		v, err := c.GetVM(ctx, pos[0])
		if err != nil {
			return err
		}
		var st api.BalloonStatus
		if target > 0 {
			st, err = c.SetBalloon(ctx, v.Spec.ID, target)
		} else {
			st, err = c.Balloon(ctx, v.Spec.ID)
		}
		if err != nil {
			return err
		}
		if a.json {
			return writeJSON(a.out, st)
		}
		t := newTable(a.out)
		t.row("target", humanBytes(int64(st.TargetMiB)<<20))
		t.row("actual", humanBytes(int64(st.ActualMiB)<<20))
		t.row("range", humanBytes(int64(st.MinMiB)<<20)+" to "+humanBytes(int64(st.MaxMiB)<<20))
		if st.GuestFreeMiB != nil {
			t.row("guest free", humanBytes(int64(*st.GuestFreeMiB)<<20))
		}
		if st.GuestTotalMiB != nil {
			t.row("guest total", humanBytes(int64(*st.GuestTotalMiB)<<20))
		}
		return t.flush()
	})
}

func (a *app) hostDevices(ctx context.Context, args []string) error {
	if _, err := parse(a.flags("host devices"), args, "", 0, 0); err != nil {
		return err
	}
	return a.call(ctx, defaultTimeout, func(c *client.Client) error {
		hw, err := c.Hardware(ctx)
		if err != nil {
			return err
		}
		if a.json {
			return writeJSON(a.out, struct {
				PCI []api.PCIDevice `json:"pci"`
				USB []api.USBDevice `json:"usb"`
			}{hw.PCI, hw.USB})
		}
		t := newTable(a.out, "PCI", "ID", "DEVICE", "DRIVER", "GROUP", "PASSTHROUGH")
		for _, d := range hw.PCI {
			group, verdict := "-", "no"
			if d.IOMMUGroup >= 0 {
				group = strconv.Itoa(d.IOMMUGroup)
			}
			if d.PassthroughCapable {
				verdict = "yes"
			}
			if d.PassthroughReason != "" {
				verdict += ": " + d.PassthroughReason
			}
			name := strings.TrimSpace(d.VendorName + " " + d.DeviceName)
			t.row(d.Address, d.VendorID+":"+d.DeviceID, name, d.Driver, group, verdict)
		}
		if err := t.flush(); err != nil {
			return err
		}
		if len(hw.USB) > 0 {
			fmt.Fprintln(a.out)
			t = newTable(a.out, "USB PORT", "ID", "DEVICE", "BUS/DEV", "PASSTHROUGH")
			for _, u := range hw.USB {
				verdict := "yes"
				if u.HostUse != "" {
					verdict = "no: the host uses it: " + u.HostUse
				}
				t.row(u.Port, u.VendorID+":"+u.ProductID, strings.TrimSpace(u.Manufacturer+" "+u.Product),
					fmt.Sprintf("%03d/%03d", u.Bus, u.Device), verdict)
			}
			return t.flush()
		}
		return nil
	})
}

package drivers

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// A cold-plug pass sees the devices present when it looks; a device that
// its bus reports later (a USB stick's disk appears about a second after
// usb-storage binds, when the SCSI scan it delays runs) only announces
// itself with a kernel uevent. Listening to those, as udev does, is the
// hot-plug half of loading drivers.

// Uevent is one kernel device event.
type Uevent struct {
	// Action is "add", "remove", "bind", "change", ...
	Action string
	// DevPath is the device's path below /sys, e.g. "/devices/pci0000:00/...".
	DevPath   string
	Subsystem string
	// Modalias is empty for devices that publish none.
	Modalias string
}

// ErrUeventOverrun says the kernel dropped events because they came faster
// than they were read: rescan sysfs (Devices) to catch up, then go on.
var ErrUeventOverrun = errors.New("uevent socket overrun: events were lost")

// ParseUevent reads one kernel uevent message: "ACTION@DEVPATH" and then
// KEY=VALUE fields, each ended by a NUL byte. ok is false for messages that
// are not the kernel's (udev's own "libudev" broadcasts, garbage).
func ParseUevent(msg []byte) (ev Uevent, ok bool) {
	fields := bytes.Split(msg, []byte{0})
	head, _, found := bytes.Cut(fields[0], []byte("@"))
	if !found || len(head) == 0 {
		return Uevent{}, false
	}
	for _, f := range fields[1:] {
		k, v, _ := bytes.Cut(f, []byte("="))
		switch string(k) {
		case "ACTION":
			ev.Action = string(v)
		case "DEVPATH":
			ev.DevPath = string(v)
		case "SUBSYSTEM":
			ev.Subsystem = string(v)
		case "MODALIAS":
			ev.Modalias = string(v)
		}
	}
	return ev, ev.Action != ""
}

// Uevents is a subscription to the kernel's device events. Open it before
// the cold-plug scan, so that no device falls between the scan and the
// first event.
type Uevents struct {
	f *os.File
}

// ListenUevents subscribes to the kernel's device events (a
// NETLINK_KOBJECT_UEVENT socket on the kernel's multicast group).
func ListenUevents() (*Uevents, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.NETLINK_KOBJECT_UEVENT)
	if err != nil {
		return nil, fmt.Errorf("uevent socket: %w", err)
	}
	// A larger buffer rides out the burst of a boot's probing.
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 4<<20)
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: 1}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("uevent socket: bind: %w", err)
	}
	// Non-blocking and wrapped in an os.File, reads go through Go's poller,
	// so Close (on ctx's end) interrupts a waiting Run.
	return &Uevents{f: os.NewFile(uintptr(fd), "uevent")}, nil
}

// Run calls fn with every event until ctx ends (it then returns nil), the
// socket fails, or the kernel dropped events (ErrUeventOverrun: rescan and
// call Run again). fn runs on Run's goroutine, one event at a time.
func (u *Uevents) Run(ctx context.Context, fn func(Uevent)) error {
	stop := context.AfterFunc(ctx, func() { u.f.SetReadDeadline(aLongTimeAgo) })
	defer stop()
	buf := make([]byte, 64*1024)
	for {
		n, err := u.f.Read(buf)
		switch {
		case ctx.Err() != nil:
			u.f.SetReadDeadline(noDeadline)
			return nil
		case errors.Is(err, unix.ENOBUFS):
			return ErrUeventOverrun
		case err != nil:
			return fmt.Errorf("uevent socket: %w", err)
		}
		if ev, ok := ParseUevent(buf[:n]); ok {
			fn(ev)
		}
	}
}

// Read deadlines: one in the past wakes a waiting Read at once.
var aLongTimeAgo, noDeadline = time.Unix(1, 0), time.Time{}

// Close ends the subscription.
func (u *Uevents) Close() error { return u.f.Close() }

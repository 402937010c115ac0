package appinit

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Linux input event constants (linux/input-event-codes.h).
const (
	evKey    = 0x01
	keyPower = 116
)

// inputEventSize is sizeof(struct input_event) on 64-bit: a timeval (16
// bytes), type and code (2 each) and value (4).
const inputEventSize = 24

// isPowerPress reports whether one input_event is the power key going down.
func isPowerPress(ev []byte) bool {
	if len(ev) < inputEventSize {
		return false
	}
	typ := binary.LittleEndian.Uint16(ev[16:18])
	code := binary.LittleEndian.Uint16(ev[18:20])
	val := int32(binary.LittleEndian.Uint32(ev[20:24]))
	return typ == evKey && code == keyPower && val == 1
}

// powerButtons lists the event devices named like an ACPI power button.
func powerButtons(sysRoot string) []string {
	names, _ := filepath.Glob(filepath.Join(sysRoot, "class", "input", "event*", "device", "name"))
	var out []string
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err == nil && strings.Contains(strings.ToLower(string(b)), "power button") {
			out = append(out, filepath.Join("/dev/input", filepath.Base(filepath.Dir(filepath.Dir(n)))))
		}
	}
	return out
}

// watchPowerButton sends on power when an ACPI power button is pressed.
func watchPowerButton(logf func(string, ...any), power chan<- string) {
	var devs []string
	// evdev and button were just loaded; give the event nodes a moment.
	for i := 0; i < 50 && len(devs) == 0; i++ {
		devs = powerButtons("/sys")
		if len(devs) == 0 {
			time.Sleep(100 * time.Millisecond)
		}
	}
	if len(devs) == 0 {
		logf("power: no ACPI power button found; shut down from the API or the DCUI")
		return
	}
	for _, d := range devs {
		go func(d string) {
			f, err := os.Open(d)
			if err != nil {
				logf("power: open %s: %v", d, err)
				return
			}
			defer f.Close()
			buf := make([]byte, inputEventSize*64)
			for {
				n, err := f.Read(buf)
				if err != nil {
					logf("power: read %s: %v", d, err)
					return
				}
				for off := 0; off+inputEventSize <= n; off += inputEventSize {
					if isPowerPress(buf[off : off+inputEventSize]) {
						power <- "ACPI power button"
					}
				}
			}
		}(d)
	}
}

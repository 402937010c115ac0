package drivers

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/plinth/plinth/internal/testenv"
)

func TestParseUevent(t *testing.T) {
	msg := "add@/devices/pci0000:00/0000:00:06.0/usb2/2-1/2-1:1.0/host0/target0:0:0/0:0:0:0\x00" +
		"ACTION=add\x00DEVPATH=/devices/pci0000:00/0000:00:06.0/usb2/2-1/2-1:1.0/host0/target0:0:0/0:0:0:0\x00" +
		"SUBSYSTEM=scsi\x00DEVTYPE=scsi_device\x00MODALIAS=scsi:t-0x00\x00SEQNUM=1234\x00"
	ev, ok := ParseUevent([]byte(msg))
	if !ok || ev.Action != "add" || ev.Subsystem != "scsi" || ev.Modalias != "scsi:t-0x00" || !strings.HasSuffix(ev.DevPath, "0:0:0:0") {
		t.Errorf("ParseUevent = %+v, %v", ev, ok)
	}
	for _, bad := range []string{"", "libudev\x00\xfe\xed", "add@/x\x00SUBSYSTEM=scsi\x00", "garbage"} {
		if ev, ok := ParseUevent([]byte(bad)); ok {
			t.Errorf("ParseUevent(%q) = %+v, want not ok", bad, ev)
		}
	}
}

// TestUeventsLive asks the kernel for a synthetic "change" event of the
// loopback interface and expects to hear it; Run must end with its context.
func TestUeventsLive(t *testing.T) {
	u, err := ListenUevents()
	if err != nil {
		testenv.Unmet(t, "no uevent socket here: %v", err)
	}
	defer u.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	got := make(chan Uevent, 16)
	done := make(chan error, 1)
	go func() { done <- u.Run(ctx, func(ev Uevent) { got <- ev }) }()
	if err := os.WriteFile("/sys/class/net/lo/uevent", []byte("change"), 0); err != nil {
		testenv.Unmet(t, "cannot trigger a uevent: %v", err)
	}
	select {
	case ev := <-got:
		t.Logf("event: %+v", ev)
	case <-ctx.Done():
		t.Fatal("no event within 3 s of writing change to /sys/class/net/lo/uevent")
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run after cancel: %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Error("Run did not return after its context ended")
	}
}

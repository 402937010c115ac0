package main

import (
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"testing"
	"time"

	"github.com/plinth/plinth/api"
)

// TestSignalInit: shutdown and reboot become SIGTERM and SIGUSR1 to the
// given PID (this test process, catching them).
func TestSignalInit(t *testing.T) {
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, syscall.SIGTERM, syscall.SIGUSR1)
	defer signal.Stop(ch)
	power := signalInit(slog.New(slog.DiscardHandler), os.Getpid())
	for action, want := range map[string]syscall.Signal{api.PowerShutdown: syscall.SIGTERM, api.PowerReboot: syscall.SIGUSR1} {
		if err := power(action, "test"); err != nil {
			t.Fatal(err)
		}
		select {
		case got := <-ch:
			if got != want {
				t.Errorf("%s sent %v, want %v", action, got, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: no signal within 5 s", action)
		}
	}
	if err := power("explode", "test"); err == nil {
		t.Error("unknown action accepted")
	}
}

package vmkerneltest

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/plinth/plinth/vmkernel/hostinfo"
)

// KSMDir is the kernel's KSM switches and counters.
const KSMDir = "/sys/kernel/mm/ksm"

// FastKSM makes the host's KSM scan fast (1000 pages every 20 ms: the
// kernel's default pace, 100 pages, takes minutes over a few guests under
// TCG) and, when the test ends, turns it off (unmerging what it merged)
// and puts its pace and run mode back as they were. KSM is the whole
// host's; it is left as it was (on or off) until the test turns it on.
func FastKSM(t testing.TB) {
	t.Helper()
	if _, err := os.Stat(KSMDir); err != nil {
		t.Fatalf("this kernel has no KSM (%v); every Debian kernel has it", err)
	}
	files := []string{"pages_to_scan", "sleep_millisecs", "run"}
	saved := map[string][]byte{}
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(KSMDir, f))
		if err != nil {
			t.Fatal(err)
		}
		saved[f] = b
	}
	t.Cleanup(func() {
		if err := hostinfo.SetKSM("off"); err != nil { // unmerges
			t.Error(err)
		}
		for _, f := range files {
			if err := os.WriteFile(filepath.Join(KSMDir, f), saved[f], 0); err != nil {
				t.Errorf("putting KSM's %s back: %v", f, err)
			}
		}
	})
	for f, v := range map[string]string{"pages_to_scan": "1000", "sleep_millisecs": "20"} {
		if err := os.WriteFile(filepath.Join(KSMDir, f), []byte(v), 0); err != nil {
			t.Fatal(err)
		}
	}
}

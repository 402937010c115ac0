package hostinfo

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/plinth/plinth/api"
)

func TestParseProcStatMemInfoPIDStat(t *testing.T) {
	cpu, err := ParseProcStat(strings.NewReader("cpu  100 2 300 4000 50 6 7 8 0 0\ncpu0 1 1 1 1 1 1 1 1 0 0\nintr 1\n"))
	want := api.HostCPUSeconds{User: 1, Nice: 0.02, System: 3, Idle: 40, IOWait: 0.5, IRQ: 0.06, SoftIRQ: 0.07, Steal: 0.08}
	if err != nil || cpu != want {
		t.Errorf("ParseProcStat = %+v, %v", cpu, err)
	}
	if _, err := ParseProcStat(strings.NewReader("cpu0 1 2 3 4\n")); err == nil {
		t.Error("no aggregate cpu line accepted")
	}
	mem, err := ParseMemInfo(strings.NewReader("MemTotal:       16318480 kB\nMemAvailable:    8000000 kB\nHugePages_Total:       0\n"))
	if err != nil || mem["MemTotal"] != 16318480*1024 || mem["MemAvailable"] != 8000000*1024 {
		t.Errorf("ParseMemInfo = %v, %v", mem, err)
	}
	// A command name with spaces and parentheses.
	sec, err := ParsePIDStat(strings.NewReader("1234 (qemu (x) y) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 5 0 99 0 0\n"))
	if err != nil || sec != 3.25 {
		t.Errorf("ParsePIDStat = %v, %v", sec, err)
	}
}

// TestStatsOfThisHost reads the live host and this test's own process.
func TestStatsOfThisHost(t *testing.T) {
	st, err := Source{}.Stats()
	if err != nil || st.MemoryTotalBytes == 0 || st.CPUSeconds.Idle <= 0 || st.UptimeSeconds <= 0 {
		t.Fatalf("Stats = %+v, %v", st, err)
	}
	_, rss, err := Source{}.Process(os.Getpid())
	if err != nil || rss == 0 {
		t.Fatalf("Process = %d, %v", rss, err)
	}
	lo := Source{SysRoot: t.TempDir()}
	dir := filepath.Join(lo.SysRoot, "class", "net", "pt0", "statistics")
	os.MkdirAll(dir, 0o755)
	os.WriteFile(filepath.Join(dir, "rx_bytes"), []byte("12\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "tx_bytes"), []byte("34\n"), 0o644)
	if rx, tx, err := lo.TapBytes("pt0"); err != nil || rx != 12 || tx != 34 {
		t.Errorf("TapBytes = %d %d %v", rx, tx, err)
	}
	if _, _, err := lo.TapBytes("gone"); err == nil {
		t.Error("missing tap read")
	}
}

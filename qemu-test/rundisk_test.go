package qemutest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The development disk is made once, with STATE and ds1 on two GPT
// partitions whose ext4 labels the appliance's init looks for, and kept.
func TestRunDisk(t *testing.T) {
	p := filepath.Join(t.TempDir(), "run.img")
	made, err := RunDisk(p)
	if err != nil || !made {
		t.Fatalf("RunDisk: %v, %v", made, err)
	}
	out, err := exec.Command("sgdisk", "-p", p).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "PLINTH-STATE") || !strings.Contains(string(out), "PLINTH-DS1") {
		t.Fatalf("sgdisk -p: %v\n%s", err, out)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, c := range []struct {
		off   int64
		label string
	}{{runStateStart, "PLINTH-STATE"}, {runDSStart, "PLINTH-DS1"}} {
		sb := make([]byte, 1024)
		if _, err := f.ReadAt(sb, c.off+1024); err != nil {
			t.Fatal(err)
		}
		if sb[0x38] != 0x53 || sb[0x39] != 0xef || strings.TrimRight(string(sb[0x78:0x88]), "\x00") != c.label {
			t.Errorf("no ext4 %s at %d", c.label, c.off)
		}
	}
	os.WriteFile(p, append([]byte("kept"), make([]byte, 0)...), 0o644) // a disk that exists is kept as it is
	if made, err := RunDisk(p); err != nil || made {
		t.Fatalf("second RunDisk: %v, %v", made, err)
	}
	if b, _ := os.ReadFile(p); string(b) != "kept" {
		t.Error("RunDisk replaced an existing disk")
	}
}

package qemutest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// captureConsole is a capture guest's console as captureinit prints it, with
// a kernel message in the middle and one glued to the start of a line.
func captureConsole(t *testing.T, files map[string]string, links map[string]string) []string {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for name, body := range files {
		tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg})
		tw.Write([]byte(body))
	}
	for name, target := range links {
		tw.WriteHeader(&tar.Header{Name: name, Linkname: target, Typeflag: tar.TypeSymlink})
	}
	tw.Close()
	zw.Close()
	enc := base64.StdEncoding.EncodeToString(buf.Bytes())
	lines := []string{"[    1.0] Linux version 6.1", captureModules + " e1000 virtio_net", captureBegin}
	for i := 0; len(enc) > 0; i++ {
		n := min(len(enc), 20)
		l := captureLine + enc[:n]
		if i == 1 {
			l = "[    2.5] usb 1-1: new device" + l
			lines = append(lines, "[    2.4] random: crng init done")
		}
		lines = append(lines, l)
		enc = enc[n:]
	}
	return append(lines, fmt.Sprintf("%s sha256=%x", captureEnd, sha256.Sum256(buf.Bytes())), "[    3.0] reboot: Power down")
}

func TestParseCapture(t *testing.T) {
	lines := captureConsole(t, map[string]string{
		"sys/class/net/eth0/address": "52:54:00:12:34:56\n",
		// The last line ends in the tab before an empty driver.
		"modaliases":   "bus/pci/devices/0000:00:02.0\tpci:v00008086d0000100Esv*\te1000\ndevices/system/cpu\tcpu:type:x86,ven0002\t\n",
		"proc/cpuinfo": "processor : 0\n",
	}, map[string]string{"sys/class/net/eth0/device": "../../../devices/pci0000:00/0000:00:02.0"})
	c, err := ParseCapture(lines)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.Modules, []string{"e1000", "virtio_net"}) {
		t.Errorf("modules = %q", c.Modules)
	}
	mas, err := c.Modaliases()
	if err != nil {
		t.Fatal(err)
	}
	want := [][3]string{
		{"bus/pci/devices/0000:00:02.0", "pci:v00008086d0000100Esv*", "e1000"},
		{"devices/system/cpu", "cpu:type:x86,ven0002", ""},
	}
	if !reflect.DeepEqual(mas, want) {
		t.Errorf("modaliases = %q, want %q", mas, want)
	}
	dst := t.TempDir()
	if err := c.Unpack(dst, "sys", "proc"); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dst, "sys/class/net/eth0/address")); err != nil || string(b) != "52:54:00:12:34:56\n" {
		t.Errorf("address: %q %v", b, err)
	}
	if l, err := os.Readlink(filepath.Join(dst, "sys/class/net/eth0/device")); err != nil || !strings.HasSuffix(l, "0000:00:02.0") {
		t.Errorf("device link: %q %v", l, err)
	}
	if _, err := os.Stat(filepath.Join(dst, "modaliases")); err == nil {
		t.Error("Unpack(sys, proc) wrote modaliases")
	}

	// A damaged line, a missing end, no capture at all.
	bad := slices.Clone(lines)
	bad[4] = captureLine + "AAAA"
	for name, l := range map[string][]string{"damaged": bad, "cut": lines[:5], "none": lines[:1]} {
		if _, err := ParseCapture(l); !errors.Is(err, ErrNoCapture) {
			t.Errorf("%s: err = %v, want ErrNoCapture", name, err)
		}
	}
}

func TestCaptureArgs(t *testing.T) {
	got := strings.Join(CaptureArgs("pc", "K", "I", []string{"-device", "e1000"}), " ")
	for _, want := range []string{"-machine pc ", "-accel tcg", "-nodefaults", "-serial stdio", "-no-reboot", "-kernel K -initrd I", "-append console=ttyS0 panic=-1 quiet", " -device e1000"} {
		if !strings.Contains(got, want) {
			t.Errorf("args lack %q: %s", want, got)
		}
	}
	if strings.Contains(got, "-netdev") {
		t.Errorf("a capture guest has only the devices asked for: %s", got)
	}
}

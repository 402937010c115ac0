package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRunUsage(t *testing.T) {
	for _, args := range [][]string{nil, {"nope"}, {"serve"}} {
		if err := run(&bytes.Buffer{}, args); err == nil {
			t.Errorf("run(%q) succeeded, want a usage error", args)
		}
	}
}

func TestBundle(t *testing.T) {
	src := t.TempDir()
	for _, f := range []string{"vmlinuz", "initrd", "undionly.kpxe", "ipxe.pxe", "ipxe.efi", "snponly.efi"} {
		if err := os.WriteFile(filepath.Join(src, f), []byte(f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(t.TempDir(), "pxe")
	var stdout bytes.Buffer
	err := run(&stdout, []string{"bundle", "-o", out, "-kernel", filepath.Join(src, "vmlinuz"),
		"-initrd", filepath.Join(src, "initrd"), "-ipxe", src, "-cmdline", "quiet"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(out, "boot.ipxe"))
	if err != nil || !strings.Contains(string(b), "console=ttyS0,115200 quiet\n") {
		t.Errorf("boot.ipxe: %q, %v", b, err)
	}
	if !strings.Contains(stdout.String(), "plinth-pxe serve -dir "+out) {
		t.Errorf("output %q", stdout.String())
	}
}

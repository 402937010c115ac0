package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/plinth/plinth/api"
)

func TestRun(t *testing.T) {
	fixture := []string{"-sys", "../../testdata/broken/sys", "-proc", "../../testdata/broken/proc", "-dev", "", "-pci-ids", "../../testdata/pci.ids"}
	var out bytes.Buffer
	if err := run(&out, append([]string{"plinth-hw", "-json"}, fixture...)); err != nil {
		t.Fatal(err)
	}
	var hw api.Hardware
	if err := json.Unmarshal(out.Bytes(), &hw); err != nil || hw.System.Vendor != "ACME" {
		t.Fatalf("-json: %v, %+v", err, hw.System)
	}
	out.Reset()
	if err := run(&out, append([]string{"plinth-hw"}, fixture...)); err != nil || !strings.Contains(out.String(), "ACME") {
		t.Fatalf("table: %v\n%s", err, out.String())
	}
	dir := t.TempDir()
	if err := run(&out, append([]string{"plinth-hw", "-capture", dir}, fixture...)); err != nil {
		t.Fatal(err)
	}
}

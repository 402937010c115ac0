package bench

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/plinth/plinth/"

// notProduct says whether a package of the module is a benchmark, the QEMU
// harness or a test helper rather than product code.
func notProduct(pkg string) bool {
	rel := strings.TrimPrefix(pkg, module)
	last := rel[strings.LastIndex(rel, "/")+1:]
	return rel == "bench" || strings.HasPrefix(rel, "bench/") ||
		rel == "qemu-test" || strings.HasPrefix(rel, "qemu-test/") ||
		strings.HasPrefix(rel, "build/") || strings.HasSuffix(last, "test") || last == "testenv"
}

// forbidden says whether product code may not depend on pkg.
func forbidden(pkg string) bool {
	return strings.HasPrefix(pkg, module) && notProduct(pkg)
}

// TestProductImportsNoBenchOrHarness lists every package of the module with
// its dependencies (go list -deps, through Deps) and fails for a product
// package that depends, directly or not, on a benchmark, the QEMU harness
// or a test helper: none of that belongs in the appliance.
func TestProductImportsNoBenchOrHarness(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}}:{{join .Deps " "}}`, "github.com/plinth/plinth/...").Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("go list: %v\n%s", err, stderr)
	}
	products := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		pkg, deps, _ := strings.Cut(line, ":")
		if notProduct(pkg) {
			continue
		}
		products++
		for _, d := range strings.Fields(deps) {
			if forbidden(d) {
				t.Errorf("product package %s depends on %s", strings.TrimPrefix(pkg, module), strings.TrimPrefix(d, module))
			}
		}
	}
	if products < 20 {
		t.Fatalf("only %d product packages listed; the listing is wrong:\n%s", products, out)
	}
}

func TestNotProduct(t *testing.T) {
	for pkg, want := range map[string]bool{
		module + "bench/powerbench":              true,
		module + "qemu-test":                     true,
		module + "qemu-test/cmd/plinth-run":      true,
		module + "vmkernel/vmkerneltest":         true,
		module + "internal/testenv":              true,
		module + "vmkernel/runner":               false,
		module + "initramfs/cmd/plinth-init":     false,
		module + "benchmark-not-really/x":        false,
		module + "mgmtd/cmd/plinth":              false,
		"github.com/u-root/u-root/pkg/qemu-test": false,
	} {
		if got := forbidden(pkg); got != want {
			t.Errorf("forbidden(%s) = %v, want %v", pkg, got, want)
		}
	}
}

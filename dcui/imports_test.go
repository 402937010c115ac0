package dcui

import (
	"os/exec"
	"strings"
	"testing"
)

// The DCUI is a client of the API only: neither it nor its command imports
// the packages that hold or apply host settings.
func TestImportsOnlyTheAPI(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/plinth/plinth/dcui/cmd/dcui").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, no := range []string{"/auth", "/netconf", "/vmkernel", "/board", "/tlscert", "/installer"} {
			if strings.HasPrefix(dep, "github.com/plinth/plinth") && strings.HasSuffix(strings.TrimPrefix(dep, "github.com/plinth/plinth"), no) ||
				strings.HasPrefix(dep, "github.com/plinth/plinth"+no+"/") {
				t.Errorf("the DCUI imports %s", dep)
			}
		}
	}
}

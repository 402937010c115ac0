package cloudinit

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/internal/testenv"
)

func spec() api.VMSpec {
	s := api.VMSpec{ID: "5c1e7a2b-9d4f-4e63-8b0a-1f2e3d4c5b6a", Name: "web-1",
		NICs: []api.NIC{{NAT: true}, {Switch: "lan"}},
		CloudInit: &api.CloudInit{
			User:              "ops",
			SSHAuthorizedKeys: []string{"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBv6 ops@desk: #not a comment"},
			PasswordHash:      "$6$salt$hash",
			Network:           []api.CloudInitNIC{{NIC: 1, Address: "192.0.2.10/24", Gateway: "192.0.2.1", DNS: []string{"192.0.2.53"}}},
		}}
	s.Defaults()
	return s
}

// TestSeedDocuments: the three files parse as YAML and say what the spec
// says, values as given (quoted, never YAML structure).
func TestSeedDocuments(t *testing.T) {
	s := spec()
	files, err := Files(s)
	if err != nil {
		t.Fatal(err)
	}
	doc := map[string]map[string]any{}
	for _, f := range files {
		var m map[string]any
		if err := yaml.Unmarshal(f.Data, &m); err != nil {
			t.Fatalf("%s is not YAML: %v\n%s", f.Name, err, f.Data)
		}
		doc[f.Name] = m
	}
	if doc["meta-data"]["local-hostname"] != "web-1" || !strings.HasPrefix(doc["meta-data"]["instance-id"].(string), s.ID+"-") {
		t.Errorf("meta-data: %v", doc["meta-data"])
	}
	if !strings.HasPrefix(string(files[1].Data), "#cloud-config\n") {
		t.Errorf("user-data does not start with #cloud-config")
	}
	users := doc["user-data"]["users"].([]any)
	ops := users[1].(map[string]any)
	if ops["name"] != "ops" || ops["hashed_passwd"] != "$6$salt$hash" ||
		ops["ssh_authorized_keys"].([]any)[0] != s.CloudInit.SSHAuthorizedKeys[0] {
		t.Errorf("user-data user: %v", ops)
	}
	eth := doc["network-config"]["ethernets"].(map[string]any)
	n0, n1 := eth["nic0"].(map[string]any), eth["nic1"].(map[string]any)
	if n0["dhcp4"] != true || n0["match"].(map[string]any)["macaddress"] != s.NICs[0].MAC {
		t.Errorf("nic0: %v", n0)
	}
	if !slices.Equal(n1["addresses"].([]any), []any{"192.0.2.10/24"}) || n1["gateway4"] != "192.0.2.1" {
		t.Errorf("nic1: %v", n1)
	}
	// Another host name is another instance; the same spec the same one.
	s2 := spec()
	s2.CloudInit.Hostname = "other"
	f2, _ := Files(s2)
	f3, _ := Files(spec())
	if string(f2[0].Data) == string(files[0].Data) || string(f3[0].Data) != string(files[0].Data) {
		t.Errorf("instance-id: %q %q %q", files[0].Data, f2[0].Data, f3[0].Data)
	}
}

// TestSeedISO reads the image back with real tools: blkid finds the
// label NoCloud looks for, xorriso lists and extracts the files under
// their own names (Joliet) and the primary tree.
func TestSeedISO(t *testing.T) {
	xorriso := testenv.Command(t, "xorriso")
	blkid := testenv.Command(t, "blkid")
	img, err := Image(spec())
	if err != nil {
		t.Fatal(err)
	}
	again, _ := Image(spec())
	if string(again) != string(img) {
		t.Error("the same spec made two different images")
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "seed.iso")
	if err := os.WriteFile(p, img, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(blkid, "-p", "-o", "export", p).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "TYPE=iso9660") || !strings.Contains(strings.ToLower(string(out)), "label=cidata") {
		t.Fatalf("blkid: %v\n%s", err, out)
	}
	out, err = exec.Command(xorriso, "-indev", p, "-osirrox", "on", "-extract", "/", filepath.Join(dir, "x")).CombinedOutput()
	if err != nil {
		t.Fatalf("xorriso: %v\n%s", err, out)
	}
	files, _ := Files(spec())
	for _, f := range files {
		got, err := os.ReadFile(filepath.Join(dir, "x", f.Name))
		if err != nil || string(got) != string(f.Data) {
			t.Errorf("%s read back: %q, %v", f.Name, got, err)
		}
	}
}

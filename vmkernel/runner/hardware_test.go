package runner

import (
	"encoding/hex"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/internal/testenv"
	"github.com/plinth/plinth/vmkernel/runner/runnertest"
)

// TestTPM: a VM with a TPM gets a swtpm that vmkernel started as the VM's
// own user, its state in the VM's state directory; the guest sees
// /dev/tpm0, its kernel reads the PCRs (the firmware measured into them)
// and a TPM2_GetRandom through /dev/tpm0 answers. The state outlives the
// VM; swtpm does not.
func TestTPM(t *testing.T) {
	testenv.Root(t, "swtpm runs as the VM's own user")
	if _, err := os.Stat(DefaultSWTPM); err != nil {
		testenv.Unmet(t, "swtpm not installed (apt-get install swtpm; make deps does)")
	}
	r := newRig(t)
	spec := guestSpec("tpm", api.OnCrashStayStopped)
	spec.Machine = api.MachineQ35
	spec.TPM = true
	// The bzImage: with a TPM attached, the kernel booted through its PVH
	// entry finds the RSDP but no ACPI table behind it (no TPM2 table, no
	// MSFT0101 device, no /dev/tpm0; without the TPM it finds them all).
	spec.Kernel.Kernel = "vmlinuz"
	spec.Kernel.Cmdline = runnertest.FloorCmdline("tpm,hang")
	if err := r.m.Start(ctxT(t, 60*time.Second), spec); err != nil {
		t.Fatal(err)
	}
	waitMarker(t, r.m, spec.ID, 180*time.Second)
	con, _ := r.m.ConsoleTail(spec.ID, 0)
	m := regexp.MustCompile(`PLINTH-TPM version=(\S+) pcr0=(\S+) pcr7=(\S+) random=(-?\d+)`).FindStringSubmatch(string(con))
	if m == nil {
		t.Fatalf("no TPM line on the console:\n%s", con)
	}
	if m[1] != "2" {
		t.Errorf("TPM version %s, want 2", m[1])
	}
	for _, pcr := range m[2:4] {
		if b, err := hex.DecodeString(pcr); err != nil || len(b) != 32 {
			t.Errorf("PCR %q is not a SHA-256 value", pcr)
		}
	}
	if strings.Trim(m[2], "0") == "" {
		t.Errorf("PCR 0 is all zeros: the firmware measured nothing into the TPM")
	}
	if m[4] != "8" {
		t.Errorf("TPM2_GetRandom through /dev/tpm0 gave %s bytes, want 8", m[4])
	}

	// swtpm runs as the VM's user, as QEMU does.
	st := r.m.Status(spec.ID)
	swtpm := findProcess(t, "swtpm", filepath.Join(r.cfg.RunRoot, spec.ID))
	if uid := procUID(t, swtpm); uid != st.User || uid < api.VMUIDBase {
		t.Errorf("swtpm runs as uid %d; QEMU as %d (want the VM's own user)", uid, st.User)
	}
	state := filepath.Join(r.cfg.StateRoot, spec.ID, TPMDir)
	ents, err := os.ReadDir(state)
	if err != nil || len(ents) == 0 {
		t.Fatalf("no TPM state in %s: %v", state, err)
	}
	var fi syscall.Stat_t
	if err := syscall.Stat(filepath.Join(state, "tpm2-00.permall"), &fi); err != nil || int(fi.Uid) != st.User {
		t.Errorf("TPM state file: %v, owner %d, want the VM's user %d", err, fi.Uid, st.User)
	}

	if err := r.m.Stop(ctxT(t, 20*time.Second), spec.ID); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); alive(swtpm); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("swtpm (pid %d) still runs after its VM stopped", swtpm)
		}
	}
	if _, err := os.Stat(filepath.Join(state, "tpm2-00.permall")); err != nil {
		t.Errorf("the TPM state went with the VM: %v", err)
	}
}

// findProcess is the pid of the process named name whose command line
// mentions arg.
func findProcess(t *testing.T, name, arg string) int {
	t.Helper()
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmd, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		args := strings.Split(string(cmd), "\x00")
		if filepath.Base(args[0]) == name && strings.Contains(string(cmd), arg) {
			return pid
		}
	}
	t.Fatalf("no %s process for %s", name, arg)
	return 0
}

func procUID(t *testing.T, pid int) int {
	t.Helper()
	c, err := readConfinement(pid)
	if err != nil {
		t.Fatal(err)
	}
	return c.uid
}

// TestSecureBoot: with firmware uefi-secure (OVMF with Microsoft's keys),
// Debian's signed shim boots its signed GRUB, and the same shim with its
// signature stripped is refused; with plain uefi (the same firmware, no
// keys: Secure Boot off) the unsigned shim boots.
func TestSecureBoot(t *testing.T) {
	for _, f := range []string{DefaultOVMFCode, DefaultOVMFVars, DefaultOVMFVarsSecure} {
		if _, err := os.Stat(f); err != nil {
			testenv.Unmet(t, "OVMF not installed (apt-get install ovmf): %v", err)
		}
	}
	r := newRig(t)
	sb := filepath.Join(r.ds, "sb")
	if err := os.MkdirAll(sb, 0o755); err != nil {
		t.Fatal(err)
	}
	signed, unsigned := runnertest.SecureBootDisks(t, filepath.Join("..", "..", "build", "cache", "secureboot"), sb)
	for _, c := range []struct {
		name, firmware, disk, want string
	}{
		{"signed with Secure Boot", api.FirmwareUEFISecure, signed, runnertest.SignedMarker},
		{"unsigned with Secure Boot", api.FirmwareUEFISecure, unsigned, runnertest.RefusedMarker},
		{"unsigned without Secure Boot", api.FirmwareUEFI, unsigned, runnertest.SignedMarker},
	} {
		t.Run(c.name, func(t *testing.T) {
			spec := api.VMSpec{ID: api.NewUUID(), Name: "sb", MemoryMiB: 256, Firmware: c.firmware, Serial: true,
				Disks: []api.Disk{{Datastore: "ds", Path: "sb/" + filepath.Base(c.disk), Format: api.FormatRaw}}}
			spec.Defaults()
			t0 := time.Now()
			if err := r.m.Start(ctxT(t, 60*time.Second), spec); err != nil {
				t.Fatal(err)
			}
			defer r.m.Stop(ctxT(t, 20*time.Second), spec.ID)
			runnertest.WaitConsole(t, func() ([]byte, error) { return r.m.ConsoleTail(spec.ID, 0) }, c.want, 240*time.Second)
			t.Logf("%q on the console %v after start", c.want, time.Since(t0).Round(time.Second))
			con, _ := r.m.ConsoleTail(spec.ID, 0)
			if c.want == runnertest.SignedMarker && strings.Contains(string(con), runnertest.RefusedMarker) {
				t.Errorf("the firmware refused a boot option on the way:\n%s", con)
			}
		})
	}
}

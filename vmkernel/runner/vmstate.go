package runner

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/vmkernel/datastore"
	"github.com/plinth/plinth/vmkernel/qemu"
	"github.com/plinth/plinth/vmkernel/qmp"
)

// What a VM keeps outside its datastores lives in its state directory
// (StateRoot/ID): among it its UEFI variables, which its snapshots,
// clones and backups must carry like a disk.

// legacyVarsFile and legacyVarsSecureFile are the raw UEFI variables
// files of a VM started before the variables became qcow2 images; its
// next start converts them.
const (
	legacyVarsFile       = "OVMF_VARS.fd"
	legacyVarsSecureFile = "OVMF_VARS_SECURE.fd"
)

// varsFiles are the spec's UEFI variables image, the raw file it is made
// from when there was one, and the firmware's template.
func (m *Manager) varsFiles(spec api.VMSpec) (image, legacy, template string) {
	if spec.Firmware == api.FirmwareUEFISecure {
		return VarsSecureFile, legacyVarsSecureFile, m.cfg.OVMFVarsSecure
	}
	return VarsFile, legacyVarsFile, m.cfg.OVMFVars
}

// VarsPath is the UEFI VM's variables image, relative to its StateStore
// ("" for a VM without UEFI).
func (m *Manager) VarsPath(spec api.VMSpec) string {
	if !spec.UEFI() {
		return ""
	}
	image, _, _ := m.varsFiles(spec)
	return image
}

// StateStore is the VM's state directory seen as a datastore, so that its
// UEFI variables image (VarsFile) is opened, checked and handed to qemu-img
// the way a disk is.
func (m *Manager) StateStore(id string) datastore.Datastore {
	return datastore.Datastore{Name: "vm-state/" + id, Root: filepath.Join(m.cfg.StateRoot, id)}
}

// EnsureVars makes the UEFI VM's variables image (VarsFile, qcow2) when it
// has none: from its raw variables file of before, else from the
// firmware's template. A qcow2 image works as QEMU's second flash and is
// then held by the VM's internal snapshots with its disks (a raw flash is
// silently left out of them).
func (m *Manager) EnsureVars(ctx context.Context, spec api.VMSpec) error {
	m.varsMu.Lock()
	defer m.varsMu.Unlock()
	st := m.StateStore(spec.ID)
	image, legacy, template := m.varsFiles(spec)
	if _, err := os.Lstat(filepath.Join(st.Root, image)); err == nil {
		return nil
	}
	if err := os.MkdirAll(st.Root, 0o700); err != nil {
		return fmt.Errorf("UEFI variables: %w", err)
	}
	if err := copyIfMissing(template, filepath.Join(st.Root, legacy)); err != nil {
		return fmt.Errorf("UEFI variables: %w", err)
	}
	if err := st.ConvertDisk(ctx, legacy, image, api.FormatQcow2, nil); err != nil && !errors.Is(err, datastore.ErrExists) {
		return fmt.Errorf("UEFI variables: %w", err)
	}
	return os.Remove(filepath.Join(st.Root, legacy))
}

// OpenVars opens the UEFI VM's variables image, checked as a disk is
// (read-write when write); the caller closes it.
func (m *Manager) OpenVars(spec api.VMSpec, write bool) (*datastore.Image, error) {
	image, _, _ := m.varsFiles(spec)
	im, err := m.StateStore(spec.ID).OpenImage(image, write)
	if err != nil {
		return nil, fmt.Errorf("UEFI variables: %w", err)
	}
	if err := im.CheckFormat("UEFI variables", api.FormatQcow2); err != nil || im.Backing != nil {
		im.Close()
		return nil, fmt.Errorf("UEFI variables: %v: %w", err, datastore.ErrRefused)
	}
	return im, nil
}

// Monitor is the QMP connection of the VM's QEMU, which must run or be
// paused (else a *StateError), for block work on the running VM
// (snapshots, backups). The runner still owns it: never Close it.
func (m *Manager) Monitor(id string) (*qmp.Monitor, error) {
	_, inst, err := m.running(id, "reach QEMU", api.VMRunning, api.VMPaused)
	if err != nil {
		return nil, err
	}
	return inst.mon, nil
}

// Block node names the runner gives a VM's images (qemu.Cmdline's), for
// QMP commands about them.
var (
	DiskNode = qemu.DiskNodeName
	VarsNode = qemu.VarsNodeName
)

package qemutest

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
)

// The development disk of make run: one sparse GPT disk image with STATE
// (the password, the certificate, the VM inventory, logs) and datastore ds1
// (ISOs, VM disks), made on the first run and kept after, as on a host
// installed to a disk.
const (
	RunDiskBytes  = 32 << 30  // sparse: it takes what is written
	runStateStart = 1 << 20   // partition 1, STATE
	runStateBytes = 512 << 20 //
	runDSStart    = runStateStart + runStateBytes
)

// RunDisk makes the development disk at path unless it exists (then it is
// kept as it is). It answers whether it made it. It needs sgdisk (gdisk)
// and mke2fs (e2fsprogs), and no loop device.
func RunDisk(path string) (bool, error) {
	if _, err := os.Stat(path); err == nil {
		return false, nil
	}
	tmp := path + ".new"
	os.Remove(tmp)
	f, err := os.Create(tmp)
	if err != nil {
		return false, err
	}
	err = f.Truncate(RunDiskBytes)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return false, err
	}
	sector := func(b int64) string { return strconv.FormatInt(b/512, 10) }
	dsEnd := int64(RunDiskBytes) - (1 << 20) // the backup GPT lives in the last sectors
	steps := [][]string{
		{"sgdisk", "-o",
			"-n", "1:" + sector(runStateStart) + ":" + sector(runStateStart+runStateBytes-1), "-t", "1:8300", "-c", "1:PLINTH-STATE",
			"-n", "2:" + sector(runDSStart) + ":" + sector(dsEnd-1), "-t", "2:8300", "-c", "2:PLINTH-DS1", tmp},
		{"mke2fs", "-q", "-F", "-t", "ext4", "-L", "PLINTH-STATE", "-E", "offset=" + strconv.Itoa(runStateStart), tmp, strconv.Itoa(runStateBytes>>10) + "k"},
		{"mke2fs", "-q", "-F", "-t", "ext4", "-L", "PLINTH-DS1", "-E", "offset=" + strconv.Itoa(runDSStart), tmp, strconv.FormatInt((dsEnd-runDSStart)>>10, 10) + "k"},
	}
	for _, s := range steps {
		if out, err := exec.Command(s[0], s[1:]...).CombinedOutput(); err != nil {
			os.Remove(tmp)
			return false, fmt.Errorf("%s: %v: %s", s[0], err, out)
		}
	}
	if err := os.Rename(tmp, path); err != nil {
		return false, err
	}
	return true, nil
}

// RunDiskArgs are QEMU's arguments for the development disk.
func RunDiskArgs(path string) []string {
	return []string{"-drive", "file=" + path + ",if=virtio,format=raw,cache=writeback"}
}

package qemutest

import (
	"strings"
	"testing"
)

func TestArgsFirmwareBoot(t *testing.T) {
	o := Options{
		Firmware: FirmwareUEFI, UEFIVars: "/tmp/vars.fd",
		Disks: []Disk{{Path: "/i/stick.img", Serial: "S1"}, {Path: "/i/t.qcow2", Format: "qcow2"}},
		CDROM: "/i/p.iso",
		FWCfg: []FWCfgFile{{Name: "opt/plinth/answer", File: "/i/a.cfg"}},
		Accel: "tcg",
	}
	got := strings.Join(o.Args(1234, "/q.sock"), " ")
	for _, want := range []string{
		"-drive if=pflash,format=raw,unit=0,readonly=on,file=" + OVMFCode,
		"-drive if=pflash,format=raw,unit=1,file=/tmp/vars.fd",
		"-drive if=none,id=disk0,format=raw,file=/i/stick.img -device virtio-blk-pci,drive=disk0,bootindex=0,serial=S1",
		"-drive if=none,id=disk1,format=qcow2,file=/i/t.qcow2 -device virtio-blk-pci,drive=disk1,bootindex=1",
		"-device ide-cd,drive=cd0,bus=ide.0,bootindex=2",
		"-fw_cfg name=opt/plinth/answer,file=/i/a.cfg",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("args lack %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "-kernel") || strings.Contains(got, "-append") {
		t.Errorf("firmware boot with -kernel/-append: %s", got)
	}
	o.BootCDROM = true
	got = strings.Join(o.Args(1234, "/q.sock"), " ")
	if !strings.Contains(got, "bootindex=1,serial=S1") || !strings.Contains(got, "ide-cd,drive=cd0,bus=ide.0,bootindex=0") {
		t.Errorf("BootCDROM: the CD is not first:\n%s", got)
	}
}

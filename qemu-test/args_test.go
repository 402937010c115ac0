package qemutest

import (
	"slices"
	"strings"
	"testing"

	"github.com/plinth/plinth/api"
)

func TestArgs(t *testing.T) {
	base := func(accel, cpu, mem, smp, initrd, appendLine string, extra ...string) []string {
		a := []string{"-machine", "q35", "-accel", accel, "-cpu", cpu, "-m", mem, "-smp", smp,
			"-display", "none", "-monitor", "none", "-serial", "stdio", "-no-reboot",
			"-kernel", "/k/vmlinuz"}
		if initrd != "" {
			a = append(a, "-initrd", initrd)
		}
		a = append(a, "-append", appendLine,
			"-netdev", "user,id=n0,hostfwd=tcp:127.0.0.1:4443-:443",
			"-device", "virtio-net-pci,netdev=n0",
			"-device", "virtio-rng-pci",
			"-qmp", "unix:/tmp/x/qmp.sock,server=on,wait=off")
		return append(a, extra...)
	}
	for _, tc := range []struct {
		name string
		o    Options
		want []string
	}{
		{"defaults are tcg, 512 MiB, 1 cpu, no initrd",
			Options{Kernel: "/k/vmlinuz"},
			base("tcg", "max", "512", "1", "", "console=ttyS0 panic=-1 cryptomgr.notests=1 plinth.ksm=off cgroup.memory=nokmem")},
		{"tcg explicit with initrd and cmdline",
			Options{Kernel: "/k/vmlinuz", Initrd: "/k/initrd", Cmdline: " quiet  plinth.x=1 ", Accel: api.AccelTCG, MemoryMiB: 1024, CPUs: 2},
			base("tcg", "max", "1024", "2", "/k/initrd", "console=ttyS0 panic=-1 cryptomgr.notests=1 plinth.ksm=off cgroup.memory=nokmem quiet  plinth.x=1")},
		{"kvm uses the host cpu",
			Options{Kernel: "/k/vmlinuz", Accel: api.AccelKVM, CPUs: 4, MemoryMiB: 2048},
			base("kvm", "host", "2048", "4", "", "console=ttyS0 panic=-1 cryptomgr.notests=1")},
		{"a server's boot keeps the crypto self-tests",
			Options{Kernel: "/k/vmlinuz", ServerBoot: true, Accel: api.AccelKVM, CPUs: 4, MemoryMiB: 2048},
			base("kvm", "host", "2048", "4", "", "console=ttyS0 panic=-1")},
		{"extra args go last",
			Options{Kernel: "/k/vmlinuz", ExtraArgs: []string{"-smbios", "type=1,serial=abc"}},
			base("tcg", "max", "512", "1", "", "console=ttyS0 panic=-1 cryptomgr.notests=1 plinth.ksm=off cgroup.memory=nokmem", "-smbios", "type=1,serial=abc")},
		{"an IOMMU: split irqchip and intel-iommu before every other device",
			Options{Kernel: "/k/vmlinuz", IOMMU: true, Cmdline: "intel_iommu=on"},
			append([]string{"-machine", "q35,kernel-irqchip=split", "-device", "intel-iommu,intremap=on,caching-mode=on"},
				base("tcg", "max", "512", "1", "", "console=ttyS0 panic=-1 cryptomgr.notests=1 plinth.ksm=off cgroup.memory=nokmem intel_iommu=on")[2:]...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.o.Args(4443, "/tmp/x/qmp.sock")
			if !slices.Equal(got, tc.want) {
				t.Errorf("Args:\n got %s\nwant %s", strings.Join(got, " "), strings.Join(tc.want, " "))
			}
		})
	}
}

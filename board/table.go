package board

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/plinth/plinth/api"
)

// WriteTable prints hw for a person: one section per area, columns aligned.
func WriteTable(w io.Writer, hw api.Hardware) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	s := hw.System
	sb := "unknown"
	if s.SecureBoot != nil {
		sb = map[bool]string{true: "on", false: "off"}[*s.SecureBoot]
	}
	fmt.Fprintf(tw, "SYSTEM\t%s %s\tserial %s\tuuid %s\n", dash(s.Vendor), dash(s.Product), dash(s.Serial), dash(s.UUID))
	fmt.Fprintf(tw, "FIRMWARE\t%s %s (%s)\tboot %s\tsecure boot %s\n", dash(s.BIOSVendor), dash(s.BIOSVersion), dash(s.BIOSDate), s.BootMode, sb)
	c := hw.CPU
	fmt.Fprintf(tw, "CPU\t%s\t%d sockets, %d cores, %d threads\tvirt %s %s, kvm %s, nested %v\n",
		dash(c.Model), c.Sockets, c.Cores, c.Threads, dash(c.Virtualization), dash(c.SecondLevelPaging), dash(c.KVMModule), c.Nested)
	fmt.Fprintf(tw, "MEMORY\t%s\n", size(hw.Memory.TotalBytes))
	for _, n := range hw.Memory.NUMANodes {
		fmt.Fprintf(tw, "  node %d\t%s\tcpus %s\n", n.ID, size(n.TotalBytes), dash(n.CPUs))
	}
	for _, h := range hw.Memory.HugePages {
		fmt.Fprintf(tw, "  huge pages %s\t%d total\t%d free\n", size(h.SizeBytes), h.Total, h.Free)
	}
	fmt.Fprintf(tw, "\nPCI\tID\tCLASS\tDRIVER\tIOMMU\tPASSTHROUGH\tNAME\n")
	for _, d := range hw.PCI {
		pt := "no"
		if d.PassthroughCapable {
			pt = "yes"
		}
		if d.PassthroughReason != "" {
			pt += " (" + d.PassthroughReason + ")"
		}
		fmt.Fprintf(tw, "%s\t%s:%s\t%s\t%s\t%d\t%s\t%s\n", d.Address, d.VendorID, d.DeviceID, d.Class, dash(d.Driver), d.IOMMUGroup, pt,
			strings.TrimSpace(d.VendorName+" "+d.DeviceName))
	}
	fmt.Fprintf(tw, "\nNIC\tMAC\tDRIVER\tLINK\tSPEED\tDUPLEX\tPCI\n")
	for _, n := range hw.NICs {
		speed := "?"
		if n.SpeedMbps >= 0 {
			speed = fmt.Sprintf("%d Mb/s", n.SpeedMbps)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%v\t%s\t%s\t%s\n", n.Name, dash(n.MAC), dash(n.Driver), n.Link, speed, dash(n.Duplex), dash(n.PCIAddress))
	}
	fmt.Fprintf(tw, "\nDISK\tSIZE\tTRANSPORT\tMODEL\tSERIAL\tFLAGS\n")
	for _, d := range hw.Disks {
		var flags []string
		if d.Rotational {
			flags = append(flags, "rotational")
		}
		if d.Removable {
			flags = append(flags, "removable")
		}
		if d.PlinthInstall {
			flags = append(flags, "plinth")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", d.Name, size(d.SizeBytes), dash(d.Transport), dash(d.Model), dash(d.Serial), dash(strings.Join(flags, ",")))
		for _, p := range d.Partitions {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t\t\n", p.Name, size(p.SizeBytes), dash(p.FSType), dash(p.Label))
		}
	}
	if len(hw.Sensors) > 0 {
		fmt.Fprintf(tw, "\nSENSOR\tLABEL\tVALUE\n")
		for _, s := range hw.Sensors {
			unit := "°C"
			if s.Kind == api.SensorFan {
				unit = "RPM"
			}
			fmt.Fprintf(tw, "%s/%s\t%s\t%.1f %s\n", s.Chip, s.Name, dash(s.Label), s.Value, unit)
		}
	}
	if len(hw.Gaps) > 0 {
		fmt.Fprintf(tw, "\nGAPS\n")
		for _, g := range hw.Gaps {
			fmt.Fprintf(tw, "  %s\n", g)
		}
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func size(b uint64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB"}
	v, i := float64(b), 0
	for v >= 1024 && i < len(units)-1 {
		v /= 1024
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%d B", b)
	}
	return fmt.Sprintf("%.1f %s", v, units[i])
}

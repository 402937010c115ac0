package mgmtd

import (
	"bytes"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/plinth/plinth/api"
)

// metrics answers Prometheus text exposition (format 0.0.4) from one
// snapshot of vmkernel's counters.
func (s *Server) metrics(w http.ResponseWriter, r *http.Request) {
	st, err := s.vmk.Stats(r.Context())
	if err != nil {
		s.vmkernelError(w, err)
		return
	}
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	w.Write(renderMetrics(st))
}

// promWriter writes metric families, each with its HELP and TYPE once.
type promWriter struct {
	b    bytes.Buffer
	seen map[string]bool
}

func (p *promWriter) family(name, typ, help string) {
	if p.seen[name] {
		return
	}
	p.seen[name] = true
	fmt.Fprintf(&p.b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
}

// sample writes one sample; labels are name, value pairs.
func (p *promWriter) sample(name string, v float64, labels ...string) {
	p.b.WriteString(name)
	if len(labels) > 0 {
		p.b.WriteByte('{')
		for i := 0; i+1 < len(labels); i += 2 {
			if i > 0 {
				p.b.WriteByte(',')
			}
			p.b.WriteString(labels[i])
			p.b.WriteString(`="`)
			p.b.WriteString(labelEscaper.Replace(labels[i+1]))
			p.b.WriteByte('"')
		}
		p.b.WriteByte('}')
	}
	p.b.WriteByte(' ')
	p.b.WriteString(strconv.FormatFloat(v, 'g', -1, 64))
	p.b.WriteByte('\n')
}

var labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)

func (p *promWriter) metric(name, typ, help string, v float64, labels ...string) {
	p.family(name, typ, help)
	p.sample(name, v, labels...)
}

func renderMetrics(st api.Stats) []byte {
	p := &promWriter{seen: map[string]bool{}}
	p.metric("plinth_build_info", "gauge", "Plinth's version.", 1, "version", api.Version)
	h := st.Host
	p.family("plinth_host_cpu_seconds_total", "counter", "Time all host CPUs spent in each mode.")
	for _, m := range []struct {
		mode string
		v    float64
	}{{"user", h.CPUSeconds.User}, {"nice", h.CPUSeconds.Nice}, {"system", h.CPUSeconds.System},
		{"idle", h.CPUSeconds.Idle}, {"iowait", h.CPUSeconds.IOWait}, {"irq", h.CPUSeconds.IRQ},
		{"softirq", h.CPUSeconds.SoftIRQ}, {"steal", h.CPUSeconds.Steal}} {
		p.sample("plinth_host_cpu_seconds_total", m.v, "mode", m.mode)
	}
	p.metric("plinth_host_memory_total_bytes", "gauge", "Host memory.", float64(h.MemoryTotalBytes))
	p.metric("plinth_host_memory_available_bytes", "gauge", "Host memory available for new work.", float64(h.MemoryAvailableBytes))
	p.metric("plinth_host_uptime_seconds", "gauge", "Time since the host booted.", h.UptimeSeconds)
	if k := h.KSM; k != nil {
		p.metric("plinth_host_ksm_running", "gauge", "1 while KSM merges identical memory pages of the VMs.", b2f(k.Running))
		p.metric("plinth_host_ksm_shared_bytes", "gauge", "Memory of the pages KSM merged, kept once.", float64(k.SharedBytes))
		p.metric("plinth_host_ksm_saved_bytes", "gauge", "Memory KSM saved: the pages that share a merged page instead of holding their own.", float64(k.SavedBytes))
		p.metric("plinth_host_ksm_full_scans_total", "counter", "KSM's passes over all mergeable memory.", float64(k.FullScans))
	}
	p.metric("plinth_vms", "gauge", "Defined VMs.", float64(len(st.VMs)))

	p.family("plinth_vm_state", "gauge", "1 for the state each VM is in, 0 for the others.")
	for _, vm := range st.VMs {
		for _, state := range vmStates {
			v := 0.0
			if vm.State == state {
				v = 1
			}
			p.sample("plinth_vm_state", v, "id", vm.ID, "name", vm.Name, "state", state)
		}
	}
	type vmMetric struct {
		name, typ, help string
		v               func(api.VMStats) float64
	}
	for _, m := range []vmMetric{
		{"plinth_vm_running", "gauge", "1 while a QEMU process runs the VM.", func(v api.VMStats) float64 { return b2f(v.Running) }},
		{"plinth_vm_cpu_seconds_total", "counter", "CPU time of the VM's QEMU process.", func(v api.VMStats) float64 { return v.CPUSeconds }},
		{"plinth_vm_memory_rss_bytes", "gauge", "Resident memory of the VM's QEMU process.", func(v api.VMStats) float64 { return float64(v.MemoryRSSBytes) }},
		{"plinth_vm_memory_configured_bytes", "gauge", "Guest memory the VM's spec gives it.", func(v api.VMStats) float64 { return float64(v.MemoryBytes) }},
		{"plinth_vm_stats_error", "gauge", "1 when some of the VM's counters could not be read.", func(v api.VMStats) float64 { return b2f(v.Error != "") }},
	} {
		p.family(m.name, m.typ, m.help)
		for _, vm := range st.VMs {
			p.sample(m.name, m.v(vm), "id", vm.ID, "name", vm.Name)
		}
	}
	type diskMetric struct {
		name, help string
		v          func(api.VMBlockStats) uint64
	}
	for _, m := range []diskMetric{
		{"plinth_vm_disk_read_bytes_total", "Bytes the guest read from the disk.", func(d api.VMBlockStats) uint64 { return d.RdBytes }},
		{"plinth_vm_disk_written_bytes_total", "Bytes the guest wrote to the disk.", func(d api.VMBlockStats) uint64 { return d.WrBytes }},
		{"plinth_vm_disk_reads_total", "Read operations on the disk.", func(d api.VMBlockStats) uint64 { return d.RdOperations }},
		{"plinth_vm_disk_writes_total", "Write operations on the disk.", func(d api.VMBlockStats) uint64 { return d.WrOperations }},
	} {
		p.family(m.name, "counter", m.help)
		for _, vm := range st.VMs {
			for _, d := range vm.Disks {
				p.sample(m.name, float64(m.v(d)), "id", vm.ID, "name", vm.Name, "device", d.Device)
			}
		}
	}
	// A tap's transmit is what the guest receives, and the other way round.
	for _, m := range []struct {
		name, help string
		v          func(api.VMNICStats) uint64
	}{
		{"plinth_vm_network_receive_bytes_total", "Bytes the guest received on the NIC.", func(n api.VMNICStats) uint64 { return n.TxBytes }},
		{"plinth_vm_network_transmit_bytes_total", "Bytes the guest sent on the NIC.", func(n api.VMNICStats) uint64 { return n.RxBytes }},
	} {
		p.family(m.name, "counter", m.help)
		for _, vm := range st.VMs {
			for _, n := range vm.NICs {
				if n.Tap != "" {
					p.sample(m.name, float64(m.v(n)), "id", vm.ID, "name", vm.Name, "nic", strconv.Itoa(n.Index), "mac", n.MAC)
				}
			}
		}
	}
	return p.b.Bytes()
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

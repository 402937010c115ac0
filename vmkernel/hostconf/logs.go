package hostconf

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/layout"
)

// MaxLogTail is the most of a log's end one request reads.
const MaxLogTail = 4 << 20

// logFiles are the host's logs by name.
func (h *Host) logFiles() []struct{ name, desc, path string } {
	l := h.cfg.Layout
	return []struct{ name, desc, path string }{
		{api.LogBoot, "the init and its services since the boot", l.BootLog()},
		{api.LogVMKernel, "vmkernel", l.ServiceLog(layout.VMKernel)},
		{api.LogMgmtd, "mgmtd, the management API", l.ServiceLog(layout.Mgmtd)},
		{api.LogAudit, "every change made through the API (JSON lines)", l.AuditLog()},
	}
}

// Logs lists the host's logs.
func (h *Host) Logs() []api.LogInfo {
	var out []api.LogInfo
	for _, f := range h.logFiles() {
		info := api.LogInfo{Name: f.name, Description: f.desc}
		if fi, err := os.Stat(f.path); err == nil {
			info.Size = fi.Size()
		}
		out = append(out, info)
	}
	return out
}

// LogTail is the last n bytes (at most MaxLogTail) of the log name and the
// log's size.
func (h *Host) LogTail(name string, n int64) ([]byte, int64, error) {
	for _, f := range h.logFiles() {
		if f.name != name {
			continue
		}
		fh, err := os.Open(f.path)
		if os.IsNotExist(err) {
			return nil, 0, nil // not written yet: empty
		}
		if err != nil {
			return nil, 0, err
		}
		defer fh.Close()
		fi, err := fh.Stat()
		if err != nil {
			return nil, 0, err
		}
		n = min(max(n, 0), MaxLogTail, fi.Size())
		b := make([]byte, n)
		m, err := fh.ReadAt(b, fi.Size()-n)
		if err != nil && err != io.EOF {
			return nil, 0, fmt.Errorf("read %s: %w", filepath.Base(f.path), err)
		}
		return b[:m], fi.Size(), nil
	}
	return nil, 0, fmt.Errorf("%w: no log %q", ErrNotFound, name)
}

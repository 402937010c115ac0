package hostconf

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/layout"
	"github.com/plinth/plinth/netconf"
)

// The support bundle, as ESXi's vm-support: one tar.gz of what someone
// helping needs, streamed as it is made. It holds no secret: the settings
// as the API shows them (no password hash, token or private key exists in
// that view), the configuration files that hold none (an allow list:
// never mgmtd's directory, never a key), the logs (which never hold a
// secret), the hardware inventory; the caller adds what vmkernel has
// (host facts, VM specs with cloud-init's secrets removed, recent events).

// BundleFile is a file of a support bundle.
type BundleFile struct {
	Name string
	Data []byte
}

// maxBundleLog is the most of each log's end a bundle takes.
const maxBundleLog = 8 << 20

// JSONFile is v as an indented JSON file of the bundle.
func JSONFile(name string, v any) BundleFile {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		b = []byte(fmt.Sprintf("{\"error\": %q}", err.Error()))
	}
	return BundleFile{Name: name, Data: append(b, '\n')}
}

// SupportBundle writes the bundle to w as a tar.gz below a directory
// named after the host and the time, with extra added.
func (h *Host) SupportBundle(ctx context.Context, w io.Writer, extra []BundleFile) error {
	now := h.now().UTC()
	top := "plinth-support-" + h.cfg.Hostname() + "-" + now.Format("20060102T150405Z")
	gz := gzip.NewWriter(w)
	tw := tar.NewWriter(gz)
	var listed []string
	add := func(name string, data []byte, mod time.Time) error {
		listed = append(listed, name)
		if err := tw.WriteHeader(&tar.Header{Name: top + "/" + name, Mode: 0o644, Size: int64(len(data)), ModTime: mod, Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	var problems []string
	files := []BundleFile{JSONFile("settings.json", h.Settings(ctx)), JSONFile("services.json", h.Services())}
	if h.cfg.Hardware != nil {
		hw, err := h.cfg.Hardware()
		if err != nil {
			problems = append(problems, "hardware: "+err.Error())
		}
		files = append(files, JSONFile("hardware.json", hw))
	}
	files = append(files, extra...)
	for _, f := range files {
		if err := add(f.Name, f.Data, now); err != nil {
			return err
		}
	}
	l := h.cfg.Layout
	logs := []string{l.BootLog(), l.ServiceLog(layout.VMKernel), l.ServiceLog(layout.Mgmtd), l.AuditLog()}
	for _, p := range logs {
		for _, q := range []string{p + ".1", p} {
			b, mod, err := tail(q, maxBundleLog)
			if os.IsNotExist(err) {
				continue
			}
			if err != nil {
				problems = append(problems, err.Error())
				continue
			}
			if err := add("logs/"+filepath.Base(q), b, mod); err != nil {
				return err
			}
		}
	}
	// Configuration files that hold no secret, by name.
	for _, p := range []string{filepath.Join(l.State, netconf.FileName), l.HostnameFile(), l.NTPFile(), l.TimeFile(),
		l.SyslogFile(), l.SSHFile(), l.SSHKeysFile(), l.InstalledMarker(),
		l.BootModeFile(), filepath.Join(l.Run, netconf.AppliedFile), filepath.Join(l.Run, netconf.PendingFile)} {
		b, mod, err := tail(p, 1<<20)
		if err != nil {
			continue
		}
		dir := "config/"
		if strings.HasPrefix(p, l.Run+"/") {
			dir = "run/"
		}
		if err := add(dir+filepath.Base(p), b, mod); err != nil {
			return err
		}
	}
	readme := fmt.Sprintf("Plinth support bundle of %s, made %s by Plinth %s.\n\nFiles:\n  %s\n",
		h.cfg.Hostname(), now.Format(time.RFC3339), api.Version, strings.Join(append(listed, "README.txt"), "\n  "))
	if len(problems) > 0 {
		readme += "\nNot included:\n  " + strings.Join(problems, "\n  ") + "\n"
	}
	if err := add("README.txt", []byte(readme), now); err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return gz.Close()
}

// tail is the last n bytes of a file and its modification time.
func tail(path string, n int64) ([]byte, time.Time, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, time.Time{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, time.Time{}, err
	}
	if !fi.Mode().IsRegular() {
		return nil, time.Time{}, fmt.Errorf("%s is not a file", path)
	}
	off := max(fi.Size()-n, 0)
	b := make([]byte, fi.Size()-off)
	m, err := f.ReadAt(b, off)
	if err != nil && err != io.EOF {
		return nil, time.Time{}, fmt.Errorf("read %s: %w", path, err)
	}
	return b[:m], fi.ModTime(), nil
}

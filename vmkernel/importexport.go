package vmkernel

import (
	"archive/tar"
	"bufio"
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"strings"
	"syscall"
	"time"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/atomicfile"
	"github.com/plinth/plinth/vmkernel/datastore"
	"github.com/plinth/plinth/vmkernel/ovf"
	"github.com/plinth/plinth/vmkernel/runner"
)

// Bounds of imports, exports and fetches.
var (
	// importTimeout bounds a whole import or export task.
	importTimeout = 12 * time.Hour
	// fetchIdleTimeout: a download that sends nothing for this long fails.
	fetchIdleTimeout = time.Minute
)

func (s *Server) importRoutes() []Route {
	if s.cfg.Inventory == nil || s.cfg.Runner == nil {
		return nil
	}
	return []Route{
		{http.MethodPost, api.VMKernelImportPath, s.importVM},
		{http.MethodPost, api.VMKernelVMPath + "{id}/" + api.ExportAction, s.exportVM},
		{http.MethodPost, api.VMKernelDatastorePath + "{name}/" + api.FetchAction, s.fetchFile},
	}
}

func fieldErr(field, format string, a ...any) error {
	return &api.ValidationError{Subject: "request", Problems: []api.FieldProblem{{Field: field, Message: fmt.Sprintf(format, a...)}}}
}

// ovaPackage is an OVF package being read: its descriptor, its manifest
// (member name to digest, when it has one) and a way to its members.
type ovaPackage struct {
	descriptor []byte
	descName   string
	manifest   map[string]string
	// members calls fn with each member the package holds, in its order
	// (an OVA is read once, front to back).
	members func(fn func(name string, size int64, r io.Reader) error) error
	close   func()
}

// openPackage opens an .ova (a tar whose first member is the descriptor)
// or an .ovf with its members beside it in the datastore.
func openPackage(ds datastore.Datastore, rel string) (*ovaPackage, error) {
	f, fi, err := ds.Open(rel)
	if err != nil {
		return nil, err
	}
	if strings.EqualFold(path.Ext(rel), ".ovf") {
		defer f.Close()
		b, err := io.ReadAll(io.LimitReader(f, ovf.MaxDescriptor+1))
		if err != nil {
			return nil, err
		}
		p := &ovaPackage{descriptor: b, descName: path.Base(rel), close: func() {}}
		p.manifest, _ = readManifest(ds, strings.TrimSuffix(rel, path.Ext(rel))+".mf")
		dir := path.Dir(rel)
		p.members = func(fn func(string, int64, io.Reader) error) error {
			des, err := ds.Browse(strings.TrimPrefix(dir, "."))
			if err != nil {
				return err
			}
			for _, e := range des {
				if e.Kind != api.EntryFile {
					continue
				}
				m, fi, err := ds.Open(e.Path)
				if err != nil {
					return err
				}
				err = fn(e.Name, fi.Size(), m)
				m.Close()
				if err != nil {
					return err
				}
			}
			return nil
		}
		return p, nil
	}
	tr := tar.NewReader(bufio.NewReaderSize(f, 1<<20))
	h, err := tr.Next()
	if err != nil || !strings.EqualFold(path.Ext(h.Name), ".ovf") || h.Typeflag != tar.TypeReg || h.Size > ovf.MaxDescriptor {
		f.Close()
		return nil, fieldErr("path", "%s is not an OVA: its first member must be the OVF descriptor (a file of at most %d bytes)", rel, ovf.MaxDescriptor)
	}
	b, err := io.ReadAll(io.LimitReader(tr, ovf.MaxDescriptor))
	if err != nil {
		f.Close()
		return nil, fieldErr("path", "%s: reading its descriptor: %v", rel, err)
	}
	_ = fi
	p := &ovaPackage{descriptor: b, descName: h.Name, close: func() { f.Close() }}
	p.members = func(fn func(string, int64, io.Reader) error) error {
		for {
			h, err := tr.Next()
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return fmt.Errorf("reading the OVA: %w", err)
			}
			if h.Typeflag != tar.TypeReg || strings.ContainsAny(h.Name, "/\\") {
				continue // only plain members of the package's top level
			}
			if err := fn(h.Name, h.Size, tr); err != nil {
				return err
			}
		}
	}
	return p, nil
}

// parseManifest reads an OVF manifest: lines "SHA256(name)= hex" (or SHA1).
func parseManifest(b []byte) map[string]string {
	m := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		alg, rest, ok := strings.Cut(strings.TrimSpace(line), "(")
		if !ok {
			continue
		}
		name, sum, ok := strings.Cut(rest, ")=")
		if !ok {
			continue
		}
		alg = strings.ToUpper(alg)
		if alg != "SHA256" && alg != "SHA1" {
			continue
		}
		m[name] = alg + ":" + strings.ToLower(strings.TrimSpace(sum))
	}
	return m
}

func readManifest(ds datastore.Datastore, rel string) (map[string]string, error) {
	f, _, err := ds.Open(rel)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 1<<20))
	if err != nil {
		return nil, err
	}
	return parseManifest(b), nil
}

// digests hashes a member as it is read, both ways a manifest may say.
type digests struct{ s256, s1 hash.Hash }

func newDigests() *digests { return &digests{sha256.New(), sha1.New()} }

func (d *digests) Write(p []byte) (int, error) { d.s256.Write(p); d.s1.Write(p); return len(p), nil }

// check compares with a manifest entry ("SHA256:hex"; "" when the package
// has no manifest or does not list the member).
func (d *digests) check(name, want string) error {
	if want == "" {
		return nil
	}
	alg, sum, _ := strings.Cut(want, ":")
	got := hex.EncodeToString(d.s256.Sum(nil))
	if alg == "SHA1" {
		got = hex.EncodeToString(d.s1.Sum(nil))
	}
	if got != sum {
		return fmt.Errorf("%s does not match the manifest (%s %s, the manifest says %s)", name, alg, got, sum)
	}
	return nil
}

// importVM serves POST /v1/vms/import: the VM an OVA or OVF describes, its
// disks converted to qcow2, as a task.
func (s *Server) importVM(w http.ResponseWriter, r *http.Request) {
	var req api.ImportVMRequest
	if err := decodeSmall(w, r, &req); err != nil {
		s.problem(w, err)
		return
	}
	root, ok := s.cfg.Datastores[req.Datastore]
	if !ok {
		s.problem(w, fieldErr("datastore", "datastore %q is not known on this host", req.Datastore))
		return
	}
	ds := datastore.Datastore{Name: req.Datastore, Root: root}
	if msg := api.CheckRelPath(req.Path); msg != "" {
		s.problem(w, fieldErr("path", "%s", msg))
		return
	}
	if req.Name != "" {
		if msg := api.CheckName(req.Name); msg != "" {
			s.problem(w, fieldErr("name", "%s", msg))
			return
		}
	}
	pkg, err := openPackage(ds, req.Path)
	if err != nil {
		s.problem(w, pathProblem(err))
		return
	}
	taskStarted := false
	defer func() {
		if !taskStarted {
			pkg.close()
		}
	}()
	env, err := ovf.Parse(strings.NewReader(string(pkg.descriptor)))
	if err != nil {
		s.problem(w, fieldErr("path", "%v", err))
		return
	}
	var switches []string
	if s.cfg.Switches != nil {
		list, _ := s.cfg.Switches.List()
		for _, sw := range list {
			switches = append(switches, sw.Name)
		}
	}
	im, err := ovf.Map(env, req.Name, switches)
	if err != nil {
		s.problem(w, fieldErr("path", "%v", err))
		return
	}
	folder := req.Folder
	if folder == "" {
		folder = im.Spec.Name
	}
	if msg := api.CheckRelPath(folder); msg != "" {
		s.problem(w, fieldErr("folder", "%s", msg))
		return
	}
	spec := im.Spec
	for i := range spec.Disks {
		spec.Disks[i].Datastore, spec.Disks[i].Path = ds.Name, path.Join(folder, fmt.Sprintf("disk-%d.qcow2", i+1))
	}
	check := spec.Clone()
	check.ID = api.NewUUID()
	check.Defaults()
	if err := check.Validate(); err != nil {
		s.problem(w, fmt.Errorf("the imported VM: %w", err))
		return
	}
	if _, err := s.cfg.Inventory.Get(spec.Name); err == nil {
		s.problem(w, fieldErr("name", "a VM named %q exists; give the import another name", spec.Name))
		return
	}
	for _, d := range spec.Disks {
		if full, err := ds.Resolve(d.Path); err != nil {
			s.problem(w, err)
			return
		} else if _, err := os.Lstat(full); err == nil {
			s.problem(w, fmt.Errorf("datastore %s: %q: %w", ds.Name, d.Path, datastore.ErrExists))
			return
		}
	}
	var total int64
	for _, d := range im.DiskFiles {
		total += 2 * d.CapacityBytes // extracted, then converted (at most)
	}
	t := s.tasks.Start("import", ds.Name+":"+req.Path+" -> VM "+spec.Name, "", total)
	taskStarted = true
	s.cfg.Log.Info("vmkernel: importing a VM", "datastore", ds.Name, "path", req.Path, "vm", spec.Name, "task", t.ID())
	go func() {
		defer pkg.close()
		ctx, cancel := context.WithTimeout(s.bg, importTimeout)
		defer cancel()
		id, err := s.runImport(ctx, ds, folder, pkg, im, spec, t.Add)
		var res *api.TaskResult
		if err == nil {
			res = &api.TaskResult{VM: id, Notes: im.Notes}
		}
		s.tasks.FinishWith(t, res, err)
		s.cfg.Log.Info("vmkernel: import ended", "task", t.ID(), "vm", spec.Name, "err", err)
	}()
	task, _ := s.tasks.Get(t.ID())
	w.Header().Set("Location", api.VMKernelPrefix+"/tasks/"+t.ID())
	writeJSON(w, http.StatusAccepted, task)
}

// runImport extracts the package's disks (checked against its manifest),
// converts each to qcow2 and defines the VM; on failure it removes what it
// made.
func (s *Server) runImport(ctx context.Context, ds datastore.Datastore, folder string, pkg *ovaPackage, im *ovf.Import, spec api.VMSpec, progress func(int64)) (_ string, err error) {
	extracted := map[string]string{} // href to the temporary file
	var made []string
	defer func() {
		for _, p := range extracted {
			ds.DeleteFile(p, nil)
		}
		if err != nil {
			for _, p := range made {
				ds.DeleteFile(p, nil)
			}
			if full, rerr := ds.Resolve(folder); rerr == nil {
				os.Remove(full) // the folder, if the import made it and it is empty
			}
		}
	}()
	want := map[string]bool{}
	for _, d := range im.DiskFiles {
		want[d.Href] = true
	}
	sums := map[string]*digests{}
	manifest := pkg.manifest
	err = pkg.members(func(name string, size int64, r io.Reader) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		switch {
		case strings.EqualFold(path.Ext(name), ".mf") && manifest == nil:
			b, err := io.ReadAll(io.LimitReader(r, 1<<20))
			if err != nil {
				return err
			}
			manifest = parseManifest(b)
		case want[name] && extracted[name] == "":
			// Named as a temporary file: if vmkernel dies before the
			// import ends, its next start sweeps it away.
			tmp := path.Join(folder, fmt.Sprintf("%simport-%d-%s", atomicfile.TempPrefix, len(extracted), sanitizeMember(name)))
			res, err := s.space.reserve(ds, size, uploadMargin)
			if err != nil {
				return err
			}
			dg := newDigests()
			_, err = ds.WriteFile(tmp, io.TeeReader(&countingReader{r: r, add: func(n int64) { progress(n); res.wrote(n) }}, dg), size, false, nil)
			res.release()
			if err != nil {
				return fmt.Errorf("disk file %s: %w", name, err)
			}
			extracted[name] = tmp
			sums[name] = dg
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	if manifest != nil {
		if want := manifest[pkg.descName]; want != "" {
			dg := newDigests()
			dg.Write(pkg.descriptor)
			if err := dg.check(pkg.descName, want); err != nil {
				return "", err
			}
		}
	}
	for _, d := range im.DiskFiles {
		if extracted[d.Href] == "" {
			return "", fmt.Errorf("the package has no member %q (a disk of the VM)", d.Href)
		}
		if err := sums[d.Href].check(d.Href, manifest[d.Href]); err != nil {
			return "", err
		}
	}
	for i, d := range im.DiskFiles {
		src, dst := extracted[d.Href], spec.Disks[i].Path
		var last float64
		err := ds.ConvertDisk(ctx, src, dst, api.FormatQcow2, func(p float64) {
			progress(int64((p - last) / 100 * float64(d.CapacityBytes)))
			last = p
		})
		if err != nil {
			return "", fmt.Errorf("disk %d (%s): %w", i+1, d.Href, err)
		}
		made = append(made, dst)
		ds.DeleteFile(src, nil)
		delete(extracted, d.Href)
	}
	if err := s.cfg.Inventory.Create(&spec); err != nil {
		return "", err
	}
	s.publish(api.EventCreated, spec, "imported")
	return spec.ID, nil
}

// sanitizeMember makes a member's name safe in a temporary file name.
func sanitizeMember(name string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == '_' {
			return r
		}
		return '_'
	}, name)
}

// countingReader reports each read's size.
type countingReader struct {
	r   io.Reader
	add func(int64)
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.add(int64(n))
	return n, err
}

// exportVM serves POST /v1/vms/{id}/export: a stopped VM as an OVA on a
// datastore, as a task.
func (s *Server) exportVM(w http.ResponseWriter, r *http.Request) {
	var req api.ExportVMRequest
	if err := decodeSmall(w, r, &req); err != nil {
		s.problem(w, err)
		return
	}
	spec, err := s.cfg.Inventory.Get(r.PathValue("id"))
	if err != nil {
		s.problem(w, err)
		return
	}
	root, ok := s.cfg.Datastores[req.Datastore]
	if !ok {
		s.problem(w, fieldErr("datastore", "datastore %q is not known on this host", req.Datastore))
		return
	}
	target := datastore.Datastore{Name: req.Datastore, Root: root}
	if msg := api.CheckRelPath(req.Path); msg != "" {
		s.problem(w, fieldErr("path", "%s", msg))
		return
	}
	if full, err := target.Resolve(req.Path); err != nil {
		s.problem(w, err)
		return
	} else if _, err := os.Lstat(full); err == nil {
		s.problem(w, fmt.Errorf("datastore %s: %q: %w", target.Name, req.Path, datastore.ErrExists))
		return
	}
	if st := s.cfg.Runner.Status(spec.ID).State; !stoppedState(st) {
		s.problem(w, &runner.StateError{ID: spec.ID, Op: "export", State: st})
		return
	}
	var total int64
	for _, d := range spec.Disks {
		root, ok := s.cfg.Datastores[d.Datastore]
		if !ok {
			s.problem(w, fieldErr("disks", "datastore %q of a disk is not known", d.Datastore))
			return
		}
		info, err := datastore.Datastore{Name: d.Datastore, Root: root}.DiskInfo(r.Context(), d.Path)
		if err != nil {
			s.problem(w, refusedProblem("disks", err))
			return
		}
		total += info.VirtualSizeBytes
	}
	t := s.tasks.Start("export", "VM "+spec.Name+" -> "+target.Name+":"+req.Path, "", total)
	go func() {
		ctx, cancel := context.WithTimeout(s.bg, importTimeout)
		defer cancel()
		err := s.runExport(ctx, spec, target, req.Path, t.Add)
		var res *api.TaskResult
		if err == nil {
			res = &api.TaskResult{Datastore: target.Name, Path: req.Path}
		}
		s.tasks.FinishWith(t, res, err)
		s.cfg.Log.Info("vmkernel: export ended", "task", t.ID(), "vm", spec.Name, "err", err)
	}()
	task, _ := s.tasks.Get(t.ID())
	w.Header().Set("Location", api.VMKernelPrefix+"/tasks/"+t.ID())
	writeJSON(w, http.StatusAccepted, task)
}

// runExport converts each disk to a streamOptimized VMDK (beside it, on
// its own datastore) and writes the OVA: descriptor, manifest, disks.
func (s *Server) runExport(ctx context.Context, spec api.VMSpec, target datastore.Datastore, rel string, progress func(int64)) error {
	type part struct {
		ds       datastore.Datastore
		tmp      string
		href     string
		size     int64
		capacity int64
		sum      string
	}
	var parts []part
	defer func() {
		for _, p := range parts {
			p.ds.DeleteFile(p.tmp, nil)
		}
	}()
	for i, d := range spec.Disks {
		ds := datastore.Datastore{Name: d.Datastore, Root: s.cfg.Datastores[d.Datastore]}
		info, err := ds.DiskInfo(ctx, d.Path)
		if err != nil {
			return err
		}
		tmp := path.Join(path.Dir(d.Path), fmt.Sprintf("%sexport-%s-%d.vmdk", atomicfile.TempPrefix, spec.ID, i))
		var last float64
		if err := ds.ConvertDisk(ctx, d.Path, tmp, datastore.StreamVMDK, func(p float64) {
			progress(int64((p - last) / 100 * float64(info.VirtualSizeBytes)))
			last = p
		}); err != nil {
			return fmt.Errorf("disk %d: %w", i+1, err)
		}
		f, fi, err := ds.Open(tmp)
		if err != nil {
			return err
		}
		h := sha256.New()
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			return err
		}
		parts = append(parts, part{ds: ds, tmp: tmp, href: fmt.Sprintf("%s-disk%d.vmdk", spec.Name, i+1),
			size: fi.Size(), capacity: info.VirtualSizeBytes, sum: hex.EncodeToString(h.Sum(nil))})
	}
	var disks []ovf.ExportDisk
	for _, p := range parts {
		disks = append(disks, ovf.ExportDisk{Href: p.href, FileSize: p.size, CapacityBytes: p.capacity})
	}
	var desc strings.Builder
	if err := ovf.Write(&desc, spec, disks); err != nil {
		return err
	}
	ovfName := spec.Name + ".ovf"
	dsum := sha256.Sum256([]byte(desc.String()))
	manifest := fmt.Sprintf("SHA256(%s)= %s\n", ovfName, hex.EncodeToString(dsum[:]))
	for _, p := range parts {
		manifest += fmt.Sprintf("SHA256(%s)= %s\n", p.href, p.sum)
	}
	var need int64
	for _, p := range parts {
		need += p.size
	}
	res, err := s.space.reserve(target, need, uploadMargin)
	if err != nil {
		return err
	}
	defer res.release()
	return target.WriteNew(rel, func(f *os.File) error {
		tw := tar.NewWriter(f)
		now := time.Now().UTC().Truncate(time.Second)
		add := func(name string, size int64, r io.Reader) error {
			if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: size, ModTime: now, Typeflag: tar.TypeReg, Format: tar.FormatUSTAR}); err != nil {
				return err
			}
			_, err := io.Copy(tw, r)
			return err
		}
		if err := add(ovfName, int64(desc.Len()), strings.NewReader(desc.String())); err != nil {
			return err
		}
		if err := add(spec.Name+".mf", int64(len(manifest)), strings.NewReader(manifest)); err != nil {
			return err
		}
		for _, p := range parts {
			src, _, err := p.ds.Open(p.tmp)
			if err != nil {
				return err
			}
			err = add(p.href, p.size, src)
			src.Close()
			if err != nil {
				return err
			}
		}
		return tw.Close()
	})
}

// fetchFile serves POST /v1/datastores/{name}/fetch: a file from an
// https:// URL, as a task.
func (s *Server) fetchFile(w http.ResponseWriter, r *http.Request) {
	ds, err := s.datastore(r)
	if err != nil {
		s.problem(w, err)
		return
	}
	var req api.FetchRequest
	if err := decodeSmall(w, r, &req); err != nil {
		s.problem(w, err)
		return
	}
	u, err := url.Parse(req.URL)
	switch {
	case err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil:
		s.problem(w, fieldErr("url", "must be an https:// URL without credentials"))
		return
	case len(req.URL) > 4096:
		s.problem(w, fieldErr("url", "longer than 4096 bytes"))
		return
	}
	if msg := api.CheckRelPath(req.Path); msg != "" {
		s.problem(w, fieldErr("path", "%s", msg))
		return
	}
	for _, h := range []struct{ field, v string }{{"sha256", req.SHA256}, {"tls_fingerprint", req.TLSFingerprint}} {
		if b, err := hex.DecodeString(h.v); h.v != "" && (err != nil || len(b) != 32) {
			s.problem(w, fieldErr(h.field, "must be 64 hexadecimal digits (a SHA-256)"))
			return
		}
	}
	if full, err := ds.Resolve(req.Path); err != nil {
		s.problem(w, err)
		return
	} else if _, err := os.Lstat(full); err == nil {
		s.problem(w, fmt.Errorf("datastore %s: %q: %w", ds.Name, req.Path, datastore.ErrExists))
		return
	}
	t := s.tasks.Start("fetch", u.Redacted()+" -> "+ds.Name+":"+req.Path, "", 0)
	go func() {
		ctx, cancel := context.WithTimeout(s.bg, importTimeout)
		defer cancel()
		err := s.runFetch(ctx, ds, u, req, func(total int64) { s.tasks.SetTotal(t, total) }, t.Add)
		var res *api.TaskResult
		if err == nil {
			res = &api.TaskResult{Datastore: ds.Name, Path: req.Path}
		}
		s.tasks.FinishWith(t, res, err)
		s.cfg.Log.Info("vmkernel: fetch ended", "task", t.ID(), "url", u.Redacted(), "err", err)
	}()
	task, _ := s.tasks.Get(t.ID())
	w.Header().Set("Location", api.VMKernelPrefix+"/tasks/"+t.ID())
	writeJSON(w, http.StatusAccepted, task)
}

// fetchClient is the HTTP client of a fetch: https only, redirects too; a
// pinned certificate when asked; no link-local, multicast or unspecified
// destination (a cloud's metadata service is no image server).
func fetchClient(pin string) *http.Client {
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if pin != "" {
		tlsCfg.InsecureSkipVerify = true // the pin below replaces the chain check
		tlsCfg.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("the server sent no certificate")
			}
			sum := sha256.Sum256(cs.PeerCertificates[0].Raw)
			if got := hex.EncodeToString(sum[:]); !strings.EqualFold(got, pin) {
				return fmt.Errorf("the server's certificate is %s, not the pinned %s", got, pin)
			}
			return nil
		}
	}
	dialer := &net.Dialer{Timeout: 30 * time.Second, Control: func(network, address string, _ syscall.RawConn) error {
		host, _, _ := net.SplitHostPort(address)
		ip := net.ParseIP(host)
		if ip == nil || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() || ip.IsMulticast() || ip.IsUnspecified() {
			return fmt.Errorf("fetch: %s is not an address to fetch from", host)
		}
		return nil
	}}
	return &http.Client{
		Transport: &http.Transport{DialContext: dialer.DialContext, TLSClientConfig: tlsCfg, TLSHandshakeTimeout: 30 * time.Second,
			ResponseHeaderTimeout: time.Minute, Proxy: nil},
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if req.URL.Scheme != "https" {
				return fmt.Errorf("fetch: redirected to %s, not https", req.URL.Redacted())
			}
			if len(via) >= 5 {
				return errors.New("fetch: more than 5 redirects")
			}
			return nil
		},
	}
}

func (s *Server) runFetch(ctx context.Context, ds datastore.Datastore, u *url.URL, req api.FetchRequest, setTotal func(int64), progress func(int64)) error {
	hreq, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return err
	}
	resp, err := fetchClient(req.TLSFingerprint).Do(hreq)
	if err != nil {
		var uerr x509.UnknownAuthorityError
		if errors.As(err, &uerr) {
			return fmt.Errorf("fetch %s: the host cannot verify the server's certificate (it carries no public CA list): pin it with tls_fingerprint: %w", u.Redacted(), err)
		}
		return fmt.Errorf("fetch %s: %w", u.Redacted(), err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("fetch %s: the server answered %s", u.Redacted(), resp.Status)
	}
	if resp.ContentLength < 0 {
		return fmt.Errorf("fetch %s: the server does not say the file's size (Content-Length)", u.Redacted())
	}
	setTotal(resp.ContentLength)
	res, err := s.space.reserve(ds, resp.ContentLength, uploadMargin)
	if err != nil {
		return err
	}
	defer res.release()
	h := sha256.New()
	body := &idleReader{r: resp.Body, idle: fetchIdleTimeout, add: func(n int64) { progress(n); res.wrote(n) }}
	defer body.stop()
	_, err = ds.WriteFileChecked(req.Path, io.TeeReader(body, h), resp.ContentLength, false, nil, func() error {
		if req.SHA256 == "" {
			return nil
		}
		if got := hex.EncodeToString(h.Sum(nil)); !strings.EqualFold(got, req.SHA256) {
			return fmt.Errorf("the file's SHA-256 is %s, not %s: not kept", got, req.SHA256)
		}
		return nil
	})
	return err
}

// idleReader fails a read that waits longer than idle (a stalled server).
type idleReader struct {
	r     io.ReadCloser
	idle  time.Duration
	add   func(int64)
	timer *time.Timer
}

func (i *idleReader) Read(p []byte) (int, error) {
	if i.timer == nil {
		i.timer = time.AfterFunc(i.idle, func() { i.r.Close() })
	} else {
		i.timer.Reset(i.idle)
	}
	n, err := i.r.Read(p)
	i.add(int64(n))
	return n, err
}

func (i *idleReader) stop() {
	if i.timer != nil {
		i.timer.Stop()
	}
}

// Package client is the one typed client of Plinth's APIs, shared by the CLI,
// the DCUI and the tests. New speaks to mgmtd over HTTPS (optionally pinning
// the server's self-signed certificate by its SHA-256 fingerprint);
// NewVMKernel speaks to vmkernel's local API over its unix socket. Error
// answers come back as *Error carrying the server's problem details.
package client

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/plinth/plinth/api"
)

// ErrFingerprintMismatch is returned (wrapped) when the server's certificate
// does not have the pinned fingerprint.
var ErrFingerprintMismatch = errors.New("server certificate fingerprint does not match the pinned one")

// Error is a non-2xx answer.
type Error struct {
	Status  int
	Problem api.Problem
}

func (e *Error) Error() string {
	msg := fmt.Sprintf("%d %s", e.Status, e.Problem.Title)
	if e.Problem.Detail != "" {
		msg += ": " + e.Problem.Detail
	}
	if e.Problem.Field != "" {
		msg += " (field " + e.Problem.Field + ")"
	}
	return msg
}

// Client calls one Plinth API.
type Client struct {
	base       string
	healthPath string
	// prefix is the API's path prefix ("/api/v1" for mgmtd, "/v1" for
	// vmkernel): host, vms, datastores, switches and events hang below it
	// under the same names on both servers.
	prefix  string
	vmsPath string // the VM collection; one VM is vmsPath + "/" + ID
	token   string
	http    *http.Client
}

type options struct {
	unixSocket  string
	tlsConfig   *tls.Config
	insecure    bool
	fingerprint string
	token       string
	timeout     time.Duration
}

// Option configures a Client.
type Option func(*options)

// WithUnixSocket dials the unix socket at path for every request.
func WithUnixSocket(path string) Option { return func(o *options) { o.unixSocket = path } }

// WithTLSConfig uses cfg (cloned) as the base TLS configuration.
func WithTLSConfig(cfg *tls.Config) Option { return func(o *options) { o.tlsConfig = cfg } }

// WithInsecureSkipVerify accepts any server certificate. Prefer
// WithPinnedFingerprint.
func WithInsecureSkipVerify() Option { return func(o *options) { o.insecure = true } }

// WithPinnedFingerprint accepts exactly the server certificate whose SHA-256
// fingerprint (of the DER leaf) is sha256hex, with or without colons, in any
// case, as shown on the DCUI and in mgmtd's log.
func WithPinnedFingerprint(sha256hex string) Option {
	return func(o *options) { o.fingerprint = sha256hex }
}

// WithToken sends token as a bearer token.
func WithToken(token string) Option { return func(o *options) { o.token = token } }

// WithTimeout bounds each request (default 30 s) when ctx has no earlier deadline.
func WithTimeout(d time.Duration) Option { return func(o *options) { o.timeout = d } }

// CloseIdleConnections closes the client's kept-alive connections; a
// program that makes many clients in one process (the CLI's Run, called
// again and again) calls it when it is done with one.
func (c *Client) CloseIdleConnections() { c.http.CloseIdleConnections() }

// New makes a client of mgmtd's API at baseURL, e.g. "https://host:443".
func New(baseURL string, opts ...Option) (*Client, error) {
	o := options{timeout: 30 * time.Second}
	for _, opt := range opts {
		opt(&o)
	}
	base := strings.TrimRight(baseURL, "/")
	if !strings.HasPrefix(base, "https://") && !strings.HasPrefix(base, "http://") {
		return nil, fmt.Errorf("client: base URL %q is not http(s)", baseURL)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if o.tlsConfig != nil {
		tlsCfg = o.tlsConfig.Clone()
	}
	if o.insecure {
		tlsCfg.InsecureSkipVerify = true
	}
	if o.fingerprint != "" {
		want, err := parseFingerprint(o.fingerprint)
		if err != nil {
			return nil, err
		}
		// The pin replaces chain and name verification: the certificate is
		// self-signed, and the fingerprint is the trust anchor.
		tlsCfg.InsecureSkipVerify = true
		tlsCfg.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return fmt.Errorf("%w: no certificate", ErrFingerprintMismatch)
			}
			got := sha256.Sum256(cs.PeerCertificates[0].Raw)
			if string(got[:]) != string(want) {
				return fmt.Errorf("%w: got %s", ErrFingerprintMismatch, Fingerprint(cs.PeerCertificates[0].Raw))
			}
			return nil
		}
	}
	tr.TLSClientConfig = tlsCfg
	if o.unixSocket != "" {
		path := o.unixSocket
		tr.Proxy = nil
		tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		}
	}
	return &Client{
		base:       base,
		healthPath: api.MgmtdHealthPath,
		prefix:     api.MgmtdPrefix,
		vmsPath:    api.MgmtdVMsPath,
		token:      o.token,
		http:       &http.Client{Transport: tr, Timeout: o.timeout},
	}, nil
}

// NewVMKernel makes a client of vmkernel's local API on the unix socket at
// socketPath (normally layout.Host.VMKernelSocket).
func NewVMKernel(socketPath string, opts ...Option) (*Client, error) {
	c, err := New("http://vmkernel", append(opts, WithUnixSocket(socketPath))...)
	if err != nil {
		return nil, err
	}
	c.healthPath, c.prefix, c.vmsPath = api.VMKernelHealthPath, api.VMKernelPrefix, api.VMKernelVMsPath
	return c, nil
}

// Fingerprint is the SHA-256 of a DER certificate as colon-separated upper
// hex, the form mgmtd logs and the DCUI shows.
func Fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	h := strings.ToUpper(hex.EncodeToString(sum[:]))
	var b strings.Builder
	for i := 0; i < len(h); i += 2 {
		if i > 0 {
			b.WriteByte(':')
		}
		b.WriteString(h[i : i+2])
	}
	return b.String()
}

func parseFingerprint(s string) ([]byte, error) {
	clean := strings.ReplaceAll(strings.TrimSpace(s), ":", "")
	b, err := hex.DecodeString(clean)
	if err != nil || len(b) != sha256.Size {
		return nil, fmt.Errorf("client: fingerprint %q is not a SHA-256 in hex", s)
	}
	return b, nil
}

// Health asks for the API's health. A degraded server answers 503 with a
// Health body: Health then returns that body together with an *Error.
func (c *Client) Health(ctx context.Context) (api.Health, error) {
	var h api.Health
	err := c.get(ctx, c.healthPath, &h)
	return h, err
}

// Host asks for the host's facts.
func (c *Client) Host(ctx context.Context) (api.Host, error) {
	var h api.Host
	err := c.get(ctx, c.prefix+"/host", &h)
	return h, err
}

// get does a GET of path and decodes a 2xx JSON answer into out. Non-2xx
// answers become *Error; a 503 JSON body that is not a problem is also
// decoded into out (degraded health).
func (c *Client) get(ctx context.Context, path string, out any) error {
	return c.do(ctx, http.MethodGet, path, nil, out)
}

// do sends a request (in, when not nil, as a JSON body) and decodes a 2xx
// JSON answer into out (when not nil and the answer has a body).
func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("client: %s %s: encoding request: %w", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return fmt.Errorf("client: %s %s: %w", method, path, err)
	}
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("client: %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("client: %s %s: reading answer: %w", method, path, err)
	}
	if resp.StatusCode/100 == 2 {
		if raw, ok := out.(*[]byte); ok { // a non-JSON answer, as is
			*raw = data
			return nil
		}
		if out == nil || len(data) == 0 {
			return nil
		}
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("client: %s %s: decoding answer: %w", method, path, err)
		}
		return nil
	}
	e := &Error{Status: resp.StatusCode}
	ct := resp.Header.Get("Content-Type")
	switch {
	case strings.HasPrefix(ct, api.ProblemContentType) && json.Unmarshal(data, &e.Problem) == nil:
	case out != nil && strings.HasPrefix(ct, "application/json") && json.Unmarshal(data, out) == nil:
		e.Problem = api.Problem{Title: http.StatusText(resp.StatusCode), Status: resp.StatusCode, Detail: summarize(out)}
	default:
		e.Problem = api.Problem{Title: http.StatusText(resp.StatusCode), Status: resp.StatusCode,
			Detail: strings.TrimSpace(string(data[:min(len(data), 512)]))}
	}
	if e.Problem.Status == 0 {
		e.Problem.Status = resp.StatusCode
	}
	return e
}

// vmPath is the path of one VM.
func (c *Client) vmPath(id string) string { return c.vmsPath + "/" + url.PathEscape(id) }

// ListVMs lists the defined VMs with their run state.
func (c *Client) ListVMs(ctx context.Context) ([]api.VM, error) {
	var vms []api.VM
	err := c.get(ctx, c.vmsPath, &vms)
	return vms, err
}

// CreateVM defines a VM; the answer holds its ID and defaults (vmkernel).
// A spec that does not validate gives an *Error with status 422 whose
// Problem lists every field problem.
func (c *Client) CreateVM(ctx context.Context, spec api.VMSpec) (api.VM, error) {
	var vm api.VM
	err := c.do(ctx, http.MethodPost, c.vmsPath, spec, &vm)
	return vm, err
}

// GetVM returns the VM with this ID or name.
func (c *Client) GetVM(ctx context.Context, idOrName string) (api.VM, error) {
	var vm api.VM
	err := c.get(ctx, c.vmPath(idOrName), &vm)
	return vm, err
}

// DeleteVM deletes a VM that is not running (vmkernel).
func (c *Client) DeleteVM(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, c.vmPath(id), nil, nil)
}

// UpdateVM replaces the spec of the VM spec.ID (which must be stopped or
// crashed, else an *Error with status 409) and returns the VM as stored
// (vmkernel). A spec that does not validate gives status 422 listing every
// field problem; a name another VM has gives 409.
func (c *Client) UpdateVM(ctx context.Context, spec api.VMSpec) (api.VM, error) {
	if spec.ID == "" {
		return api.VM{}, errors.New("client: UpdateVM: the spec has no ID")
	}
	return c.UpdateVMAt(ctx, spec.ID, spec)
}

// UpdateVMAt is UpdateVM of the VM with this ID or name; spec.ID may be
// empty (it then keeps the VM's ID).
func (c *Client) UpdateVMAt(ctx context.Context, idOrName string, spec api.VMSpec) (api.VM, error) {
	var vm api.VM
	err := c.do(ctx, http.MethodPut, c.vmPath(idOrName), spec, &vm)
	return vm, err
}

// DeleteVMWithDisks deletes a VM that is not running together with its disk
// files that no other VM refers to (not its CD-ROM ISO nor its direct-boot
// kernel) and returns which files were removed (vmkernel).
func (c *Client) DeleteVMWithDisks(ctx context.Context, id string) (api.DeleteVMResult, error) {
	var res api.DeleteVMResult
	err := c.do(ctx, http.MethodDelete, c.vmPath(id)+"?disks=true", nil, &res)
	return res, err
}

// Events subscribes to vmkernel's event stream. The channel gets each event
// and is closed when ctx ends or the stream does (after an
// api.EventOverflow event when this client fell behind). The stream is not
// bounded by the client's WithTimeout; ctx alone ends it.
func (c *Client) Events(ctx context.Context) (<-chan api.Event, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+c.prefix+"/events", nil)
	if err != nil {
		return nil, fmt.Errorf("client: events: %w", err)
	}
	req.Header.Set("Accept", "text/event-stream")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	hc := &http.Client{Transport: c.http.Transport} // no overall timeout: a stream
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("client: events: %w", err)
	}
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		defer resp.Body.Close()
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		e := &Error{Status: resp.StatusCode}
		if json.Unmarshal(data, &e.Problem) != nil || e.Problem.Status == 0 {
			e.Problem = api.Problem{Title: http.StatusText(resp.StatusCode), Status: resp.StatusCode,
				Detail: strings.TrimSpace(string(data[:min(len(data), 512)]))}
		}
		return nil, e
	}
	ch := make(chan api.Event, 16)
	go func() {
		defer close(ch)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		var data []byte
		for sc.Scan() {
			line := sc.Bytes()
			switch {
			case len(line) == 0: // end of one event
				if len(data) == 0 {
					continue
				}
				var ev api.Event
				err := json.Unmarshal(data, &ev)
				data = data[:0]
				if err != nil {
					continue
				}
				select {
				case ch <- ev:
				case <-ctx.Done():
					return
				}
			case bytes.HasPrefix(line, []byte("data:")):
				if len(data) > 0 {
					data = append(data, '\n')
				}
				data = append(data, bytes.TrimPrefix(bytes.TrimPrefix(line, []byte("data:")), []byte(" "))...)
			}
		}
	}()
	return ch, nil
}

// VMAction runs a power action (api.ActionStart, ActionStop, ActionShutdown,
// ActionReset, ActionPause, ActionResume) and returns the VM as it is after
// it (vmkernel). A shutdown waits up to the server's default before stopping
// hard; see ShutdownVM to choose.
func (c *Client) VMAction(ctx context.Context, id, action string) (api.VM, error) {
	var vm api.VM
	err := c.do(ctx, http.MethodPost, c.vmPath(id)+"/"+url.PathEscape(action), nil, &vm)
	return vm, err
}

// VMConsole returns the last 64 KiB the VM's guest printed on its serial
// console, as vmkernel keeps it (vmkernel).
func (c *Client) VMConsole(ctx context.Context, id string) ([]byte, error) {
	b := []byte{}
	err := c.do(ctx, http.MethodGet, c.vmPath(id)+"/"+api.VMKernelConsole, nil, &b)
	return b, err
}

// ShutdownVM presses the VM's ACPI power button and stops it hard if it
// has not powered off after timeout (whole seconds). The call lasts up to
// timeout plus a hard stop: the client's WithTimeout must allow for that.
func (c *Client) ShutdownVM(ctx context.Context, id string, timeout time.Duration) (api.VM, error) {
	var vm api.VM
	req := api.ShutdownRequest{TimeoutSeconds: int(timeout.Round(time.Second) / time.Second)}
	err := c.do(ctx, http.MethodPost, c.vmPath(id)+"/"+api.ActionShutdown, req, &vm)
	return vm, err
}

// summarize turns a non-problem error body (degraded health) into a detail.
func summarize(v any) string {
	h, ok := v.(*api.Health)
	if !ok {
		return ""
	}
	parts := []string{h.Status}
	for _, name := range slices.Sorted(maps.Keys(h.Services)) {
		if state := h.Services[name]; state != api.HealthOK {
			parts = append(parts, name+": "+state)
		}
	}
	return strings.Join(parts, "; ")
}

// datastorePath is the path of one datastore's sub-resource with the
// datastore-relative path as query parameter.
func (c *Client) datastorePath(name, sub, rel string) string {
	p := c.prefix + "/datastores/" + url.PathEscape(name) + "/" + sub
	if rel != "" {
		p += "?" + url.Values{"path": {rel}}.Encode()
	}
	return p
}

// ListDatastores lists the host's datastores with their space (vmkernel).
func (c *Client) ListDatastores(ctx context.Context) ([]api.Datastore, error) {
	var out []api.Datastore
	err := c.get(ctx, c.prefix+"/datastores", &out)
	return out, err
}

// BrowseDatastore lists the directory rel ("" for the root) of a datastore
// (vmkernel).
func (c *Client) BrowseDatastore(ctx context.Context, datastore, rel string) ([]api.DatastoreEntry, error) {
	var out []api.DatastoreEntry
	err := c.get(ctx, c.datastorePath(datastore, "files", rel), &out)
	return out, err
}

// CreateDisk makes a disk image on a datastore and returns what qemu-img
// says of it (vmkernel). An existing file gives an *Error with status 409.
func (c *Client) CreateDisk(ctx context.Context, datastore string, req api.CreateDiskRequest) (api.DiskInfo, error) {
	var out api.DiskInfo
	err := c.do(ctx, http.MethodPost, c.datastorePath(datastore, "disks", ""), req, &out)
	return out, err
}

// DiskInfo returns what qemu-img says of a disk image on a datastore
// (vmkernel).
func (c *Client) DiskInfo(ctx context.Context, datastore, rel string) (api.DiskInfo, error) {
	var out api.DiskInfo
	err := c.get(ctx, c.datastorePath(datastore, "disks", rel), &out)
	return out, err
}

// ResizeDisk grows a disk image (vmkernel); shrinking gives an *Error with
// status 422, a disk a running VM uses one with status 409.
func (c *Client) ResizeDisk(ctx context.Context, datastore string, req api.ResizeDiskRequest) (api.DiskInfo, error) {
	var out api.DiskInfo
	err := c.do(ctx, http.MethodPost, c.datastorePath(datastore, "disks/resize", ""), req, &out)
	return out, err
}

// ConvertDisk starts copying a disk image into a new one of another format
// and returns the task to follow (WaitTask). A missing source or an
// existing target is refused at once.
func (c *Client) ConvertDisk(ctx context.Context, datastore string, req api.ConvertDiskRequest) (api.Task, error) {
	var out api.Task
	err := c.do(ctx, http.MethodPost, c.datastorePath(datastore, "disks/convert", ""), req, &out)
	return out, err
}

// DeleteDatastoreFile deletes a file of a datastore (vmkernel); a file a
// defined VM refers to gives an *Error with status 409 naming the VM.
func (c *Client) DeleteDatastoreFile(ctx context.Context, datastore, rel string) error {
	return c.do(ctx, http.MethodDelete, c.datastorePath(datastore, "files", rel), nil, nil)
}

// ListSwitches lists the host's virtual switches (vmkernel).
func (c *Client) ListSwitches(ctx context.Context) ([]api.Switch, error) {
	var out []api.Switch
	err := c.get(ctx, c.prefix+"/switches", &out)
	return out, err
}

// CreateSwitch makes a virtual switch, with the host NIC uplink on it when
// not empty (vmkernel). An existing name or a taken uplink gives an *Error
// with status 409, a bad name or a missing uplink one with status 422.
func (c *Client) CreateSwitch(ctx context.Context, name, uplink string) (api.Switch, error) {
	var out api.Switch
	err := c.do(ctx, http.MethodPost, c.prefix+"/switches", api.SwitchSpec{Name: name, Uplink: uplink}, &out)
	return out, err
}

// DeleteSwitch deletes a virtual switch (vmkernel); one that VM NICs are
// still on gives an *Error with status 409.
func (c *Client) DeleteSwitch(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodDelete, c.prefix+"/switches/"+url.PathEscape(name), nil, nil)
}

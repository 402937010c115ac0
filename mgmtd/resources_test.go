package mgmtd_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/client"
	"github.com/plinth/plinth/mgmtd"
	"github.com/plinth/plinth/vmkernel/vmkerneltest"
)

// TestOpenAPIMatchesRoutes checks the served document lists exactly the
// router's routes, with a schema for every JSON body.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	r := startMgmtd(t, t.TempDir(), startVMKernel(t), nil)
	c := loggedIn(t, r)
	req, _ := http.NewRequestWithContext(deadline(t), http.MethodGet, r.url+api.MgmtdOpenAPIPath, nil)
	req.Header.Set("Authorization", "Bearer "+c.Token())
	resp, err := rawClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc struct {
		OpenAPI    string `json:"openapi"`
		Paths      map[string]map[string]map[string]any
		Components struct {
			Schemas map[string]any `json:"schemas"`
		} `json:"components"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil || doc.OpenAPI != "3.1.0" {
		t.Fatalf("document: %v, openapi %q", err, doc.OpenAPI)
	}
	srv, _ := mgmtd.New(mgmtd.Config{StateDir: t.TempDir(), VMKernelSocket: "/nonexistent"})
	want := map[string]bool{}
	for _, rt := range srv.Routes() {
		key := strings.ToLower(rt.Method) + " " + rt.Path
		want[key] = true
		op, ok := doc.Paths[rt.Path][strings.ToLower(rt.Method)]
		if !ok {
			t.Errorf("%s is not in the document", key)
			continue
		}
		if rt.Request != nil && !strings.Contains(mustJSON(op["requestBody"]), "#/components/schemas/") {
			t.Errorf("%s: no request schema: %s", key, mustJSON(op["requestBody"]))
		}
		if rt.Response != nil && !strings.Contains(mustJSON(op["responses"]), "#/components/schemas/") {
			t.Errorf("%s: no response schema", key)
		}
		for _, m := range regexp.MustCompile(`\{([a-z]+)\}`).FindAllStringSubmatch(rt.Path, -1) {
			if !strings.Contains(mustJSON(op["parameters"]), `"name":"`+m[1]+`"`) {
				t.Errorf("%s: path parameter %s not described", key, m[1])
			}
		}
	}
	for path, ops := range doc.Paths {
		for method := range ops {
			if !want[method+" "+path] {
				t.Errorf("the document has %s %s, which the router does not", method, path)
			}
		}
	}
	// Every $ref resolves.
	for _, ref := range regexp.MustCompile(`#/components/schemas/(\w+)`).FindAllStringSubmatch(mustJSON(doc), -1) {
		if _, ok := doc.Components.Schemas[ref[1]]; !ok {
			t.Errorf("$ref to %s, which is not in components", ref[1])
		}
	}
	if _, ok := doc.Components.Schemas["VMSpec"]; !ok {
		t.Error("VMSpec has no schema")
	}
	// A field's bounds (its schema tag) are in its schema.
	if got := mustJSON(doc.Components.Schemas["NetworkConfig"]); !strings.Contains(got, `"vlan":{"maximum":4094,"minimum":0,"type":"integer"}`) {
		t.Errorf("NetworkConfig's vlan has no bounds: %s", got)
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// promLine is one sample line of the text exposition format.
var promLine = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*",?)*\})? -?[0-9.eE+-]+$|^[a-zA-Z_:][a-zA-Z0-9_:]*(\{.*\})? (NaN|\+Inf|-Inf)$`)

func TestMetrics(t *testing.T) {
	r := startMgmtd(t, t.TempDir(), startVMKernel(t), nil)
	c := loggedIn(t, r)
	vm, err := c.CreateVM(deadline(t), api.VMSpec{Name: "metered", MemoryMiB: 256})
	if err != nil {
		t.Fatal(err)
	}
	resp, body := getMetrics(t, r, c)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain; version=0.0.4") {
		t.Fatalf("metrics: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	seenFamily := map[string]bool{}
	last := ""
	for _, line := range strings.Split(strings.TrimSpace(string(body)), "\n") {
		if strings.HasPrefix(line, "# TYPE ") {
			name := strings.Fields(line)[2]
			if seenFamily[name] {
				t.Errorf("family %s declared twice", name)
			}
			seenFamily[name] = true
			last = name
			continue
		}
		if strings.HasPrefix(line, "#") {
			continue
		}
		if !promLine.MatchString(line) {
			t.Errorf("not a valid sample line: %q", line)
		}
		if name := line[:strings.IndexAny(line, "{ ")]; name != last {
			t.Errorf("sample %q is outside its family block (%s)", line, last)
		}
	}
	for _, want := range []string{
		`plinth_vm_state{id="` + vm.Spec.ID + `",name="metered",state="stopped"} 1`,
		`plinth_vm_state{id="` + vm.Spec.ID + `",name="metered",state="running"} 0`,
		`plinth_vm_memory_configured_bytes{id="` + vm.Spec.ID + `",name="metered"} 2.68435456e+08`,
		`plinth_host_cpu_seconds_total{mode="idle"}`,
		`plinth_host_memory_total_bytes `,
		`plinth_host_ksm_saved_bytes `, // every Debian kernel has KSM
		`plinth_vms 1`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

// getMetrics fetches mgmtd's /metrics as c's user.
func getMetrics(t *testing.T, r running, c *client.Client) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequestWithContext(deadline(t), http.MethodGet, r.url+api.MgmtdMetricsPath, nil)
	req.Header.Set("Authorization", "Bearer "+c.Token())
	resp, err := rawClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, body
}

// TestUploadIsATask uploads through mgmtd and follows it as a task.
func TestUploadIsATask(t *testing.T) {
	r := startMgmtd(t, t.TempDir(), startVMKernel(t), nil)
	c := loggedIn(t, r)
	data := bytes.Repeat([]byte("plinth-iso-"), 100000) // 1.1 MB: over the JSON body limit
	copy(data[0x8001:], "CD001")                        // an ISO 9660 volume descriptor: the format comes from the content
	entry, err := c.UploadFile(deadline(t), "ds1", "iso/small.iso", bytes.NewReader(data), int64(len(data)), false)
	if err != nil {
		t.Fatal(err)
	}
	if entry.SizeBytes != int64(len(data)) || entry.Format != "iso" {
		t.Errorf("uploaded entry %+v", entry)
	}
	tasks, err := c.ListTasks(deadline(t))
	if err != nil || len(tasks) != 1 {
		t.Fatalf("ListTasks = %+v, %v", tasks, err)
	}
	tk := tasks[0]
	if tk.Kind != "upload" || tk.State != api.TaskSucceeded || tk.Done != int64(len(data)) || tk.Total != int64(len(data)) ||
		tk.Target != "ds1:iso/small.iso" || tk.User != api.RootUser || tk.FinishedAt == nil {
		t.Errorf("task = %+v", tk)
	}
	if got, err := c.WaitTask(deadline(t), tk.ID, 10*time.Millisecond, nil); err != nil || got.State != api.TaskSucceeded {
		t.Errorf("WaitTask = %+v, %v", got, err)
	}
	// Download gives the same bytes.
	rc, n, err := c.DownloadFile(deadline(t), "ds1", "iso/small.iso")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if n != int64(len(data)) || !bytes.Equal(got, data) {
		t.Errorf("download: %d bytes, equal %v", n, bytes.Equal(got, data))
	}
	// A second upload to the same path is refused and recorded as failed.
	_, err = c.UploadFile(deadline(t), "ds1", "iso/small.iso", bytes.NewReader(data), int64(len(data)), false)
	var e *client.Error
	if !errors.As(err, &e) || e.Status != http.StatusConflict {
		t.Fatalf("second upload = %v, want 409", err)
	}
	tasks, _ = c.ListTasks(deadline(t))
	if len(tasks) != 2 || tasks[1].State != api.TaskFailed || !strings.Contains(tasks[1].Error, "409") {
		t.Errorf("tasks after a refused upload: %+v", tasks)
	}
	if _, err := c.GetTask(deadline(t), "nope"); !errors.As(err, &e) || e.Status != 404 {
		t.Errorf("GetTask(nope) = %v", err)
	}
	// vmkernel's tasks (a disk conversion) are listed and followed too.
	conv, err := c.ConvertDisk(deadline(t), "ds1", api.ConvertDiskRequest{Path: "iso/small.iso", Target: "disks/small.qcow2"})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := c.WaitTask(deadline(t), conv.ID, 20*time.Millisecond, nil); err != nil || got.Kind != "convert" || got.State != api.TaskSucceeded {
		t.Fatalf("conversion task through mgmtd: %+v %v", got, err)
	}
	if tasks, _ = c.ListTasks(deadline(t)); len(tasks) != 3 || tasks[2].ID != conv.ID {
		t.Errorf("tasks with the conversion: %+v", tasks)
	}
}

func selfSigned(t *testing.T, cn string, notAfter time.Time) (certPEM, keyPEM []byte) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: notAfter,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, DNSNames: []string{cn}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
}

func TestCertificateReplaced(t *testing.T) {
	rig := vmkerneltest.Start(t, vmkerneltest.Options{})
	state, vmk := rig.Layout.AuthDir(), rig.Socket
	r := startMgmtd(t, state, vmk, nil)
	c := loggedIn(t, r)
	certPEM, keyPEM := selfSigned(t, "esx1.example", time.Now().Add(365*24*time.Hour))
	_, otherKey := selfSigned(t, "other", time.Now().Add(time.Hour))
	oldCert, _ := selfSigned(t, "old", time.Now().Add(-time.Minute))
	for _, bad := range []struct {
		req   api.CertificateRequest
		field string
	}{
		{api.CertificateRequest{CertificatePEM: string(certPEM), KeyPEM: string(otherKey)}, "key_pem"},
		{api.CertificateRequest{CertificatePEM: string(certPEM), KeyPEM: "none"}, "key_pem"},
		{api.CertificateRequest{CertificatePEM: string(oldCert), KeyPEM: string(keyPEM)}, "key_pem"},
	} {
		resp, p := doAuth(t, http.MethodPut, r.url+api.Mgmtd(api.HostCertificatePath), c.Token(), bad.req)
		if resp.StatusCode != 422 || p.Field != bad.field {
			t.Errorf("bad certificate: %d %+v, want 422 naming %s", resp.StatusCode, p, bad.field)
		}
	}
	resp, p := doAuth(t, http.MethodPut, r.url+api.Mgmtd(api.HostCertificatePath), c.Token(),
		api.CertificateRequest{CertificatePEM: string(certPEM), KeyPEM: string(keyPEM)})
	if resp.StatusCode != 200 {
		t.Fatalf("replace: %d %+v", resp.StatusCode, p)
	}
	block, _ := pem.Decode(certPEM)
	newFP := client.Fingerprint(block.Bytes)
	// New connections get the new certificate within a second: the old
	// pin fails, the new works.
	for end := time.Now().Add(5 * time.Second); ; {
		_, err := pinned(t, r).Health(deadline(t))
		if errors.Is(err, client.ErrFingerprintMismatch) {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("old pin after replacement: %v", err)
		}
		time.Sleep(100 * time.Millisecond) // mgmtd looks at the files once a second
	}
	if _, err := pinned(t, running{url: r.url, fingerprint: newFP}).Health(deadline(t)); err != nil {
		t.Errorf("new pin: %v", err)
	}
	fp, _ := os.ReadFile(filepath.Join(state, "tls", "fingerprint"))
	if strings.TrimSpace(string(fp)) != newFP {
		t.Errorf("fingerprint file %q, want %s", fp, newFP)
	}
	// A restarted mgmtd serves the new one.
	r.stop()
	r2 := startMgmtd(t, state, vmk, nil)
	if r2.fingerprint != newFP {
		t.Errorf("after restart: %s, want %s", r2.fingerprint, newFP)
	}
	if entries, _ := os.ReadDir(filepath.Join(state, "tls")); slices.ContainsFunc(entries, func(e os.DirEntry) bool {
		return strings.Contains(e.Name(), "replacement")
	}) {
		t.Error("the replacement journal was left behind")
	}
}

// TestTornCertificateReplacementCompleted: a crash after the journal is
// written but before both files are replaced is finished at the next start.
func TestTornCertificateReplacementCompleted(t *testing.T) {
	state := t.TempDir()
	r := startMgmtd(t, state, startVMKernel(t), nil)
	r.stop()
	certPEM, keyPEM := selfSigned(t, "esx2.example", time.Now().Add(time.Hour))
	os.WriteFile(filepath.Join(state, "tls", "replacement.pem"), append(append(certPEM, '\n'), keyPEM...), 0o600)
	os.WriteFile(filepath.Join(state, "tls", "key.pem"), keyPEM, 0o600) // the key got there, the certificate did not
	srv, err := mgmtd.New(mgmtd.Config{StateDir: state, VMKernelSocket: "/nonexistent"})
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(certPEM)
	if srv.Fingerprint() != client.Fingerprint(block.Bytes) {
		t.Error("the journalled certificate was not installed")
	}
}

// TestVNCWebsocket starts a real QEMU with VNC (no guest needed: the VNC
// server is QEMU's) and reads its RFB greeting through mgmtd's websocket,
// as noVNC would; a VM without VNC is refused with a problem.
func TestVNCWebsocket(t *testing.T) {
	r := startMgmtd(t, t.TempDir(), startVMKernel(t), nil)
	c := loggedIn(t, r)
	vm, err := c.CreateVM(deadline(t), api.VMSpec{Name: "vnc", MemoryMiB: 64, Machine: api.MachinePC, VNC: true})
	if err != nil {
		t.Fatal(err)
	}
	plain, err := c.CreateVM(deadline(t), api.VMSpec{Name: "novnc", MemoryMiB: 64, Machine: api.MachinePC})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []api.VM{vm, plain} {
		if _, err := c.VMAction(deadline(t), v.Spec.ID, api.ActionStart); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.VMAction(context.Background(), v.Spec.ID, api.ActionStop) })
	}
	ws, err := c.VNCWebsocket(deadline(t), vm.Spec.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	greeting := make([]byte, 12)
	done := make(chan error, 1)
	go func() { _, err := io.ReadFull(ws, greeting); done <- err }()
	select {
	case err := <-done:
		if err != nil || string(greeting) != "RFB 003.008\n" {
			t.Fatalf("RFB greeting %q, %v", greeting, err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no RFB greeting within 20 s")
	}
	var e *client.Error
	if _, err := c.VNCWebsocket(deadline(t), plain.Spec.ID); !errors.As(err, &e) || e.Status != http.StatusConflict {
		t.Fatalf("VNC of a VM without VNC = %v, want 409", err)
	}
}

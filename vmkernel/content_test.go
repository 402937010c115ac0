package vmkernel_test

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/atomicfile"
	"github.com/plinth/plinth/internal/testenv"
)

// rawRequest writes req (a whole HTTP/1.1 request head plus whatever body
// bytes) to the socket, optionally half-closes, and returns the answer.
func rawRequest(t *testing.T, sock, req string, closeWrite bool) (*http.Response, api.Problem) {
	t.Helper()
	conn, err := net.DialTimeout("unix", sock, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	if closeWrite {
		conn.(*net.UnixConn).CloseWrite()
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var p api.Problem
	if resp.Header.Get("Content-Type") == api.ProblemContentType {
		if err := json.NewDecoder(resp.Body).Decode(&p); err != nil {
			t.Fatalf("problem is not JSON: %v", err)
		}
	}
	return resp, p
}

// leftovers lists what is under dir besides the names in keep, and every
// temp file anywhere below it.
func leftovers(t *testing.T, dir string, keep ...string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		for _, k := range keep {
			if strings.HasPrefix(k, rel+"/") { // an ancestor of a kept file
				return nil
			}
			if rel == k || strings.HasPrefix(rel, k+"/") {
				if atomicfile.IsTemp(d.Name()) {
					out = append(out, rel)
				}
				return nil
			}
		}
		out = append(out, rel)
		return nil
	})
	return out
}

// errReader gives n bytes of zeros, then fails.
type errReader struct{ n int }

func (r *errReader) Read(p []byte) (int, error) {
	if r.n == 0 {
		return 0, errors.New("the source broke")
	}
	k := min(len(p), r.n)
	clear(p[:k])
	r.n -= k
	return k, nil
}

// TestUploadDownload covers PUT and GET /v1/datastores/{name}/content over
// the real socket with the client: a new file (parent directories made) is
// stored whole and read back, also by range; an existing one is refused
// unless overwrite; bad paths, symlink escapes, directories, a missing
// Content-Length, too little space, and short or aborted bodies are
// refused and leave nothing behind.
func TestUploadDownload(t *testing.T) {
	r := startVMs(t)
	ctx := ctx(t)
	data := make([]byte, 3<<20+17)
	rand.Read(data)
	copy(data[0x8001:], "CD001") // an ISO 9660 volume descriptor: the format comes from the content

	e, err := r.c.UploadFile(ctx, "ds", "iso/new/a.iso", bytes.NewReader(data), int64(len(data)), false)
	if err != nil {
		t.Fatal(err)
	}
	want := api.DatastoreEntry{Name: "a.iso", Path: "iso/new/a.iso", Kind: api.EntryFile, SizeBytes: int64(len(data)), Format: api.FileFormatISO}
	if e != want {
		t.Fatalf("entry %+v, want %+v", e, want)
	}
	if got, err := os.ReadFile(filepath.Join(r.ds, "iso/new/a.iso")); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("file on disk: %d bytes, %v", len(got), err)
	}
	rc, size, err := r.c.DownloadFile(ctx, "ds", "iso/new/a.iso")
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || size != int64(len(data)) || !bytes.Equal(got, data) {
		t.Fatalf("download: %d bytes (size %d), %v", len(got), size, err)
	}
	resp, _ := rawRequest(t, r.sock, "GET /v1/datastores/ds/content?path=iso/new/a.iso HTTP/1.1\r\nHost: vmkernel\r\nRange: bytes=10-19\r\n\r\n", false)
	if resp.StatusCode != http.StatusPartialContent || resp.ContentLength != 10 {
		t.Errorf("range: %d, length %d", resp.StatusCode, resp.ContentLength)
	}

	// Existing: 409, then replaced with overwrite.
	apiErr(t, errOf(r.c.UploadFile(ctx, "ds", "iso/new/a.iso", strings.NewReader("x"), 1, false)), http.StatusConflict)
	if e, err := r.c.UploadFile(ctx, "ds", "iso/new/a.iso", strings.NewReader("replaced"), 8, true); err != nil || e.SizeBytes != 8 {
		t.Fatalf("overwrite: %+v, %v", e, err)
	}
	if got, _ := os.ReadFile(filepath.Join(r.ds, "iso/new/a.iso")); string(got) != "replaced" {
		t.Fatalf("after overwrite: %q", got)
	}
	if e, err := r.c.UploadFile(ctx, "ds", "empty.img", strings.NewReader(""), 0, false); err != nil || e.SizeBytes != 0 || e.Format != api.FormatRaw {
		t.Fatalf("empty upload: %+v, %v", e, err)
	}

	// Directories are not files.
	e422 := apiErr(t, errOf3(r.c.DownloadFile(ctx, "ds", "iso")), http.StatusUnprocessableEntity)
	if e422.Problem.Field != "path" {
		t.Errorf("directory download: %+v", e422.Problem)
	}
	apiErr(t, errOf(r.c.UploadFile(ctx, "ds", "iso", strings.NewReader("x"), 1, true)), http.StatusUnprocessableEntity)
	apiErr(t, errOf3(r.c.DownloadFile(ctx, "ds", "nope.iso")), http.StatusNotFound)
	apiErr(t, errOf3(r.c.DownloadFile(ctx, "nowhere", "a.iso")), http.StatusNotFound)
	apiErr(t, errOf(r.c.UploadFile(ctx, "nowhere", "a.iso", strings.NewReader("x"), 1, false)), http.StatusNotFound)

	// Paths that leave the datastore.
	outside := t.TempDir()
	os.Symlink(outside, filepath.Join(r.ds, "out"))
	for _, p := range []string{"../x.iso", "/etc/x.iso", "out/x.iso", "out/deeper/x.iso", ""} {
		apiErr(t, errOf(r.c.UploadFile(ctx, "ds", p, strings.NewReader("x"), 1, false)), http.StatusBadRequest)
	}
	apiErr(t, errOf3(r.c.DownloadFile(ctx, "ds", "../etc/passwd")), http.StatusBadRequest)
	if des, _ := os.ReadDir(outside); len(des) != 0 {
		t.Fatalf("written outside the datastore: %v", des)
	}

	keep := []string{"iso/new/a.iso", "empty.img", "out"}
	// No Content-Length (chunked): 411.
	resp, p := rawRequest(t, r.sock, "PUT /v1/datastores/ds/content?path=c/chunked.iso HTTP/1.1\r\nHost: vmkernel\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", false)
	if resp.StatusCode != http.StatusLengthRequired || p.Status != http.StatusLengthRequired {
		t.Errorf("chunked upload: %d %+v", resp.StatusCode, p)
	}
	// More than the free space: 507 before any body.
	resp, p = rawRequest(t, r.sock, "PUT /v1/datastores/ds/content?path=c/huge.iso HTTP/1.1\r\nHost: vmkernel\r\nContent-Length: 1125899906842624\r\n\r\n", false)
	if resp.StatusCode != http.StatusInsufficientStorage || p.Status != http.StatusInsufficientStorage {
		t.Errorf("huge upload: %d %+v", resp.StatusCode, p)
	}
	// A body shorter than announced: 400, nothing left (nor directory c/).
	resp, p = rawRequest(t, r.sock, "PUT /v1/datastores/ds/content?path=c/d/short.iso HTTP/1.1\r\nHost: vmkernel\r\nContent-Length: 100\r\n\r\n"+strings.Repeat("x", 50), true)
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("short upload: %d %+v", resp.StatusCode, p)
	}
	// A source that breaks half-way: the client fails, nothing is left.
	if _, err := r.c.UploadFile(ctx, "ds", "c/broken.iso", &errReader{n: 1 << 20}, 2<<20, false); err == nil {
		t.Error("upload of a broken source succeeded")
	}
	// The server notices the connection's end asynchronously.
	deadline := time.Now().Add(10 * time.Second)
	for left := leftovers(t, r.ds, keep...); len(left) > 0; left = leftovers(t, r.ds, keep...) {
		if time.Now().After(deadline) {
			t.Fatalf("left behind: %v", left)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func errOf3[T, U any](_ T, _ U, err error) error { return err }

// TestConcurrentUploadsReserveSpace: uploads under way hold the space they
// announced, so a second one that would fit alone but not beside the
// first is refused (507) at once, instead of both running the datastore
// out of space.
func TestConcurrentUploadsReserveSpace(t *testing.T) {
	testenv.Root(t, "mounts a small tmpfs as the datastore")
	r := startVMs(t)
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=100m", "plinth-test-ds", r.ds).CombinedOutput(); err != nil {
		t.Fatalf("mount: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", r.ds).Run() })
	ctx := ctx(t)
	const size = 50 << 20 // alone it fits (with the 16 MiB margin); two do not
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		_, err := r.c.UploadFile(ctx, "ds", "a.img", pr, size, false)
		done <- err
	}()
	chunk := make([]byte, 1<<20)
	if _, err := pw.Write(chunk); err != nil {
		t.Fatal(err)
	}
	// The first upload is under way once its temporary file is there.
	deadline := time.Now().Add(10 * time.Second)
	for len(leftovers(t, r.ds)) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the first upload did not start")
		}
		time.Sleep(10 * time.Millisecond)
	}
	resp, p := rawRequest(t, r.sock, fmt.Sprintf("PUT /v1/datastores/ds/content?path=b.img HTTP/1.1\r\nHost: vmkernel\r\nContent-Length: %d\r\n\r\n", size), false)
	if resp.StatusCode != http.StatusInsufficientStorage || !strings.Contains(p.Detail, "promised") {
		t.Errorf("second upload beside the first: %d %+v, want 507 saying what is promised", resp.StatusCode, p)
	}
	for written := 1 << 20; written < size; written += len(chunk) {
		if _, err := pw.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	pw.Close()
	if err := <-done; err != nil {
		t.Fatalf("first upload: %v", err)
	}
	// Its space is now used, not promised: a smaller one fits.
	if _, err := r.c.UploadFile(ctx, "ds", "c.img", bytes.NewReader(make([]byte, 20<<20)), 20<<20, false); err != nil {
		t.Fatalf("an upload that fits after the first: %v", err)
	}
}

package vmkernel

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/plinth/plinth/api"
)

// listCache keeps the encoded answer of GET /v1/vms (plain and gzipped)
// for as long as the inventory's generation and every VM's run state are
// what they were when it was made. Making the list is cheap (copies from
// memory); encoding a thousand VMs is not, and mgmtd asks for it often.
type listCache struct {
	mu   sync.Mutex
	gen  uint64
	rts  []api.VMRuntime
	ok   bool
	body []byte
	gz   []byte
	etag string
}

// answer returns the encoded list of specs (from inventory generation gen)
// with their run states (from status), encoding only when either changed.
// The common case, nothing changed, allocates nothing.
func (c *listCache) answer(gen uint64, specs []api.VMSpec, status func(id string) api.VMRuntime) (body, gz []byte, etag string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ok && c.gen == gen && len(c.rts) == len(specs) {
		same := true
		for i := range specs {
			if !sameRuntime(c.rts[i], status(specs[i].ID)) {
				same = false
				break
			}
		}
		if same {
			return c.body, c.gz, c.etag
		}
	}
	rts := make([]api.VMRuntime, len(specs))
	for i := range specs {
		rts[i] = status(specs[i].ID)
	}
	vms := make([]api.VM, len(specs))
	for i := range specs {
		vms[i] = api.VM{Spec: specs[i], Runtime: rts[i]}
	}
	var b bytes.Buffer
	json.NewEncoder(&b).Encode(vms)
	var z bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&z, gzip.BestSpeed)
	zw.Write(b.Bytes())
	zw.Close()
	sum := sha256.Sum256(b.Bytes())
	c.gen, c.ok = gen, true
	c.rts = append(c.rts[:0], rts...)
	c.body, c.gz, c.etag = b.Bytes(), z.Bytes(), `"`+hex.EncodeToString(sum[:16])+`"`
	return c.body, c.gz, c.etag
}

func sameRuntime(a, b api.VMRuntime) bool {
	return a.State == b.State && a.PID == b.PID && a.Restarts == b.Restarts && a.Cgroup == b.Cgroup &&
		sameTime(a.StartedAt, b.StartedAt) && sameExit(a.LastExit, b.LastExit)
}

func sameTime(a, b *time.Time) bool {
	return a == nil && b == nil || a != nil && b != nil && a.Equal(*b)
}

func sameExit(a, b *api.VMExit) bool {
	return a == nil && b == nil || a != nil && b != nil && *a == *b
}

// writeList answers the cached list: gzipped when the client takes it,
// 304 when the client has it already.
func (c *listCache) write(w http.ResponseWriter, r *http.Request, gen uint64, specs []api.VMSpec, status func(string) api.VMRuntime) {
	body, gz, etag := c.answer(gen, specs, status)
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("ETag", etag)
	h.Set("Vary", "Accept-Encoding")
	if inm := r.Header.Get("If-None-Match"); inm != "" && strings.Contains(inm, etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	if acceptsGzip(r) {
		h.Set("Content-Encoding", "gzip")
		body = gz
	}
	w.WriteHeader(http.StatusOK)
	w.Write(body)
}

func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		enc, q, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(enc), "gzip") && strings.ReplaceAll(strings.TrimSpace(q), " ", "") != "q=0" {
			return true
		}
	}
	return false
}

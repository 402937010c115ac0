package mgmtd

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"strings"
	"sync"
	"time"

	"github.com/plinth/plinth/api"
)

// newVMKernelProxy forwards a request under /api/v1 to the same path under
// vmkernel's /v1, streaming both bodies (uploads, downloads and the event
// stream included). The client's credentials stay here.
func newVMKernelProxy(socket string, log *slog.Logger) http.Handler {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
		MaxIdleConnsPerHost: 32,
		// An upload's client asks "Expect: 100-continue"; passing that on
		// lets vmkernel refuse (no space, file exists) before a byte of the
		// body is read from the client, which then gets a clean answer.
		ExpectContinueTimeout: 10 * time.Second,
		DisableCompression:    true,
	}
	return &httputil.ReverseProxy{
		Transport:     tr,
		BufferPool:    bufferPool{},
		FlushInterval: -1, // server-sent events must not wait in a buffer
		Rewrite: func(pr *httputil.ProxyRequest) {
			in, out := pr.In.URL, pr.Out.URL
			out.Scheme, out.Host = "http", "vmkernel"
			out.Path = api.VMKernelPrefix + strings.TrimPrefix(in.Path, api.MgmtdPrefix)
			if in.RawPath != "" {
				out.RawPath = api.VMKernelPrefix + strings.TrimPrefix(in.RawPath, api.MgmtdPrefix)
			}
			out.RawQuery = in.RawQuery
			pr.Out.Host = "vmkernel"
			pr.Out.Header.Del("Authorization")
			pr.Out.Header.Del("Cookie")
			// vmkernel records who made a change (a VM's history) from
			// this header: mgmtd's authenticated user, never the client's.
			pr.Out.Header.Del(api.UserHeader)
			if u := principalOf(pr.In).User; u != "" {
				pr.Out.Header.Set(api.UserHeader, u)
			}
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if r.Context().Err() != nil {
				return // the client went away
			}
			log.Warn("mgmtd: vmkernel unreachable", "path", r.URL.Path, "err", err)
			writeProblem(w, api.Problem{Status: http.StatusBadGateway, Detail: "vmkernel: " + err.Error()})
		},
	}
}

// forward hands the request to vmkernel as is.
func (s *Server) forward(w http.ResponseWriter, r *http.Request) { s.proxy.ServeHTTP(w, r) }

// bufferPool recycles the proxy's copy buffers: without it every request
// allocates 32 KiB.
type bufferPool struct{}

var buffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func (bufferPool) Get() []byte  { return *buffers.Get().(*[]byte) }
func (bufferPool) Put(b []byte) { buffers.Put(&b) }

// Package mgmtd is Plinth's remote management API: an unprivileged HTTPS
// server that answers clients (the CLI, the DCUI, scripts) and forwards host
// and VM work to vmkernel over its unix socket; it never touches QEMU,
// /dev/kvm or netlink itself.
//
// Every route but /healthz and login needs a bearer token: a login session
// (POST /api/v1/sessions with the root password the DCUI set) or a
// long-lived API token. In lockdown mode every change is refused; only the
// DCUI can change the host. Every change, and every login, is written to the
// audit log. The TLS certificate is self-signed on first start and kept in
// the state directory; clients pin its SHA-256 fingerprint. The routes are
// one table (Routes) that the router, the OpenAPI document and the tests
// are all made from.
package mgmtd

import (
	"cmp"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gorilla/mux"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/auth"
	"github.com/plinth/plinth/client"
	"github.com/plinth/plinth/tasks"
	"github.com/plinth/plinth/tlscert"
	"github.com/plinth/plinth/web"
)

// Config is what a Server needs.
type Config struct {
	// StateDir holds the account files (passwd.json, security.json,
	// tokens.json), audit.log and tls/ (cert.pem, key.pem, fingerprint).
	StateDir string
	// VMKernelSocket is vmkernel's unix socket.
	VMKernelSocket string
	// Log receives the request log and errors; nil discards.
	Log *slog.Logger
	// SessionTTL is how long a login lasts (auth.DefaultSessionTTL when 0).
	SessionTTL time.Duration
	// Now is the clock (time.Now when nil); tests move it.
	Now func() time.Time
	// MaxConns and MaxConnsPerClient bound the connections open at once
	// (DefaultMaxConns, DefaultMaxConnsPerClient when 0).
	MaxConns, MaxConnsPerClient int
	// HistoryStep is how often the host's performance history is sampled
	// (20 s when 0; the day's range keeps one sample per 15 steps).
	HistoryStep time.Duration
}

// Server is the HTTPS API.
type Server struct {
	cfg      Config
	log      *slog.Logger
	now      func() time.Time
	vmk      *client.Client
	proxy    http.Handler
	tokens   *auth.Tokens
	throttle *auth.Throttle
	audit    *auditLog
	tasks    *tasks.Registry
	tls      *tls.Config
	cert     *tlscert.Watch
	http     *http.Server
	routes   []Route
	// ticketRoutes matches the paths of the routes that take tickets.
	ticketRoutes *mux.Router
	history      *history
	histCtx      context.Context
	stopHist     context.CancelFunc
}

// New loads or creates the TLS certificate, the API tokens and the audit
// log, and makes a Server.
func New(cfg Config) (*Server, error) {
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	cert, created, err := tlscert.NewWatch(filepath.Join(cfg.StateDir, "tls"), func(msg string, args ...any) { log.Warn("mgmtd: "+msg, args...) })
	if err != nil {
		return nil, fmt.Errorf("mgmtd: %w", err)
	}
	vmk, err := client.NewVMKernel(cfg.VMKernelSocket, client.WithTimeout(30*time.Second))
	if err != nil {
		return nil, fmt.Errorf("mgmtd: vmkernel client: %w", err)
	}
	tokens, err := auth.OpenTokens(cfg.StateDir, cfg.SessionTTL, now)
	if err != nil {
		return nil, fmt.Errorf("mgmtd: %w", err)
	}
	audit, err := openAuditLog(filepath.Join(cfg.StateDir, auditFile), log)
	if err != nil {
		return nil, fmt.Errorf("mgmtd: %w", err)
	}
	s := &Server{
		cfg:      cfg,
		log:      log,
		now:      now,
		vmk:      vmk,
		proxy:    newVMKernelProxy(cfg.VMKernelSocket, log),
		tokens:   tokens,
		throttle: auth.NewThrottle(now),
		audit:    audit,
		tasks:    tasks.New(now),
		history:  &history{step: cmp.Or(cfg.HistoryStep, historyStep)},
	}
	s.histCtx, s.stopHist = context.WithCancel(context.Background())
	s.cert = cert
	// The certificate is vmkernel's to replace (PUT /host/certificate):
	// new connections get the new one within a second.
	s.tls = &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: cert.Certificate}
	if created {
		log.Info("mgmtd: created a self-signed TLS certificate", "dir", filepath.Join(cfg.StateDir, "tls"))
	}
	s.routes = s.routeTable()
	s.ticketRoutes = mux.NewRouter()
	for _, rt := range s.routes {
		if rt.Ticket {
			s.ticketRoutes.Handle(rt.Path, http.NotFoundHandler()).Methods(rt.Method)
		}
	}
	s.http = &http.Server{
		Handler:           s.Handler(),
		TLSConfig:         s.tls,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		// TLS handshake failures (clients refusing the self-signed
		// certificate) are routine: keep them out of the warnings.
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	return s, nil
}

// Fingerprint is the TLS certificate's SHA-256 fingerprint, colon-separated hex.
func (s *Server) Fingerprint() string { return client.Fingerprint(s.cert.Current().Certificate[0]) }

// Routes is the route table.
func (s *Server) Routes() []Route { return s.routes }

// Handler is the router wrapped in logging and recovery, with problem JSON
// for unknown routes (404) and methods (405). Each route gets its access
// check, body limit and audit from its table entry.
func (s *Server) Handler() http.Handler {
	r := mux.NewRouter()
	r.UseEncodedPath() // {name} and {id} may hold escaped characters
	for _, rt := range s.routes {
		r.Handle(rt.Path, s.wrap(rt)).Methods(rt.Method)
	}
	client := web.Handler()
	r.NotFoundHandler = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		// Everything outside the API is the web client's (its pages and
		// files); the API's unknown paths stay problems.
		if (req.Method == http.MethodGet || req.Method == http.MethodHead) && !strings.HasPrefix(req.URL.Path, "/api/") {
			client.ServeHTTP(w, req)
			return
		}
		writeProblem(w, api.Problem{Status: http.StatusNotFound, Detail: "no route " + req.URL.Path})
	})
	r.MethodNotAllowedHandler = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		writeProblem(w, api.Problem{Status: http.StatusMethodNotAllowed,
			Detail: fmt.Sprintf("%s is not allowed on %s", req.Method, req.URL.Path)})
	})
	return logRequests(s.log, recoverPanics(s.log, r))
}

// Serve answers HTTPS on l (a plain TCP listener) until Shutdown; it
// returns nil after a Shutdown.
func (s *Server) Serve(l net.Listener) error {
	go s.history.run(s.histCtx, s.vmk.Stats)
	total, per := s.cfg.MaxConns, s.cfg.MaxConnsPerClient
	if total <= 0 {
		total = DefaultMaxConns
	}
	if per <= 0 {
		per = DefaultMaxConnsPerClient
	}
	var lastWarn atomic.Int64
	ll := newLimitListener(l, total, per, func(client string) {
		// At most a line a minute: a flood of connections must not flood the log.
		if now := time.Now().Unix(); now-lastWarn.Load() >= 60 {
			lastWarn.Store(now)
			s.log.Warn("mgmtd: connections refused: over the limit", "client", client, "total", total, "per_client", per)
		}
	})
	if err := s.http.Serve(tls.NewListener(ll, s.tls)); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("mgmtd: serve: %w", err)
	}
	return nil
}

// Shutdown stops accepting and waits for requests in flight until ctx ends;
// then it closes the audit log.
func (s *Server) Shutdown(ctx context.Context) error {
	s.stopHist()
	err := s.http.Shutdown(ctx)
	s.audit.close()
	return err
}

// Listen returns the TCP listener to serve on: the already-open listening
// socket at file descriptor fd when fd >= 0 (the appliance init binds :443
// as root and hands it over, so mgmtd needs no privilege), else a new
// listener on addr.
func Listen(addr string, fd int) (net.Listener, error) {
	if fd < 0 {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("mgmtd: listen: %w", err)
		}
		return l, nil
	}
	f := os.NewFile(uintptr(fd), fmt.Sprintf("listen-fd-%d", fd))
	if f == nil {
		return nil, fmt.Errorf("mgmtd: listen fd %d is not valid", fd)
	}
	defer f.Close() // FileListener dups it
	l, err := net.FileListener(f)
	if err != nil {
		return nil, fmt.Errorf("mgmtd: listen fd %d: %w", fd, err)
	}
	return l, nil
}

// vmkernelTimeout bounds the health probe of vmkernel.
const vmkernelTimeout = 3 * time.Second

// health says ok or degraded to anyone; what is wrong, and with which
// service, only to a caller with a valid bearer token: internal error text
// (socket paths, errno) is not for strangers.
func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), vmkernelTimeout)
	defer cancel()
	h := api.Health{Status: api.HealthOK, Services: map[string]string{"mgmtd": api.HealthOK}}
	status := http.StatusOK
	vh, err := s.vmk.Health(ctx)
	switch {
	case err != nil:
		h.Services["vmkernel"] = err.Error()
	case vh.Status != api.HealthOK:
		h.Services["vmkernel"] = vh.Status
	default:
		h.Services["vmkernel"] = api.HealthOK
	}
	if h.Services["vmkernel"] != api.HealthOK {
		h.Status, status = api.HealthDegraded, http.StatusServiceUnavailable
	}
	if _, err := s.tokens.Check(bearer(r)); err != nil {
		h.Services = nil
	}
	writeJSON(w, status, h)
}

// vmkernelError relays vmkernel's problem as is, or answers 502 when
// vmkernel could not be reached.
func (s *Server) vmkernelError(w http.ResponseWriter, err error) {
	var e *client.Error
	if errors.As(err, &e) {
		writeProblem(w, e.Problem)
		return
	}
	s.log.Warn("mgmtd: vmkernel unreachable", "err", err)
	writeProblem(w, api.Problem{Status: http.StatusBadGateway, Detail: "vmkernel: " + err.Error()})
}

func writeProblem(w http.ResponseWriter, p api.Problem) {
	if p.Status == 0 {
		p.Status = http.StatusInternalServerError
	}
	if p.Title == "" {
		p.Title = http.StatusText(p.Status)
	}
	if p.Field == "" && len(p.Problems) > 0 {
		p.Field = p.Problems[0].Field
	}
	w.Header().Set("Content-Type", api.ProblemContentType)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(p.Status)
	json.NewEncoder(w).Encode(p)
}

// fieldProblem answers 422 naming the field at fault.
func fieldProblem(w http.ResponseWriter, probs ...api.FieldProblem) {
	writeProblem(w, api.Problem{Status: http.StatusUnprocessableEntity,
		Detail: probs[0].Field + ": " + probs[0].Message, Problems: probs})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

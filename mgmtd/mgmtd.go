// Package mgmtd is Plinth's remote management API: an unprivileged HTTPS
// server that answers clients (the CLI, the DCUI, the tests) and forwards
// host and VM work to vmkernel over its unix socket. Its TLS certificate is
// self-signed on first start and kept in the state directory; clients pin its
// SHA-256 fingerprint, which mgmtd logs and writes for the console. The
// routes are one table (Routes) that tests walk.
package mgmtd

import (
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
	"time"

	"github.com/gorilla/mux"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/client"
)

// Config is what a Server needs.
type Config struct {
	// StateDir holds tls/cert.pem, tls/key.pem and tls/fingerprint.
	StateDir string
	// VMKernelSocket is vmkernel's unix socket.
	VMKernelSocket string
	// Log receives the request log and errors; nil discards.
	Log *slog.Logger
}

// Server is the HTTPS API.
type Server struct {
	cfg         Config
	log         *slog.Logger
	vmk         *client.Client
	tls         *tls.Config
	fingerprint string
	http        *http.Server
}

// Route is one entry of the route table.
type Route struct {
	Method  string
	Path    string
	Handler http.HandlerFunc
}

// New loads or creates the TLS certificate and makes a Server.
func New(cfg Config) (*Server, error) {
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cert, created, err := LoadOrCreateCert(filepath.Join(cfg.StateDir, "tls"))
	if err != nil {
		return nil, fmt.Errorf("mgmtd: %w", err)
	}
	vmk, err := client.NewVMKernel(cfg.VMKernelSocket, client.WithTimeout(30*time.Second))
	if err != nil {
		return nil, fmt.Errorf("mgmtd: vmkernel client: %w", err)
	}
	s := &Server{
		cfg:         cfg,
		log:         log,
		vmk:         vmk,
		fingerprint: client.Fingerprint(cert.Certificate[0]),
		tls: &tls.Config{
			MinVersion:   tls.VersionTLS12,
			Certificates: []tls.Certificate{cert},
		},
	}
	if created {
		log.Info("mgmtd: created a self-signed TLS certificate", "dir", filepath.Join(cfg.StateDir, "tls"))
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
func (s *Server) Fingerprint() string { return s.fingerprint }

// Routes is the route table.
func (s *Server) Routes() []Route {
	return []Route{
		{http.MethodGet, api.MgmtdHealthPath, s.health},
		{http.MethodGet, api.MgmtdHostPath, s.host},
		{http.MethodGet, api.MgmtdVMsPath, s.listVMs},
		{http.MethodGet, api.MgmtdVMsPath + "/{id}", s.getVM},
		{http.MethodGet, api.MgmtdVMsPath + "/{id}/" + api.VMKernelConsole, s.vmConsole},
	}
}

// Handler is the router wrapped in logging, recovery and body limits, with
// problem JSON for unknown routes (404) and methods (405).
func (s *Server) Handler() http.Handler {
	r := mux.NewRouter()
	for _, rt := range s.Routes() {
		r.Handle(rt.Path, rt.Handler).Methods(rt.Method)
	}
	r.NotFoundHandler = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		writeProblem(w, api.Problem{Status: http.StatusNotFound, Detail: "no route " + req.URL.Path})
	})
	r.MethodNotAllowedHandler = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		writeProblem(w, api.Problem{Status: http.StatusMethodNotAllowed,
			Detail: fmt.Sprintf("%s is not allowed on %s", req.Method, req.URL.Path)})
	})
	return logRequests(s.log, recoverPanics(s.log, limitBody(MaxBodyBytes, r)))
}

// Serve answers HTTPS on l (a plain TCP listener) until Shutdown; it
// returns nil after a Shutdown.
func (s *Server) Serve(l net.Listener) error {
	if err := s.http.Serve(tls.NewListener(l, s.tls)); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("mgmtd: serve: %w", err)
	}
	return nil
}

// Shutdown stops accepting and waits for requests in flight until ctx ends.
func (s *Server) Shutdown(ctx context.Context) error {
	return s.http.Shutdown(ctx)
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
	writeJSON(w, status, h)
}

func (s *Server) listVMs(w http.ResponseWriter, r *http.Request) {
	vms, err := s.vmk.ListVMs(r.Context())
	if err != nil {
		s.vmkernelError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, vms)
}

func (s *Server) getVM(w http.ResponseWriter, r *http.Request) {
	vm, err := s.vmk.GetVM(r.Context(), mux.Vars(r)["id"])
	if err != nil {
		s.vmkernelError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, vm)
}

// vmConsole answers the last 64 KiB the VM printed on its serial console.
func (s *Server) vmConsole(w http.ResponseWriter, r *http.Request) {
	b, err := s.vmk.VMConsole(r.Context(), mux.Vars(r)["id"])
	if err != nil {
		s.vmkernelError(w, err)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Write(b)
}

func (s *Server) host(w http.ResponseWriter, r *http.Request) {
	h, err := s.vmk.Host(r.Context())
	if err != nil {
		s.vmkernelError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, h)
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
	w.Header().Set("Content-Type", api.ProblemContentType)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(p.Status)
	json.NewEncoder(w).Encode(p)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

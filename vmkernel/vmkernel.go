// Package vmkernel is Plinth's root VM service. It owns the host's virtual
// machines (later: QEMU processes, disks, switches) and answers a local HTTP
// API on a unix socket that only root and the mgmtd group can reach; mgmtd
// forwards remote requests to it. It reports the host's facts and its health,
// and defines, runs and stops VMs (see package runner).
package vmkernel

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/installer"
	"github.com/plinth/plinth/tasks"
	"github.com/plinth/plinth/vmkernel/events"
	"github.com/plinth/plinth/vmkernel/hostconf"
	"github.com/plinth/plinth/vmkernel/inventory"
	"github.com/plinth/plinth/vmkernel/runner"
	"github.com/plinth/plinth/vmkernel/snapshots"
	"github.com/plinth/plinth/vmkernel/vswitch"
)

// Config is what a Server needs.
type Config struct {
	// Host returns the host's facts (normally hostinfo.Source.Gather).
	Host func() (api.Host, error)
	// Log receives request failures; nil discards.
	Log *slog.Logger
	// Inventory and Runner serve the VM routes (/v1/vms...); without both
	// there are none.
	Inventory *inventory.Inventory
	Runner    *runner.Manager
	// Datastores are the host's datastores (name to root); when set, a VM
	// referring to another one is refused at creation.
	Datastores map[string]string
	// Switches serves the virtual switch routes (/v1/switches...); nil: none.
	Switches *vswitch.Manager
	// Events carries the event stream (/v1/events); the runner's OnState
	// should publish to it too. Nil: New makes one (VM definition events only).
	Events *events.Broker
	// Hardware reads the board inventory (/v1/host/hardware); nil reads
	// the running host (board.Read of board.DefaultRoot).
	Hardware func() (api.Hardware, error)
	// Power reboots or shuts down the host (action api.PowerReboot or
	// api.PowerShutdown) for /v1/host/power, returning once that is under
	// way; nil answers 501.
	Power func(action, reason string) error
	// Installer, when set, offers installing Plinth to one of the host's
	// disks (/v1/host/install, as a task); nil answers 501. Its disks come
	// from the hardware inventory.
	Installer *installer.Env
	// HostConf owns the host's settings (/v1/host/network, password,
	// lockdown, certificate, services, reset, logs); nil answers 501.
	HostConf *hostconf.Host
	// Upgrades, when set, offers system upgrades and rollback
	// (/v1/host/upgrade); nil answers 501.
	Upgrades *Upgrades
	// Snapshots keeps the VMs' snapshot trees; nil: a directory
	// "snapshots" beside the inventory's.
	Snapshots *snapshots.Store
	// BackupTick is how often scheduled backups are looked for (0: a
	// minute).
	BackupTick time.Duration
}

// Server is vmkernel's local API.
type Server struct {
	cfg  Config
	http *http.Server
	// specMu orders spec changes (update, delete) against starts: a start
	// holds it shared from reading the spec until QEMU runs.
	specMu sync.RWMutex
	// streams are the console and VNC streams' hijacked connections.
	streams streams
	// vmList caches the encoded VM list.
	vmList listCache
	// tasks is the long work under way (disk conversions); it runs under
	// bg, which Shutdown ends.
	tasks  *tasks.Registry
	bg     context.Context
	stopBG context.CancelFunc
	// scheduler starts the backup scheduler once.
	scheduler sync.Once
	// space is the room promised to uploads and conversions under way.
	space space
	// work is the long work under way on each VM (snapshots, backups...).
	work vmWork
}

// New makes a Server.
func New(cfg Config) *Server {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Events == nil {
		cfg.Events = events.New(0)
	}
	if cfg.Snapshots == nil && cfg.Inventory != nil {
		st, err := snapshots.Open(filepath.Join(filepath.Dir(cfg.Inventory.Dir()), "snapshots"))
		if err != nil {
			cfg.Log.Error("vmkernel: snapshots unavailable", "err", err)
		}
		cfg.Snapshots = st
	}
	s := &Server{cfg: cfg, tasks: tasks.New(nil)}
	s.bg, s.stopBG = context.WithCancel(context.Background())
	s.http = &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       time.Minute,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(cfg.Log.Handler(), slog.LevelWarn),
	}
	return s
}

// Route is one entry of the route table.
type Route struct {
	Method  string
	Path    string
	Handler http.HandlerFunc
}

// Routes is the server's route table.
func (s *Server) Routes() []Route {
	return append([]Route{
		{http.MethodGet, api.VMKernelHealthPath, s.health},
		{http.MethodGet, api.VMKernelHostPath, s.host},
		{http.MethodGet, api.VMKernelHostHardwarePath, s.hardware},
		{http.MethodPost, api.VMKernelHostPowerPath, s.hostPower},
		{http.MethodGet, api.VMKernelPrefix + "/host/install", s.listInstallTargets},
		{http.MethodPost, api.VMKernelPrefix + "/host/install", s.install},
		{http.MethodGet, api.VMKernelUpgradePath, s.upgradeStatus},
		{http.MethodPost, api.VMKernelUpgradePath, s.upgradeSystem},
		{http.MethodPost, api.VMKernelRollbackPath, s.rollback},
		{http.MethodGet, api.VMKernelStatsPath, s.stats},
		{http.MethodGet, api.VMKernelEventsPath, s.events},
		{http.MethodGet, api.VMKernelDatastoresPath, s.listDatastores},
		{http.MethodGet, api.VMKernelDatastorePath + "{name}/files", s.browseDatastore},
		{http.MethodDelete, api.VMKernelDatastorePath + "{name}/files", s.deleteDatastoreFile},
		{http.MethodGet, api.VMKernelDatastorePath + "{name}/content", s.downloadFile},
		{http.MethodPut, api.VMKernelDatastorePath + "{name}/content", s.uploadFile},
		{http.MethodGet, api.VMKernelDatastorePath + "{name}/disks", s.diskInfo},
		{http.MethodPost, api.VMKernelDatastorePath + "{name}/disks", s.createDisk},
		{http.MethodPost, api.VMKernelDatastorePath + "{name}/disks/resize", s.resizeDisk},
		{http.MethodPost, api.VMKernelDatastorePath + "{name}/disks/convert", s.convertDisk},
		{http.MethodGet, api.VMKernelPrefix + "/tasks", s.listTasks},
		{http.MethodGet, api.VMKernelPrefix + "/tasks/{id}", s.getTask},
	}, s.groupRoutes()...)
}

// groupRoutes are the route groups of the areas that have their own
// (empty when the area is not configured), one per line.
func (s *Server) groupRoutes() []Route {
	var rs []Route
	for _, g := range [][]Route{
		s.hostRoutes(),
		s.vmRoutes(),
		s.switchRoutes(),
		s.deviceRoutes(),
		s.importRoutes(),
	} {
		rs = append(rs, g...)
	}
	return rs
}

// Handler is the server's HTTP handler: the route table, with problem JSON
// for unknown paths (404) and methods (405).
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	allowed := map[string][]string{}
	for _, r := range s.Routes() {
		mux.Handle(r.Method+" "+r.Path, r.Handler)
		allowed[r.Path] = append(allowed[r.Path], r.Method)
	}
	for path, methods := range allowed {
		// Less specific than "METHOD path", so it only sees other methods.
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			for _, m := range methods {
				w.Header().Add("Allow", m)
			}
			WriteProblem(w, api.Problem{Status: http.StatusMethodNotAllowed,
				Detail: fmt.Sprintf("%s is not allowed on %s", r.Method, path)})
		})
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		WriteProblem(w, api.Problem{Status: http.StatusNotFound, Detail: fmt.Sprintf("no route %s", r.URL.Path)})
	})
	return mux
}

func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, api.Health{Status: api.HealthOK})
}

func (s *Server) host(w http.ResponseWriter, r *http.Request) {
	h, err := s.cfg.Host()
	if err != nil {
		s.cfg.Log.Error("vmkernel: host facts", "err", err)
		WriteProblem(w, api.Problem{Status: http.StatusInternalServerError, Detail: err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, h)
}

// Serve answers on l until Shutdown; it returns nil after a Shutdown.
func (s *Server) Serve(l net.Listener) error {
	// The backup scheduler runs while the server serves (a Server made
	// only for its handler takes no backups), until Shutdown.
	s.scheduler.Do(func() {
		if s.cfg.Inventory != nil && s.cfg.Runner != nil {
			tick := s.cfg.BackupTick
			if tick <= 0 {
				tick = time.Minute
			}
			go s.scheduleBackups(tick)
		}
	})
	if err := s.http.Serve(l); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("vmkernel: serve: %w", err)
	}
	return nil
}

// Shutdown stops accepting and waits for requests in flight until ctx ends.
// The console and VNC streams, taken over from the HTTP server, are closed.
func (s *Server) Shutdown(ctx context.Context) error {
	s.streams.closeAll()
	s.stopBG()
	return s.http.Shutdown(ctx)
}

// Listen makes vmkernel's unix socket at path: it creates the directory,
// removes a stale socket (refusing when another server still answers on it),
// and sets the socket to mode 0660. When running as root it also chowns the
// socket to root:gid so that the unprivileged mgmtd can connect.
func Listen(path string, gid int) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("vmkernel: socket directory: %w", err)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != os.ModeSocket {
			return nil, fmt.Errorf("vmkernel: %s exists and is not a socket", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("vmkernel: another server is answering on %s", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("vmkernel: removing stale socket: %w", err)
		}
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("vmkernel: listen: %w", err)
	}
	if err := os.Chmod(path, 0o660); err != nil {
		l.Close()
		return nil, fmt.Errorf("vmkernel: socket mode: %w", err)
	}
	if os.Geteuid() == 0 {
		if err := os.Chown(path, 0, gid); err != nil {
			l.Close()
			return nil, fmt.Errorf("vmkernel: socket owner: %w", err)
		}
	}
	return l, nil
}

// WriteProblem writes p as application/problem+json, filling Title from the
// status when empty.
func WriteProblem(w http.ResponseWriter, p api.Problem) {
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

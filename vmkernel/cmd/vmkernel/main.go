// Command vmkernel is Plinth's root VM service: it decides the host's
// acceleration (KVM or TCG) once, then serves the local API on a unix socket
// until SIGTERM or SIGINT.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/vmkernel"
	"github.com/plinth/plinth/vmkernel/accel"
	"github.com/plinth/plinth/vmkernel/hostinfo"
)

func main() {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(log, os.Args[1:]); err != nil {
		log.Error("vmkernel: exiting", "err", err)
		os.Exit(1)
	}
}

func run(log *slog.Logger, args []string) error {
	fs := flag.NewFlagSet("vmkernel", flag.ContinueOnError)
	socket := fs.String("socket", api.VMKernelSocket, "unix socket of the local API")
	state := fs.String("state", api.StateDir+"/vmkernel", "state directory")
	qemuBin := fs.String("qemu", "qemu-system-x86_64", "QEMU binary")
	gid := fs.Int("socket-gid", api.MgmtdGID, "group that may connect to the socket (applied when running as root)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if err := os.MkdirAll(*state, 0o700); err != nil {
		return fmt.Errorf("state directory: %w", err)
	}

	acc := accel.Detect()
	if acc.Mode == api.AccelTCG {
		log.Warn("vmkernel: WARNING: virtual machines will run under TCG emulation (slow)", "reason", acc.Reason)
	} else {
		log.Info("vmkernel: acceleration", "mode", acc.Mode, "reason", acc.Reason)
	}

	// Asking QEMU its version proves it loads; in the appliance that first run
	// also pages QEMU in from the compressed payload image, which takes seconds
	// under TCG, so it runs beside the API rather than before it (and the first
	// VM start then finds QEMU warm).
	var qemu atomic.Value
	qemu.Store("")
	go func() {
		v, err := hostinfo.QEMUVersion(context.Background(), *qemuBin)
		if err != nil {
			log.Warn("vmkernel: WARNING: QEMU does not run; virtual machines cannot start", "err", err)
			return
		}
		qemu.Store(v)
		log.Info("vmkernel: QEMU", "version", v)
	}()
	src := hostinfo.Source{Accel: acc}
	host := func() (api.Host, error) {
		h, err := src.Gather()
		h.QEMU = qemu.Load().(string)
		return h, err
	}
	srv := vmkernel.New(vmkernel.Config{Host: host, Log: log})
	l, err := vmkernel.Listen(*socket, *gid)
	if err != nil {
		return err
	}
	log.Info("vmkernel: serving", "socket", *socket, "version", api.Version)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("vmkernel: shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = srv.Shutdown(sctx)
	os.Remove(*socket)
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

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

	src := hostinfo.Source{Accel: acc}
	srv := vmkernel.New(vmkernel.Config{Host: src.Gather, Log: log})
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

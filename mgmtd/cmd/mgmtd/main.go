// Command mgmtd is Plinth's remote management API: HTTPS on -listen, or on
// an already-bound socket inherited at -listen-fd, forwarding to vmkernel.
// It needs no privilege; it stops gracefully on SIGTERM or SIGINT.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/layout"
	"github.com/plinth/plinth/mgmtd"
)

func main() {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(log, os.Args[1:]); err != nil {
		log.Error("mgmtd: exiting", "err", err)
		os.Exit(1)
	}
}

func run(log *slog.Logger, args []string) error {
	fs := flag.NewFlagSet("mgmtd", flag.ContinueOnError)
	listen := fs.String("listen", ":443", "address to serve HTTPS on (ignored with -listen-fd)")
	listenFD := fs.Int("listen-fd", -1, "serve on the inherited listening socket at this file descriptor")
	state := fs.String("state", layout.Default().ServiceState(layout.Mgmtd), "state directory (TLS certificate and key)")
	vmk := fs.String("vmkernel", layout.Default().VMKernelSocket(), "vmkernel's unix socket")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}

	srv, err := mgmtd.New(mgmtd.Config{StateDir: *state, VMKernelSocket: *vmk, Log: log})
	if err != nil {
		return err
	}
	log.Info("mgmtd: TLS certificate fingerprint SHA256 " + srv.Fingerprint())
	l, err := mgmtd.Listen(*listen, *listenFD)
	if err != nil {
		return err
	}
	log.Info("mgmtd: serving HTTPS", "addr", l.Addr().String(), "vmkernel", *vmk, "version", api.Version)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("mgmtd: shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

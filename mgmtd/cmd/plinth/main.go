// Command plinth is the command-line client of a Plinth host's HTTPS API:
// log in, manage VMs, datastores, tasks and API tokens, follow events,
// attach to a VM's serial console. Everything is in package
// github.com/plinth/plinth/mgmtd/cli, which documents the exit codes.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/plinth/plinth/mgmtd/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, cli.Env{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr}, os.Args[1:])
	stop()
	os.Exit(code)
}

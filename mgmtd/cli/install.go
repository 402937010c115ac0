package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/client"
)

// hostInstall lists the install targets, or with DISK installs Plinth to it
// (after a typed confirmation at a terminal, or --yes) and follows the task.
func (a *app) hostInstall(ctx context.Context, args []string) error {
	fs := a.flags("host install")
	overwrite := fs.Bool("overwrite", false, "allow a disk that holds data or another Plinth install")
	yes := fs.Bool("yes", false, "do not ask for confirmation (scripts)")
	pos, err := parse(fs, args, "[DISK]", 0, 1)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return a.call(ctx, defaultTimeout, func(c *client.Client) error {
			cands, err := c.InstallTargets(ctx)
			if err != nil {
				return err
			}
			if a.json {
				return writeJSON(a.out, cands)
			}
			t := newTable(a.out, "DISK", "SIZE", "MODEL", "SERIAL", "TRANSPORT", "TARGET")
			for _, c := range cands {
				d := c.Disk
				verdict := "yes"
				switch {
				case c.BootMedium:
					verdict = "no: the boot medium"
				case c.Refused != "":
					verdict = "no: " + c.Refused
				case len(c.Warnings) > 0:
					verdict = "with --overwrite: " + strings.Join(c.Warnings, "; ")
				}
				t.row(d.Name, humanBytes(d.SizeBytes), d.Model, d.Serial, d.Transport, verdict)
			}
			return t.flush()
		})
	}
	disk := strings.TrimPrefix(pos[0], "/dev/")
	if !*yes {
		if _, ok := terminal(a.env.Stdin); !ok {
			return withCode(ExitUsage, errors.New("installing erases the disk: confirm at a terminal, or pass --yes"))
		}
		fmt.Fprintf(a.errw, "Installing Plinth erases every partition of %s on the host. Type the disk's name (%s) to go on: ", disk, disk)
		line, err := a.in.ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		if strings.TrimSpace(line) != disk {
			return errors.New("not confirmed; nothing was written")
		}
	}
	return a.call(ctx, defaultTimeout, func(c *client.Client) error {
		task, err := c.Install(ctx, api.InstallRequest{Disk: disk, Overwrite: *overwrite})
		if err != nil {
			return err
		}
		if _, err := a.follow(ctx, c, task.ID, time.Second, "install to "+disk); err != nil {
			return err
		}
		if !a.json {
			fmt.Fprintf(a.out, "Plinth is installed on %s; restart the host from that disk (remove the stick).\n", disk)
		}
		return nil
	})
}

package cli

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/client"
)

// hostVersion shows the running version and both system banks.
func (a *app) hostVersion(ctx context.Context, args []string) error {
	fs := a.flags("host version")
	if _, err := parse(fs, args, "", 0, 0); err != nil {
		return err
	}
	return a.call(ctx, defaultTimeout, func(c *client.Client) error {
		s, err := c.UpgradeStatus(ctx)
		if err != nil {
			return err
		}
		if a.json {
			return writeJSON(a.out, s)
		}
		fmt.Fprintf(a.out, "Plinth %s", s.Version)
		if s.Active != "" {
			fmt.Fprintf(a.out, " from bank %s (%s)", s.Active, s.Firmware)
		}
		fmt.Fprintln(a.out)
		if !s.Supported {
			fmt.Fprintf(a.out, "upgrades: not possible on this host: %s\n", s.Reason)
		}
		if len(s.Banks) > 0 {
			t := newTable(a.out, "BANK", "STATE", "VERSION")
			for _, b := range s.Banks {
				st := b.State
				if b.TriesLeft != nil {
					st += fmt.Sprintf(" (%d tries left)", *b.TriesLeft)
				}
				t.row(b.Name, st, b.Version)
			}
			if err := t.flush(); err != nil {
				return err
			}
		}
		if p := s.Pending; p != nil {
			fmt.Fprintf(a.out, "pending: %s -> %s in bank %s, boots on trial at the next restart\n", p.FromVersion, p.ToVersion, p.Bank)
		}
		if l := s.Last; l != nil {
			fmt.Fprintf(a.out, "last upgrade: %s, %s -> %s (bank %s) at %s", l.Result, l.FromVersion, l.ToVersion, l.Bank, l.Time.Local().Format(time.DateTime))
			if l.Reason != "" {
				fmt.Fprintf(a.out, ": %s", l.Reason)
			}
			fmt.Fprintln(a.out)
		}
		return nil
	})
}

// hostUpgrade uploads a signed upgrade image and follows its writing.
func (a *app) hostUpgrade(ctx context.Context, args []string) error {
	fs := a.flags("host upgrade")
	reboot := fs.Bool("reboot", false, "restart the host into the upgrade (on trial) once it is written")
	downgrade := fs.String("allow-downgrade", "", "install the image even when it is an older release than the running one; the value must be the host's name, to confirm")
	pos, err := parse(fs, args, "FILE", 1, 1)
	if err != nil {
		return err
	}
	f, err := os.Open(pos[0])
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return withCode(ExitUsage, fmt.Errorf("%s is not a regular file", pos[0]))
	}
	sum := sha256.New()
	if _, err := io.Copy(sum, f); err != nil {
		return fmt.Errorf("read %s: %w", pos[0], err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	// No timeout: ctx alone bounds the upload.
	return a.call(ctx, 0, func(c *client.Client) error {
		p := a.newProgress("upload "+fi.Name(), fi.Size())
		// The reboot is asked for once the task is seen to succeed, so the
		// host never goes down while its outcome is still being read.
		task, err := c.Upgrade(ctx, &countingReader{r: f, p: p}, fi.Size(), client.UpgradeOptions{
			SHA256: hex.EncodeToString(sum.Sum(nil)), AllowDowngrade: *downgrade != "", Confirm: *downgrade})
		p.finish(err == nil)
		if err != nil {
			return err
		}
		t, err := a.follow(ctx, c, task.ID, 500*time.Millisecond, "write "+task.Target)
		if err != nil {
			return err
		}
		if *reboot {
			h, err := c.Host(ctx)
			if err != nil {
				return err
			}
			if err := c.HostPower(ctx, api.PowerReboot, "upgrade: "+task.Target, h.Hostname); err != nil {
				return fmt.Errorf("%s written, but the reboot was refused: %w", task.Target, err)
			}
		}
		if a.json {
			return writeJSON(a.out, t)
		}
		if *reboot {
			fmt.Fprintf(a.out, "%s written; the host is restarting into it on trial (plinth host version shows the outcome)\n", task.Target)
		} else {
			fmt.Fprintf(a.out, "%s written; it boots on trial at the next restart (plinth host rollback cancels it)\n", task.Target)
		}
		return nil
	})
}

// hostRollback boots the standby bank from now on.
func (a *app) hostRollback(ctx context.Context, args []string) error {
	fs := a.flags("host rollback")
	reboot := fs.Bool("reboot", false, "restart the host at once")
	if _, err := parse(fs, args, "", 0, 0); err != nil {
		return err
	}
	return a.call(ctx, defaultTimeout, func(c *client.Client) error {
		r, err := c.Rollback(ctx, *reboot)
		if err != nil {
			return err
		}
		if a.json {
			return writeJSON(a.out, r)
		}
		switch {
		case r.Result == api.UpgradeManual && r.FromVersion != "" && r.Reason != "":
			fmt.Fprintf(a.out, "%s\n", r.Reason)
		default:
			fmt.Fprintf(a.out, "%s: %s -> %s\n", r.Result, r.FromVersion, r.ToVersion)
		}
		return nil
	})
}

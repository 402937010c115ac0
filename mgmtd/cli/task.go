package cli

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/client"
)

func taskProgress(t api.Task) string {
	switch {
	case t.Total > 0:
		return fmt.Sprintf("%d%%", t.Done*100/t.Total)
	case t.Done > 0:
		return humanBytes(t.Done)
	}
	return "-"
}

func (a *app) taskList(ctx context.Context, args []string) error {
	fs := a.flags("task ls")
	if _, err := parse(fs, args, "", 0, 0); err != nil {
		return err
	}
	return a.call(ctx, defaultTimeout, func(c *client.Client) error {
		tasks, err := c.ListTasks(ctx)
		if err != nil {
			return err
		}
		slices.SortStableFunc(tasks, func(x, y api.Task) int { return x.StartedAt.Compare(y.StartedAt) })
		if a.json {
			if tasks == nil {
				tasks = []api.Task{}
			}
			return writeJSON(a.out, tasks)
		}
		t := newTable(a.out, "ID", "KIND", "TARGET", "STATE", "PROGRESS", "USER", "STARTED", "ERROR")
		for _, k := range tasks {
			t.row(k.ID, k.Kind, k.Target, k.State, taskProgress(k), k.User, localTime(k.StartedAt), k.Error)
		}
		return t.flush()
	})
}

// taskWait follows a task to its end with a progress bar; a failed task
// exits 1.
func (a *app) taskWait(ctx context.Context, args []string) error {
	fs := a.flags("task wait")
	interval := fs.Duration("interval", 500*time.Millisecond, "how often to ask")
	pos, err := parse(fs, args, "ID", 1, 1)
	if err != nil {
		return err
	}
	return a.call(ctx, defaultTimeout, func(c *client.Client) error {
		t, err := a.follow(ctx, c, pos[0], *interval, "")
		if err != nil {
			return err
		}
		if !a.json {
			fmt.Fprintf(a.out, "%s: %s\n", t.ID, t.State)
		}
		return nil
	})
}

// follow waits for a task to end, with a progress bar (labelled label, or
// the task's kind and target) on stderr, or the final task as JSON with
// --json; a failed task is an error naming it.
func (a *app) follow(ctx context.Context, c *client.Client, id string, interval time.Duration, label string) (api.Task, error) {
	var p *progress
	t, err := c.WaitTask(ctx, id, interval, func(t api.Task) {
		if a.json {
			return
		}
		if p == nil && t.Total > 0 {
			if label == "" {
				label = t.Kind + " " + t.Target
			}
			p = a.newProgress(label, t.Total)
		}
		if p != nil {
			p.set(t.Done, t.Total)
		}
	})
	if p != nil {
		p.finish(err == nil)
	}
	if a.json && t.ID != "" {
		if jerr := writeJSON(a.out, t); jerr != nil {
			return t, jerr
		}
	}
	if errors.Is(err, client.ErrTaskFailed) {
		return t, fmt.Errorf("task %s (%s %s) failed: %s", t.ID, t.Kind, t.Target, t.Error)
	}
	return t, err
}

// events prints VM events as they come until ctx ends (Ctrl-C): a line
// each, or one JSON object a line with --json.
func (a *app) events(ctx context.Context, args []string) error {
	fs := a.flags("events")
	if _, err := parse(fs, args, "", 0, 0); err != nil {
		return err
	}
	return a.call(ctx, defaultTimeout, func(c *client.Client) error {
		ch, err := c.Events(ctx)
		if err != nil {
			return err
		}
		for ev := range ch {
			if a.json {
				// One compact object a line, for line-oriented tools.
				if err := writeJSONLine(a.out, ev); err != nil {
					return err
				}
				continue
			}
			name := ev.Name
			if name == "" {
				name = ev.VMID
			}
			line := fmt.Sprintf("%s  %-8s %s", ev.Time.Local().Format("15:04:05"), ev.Type, name)
			if ev.State != "" {
				line += " " + ev.State
			}
			if ev.Detail != "" {
				line += ": " + ev.Detail
			}
			if _, err := fmt.Fprintln(a.out, line); err != nil {
				return err
			}
			if ev.Type == api.EventOverflow {
				return errors.New("events: fell behind the server, which closed the stream")
			}
		}
		if ctx.Err() != nil {
			return nil // interrupted: the normal end
		}
		return errors.New("events: the server closed the stream")
	})
}

func (a *app) tokenList(ctx context.Context, args []string) error {
	fs := a.flags("token ls")
	if _, err := parse(fs, args, "", 0, 0); err != nil {
		return err
	}
	return a.call(ctx, defaultTimeout, func(c *client.Client) error {
		toks, err := c.ListTokens(ctx)
		if err != nil {
			return err
		}
		if a.json {
			if toks == nil {
				toks = []api.APIToken{}
			}
			return writeJSON(a.out, toks)
		}
		t := newTable(a.out, "ID", "NAME", "USER", "CREATED", "EXPIRES", "LAST USED")
		for _, k := range toks {
			t.row(k.ID, k.Name, k.User, localTime(k.CreatedAt), optTime(k.ExpiresAt), optTime(k.LastUsedAt))
		}
		return t.flush()
	})
}

func (a *app) tokenCreate(ctx context.Context, args []string) error {
	fs := a.flags("token create")
	expires := fs.String("expires", "", "lifetime, e.g. 30d, 12h (default: never expires)")
	pos, err := parse(fs, args, "NAME", 1, 1)
	if err != nil {
		return err
	}
	req := api.TokenRequest{Name: pos[0]}
	if *expires != "" {
		d, err := parseDuration(*expires)
		if err != nil {
			return withCode(ExitUsage, fmt.Errorf("--expires: %w", err))
		}
		req.ExpiresInSeconds = int64(d / time.Second)
	}
	return a.call(ctx, defaultTimeout, func(c *client.Client) error {
		tok, err := c.CreateToken(ctx, req)
		if err != nil {
			return err
		}
		if a.json {
			return writeJSON(a.out, tok)
		}
		// The secret alone on stdout, so that $(plinth token create x) is it.
		fmt.Fprintln(a.out, tok.Secret)
		fmt.Fprintf(a.errw, "Token %s (%s) made; expires %s. Its secret above is shown only now: use it as $PLINTH_TOKEN.\n",
			tok.ID, tok.Name, optTime(tok.ExpiresAt))
		return nil
	})
}

func (a *app) tokenRevoke(ctx context.Context, args []string) error {
	fs := a.flags("token revoke")
	pos, err := parse(fs, args, "ID...", 1, -1)
	if err != nil {
		return err
	}
	return a.call(ctx, defaultTimeout, func(c *client.Client) error {
		for _, id := range pos {
			if err := c.RevokeToken(ctx, id); err != nil {
				return fmt.Errorf("revoke %s: %w", id, err)
			}
			if !a.json {
				fmt.Fprintf(a.out, "%s: revoked\n", id)
			}
		}
		return nil
	})
}

func (a *app) audit(ctx context.Context, args []string) error {
	fs := a.flags("audit")
	limit := fs.Int("limit", 0, "the last `N` entries (default: the server's, 100)")
	if _, err := parse(fs, args, "", 0, 0); err != nil {
		return err
	}
	return a.call(ctx, defaultTimeout, func(c *client.Client) error {
		entries, err := c.Audit(ctx, *limit)
		if err != nil {
			return err
		}
		if a.json {
			if entries == nil {
				entries = []api.AuditEntry{}
			}
			return writeJSON(a.out, entries)
		}
		t := newTable(a.out, "TIME", "USER", "FROM", "ACTION", "TARGET", "STATUS", "DETAIL")
		for _, e := range entries {
			t.row(localTime(e.Time), e.User, e.Remote, e.Action, e.Target, strconv.Itoa(e.Status), e.Detail)
		}
		return t.flush()
	})
}

package cli

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/client"
)

// A VM's snapshots, clones, template and the history of its definition.
// The long work (take, revert, delete, clone, deploy) is a task on the
// server; the commands follow it with progress, as vm backup does.

// runTask starts long work with start, follows its task with progress
// (labelled label) and, for people (not --json), says what it did with
// done (nil: nothing to say).
func (a *app) runTask(ctx context.Context, label string, start func(c *client.Client) (api.Task, error),
	done func(c *client.Client, t api.Task) error) error {
	return a.call(ctx, importTimeout, func(c *client.Client) error {
		t, err := start(c)
		if err != nil {
			return err
		}
		if t, err = a.follow(ctx, c, t.ID, time.Second, label); err != nil {
			return err
		}
		if a.json || done == nil {
			return nil
		}
		return done(c, t)
	})
}

// vmSnapshotList prints a VM's snapshot tree: each snapshot under its
// parent, the one the VM's present state comes from marked.
func (a *app) vmSnapshotList(ctx context.Context, args []string) error {
	fs := a.flags("vm snapshot ls")
	pos, err := parse(fs, args, "VM", 1, 1)
	if err != nil {
		return err
	}
	return a.call(ctx, defaultTimeout, func(c *client.Client) error {
		tree, err := c.Snapshots(ctx, pos[0])
		if err != nil {
			return err
		}
		if a.json {
			if tree.Snapshots == nil {
				tree.Snapshots = []api.Snapshot{}
			}
			return writeJSON(a.out, tree)
		}
		if len(tree.Snapshots) == 0 {
			fmt.Fprintf(a.out, "%s has no snapshots\n", pos[0])
			return nil
		}
		return printSnapshotTree(a.out, tree)
	})
}

// printSnapshotTree writes one line a snapshot, depth first from the
// roots (children oldest first), indented under its parent.
func printSnapshotTree(w io.Writer, tree api.SnapshotTree) error {
	children := map[string][]api.Snapshot{}
	known := map[string]bool{}
	for _, s := range tree.Snapshots {
		known[s.ID] = true
	}
	for _, s := range tree.Snapshots {
		parent := s.Parent
		if !known[parent] {
			parent = "" // a root, or its parent is gone
		}
		children[parent] = append(children[parent], s)
	}
	t := newTable(w, "NAME", "ID", "TAKEN", "MEMORY", "STATE", "DESCRIPTION")
	var walk func(parent string, depth int)
	walk = func(parent string, depth int) {
		for _, s := range children[parent] {
			name := strings.Repeat("  ", depth) + s.Name
			if s.ID == tree.Current {
				name += " (current)"
			}
			mem := "no"
			if s.Memory {
				mem = "yes, " + humanBytes(s.MemoryBytes)
			}
			t.row(name, s.ID, localTime(s.CreatedAt), mem, s.State, s.Description)
			walk(s.ID, depth+1)
		}
	}
	walk("", 0)
	return t.flush()
}

// vmSnapshotTake takes a snapshot of a VM, running or stopped.
func (a *app) vmSnapshotTake(ctx context.Context, args []string) error {
	fs := a.flags("vm snapshot take")
	desc := fs.String("description", "", "what the snapshot is for")
	memory := fs.Bool("memory", false, "keep the running VM's memory too: a revert resumes the guest where it was")
	pos, err := parse(fs, args, "VM NAME", 2, 2)
	if err != nil {
		return err
	}
	req := api.SnapshotRequest{Name: pos[1], Description: *desc, Memory: *memory}
	if err := req.Validate(); err != nil {
		return withCode(ExitUsage, err)
	}
	return a.runTask(ctx, "snapshot "+pos[0], func(c *client.Client) (api.Task, error) {
		return c.CreateSnapshot(ctx, pos[0], req)
	}, func(*client.Client, api.Task) error {
		what := "disks"
		if req.Memory {
			what = "disks and memory"
		}
		_, err := fmt.Fprintf(a.out, "snapshot %s of %s taken (%s)\n", req.Name, pos[0], what)
		return err
	})
}

// vmSnapshotRevert takes a VM back to one of its snapshots.
func (a *app) vmSnapshotRevert(ctx context.Context, args []string) error {
	fs := a.flags("vm snapshot revert")
	start := fs.Bool("start", false, "start the VM after a revert to a snapshot without memory (which leaves it stopped)")
	pos, err := parse(fs, args, "VM SNAPSHOT", 2, 2)
	if err != nil {
		return err
	}
	return a.runTask(ctx, "revert "+pos[0], func(c *client.Client) (api.Task, error) {
		return c.RevertSnapshot(ctx, pos[0], pos[1], api.RevertRequest{Start: *start})
	}, func(c *client.Client, _ api.Task) error {
		vm, err := c.GetVM(ctx, pos[0])
		if err != nil {
			return err
		}
		fmt.Fprintf(a.out, "%s reverted to snapshot %s: %s\n", vm.Spec.Name, pos[1], vm.Runtime.State)
		return nil
	})
}

// vmSnapshotRemove deletes a snapshot, its data merged into what remains.
func (a *app) vmSnapshotRemove(ctx context.Context, args []string) error {
	fs := a.flags("vm snapshot rm")
	pos, err := parse(fs, args, "VM SNAPSHOT", 2, 2)
	if err != nil {
		return err
	}
	return a.runTask(ctx, "delete snapshot "+pos[1], func(c *client.Client) (api.Task, error) {
		return c.DeleteSnapshot(ctx, pos[0], pos[1])
	}, func(*client.Client, api.Task) error {
		_, err := fmt.Fprintf(a.out, "snapshot %s of %s deleted\n", pos[1], pos[0])
		return err
	})
}

// printMade writes the VMs a task made (its results, VM IDs) as vm create
// does: name, ID, state.
func (a *app) printMade(ctx context.Context, c *client.Client, t api.Task) error {
	for _, id := range t.Results {
		vm, err := c.GetVM(ctx, id)
		if err != nil {
			return err
		}
		fmt.Fprintf(a.out, "%s %s %s\n", vm.Spec.Name, vm.Spec.ID, vm.Runtime.State)
	}
	return nil
}

// vmClone makes a new VM of a stopped VM, or of one of its snapshots.
func (a *app) vmClone(ctx context.Context, args []string) error {
	fs := a.flags("vm clone")
	linked := fs.Bool("linked", false, "overlay each disk on a base that never changes instead of copying it whole")
	snap := fs.String("snapshot", "", "clone the VM as it was in this `snapshot` (name or ID)")
	start := fs.Bool("start", false, "start the clone once it is made")
	pos, err := parse(fs, args, "VM NEWNAME", 2, 2)
	if err != nil {
		return err
	}
	req := api.CloneRequest{Name: pos[1], Linked: *linked, Snapshot: *snap, Start: *start}
	if err := req.Validate(); err != nil {
		return withCode(ExitUsage, err)
	}
	return a.runTask(ctx, "clone "+pos[0], func(c *client.Client) (api.Task, error) {
		return c.CloneVM(ctx, pos[0], req)
	}, func(c *client.Client, t api.Task) error { return a.printMade(ctx, c, t) })
}

// vmTemplate marks a VM as a template (never started, its disks never
// changed), or with --off makes it an ordinary VM again.
func (a *app) vmTemplate(ctx context.Context, args []string) error {
	fs := a.flags("vm template")
	off := fs.Bool("off", false, "unmark: an ordinary VM again (refused while linked clones rest on its disks)")
	pos, err := parse(fs, args, "VM", 1, 1)
	if err != nil {
		return err
	}
	return a.call(ctx, defaultTimeout, func(c *client.Client) error {
		vm, err := c.SetTemplate(ctx, pos[0], !*off)
		if err != nil {
			return err
		}
		if a.json {
			return writeJSON(a.out, vm)
		}
		if vm.Spec.Template {
			fmt.Fprintf(a.out, "%s: a template (plinth vm deploy %s --count N --name-pattern P)\n", vm.Spec.Name, vm.Spec.Name)
		} else {
			fmt.Fprintf(a.out, "%s: an ordinary VM\n", vm.Spec.Name)
		}
		return nil
	})
}

// vmDeploy makes VMs of a template in one task.
func (a *app) vmDeploy(ctx context.Context, args []string) error {
	fs := a.flags("vm deploy")
	var req api.DeployRequest
	fs.IntVar(&req.Count, "count", 1, fmt.Sprintf("how many VMs (at most %d)", api.MaxDeploy))
	fs.StringVar(&req.NamePattern, "name-pattern", "", "the VMs' names, `P`: {n} is each one's number (\"-{n}\" is added without it); required")
	fs.IntVar(&req.First, "first", 1, "the first VM's number")
	fs.BoolVar(&req.Full, "full", false, "copy the template's disks whole instead of linking")
	fs.BoolVar(&req.Start, "start", false, "start each VM once it is made")
	pos, err := parse(fs, args, "TEMPLATE", 1, 1)
	if err != nil {
		return err
	}
	names, err := req.Names()
	if err != nil {
		return withCode(ExitUsage, err)
	}
	return a.runTask(ctx, fmt.Sprintf("deploy %d of %s", len(names), pos[0]), func(c *client.Client) (api.Task, error) {
		return c.Deploy(ctx, pos[0], req)
	}, func(c *client.Client, t api.Task) error { return a.printMade(ctx, c, t) })
}

// vmHistory lists the versions of a VM's definition: who changed it,
// when and why.
func (a *app) vmHistory(ctx context.Context, args []string) error {
	fs := a.flags("vm history")
	pos, err := parse(fs, args, "VM", 1, 1)
	if err != nil {
		return err
	}
	return a.call(ctx, defaultTimeout, func(c *client.Client) error {
		vs, err := c.History(ctx, pos[0])
		if err != nil {
			return err
		}
		if a.json {
			if vs == nil {
				vs = []api.SpecVersion{}
			}
			return writeJSON(a.out, vs)
		}
		t := newTable(a.out, "VERSION", "TIME", "USER", "REASON")
		for _, v := range vs {
			t.row(strconv.Itoa(v.Version), localTime(v.Time), v.User, v.Reason)
		}
		return t.flush()
	})
}

// versionArg reads a version number argument.
func versionArg(cmd, s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		return 0, usageErrorf("%s: version %q: want a version number (1 or more; plinth vm history VM lists them)", cmd, s)
	}
	return n, nil
}

// vmHistoryDiff prints what differs between two versions of a VM's
// definition (default: the newest and the one before it).
func (a *app) vmHistoryDiff(ctx context.Context, args []string) error {
	fs := a.flags("vm history diff")
	pos, err := parse(fs, args, "VM [FROM [TO]]", 1, 3)
	if err != nil {
		return err
	}
	var from, to int
	if len(pos) > 1 {
		if from, err = versionArg("vm history diff", pos[1]); err != nil {
			return err
		}
	}
	if len(pos) > 2 {
		if to, err = versionArg("vm history diff", pos[2]); err != nil {
			return err
		}
	}
	return a.call(ctx, defaultTimeout, func(c *client.Client) error {
		d, err := c.HistoryDiff(ctx, pos[0], from, to)
		if err != nil {
			return err
		}
		if a.json {
			return writeJSON(a.out, d)
		}
		return printSpecDiff(a.out, d)
	})
}

// printSpecDiff writes a diff's changes, a line a field.
func printSpecDiff(w io.Writer, d api.SpecDiff) error {
	if d.To > 0 {
		fmt.Fprintf(w, "version %d to %d:\n", d.From, d.To)
	}
	if len(d.Changes) == 0 {
		fmt.Fprintln(w, "no change")
		return nil
	}
	t := newTable(w, "FIELD", "OLD", "NEW", "RESTART")
	for _, ch := range d.Changes {
		restart := "no"
		if ch.Restart {
			restart = "yes"
		}
		t.row(ch.Field, string(ch.Old), string(ch.New), restart)
	}
	if err := t.flush(); err != nil {
		return err
	}
	if d.NeedsRestart && d.Running {
		fmt.Fprintln(w, "some of it takes effect only when the VM starts again: stop it first")
	}
	return nil
}

// vmHistoryRevert makes an earlier version the VM's definition again (a
// new version), or with --dry-run shows what that would change.
func (a *app) vmHistoryRevert(ctx context.Context, args []string) error {
	fs := a.flags("vm history revert")
	reason := fs.String("reason", "", "why (kept in the history; default: back to version N)")
	dry := fs.Bool("dry-run", false, "show what would change, changing nothing")
	pos, err := parse(fs, args, "VM VERSION", 2, 2)
	if err != nil {
		return err
	}
	n, err := versionArg("vm history revert", pos[1])
	if err != nil {
		return err
	}
	req := api.RevertDefinitionRequest{Version: n, Reason: *reason}
	return a.call(ctx, defaultTimeout, func(c *client.Client) error {
		if *dry {
			d, err := c.PreviewRevertDefinition(ctx, pos[0], req)
			if err != nil {
				return err
			}
			if a.json {
				return writeJSON(a.out, d)
			}
			return printSpecDiff(a.out, d)
		}
		vm, err := c.RevertDefinition(ctx, pos[0], req)
		if err != nil {
			return err
		}
		if a.json {
			return writeJSON(a.out, vm)
		}
		fmt.Fprintf(a.out, "%s: the definition of version %d again\n", vm.Spec.Name, n)
		return nil
	})
}

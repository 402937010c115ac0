package cli

import (
	"context"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/client"
)

// backupWhere reads --ds DS[:FOLDER] ("" when not given).
func backupWhere(s string) (ds, folder string, err error) {
	if s == "" {
		return "", "", nil
	}
	if ds, folder, err = splitDSPath(s, true); err != nil {
		return "", "", withCode(ExitUsage, err)
	}
	return ds, folder, nil
}

// vmBackup backs a VM up and says what kind of backup it made and why.
func (a *app) vmBackup(ctx context.Context, args []string) error {
	fs := a.flags("vm backup")
	where := fs.String("ds", "", "where the backup goes, `DS[:FOLDER]` (default: the VM's backup policy's; folder default backups)")
	full := fs.Bool("full", false, "a full backup even where an incremental one could be")
	pos, err := parse(fs, args, "VM", 1, 1)
	if err != nil {
		return err
	}
	ds, folder, err := backupWhere(*where)
	if err != nil {
		return err
	}
	return a.call(ctx, importTimeout, func(c *client.Client) error {
		vm, err := c.GetVM(ctx, pos[0])
		if err != nil {
			return err
		}
		t, err := c.BackupVM(ctx, vm.Spec.ID, api.BackupRequest{Datastore: ds, Folder: folder, Full: *full})
		if err != nil {
			return err
		}
		if t, err = a.follow(ctx, c, t.ID, time.Second, "backup "+vm.Spec.Name); err != nil {
			return err
		}
		if a.json || len(t.Results) == 0 {
			return nil
		}
		list, err := a.backupsOf(ctx, c, vm.Spec.ID, ds, folder)
		if err != nil {
			return err
		}
		b, ok := findBackup(list, t.Results[0])
		if !ok {
			fmt.Fprintf(a.out, "backup %s\n", t.Results[0])
			return nil
		}
		fmt.Fprintf(a.out, "%s backup %s in %s:%s, %s copied, %s kept\n", b.Kind, b.ID, b.Datastore, b.Path,
			humanBytes(b.CopiedBytes), humanBytes(b.SizeBytes))
		if b.Reason != "" {
			fmt.Fprintf(a.out, "  full because %s\n", b.Reason)
		}
		return nil
	})
}

// backupsOf lists a VM's backups: where its policy keeps them, or in
// ds:folder.
func (a *app) backupsOf(ctx context.Context, c *client.Client, vmID, ds, folder string) ([]api.Backup, error) {
	if ds == "" {
		return c.VMBackups(ctx, vmID)
	}
	list, err := c.ListBackups(ctx, ds, folder)
	return slices.DeleteFunc(list, func(b api.Backup) bool { return b.VMID != vmID }), err
}

func findBackup(list []api.Backup, id string) (api.Backup, bool) {
	i := slices.IndexFunc(list, func(b api.Backup) bool { return b.ID == id })
	if i < 0 {
		return api.Backup{}, false
	}
	return list[i], true
}

// vmBackups lists a VM's backups, or every backup in a datastore folder.
func (a *app) vmBackups(ctx context.Context, args []string) error {
	fs := a.flags("vm backups")
	where := fs.String("ds", "", "the backups in `DS[:FOLDER]` (default: where the VM's backup policy keeps them)")
	pos, err := parse(fs, args, "[VM]", 0, 1)
	if err != nil {
		return err
	}
	ds, folder, err := backupWhere(*where)
	if err != nil {
		return err
	}
	if len(pos) == 0 && ds == "" {
		return withCode(ExitUsage, fmt.Errorf("vm backups: name a VM, or a datastore with --ds DS[:FOLDER]"))
	}
	return a.call(ctx, defaultTimeout, func(c *client.Client) error {
		var list []api.Backup
		if len(pos) == 0 {
			list, err = c.ListBackups(ctx, ds, folder)
		} else {
			var vm api.VM
			if vm, err = c.GetVM(ctx, pos[0]); err == nil {
				list, err = a.backupsOf(ctx, c, vm.Spec.ID, ds, folder)
			}
		}
		if err != nil {
			return err
		}
		if a.json {
			return writeJSON(a.out, append([]api.Backup{}, list...))
		}
		return printBackups(a.out, list)
	})
}

// printBackups writes one line a backup, oldest first.
func printBackups(w io.Writer, list []api.Backup) error {
	t := newTable(w, "ID", "VM", "KIND", "PARENT", "TAKEN", "COPIED", "SIZE", "WHERE")
	for _, b := range list {
		t.row(b.ID, b.VMName, b.Kind, b.Parent, localTime(b.CreatedAt), humanBytes(b.CopiedBytes), humanBytes(b.SizeBytes), b.Datastore+":"+b.Path)
	}
	return t.flush()
}

// vmRestore restores a backup as a new VM or over its VM.
func (a *app) vmRestore(ctx context.Context, args []string) error {
	fs := a.flags("vm restore")
	where := fs.String("ds", "", "where the backup is, `DS[:FOLDER]` (folder default backups); required")
	name := fs.String("name", "", "the new VM's name (default: the backed-up VM's)")
	target := fs.String("target-ds", "", "the datastore for the new VM's disks (default: the backup's)")
	replace := fs.Bool("replace", false, "restore over the stopped VM the backup was taken of (its disks, definition; its snapshots go)")
	start := fs.Bool("start", false, "start the VM once restored")
	pos, err := parse(fs, args, "BACKUP", 1, 1)
	if err != nil {
		return err
	}
	ds, folder, err := backupWhere(*where)
	if err != nil {
		return err
	}
	if ds == "" {
		return withCode(ExitUsage, fmt.Errorf("vm restore: --ds DS[:FOLDER] is required"))
	}
	req := api.RestoreRequest{Datastore: ds, Folder: folder, Backup: pos[0], Replace: *replace, Name: *name,
		TargetDatastore: *target, Start: *start}
	if err := req.Validate(); err != nil {
		return withCode(ExitUsage, err)
	}
	return a.call(ctx, importTimeout, func(c *client.Client) error {
		t, err := c.Restore(ctx, req)
		if err != nil {
			return err
		}
		if t, err = a.follow(ctx, c, t.ID, time.Second, "restore "+pos[0]); err != nil {
			return err
		}
		if !a.json && len(t.Results) > 0 {
			vm, err := c.GetVM(ctx, t.Results[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(a.out, "restored as VM %s (%s), %s\n", vm.Spec.Name, vm.Spec.ID, vm.Runtime.State)
		}
		return nil
	})
}

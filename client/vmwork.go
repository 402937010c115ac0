package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"

	"github.com/plinth/plinth/api"
)

// A VM's snapshots, clones, template, backups and definition history.
// Long work answers a Task to follow with WaitTask.

func (c *Client) vmSub(id, sub string) string { return c.vmPath(id) + "/" + sub }

// Snapshots returns the VM's snapshot tree.
func (c *Client) Snapshots(ctx context.Context, vm string) (api.SnapshotTree, error) {
	var out api.SnapshotTree
	err := c.get(ctx, c.vmSub(vm, api.VMSnapshots), &out)
	return out, err
}

// CreateSnapshot takes a snapshot of the VM (a task).
func (c *Client) CreateSnapshot(ctx context.Context, vm string, req api.SnapshotRequest) (api.Task, error) {
	var out api.Task
	err := c.do(ctx, http.MethodPost, c.vmSub(vm, api.VMSnapshots), req, &out)
	return out, err
}

// DeleteSnapshot deletes the VM's snapshot (name or ID; a task).
func (c *Client) DeleteSnapshot(ctx context.Context, vm, snap string) (api.Task, error) {
	var out api.Task
	err := c.do(ctx, http.MethodDelete, c.vmSub(vm, api.VMSnapshots+"/"+url.PathEscape(snap)), nil, &out)
	return out, err
}

// RevertSnapshot takes the VM back to its snapshot (name or ID; a task).
func (c *Client) RevertSnapshot(ctx context.Context, vm, snap string, req api.RevertRequest) (api.Task, error) {
	var out api.Task
	err := c.do(ctx, http.MethodPost, c.vmSub(vm, api.VMSnapshots+"/"+url.PathEscape(snap)+"/"+api.VMRevert), req, &out)
	return out, err
}

// CloneVM makes a new VM of the VM or of one of its snapshots (a task).
func (c *Client) CloneVM(ctx context.Context, vm string, req api.CloneRequest) (api.Task, error) {
	var out api.Task
	err := c.do(ctx, http.MethodPost, c.vmSub(vm, api.VMClone), req, &out)
	return out, err
}

// SetTemplate marks or unmarks the VM as a template.
func (c *Client) SetTemplate(ctx context.Context, vm string, template bool) (api.VM, error) {
	var out api.VM
	err := c.do(ctx, http.MethodPost, c.vmSub(vm, api.VMTemplate), api.TemplateRequest{Template: template}, &out)
	return out, err
}

// Deploy makes VMs of a template (a task).
func (c *Client) Deploy(ctx context.Context, template string, req api.DeployRequest) (api.Task, error) {
	var out api.Task
	err := c.do(ctx, http.MethodPost, c.vmSub(template, api.VMDeploy), req, &out)
	return out, err
}

// VMBackups lists the VM's backups (where its backup policy keeps them).
func (c *Client) VMBackups(ctx context.Context, vm string) ([]api.Backup, error) {
	var out []api.Backup
	err := c.get(ctx, c.vmSub(vm, api.VMBackups), &out)
	return out, err
}

// BackupVM backs the VM up (a task).
func (c *Client) BackupVM(ctx context.Context, vm string, req api.BackupRequest) (api.Task, error) {
	var out api.Task
	err := c.do(ctx, http.MethodPost, c.vmSub(vm, api.VMBackups), req, &out)
	return out, err
}

func (c *Client) backupsPath() string { return c.prefix + "/" + api.VMBackups }

// ListBackups lists the backups kept in a datastore folder ("" for the
// default, backups).
func (c *Client) ListBackups(ctx context.Context, datastore, folder string) ([]api.Backup, error) {
	q := url.Values{"datastore": {datastore}}
	if folder != "" {
		q.Set("folder", folder)
	}
	var out []api.Backup
	err := c.get(ctx, c.backupsPath()+"?"+q.Encode(), &out)
	return out, err
}

// Restore restores a backup as a new VM or over its VM (a task).
func (c *Client) Restore(ctx context.Context, req api.RestoreRequest) (api.Task, error) {
	var out api.Task
	err := c.do(ctx, http.MethodPost, c.backupsPath()+"/"+api.BackupsRestore, req, &out)
	return out, err
}

// History lists the versions of the VM's definition, oldest first.
func (c *Client) History(ctx context.Context, vm string) ([]api.SpecVersion, error) {
	var out []api.SpecVersion
	err := c.get(ctx, c.vmSub(vm, api.VMHistory), &out)
	return out, err
}

// HistoryDiff is what differs between two versions of the VM's definition
// (to 0: the newest; from 0: the one before to).
func (c *Client) HistoryDiff(ctx context.Context, vm string, from, to int) (api.SpecDiff, error) {
	var out api.SpecDiff
	q := url.Values{}
	if from > 0 {
		q.Set("from", strconv.Itoa(from))
	}
	if to > 0 {
		q.Set("to", strconv.Itoa(to))
	}
	err := c.get(ctx, c.vmSub(vm, api.VMHistory+"/"+api.VMDiff)+"?"+q.Encode(), &out)
	return out, err
}

// RevertDefinition makes an earlier version the VM's definition again.
func (c *Client) RevertDefinition(ctx context.Context, vm string, req api.RevertDefinitionRequest) (api.VM, error) {
	var out api.VM
	err := c.do(ctx, http.MethodPost, c.vmSub(vm, api.VMHistory+"/"+api.VMRevert), req, &out)
	return out, err
}

// PreviewRevertDefinition is RevertDefinition with dry_run: what it would
// change.
func (c *Client) PreviewRevertDefinition(ctx context.Context, vm string, req api.RevertDefinitionRequest) (api.SpecDiff, error) {
	req.DryRun = true
	var out api.SpecDiff
	err := c.do(ctx, http.MethodPost, c.vmSub(vm, api.VMHistory+"/"+api.VMRevert), req, &out)
	return out, err
}

// UpdateVMBecause replaces the VM's spec, saying why (kept in its history).
func (c *Client) UpdateVMBecause(ctx context.Context, idOrName string, spec api.VMSpec, reason string) (api.VM, error) {
	var out api.VM
	q := url.Values{}
	if reason != "" {
		q.Set(api.ReasonQuery, reason)
	}
	path := c.vmPath(idOrName)
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	err := c.do(ctx, http.MethodPut, path, spec, &out)
	return out, err
}

// PreviewUpdateVM is an update with dry_run: what it would change and
// whether that needs a restart, changing nothing.
func (c *Client) PreviewUpdateVM(ctx context.Context, idOrName string, spec api.VMSpec) (api.SpecDiff, error) {
	var out api.SpecDiff
	err := c.do(ctx, http.MethodPut, c.vmPath(idOrName)+"?"+api.DryRunQuery+"=true", spec, &out)
	return out, err
}

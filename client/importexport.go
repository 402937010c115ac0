package client

import (
	"context"
	"net/http"

	"github.com/plinth/plinth/api"
)

// ImportVM starts importing the VM an OVA or OVF on a datastore describes
// and returns the task to follow (WaitTask); its result names the new VM
// and lists what could not be mapped. A descriptor that cannot be read, a
// name in use or a disk file in the way is refused at once.
func (c *Client) ImportVM(ctx context.Context, req api.ImportVMRequest) (api.Task, error) {
	var out api.Task
	err := c.do(ctx, http.MethodPost, c.prefix+"/imports", req, &out)
	return out, err
}

// ExportVM starts exporting a stopped VM as an OVA to a new file on a
// datastore and returns the task to follow.
func (c *Client) ExportVM(ctx context.Context, id string, req api.ExportVMRequest) (api.Task, error) {
	var out api.Task
	err := c.do(ctx, http.MethodPost, c.vmPath(id)+"/"+api.ExportAction, req, &out)
	return out, err
}

// Fetch starts fetching a file from an https:// URL into a datastore and
// returns the task to follow.
func (c *Client) Fetch(ctx context.Context, datastore string, req api.FetchRequest) (api.Task, error) {
	var out api.Task
	err := c.do(ctx, http.MethodPost, c.datastorePath(datastore, api.FetchAction, ""), req, &out)
	return out, err
}

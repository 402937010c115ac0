package client

import (
	"context"
	"net/http"

	"github.com/plinth/plinth/api"
)

// Stats returns the host's and every VM's counters (for metrics).
func (c *Client) Stats(ctx context.Context) (api.Stats, error) {
	var out api.Stats
	err := c.get(ctx, c.prefix+"/stats", &out)
	return out, err
}

// Hardware returns the host's board inventory.
func (c *Client) Hardware(ctx context.Context) (api.Hardware, error) {
	var out api.Hardware
	err := c.get(ctx, c.prefix+"/host/hardware", &out)
	return out, err
}

// HostPower asks for a host reboot or shutdown (api.PowerReboot,
// api.PowerShutdown) for reason (required). mgmtd also wants confirm to be
// the host's hostname; vmkernel ignores it. A host whose power vmkernel
// does not manage gives an *Error with status 501, a bad action or empty
// reason one with status 422 naming the field.
func (c *Client) HostPower(ctx context.Context, action, reason, confirm string) error {
	return c.do(ctx, http.MethodPost, c.prefix+"/host/power", api.PowerRequest{Action: action, Reason: reason, Confirm: confirm}, nil)
}

// InstallTargets lists the host's disks as install targets: whether each
// can be one and what installing would destroy.
func (c *Client) InstallTargets(ctx context.Context) ([]api.InstallCandidate, error) {
	var out []api.InstallCandidate
	err := c.get(ctx, c.prefix+"/host/install", &out)
	return out, err
}

// Install starts installing Plinth to a disk of the host and returns the
// task to follow (WaitTask). A refused target is an *Error (422) naming the
// field: "disk", or "overwrite" for a disk that holds data.
func (c *Client) Install(ctx context.Context, req api.InstallRequest) (api.Task, error) {
	var out api.Task
	err := c.do(ctx, http.MethodPost, c.prefix+"/host/install", req, &out)
	return out, err
}

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

package client

import (
	"context"
	"net/http"

	"github.com/plinth/plinth/api"
)

// HostNetwork answers the management network: saved, live, and a change
// applied on the console that awaits confirmation.
func (c *Client) HostNetwork(ctx context.Context) (api.HostNetwork, error) {
	var n api.HostNetwork
	err := c.get(ctx, c.prefix+"/host/network", &n)
	return n, err
}

// ConfirmNetwork keeps the management-network change awaiting confirmation.
// Through mgmtd it works only when this client reaches the host on the
// change's new address (mgmtd sees which address the connection arrived
// on); a 409 *Error says why not.
func (c *Client) ConfirmNetwork(ctx context.Context) (api.NetworkChange, error) {
	var ch api.NetworkChange
	err := c.do(ctx, http.MethodPost, c.prefix+"/host/network/confirm", nil, &ch)
	return ch, err
}

// ConfirmNetworkFrom is vmkernel's confirm, for mgmtd: local is the address
// the API request arrived on.
func (c *Client) ConfirmNetworkFrom(ctx context.Context, local string) (api.NetworkChange, error) {
	var ch api.NetworkChange
	err := c.do(ctx, http.MethodPost, c.prefix+"/host/network/confirm", api.NetworkConfirmRequest{LocalAddress: local}, &ch)
	return ch, err
}

package client

import (
	"context"
	"io"
	"net/http"
	"net/url"

	"github.com/plinth/plinth/api"
)

// UpgradeStatus reads the system banks, the pending and the last upgrade.
func (c *Client) UpgradeStatus(ctx context.Context) (api.UpgradeStatus, error) {
	var out api.UpgradeStatus
	err := c.do(ctx, http.MethodGet, c.prefix+"/host/upgrade", nil, &out)
	return out, err
}

// Upgrade streams a signed upgrade image of size bytes with its sha256
// (hex; checked by the host) and returns the task writing it to the bank
// not running. With reboot the host restarts into it, on trial, once it
// is written. A refused image (signature, checksum) is an *Error with
// status 422, and nothing was written.
func (c *Client) Upgrade(ctx context.Context, r io.Reader, size int64, sha256 string, reboot bool) (api.Task, error) {
	q := url.Values{"sha256": {sha256}}
	if reboot {
		q.Set("reboot", "true")
	}
	var t api.Task
	if err := c.sendStream(ctx, http.MethodPost, c.prefix+"/host/upgrade?"+q.Encode(), r, size, &t); err != nil {
		return api.Task{}, streamErr("upgrade", err)
	}
	return t, nil
}

// Rollback makes the standby bank the one the host boots (or cancels an
// upgrade not yet booted).
func (c *Client) Rollback(ctx context.Context, reboot bool) (api.UpgradeResult, error) {
	var out api.UpgradeResult
	err := c.do(ctx, http.MethodPost, c.prefix+"/host/upgrade/rollback", api.UpgradeRollbackRequest{Reboot: reboot}, &out)
	return out, err
}

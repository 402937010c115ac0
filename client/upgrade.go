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

// UpgradeOptions say how an upgrade image is to be taken.
type UpgradeOptions struct {
	// SHA256 is the image's checksum (hex), checked by the host; "" none.
	SHA256 string
	// Reboot restarts the host into the upgrade, on trial, once written.
	Reboot bool
	// AllowDowngrade lets an image of an older release than the running
	// one be installed; Confirm must then be the host's name.
	AllowDowngrade bool
	Confirm        string
}

// Upgrade streams a signed upgrade image of size bytes and returns the
// task writing it to the bank not running. A refused image (signature,
// checksum, an older release not allowed) is an *Error with status 422
// naming why, and nothing was written.
func (c *Client) Upgrade(ctx context.Context, r io.Reader, size int64, o UpgradeOptions) (api.Task, error) {
	q := url.Values{}
	if o.SHA256 != "" {
		q.Set("sha256", o.SHA256)
	}
	if o.Reboot {
		q.Set("reboot", "true")
	}
	if o.AllowDowngrade {
		q.Set("allow_downgrade", "true")
		q.Set("confirm", o.Confirm)
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

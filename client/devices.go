package client

import (
	"context"
	"net/http"
	"strconv"

	"github.com/plinth/plinth/api"
)

// A VM's devices (issue 18): plugged into a running VM or added to a
// stopped one's spec; each answers the VM as it is after the change.

// AddDisk plugs disk d into the VM (or adds it to a stopped VM's spec).
func (c *Client) AddDisk(ctx context.Context, id string, d api.Disk) (api.VM, error) {
	return c.vmDevice(ctx, http.MethodPost, id, api.VMDisks, d)
}

// RemoveDisk unplugs the VM's disk at index (or drops it from the spec).
func (c *Client) RemoveDisk(ctx context.Context, id string, index int) (api.VM, error) {
	return c.vmDevice(ctx, http.MethodDelete, id, api.VMDisks+"/"+strconv.Itoa(index), nil)
}

// AddNIC plugs NIC n into the VM (or adds it to a stopped VM's spec).
func (c *Client) AddNIC(ctx context.Context, id string, n api.NIC) (api.VM, error) {
	return c.vmDevice(ctx, http.MethodPost, id, api.VMNICs, n)
}

// RemoveNIC unplugs the VM's NIC at index.
func (c *Client) RemoveNIC(ctx context.Context, id string, index int) (api.VM, error) {
	return c.vmDevice(ctx, http.MethodDelete, id, api.VMNICs+"/"+strconv.Itoa(index), nil)
}

// AddUSB gives the host USB device u to the VM (and keeps it in its spec).
func (c *Client) AddUSB(ctx context.Context, id string, u api.USBPassthrough) (api.VM, error) {
	return c.vmDevice(ctx, http.MethodPost, id, api.VMUSB, u)
}

// RemoveUSB takes the VM's USB device at index (of its usb_devices) away.
func (c *Client) RemoveUSB(ctx context.Context, id string, index int) (api.VM, error) {
	return c.vmDevice(ctx, http.MethodDelete, id, api.VMUSB+"/"+strconv.Itoa(index), nil)
}

func (c *Client) vmDevice(ctx context.Context, method, id, sub string, in any) (api.VM, error) {
	var vm api.VM
	err := c.do(ctx, method, c.vmPath(id)+"/"+sub, in, &vm)
	return vm, err
}

// Balloon reads the running VM's balloon.
func (c *Client) Balloon(ctx context.Context, id string) (api.BalloonStatus, error) {
	var st api.BalloonStatus
	err := c.do(ctx, http.MethodGet, c.vmPath(id)+"/"+api.VMBalloon, nil, &st)
	return st, err
}

// SetBalloon sets the running VM's balloon target in MiB.
func (c *Client) SetBalloon(ctx context.Context, id string, targetMiB int) (api.BalloonStatus, error) {
	var st api.BalloonStatus
	err := c.do(ctx, http.MethodPut, c.vmPath(id)+"/"+api.VMBalloon, api.BalloonRequest{TargetMiB: targetMiB}, &st)
	return st, err
}

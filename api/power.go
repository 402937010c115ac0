package api

// VMKernelHostPowerPath: POST a PowerRequest (its Confirm is not checked by
// vmkernel: mgmtd checks it) to reboot or shut down the host; answered 202
// with a PowerAccepted once the host's init has been told.
const VMKernelHostPowerPath = "/v1/host/power"

// PowerAccepted is the answer to a host power request.
type PowerAccepted struct {
	Action string `json:"action"`
	Reason string `json:"reason"`
}

package client

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"

	"github.com/plinth/plinth/api"
)

// The host's settings (paths in package api), the same calls on mgmtd and
// on vmkernel's socket.

// HostSettings answers every host setting at once.
func (c *Client) HostSettings(ctx context.Context) (api.HostSettings, error) {
	var s api.HostSettings
	err := c.get(ctx, c.prefix+api.HostSettingsPath, &s)
	return s, err
}

// HostNetwork answers the management network: saved, live, the change in
// flight and the last one settled.
func (c *Client) HostNetwork(ctx context.Context) (api.HostNetwork, error) {
	var n api.HostNetwork
	err := c.get(ctx, c.prefix+api.HostNetworkPath, &n)
	return n, err
}

// ChangeNetwork asks for a change of the management network: accepted at
// once (the answer's State is applying), applied a second later, then
// rolled back at its deadline unless confirmed (ConfirmNetwork).
func (c *Client) ChangeNetwork(ctx context.Context, req api.NetworkChangeRequest) (api.NetworkChange, error) {
	var ch api.NetworkChange
	err := c.do(ctx, http.MethodPut, c.prefix+api.HostNetworkPath, req, &ch)
	return ch, err
}

// ConfirmNetwork keeps the management-network change awaiting
// confirmation. Through mgmtd it works only when this client reaches the
// host on the change's new address (mgmtd sees which address the
// connection arrived on); on vmkernel's socket it is the console's.
func (c *Client) ConfirmNetwork(ctx context.Context) (api.NetworkChange, error) {
	var ch api.NetworkChange
	err := c.do(ctx, http.MethodPost, c.prefix+api.HostNetConfirmPath, nil, &ch)
	return ch, err
}

// ConfirmNetworkFrom is vmkernel's confirm, for mgmtd: local is the address
// the API request arrived on.
func (c *Client) ConfirmNetworkFrom(ctx context.Context, local string) (api.NetworkChange, error) {
	var ch api.NetworkChange
	err := c.do(ctx, http.MethodPost, c.prefix+api.HostNetConfirmPath, api.NetworkConfirmRequest{LocalAddress: local}, &ch)
	return ch, err
}

// RollbackNetwork rolls the change awaiting confirmation back now.
func (c *Client) RollbackNetwork(ctx context.Context) (api.NetworkChange, error) {
	var ch api.NetworkChange
	err := c.do(ctx, http.MethodPost, c.prefix+api.HostNetRollbackPath, nil, &ch)
	return ch, err
}

// RestartNetwork applies the saved configuration again.
func (c *Client) RestartNetwork(ctx context.Context) (api.NetworkChange, error) {
	var ch api.NetworkChange
	err := c.do(ctx, http.MethodPost, c.prefix+api.HostNetRestartPath, nil, &ch)
	return ch, err
}

// RestoreNetwork changes the network back to DHCP on the first NIC with a
// link (to be confirmed like any change; confirmSeconds 0: 60 s).
func (c *Client) RestoreNetwork(ctx context.Context, confirmSeconds int) (api.NetworkChange, error) {
	var ch api.NetworkChange
	err := c.do(ctx, http.MethodPost, c.prefix+api.HostNetRestorePath, api.NetworkChangeRequest{ConfirmSeconds: confirmSeconds}, &ch)
	return ch, err
}

// TestNetwork pings the gateway and DNS servers and resolves the host name.
func (c *Client) TestNetwork(ctx context.Context) ([]api.NetworkCheck, error) {
	var out []api.NetworkCheck
	err := c.do(ctx, http.MethodPost, c.prefix+api.HostNetTestPath, nil, &out)
	return out, err
}

// PasswordStatus says whether the root password is set.
func (c *Client) PasswordStatus(ctx context.Context) (api.PasswordStatus, error) {
	var s api.PasswordStatus
	err := c.get(ctx, c.prefix+api.HostPasswordPath, &s)
	return s, err
}

// SetPassword sets the root password: every session and API token ends.
func (c *Client) SetPassword(ctx context.Context, password string) error {
	return c.do(ctx, http.MethodPut, c.prefix+api.HostPasswordPath, api.PasswordRequest{Password: password}, nil)
}

// VerifyPassword checks the root password (vmkernel's socket only: the
// console's login); a wrong one is an *Error with status 401.
func (c *Client) VerifyPassword(ctx context.Context, password string) error {
	return c.do(ctx, http.MethodPost, c.prefix+api.HostPasswordVerifyPath, api.PasswordRequest{Password: password}, nil)
}

// Lockdown says whether lockdown mode is on.
func (c *Client) Lockdown(ctx context.Context) (api.LockdownStatus, error) {
	var s api.LockdownStatus
	err := c.get(ctx, c.prefix+api.HostLockdownPath, &s)
	return s, err
}

// SetLockdown turns lockdown on or off; through mgmtd, turning it off
// needs the root password.
func (c *Client) SetLockdown(ctx context.Context, req api.LockdownRequest) (api.LockdownStatus, error) {
	var s api.LockdownStatus
	err := c.do(ctx, http.MethodPut, c.prefix+api.HostLockdownPath, req, &s)
	return s, err
}

// Certificate describes mgmtd's TLS certificate.
func (c *Client) Certificate(ctx context.Context) (api.CertificateInfo, error) {
	var s api.CertificateInfo
	err := c.get(ctx, c.prefix+api.HostCertificatePath, &s)
	return s, err
}

// SetCertificate replaces mgmtd's TLS certificate.
func (c *Client) SetCertificate(ctx context.Context, req api.CertificateRequest) (api.CertificateInfo, error) {
	var s api.CertificateInfo
	err := c.do(ctx, http.MethodPut, c.prefix+api.HostCertificatePath, req, &s)
	return s, err
}

// Services lists the host's services.
func (c *Client) Services(ctx context.Context) ([]api.ServiceStatus, error) {
	var out []api.ServiceStatus
	err := c.get(ctx, c.prefix+api.HostServicesPath, &out)
	return out, err
}

// RestartServices restarts services (none named: the management agents).
func (c *Client) RestartServices(ctx context.Context, names ...string) error {
	return c.do(ctx, http.MethodPost, c.prefix+api.HostServicesRestartPath, api.ServicesRestartRequest{Services: names}, nil)
}

// ResetConfig forgets the host's configuration and restarts it; confirm
// is the host's name.
func (c *Client) ResetConfig(ctx context.Context, confirm string) error {
	return c.do(ctx, http.MethodPost, c.prefix+api.HostResetPath, api.ResetRequest{Confirm: confirm}, nil)
}

// Logs lists the host's logs.
func (c *Client) Logs(ctx context.Context) ([]api.LogInfo, error) {
	var out []api.LogInfo
	err := c.get(ctx, c.prefix+api.HostLogsPath, &out)
	return out, err
}

// LogTail is the last tailBytes of the log name.
func (c *Client) LogTail(ctx context.Context, name string, tailBytes int64) ([]byte, error) {
	var b []byte
	err := c.do(ctx, http.MethodGet, c.prefix+api.HostLogsPath+"/"+url.PathEscape(name)+"?tail_bytes="+strconv.FormatInt(tailBytes, 10), nil, &b)
	return b, err
}

// Time is the clock and the NTP client's state.
func (c *Client) Time(ctx context.Context) (api.TimeStatus, error) {
	var s api.TimeStatus
	err := c.get(ctx, c.prefix+api.HostTimePath, &s)
	return s, err
}

// SetTime sets the NTP client; the servers are asked at once.
func (c *Client) SetTime(ctx context.Context, cfg api.TimeConfig) (api.TimeStatus, error) {
	var s api.TimeStatus
	err := c.do(ctx, http.MethodPut, c.prefix+api.HostTimePath, cfg, &s)
	return s, err
}

// SyncTime asks the NTP servers now.
func (c *Client) SyncTime(ctx context.Context) (api.TimeStatus, error) {
	var s api.TimeStatus
	err := c.do(ctx, http.MethodPost, c.prefix+api.HostTimeSyncPath, nil, &s)
	return s, err
}

// Syslog is remote logging's configuration and each target's state.
func (c *Client) Syslog(ctx context.Context) (api.SyslogStatus, error) {
	var s api.SyslogStatus
	err := c.get(ctx, c.prefix+api.HostSyslogPath, &s)
	return s, err
}

// SetSyslog replaces remote logging's configuration.
func (c *Client) SetSyslog(ctx context.Context, cfg api.SyslogConfig) (api.SyslogStatus, error) {
	var s api.SyslogStatus
	err := c.do(ctx, http.MethodPut, c.prefix+api.HostSyslogPath, cfg, &s)
	return s, err
}

// SSH is the SSH service's state.
func (c *Client) SSH(ctx context.Context) (api.SSHStatus, error) {
	var s api.SSHStatus
	err := c.get(ctx, c.prefix+api.HostSSHPath, &s)
	return s, err
}

// SetSSH turns SSH on or off and sets how it logs in.
func (c *Client) SetSSH(ctx context.Context, cfg api.SSHConfig) (api.SSHStatus, error) {
	var s api.SSHStatus
	err := c.do(ctx, http.MethodPut, c.prefix+api.HostSSHPath, cfg, &s)
	return s, err
}

// SSHKeys are root's authorized keys.
func (c *Client) SSHKeys(ctx context.Context) ([]api.SSHKey, error) {
	var out []api.SSHKey
	err := c.get(ctx, c.prefix+api.HostSSHKeysPath, &out)
	return out, err
}

// AddSSHKey authorizes a key (an authorized_keys line).
func (c *Client) AddSSHKey(ctx context.Context, line string) (api.SSHKey, error) {
	var k api.SSHKey
	err := c.do(ctx, http.MethodPost, c.prefix+api.HostSSHKeysPath, api.SSHKeyRequest{Key: line}, &k)
	return k, err
}

// DeleteSSHKey removes the authorized key id.
func (c *Client) DeleteSSHKey(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, c.prefix+api.HostSSHKeysPath+"/"+url.PathEscape(id), nil, nil)
}

// SupportBundle streams the support bundle (a tar.gz) into w. It is not
// bounded by the client's WithTimeout; ctx alone ends it.
func (c *Client) SupportBundle(ctx context.Context, w io.Writer) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+c.prefix+api.HostSupportBundlePath, nil)
	if err != nil {
		return 0, fmt.Errorf("client: support bundle: %w", err)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	hc := &http.Client{Transport: c.http.Transport} // no overall timeout: the body may be large
	resp, err := hc.Do(req)
	if err != nil {
		return 0, fmt.Errorf("client: support bundle: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, answerError(resp)
	}
	n, err := io.Copy(w, resp.Body)
	if err != nil {
		return n, fmt.Errorf("client: support bundle: %w", err)
	}
	return n, nil
}

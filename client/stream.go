package client

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/plinth/plinth/api"
)

// ConsoleStream connects to the VM's serial console (see api.ConsoleStream):
// reads give the console's retained tail, then the guest's output as it
// comes; writes go to the guest's serial port. Close ends the stream. A
// refusal (VM unknown, not running, no serial console) is an *Error. The
// stream is not bounded by the client's WithTimeout; ctx bounds only the
// connection's setup.
func (c *Client) ConsoleStream(ctx context.Context, id string) (io.ReadWriteCloser, error) {
	return c.stream(ctx, c.vmPath(id)+"/"+api.ConsoleStream)
}

// VNCStream connects to the VM's VNC (RFB) server (see api.VNCStream), as
// ConsoleStream does to its console.
func (c *Client) VNCStream(ctx context.Context, id string) (io.ReadWriteCloser, error) {
	return c.stream(ctx, c.vmPath(id)+"/"+api.VNCStream)
}

// stream asks for the plinth-stream upgrade of path and returns the
// connection (with whatever the server sent already buffered in it).
func (c *Client) stream(ctx context.Context, path string) (io.ReadWriteCloser, error) {
	tr, ok := c.http.Transport.(*http.Transport)
	if !ok {
		return nil, fmt.Errorf("client: stream %s: transport %T cannot upgrade", path, c.http.Transport)
	}
	// An upgrade is HTTP/1.1 only: never negotiate HTTP/2 for it.
	tr = tr.Clone()
	var protos http.Protocols
	protos.SetHTTP1(true)
	tr.Protocols = &protos
	tr.ForceAttemptHTTP2 = false
	if tr.TLSClientConfig != nil {
		tr.TLSClientConfig = tr.TLSClientConfig.Clone()
		tr.TLSClientConfig.NextProtos = []string{"http/1.1"}
	}
	defer tr.CloseIdleConnections() // an upgraded connection is the caller's, not the pool's
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return nil, fmt.Errorf("client: stream %s: %w", path, err)
	}
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", api.StreamProtocol)
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	hc := &http.Client{Transport: tr} // no overall timeout: a stream
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("client: stream %s: %w", path, err)
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		if rwc, ok := resp.Body.(io.ReadWriteCloser); ok {
			return rwc, nil
		}
		resp.Body.Close()
		return nil, fmt.Errorf("client: stream %s: the upgraded connection is not writable", path)
	}
	defer resp.Body.Close()
	return nil, answerError(resp)
}

// answerError makes a non-2xx answer an *Error with its problem details.
func answerError(resp *http.Response) *Error {
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	e := &Error{Status: resp.StatusCode}
	if json.Unmarshal(data, &e.Problem) != nil || e.Problem.Status == 0 {
		e.Problem = api.Problem{Title: http.StatusText(resp.StatusCode), Status: resp.StatusCode,
			Detail: strings.TrimSpace(string(data[:min(len(data), 512)]))}
	}
	return e
}

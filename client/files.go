package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"github.com/plinth/plinth/api"
)

// UploadFile stores size bytes of r as the file rel of a datastore and
// returns its entry. The body is streamed with its Content-Length; an
// existing file gives an *Error with status 409 unless overwrite (and a
// file a running VM uses always does), too little free space one with
// status 507. The upload is not bounded by the client's WithTimeout; ctx
// alone ends it.
func (c *Client) UploadFile(ctx context.Context, datastore, rel string, r io.Reader, size int64, overwrite bool) (api.DatastoreEntry, error) {
	q := url.Values{"path": {rel}}
	if overwrite {
		q.Set("overwrite", "true")
	}
	path := c.prefix + "/datastores/" + url.PathEscape(datastore) + "/content?" + q.Encode()
	if size < 0 {
		return api.DatastoreEntry{}, fmt.Errorf("client: upload %s: negative size %d", rel, size)
	}
	var e api.DatastoreEntry
	if err := c.sendStream(ctx, http.MethodPut, path, r, size, &e); err != nil {
		return api.DatastoreEntry{}, streamErr("upload "+rel, err)
	}
	return e, nil
}

// streamErr wraps a sendStream error with what was sent, leaving the
// server's answer (an *Error) as it is.
func streamErr(what string, err error) error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return fmt.Errorf("client: %s: %w", what, err)
}

// sendStream sends size bytes of r as a request body with its
// Content-Length and "Expect: 100-continue" (a refusal comes before the
// body is sent) and decodes a 2xx JSON answer into out. It is not bounded
// by the client's WithTimeout; ctx alone ends it. A non-2xx answer is an
// *Error.
func (c *Client) sendStream(ctx context.Context, method, path string, r io.Reader, size int64, out any) error {
	var body io.Reader = io.LimitReader(r, size)
	if size == 0 {
		body = http.NoBody // else the transport cannot tell an empty body from an unknown one
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return err
	}
	req.ContentLength = size
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Expect", "100-continue")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	hc := &http.Client{Transport: c.http.Transport} // no overall timeout: the body may be large
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return answerError(resp)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(out); err != nil {
		return fmt.Errorf("decoding answer: %w", err)
	}
	return nil
}

// DownloadFile opens the file rel of a datastore for reading and returns
// it with its size; the caller must close it. A directory gives an *Error
// with status 422, a missing file one with status 404. The download is not
// bounded by the client's WithTimeout; ctx alone ends it.
func (c *Client) DownloadFile(ctx context.Context, datastore, rel string) (io.ReadCloser, int64, error) {
	path := c.datastorePath(datastore, "content", rel)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return nil, 0, fmt.Errorf("client: download %s: %w", rel, err)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	hc := &http.Client{Transport: c.http.Transport} // no overall timeout: the body may be large
	resp, err := hc.Do(req)
	if err != nil {
		return nil, 0, fmt.Errorf("client: download %s: %w", rel, err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		return nil, 0, answerError(resp)
	}
	return resp.Body, resp.ContentLength, nil
}

package installer

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// An answer file carries the root password's hash, SSH keys and
// `overwrite`: one fetched over the network is used only when the kernel
// command line (which comes from a trusted medium or the operator) says
// what it must be: its sha256, or the TLS certificate of the https server
// it comes from.
const (
	// AnswerSHA256Key: plinth.answer_sha256=HEX, the answer file's sha256;
	// required for http:// (plinth.answer= and plinth.config=).
	AnswerSHA256Key = "plinth.answer_sha256"
	// AnswerFingerprintKey: plinth.answer_fingerprint=HEX, the SHA-256 of
	// the https server's certificate (colons optional); enough for
	// https:// without AnswerSHA256Key.
	AnswerFingerprintKey = "plinth.answer_fingerprint"
)

// ErrUnverified: a network answer file with nothing on the command line
// to check it against.
var ErrUnverified = errors.New("refused: an answer file fetched over the network is used only when the kernel command line pins it")

// ErrPinned: the server is not the one the pin names (another
// certificate, a redirect away); trying again will not mend it.
var ErrPinned = errors.New("not the pinned server")

// AnswerPin is what a fetched answer file is checked against.
type AnswerPin struct {
	SHA256      []byte // of the file
	Fingerprint []byte // SHA-256 of the https server's certificate (DER)
}

// PinFromCmdline reads AnswerSHA256Key and AnswerFingerprintKey.
func PinFromCmdline(c map[string]string) (AnswerPin, error) {
	var p AnswerPin
	for key, dst := range map[string]*[]byte{AnswerSHA256Key: &p.SHA256, AnswerFingerprintKey: &p.Fingerprint} {
		v, ok := c[key]
		if !ok {
			continue
		}
		b, err := hex.DecodeString(strings.ReplaceAll(v, ":", ""))
		if err != nil || len(b) != sha256.Size {
			return AnswerPin{}, fmt.Errorf("%s=%.80q is not a SHA-256 in hex", key, v)
		}
		*dst = b
	}
	return p, nil
}

// Permits says whether an answer file may be fetched from url with this
// pin: file:// always (the boot medium is trusted as the kernel is);
// http:// only with the file's sha256; https:// with the sha256 or the
// server certificate's fingerprint.
func (p AnswerPin) Permits(url string) error {
	switch {
	case strings.HasPrefix(url, "file://"):
		return nil
	case strings.HasPrefix(url, "http://"):
		if p.SHA256 == nil {
			return fmt.Errorf("%w: %s is plain http, which anyone on the network can change or serve; add %s=HEX (the file's sha256) to the kernel command line",
				ErrUnverified, url, AnswerSHA256Key)
		}
	case strings.HasPrefix(url, "https://"):
		if p.SHA256 == nil && p.Fingerprint == nil {
			return fmt.Errorf("%w: add %s=HEX (the file's sha256) or %s=HEX (the SHA-256 of the server's certificate) to the kernel command line",
				ErrUnverified, AnswerSHA256Key, AnswerFingerprintKey)
		}
	default:
		return errors.New("want an http://, https:// or file:// URL")
	}
	return nil
}

// HTTPClient fetches under the pin: with a fingerprint, only a server
// presenting that certificate is talked to, and redirects are not followed
// unless the content is pinned too; with only the file's sha256, the
// transport is not what is trusted (the content is checked).
func (p AnswerPin) HTTPClient(timeout time.Duration) *http.Client {
	tr := &http.Transport{Proxy: nil, TLSHandshakeTimeout: timeout}
	c := &http.Client{Timeout: timeout, Transport: tr}
	switch {
	case p.Fingerprint != nil:
		want := p.Fingerprint
		tr.TLSClientConfig = &tls.Config{
			InsecureSkipVerify: true, // replaced by the pin
			VerifyConnection: func(cs tls.ConnectionState) error {
				if len(cs.PeerCertificates) == 0 {
					return fmt.Errorf("%w: it sent no certificate", ErrPinned)
				}
				got := sha256.Sum256(cs.PeerCertificates[0].Raw)
				if !bytes.Equal(got[:], want) {
					return fmt.Errorf("%w: the answer file's server certificate has SHA-256 %X, %s says %X", ErrPinned, got, AnswerFingerprintKey, want)
				}
				return nil
			},
		}
		if p.SHA256 == nil {
			c.CheckRedirect = func(*http.Request, []*http.Request) error {
				return fmt.Errorf("%w: a redirect would leave the pinned server", ErrPinned)
			}
		}
	case p.SHA256 != nil:
		tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} // the content is checked
	}
	return c
}

// Check refuses data that is not the pinned file.
func (p AnswerPin) Check(data []byte) error {
	if p.SHA256 == nil {
		return nil
	}
	got := sha256.Sum256(data)
	if !bytes.Equal(got[:], p.SHA256) {
		return fmt.Errorf("%w: the answer file's sha256 is %x, %s says %x", ErrUnverified, got, AnswerSHA256Key, p.SHA256)
	}
	return nil
}

package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/plinth/plinth/client"
)

// Exit codes; see the package documentation.
const (
	ExitOK          = 0
	ExitError       = 1
	ExitUsage       = 2
	ExitAuth        = 3
	ExitNotFound    = 4
	ExitConflict    = 5
	ExitFingerprint = 6
)

// exitError carries an exit code chosen where the error was made.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// usageErrorf is a wrong command line (exit 2).
func usageErrorf(format string, args ...any) error {
	return &exitError{code: ExitUsage, err: fmt.Errorf(format, args...)}
}

// withCode gives err the exit code code.
func withCode(code int, err error) error { return &exitError{code: code, err: err} }

// ExitCode is the exit code for err: nil is 0; a wrong command line 2; an
// API answer 401 or 403 is 3, 404 is 4, 409 is 5; a certificate that does
// not match its pin, or any other TLS failure, 6; anything else 1.
func ExitCode(err error) int {
	if err == nil {
		return ExitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	var mm *MismatchError
	if errors.As(err, &mm) || errors.Is(err, client.ErrFingerprintMismatch) || isTLSError(err) {
		return ExitFingerprint
	}
	var ae *client.Error
	if errors.As(err, &ae) {
		switch ae.Status {
		case http.StatusUnauthorized, http.StatusForbidden:
			return ExitAuth
		case http.StatusNotFound:
			return ExitNotFound
		case http.StatusConflict:
			return ExitConflict
		}
	}
	return ExitError
}

func isTLSError(err error) bool {
	var (
		rh  tls.RecordHeaderError
		al  tls.AlertError
		cv  *tls.CertificateVerificationError
		ua  x509.UnknownAuthorityError
		hn  x509.HostnameError
		inv x509.CertificateInvalidError
	)
	return errors.As(err, &rh) || errors.As(err, &al) || errors.As(err, &cv) ||
		errors.As(err, &ua) || errors.As(err, &hn) || errors.As(err, &inv)
}

// printError writes err for a person: the server's problem detail with the
// field at fault and every field problem the detail does not already say,
// and, when hint, how to get past a 401.
func printError(w io.Writer, err error, hint bool) {
	var mm *MismatchError
	switch {
	case errors.Is(err, context.Canceled):
		fmt.Fprintln(w, "plinth: interrupted")
		return
	case errors.As(err, &mm):
		fmt.Fprintln(w, mm.Error()) // the banner stands on its own
		return
	}
	fmt.Fprintf(w, "plinth: %v\n", err)
	var ae *client.Error
	if errors.As(err, &ae) {
		for _, p := range ae.Problem.Problems {
			if len(ae.Problem.Problems) == 1 && strings.Contains(ae.Problem.Detail, p.Message) {
				continue
			}
			fmt.Fprintf(w, "  %s: %s\n", p.Field, p.Message)
		}
		if hint && ae.Status == http.StatusUnauthorized {
			fmt.Fprintln(w, `plinth: log in again with "plinth login"`)
		}
	}
}

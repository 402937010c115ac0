package mgmtd

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/client"
)

var vmStates = []string{api.VMStopped, api.VMStarting, api.VMRunning, api.VMPaused, api.VMStopping, api.VMCrashed}

// listVMs lists VMs, filtered by state and name pattern.
func (s *Server) listVMs(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	state, pattern := q.Get("state"), q.Get("name")
	if state != "" && !slices.Contains(vmStates, state) {
		fieldProblem(w, api.FieldProblem{Field: "state", Message: fmt.Sprintf("%q is not one of %s", state, strings.Join(vmStates, ", "))})
		return
	}
	if _, err := path.Match(pattern, ""); err != nil {
		fieldProblem(w, api.FieldProblem{Field: "name", Message: fmt.Sprintf("%q is not a valid pattern: %v", pattern, err)})
		return
	}
	if state == "" && pattern == "" {
		// Unfiltered, vmkernel's answer is the answer: pass its bytes on
		// rather than decoding and encoding a thousand VMs.
		s.forward(w, r)
		return
	}
	vms, err := s.vmk.ListVMs(r.Context())
	if err != nil {
		s.vmkernelError(w, err)
		return
	}
	out := make([]api.VM, 0, len(vms))
	for _, vm := range vms {
		if state != "" && vm.Runtime.State != state {
			continue
		}
		if pattern != "" {
			if ok, _ := path.Match(pattern, vm.Spec.Name); !ok {
				continue
			}
		}
		out = append(out, vm)
	}
	writeJSON(w, http.StatusOK, out)
}

// hostPower checks the request here (the confirmation is the hostname)
// and has vmkernel carry it out.
func (s *Server) hostPower(w http.ResponseWriter, r *http.Request) {
	var req api.PowerRequest
	if !decodeStrict(w, r, 0, &req) {
		return
	}
	var probs []api.FieldProblem
	if req.Action != api.PowerReboot && req.Action != api.PowerShutdown {
		probs = append(probs, api.FieldProblem{Field: "action", Message: fmt.Sprintf("%q is not %q or %q", req.Action, api.PowerReboot, api.PowerShutdown)})
	}
	if strings.TrimSpace(req.Reason) == "" {
		probs = append(probs, api.FieldProblem{Field: "reason", Message: "is empty: say why, for the audit log"})
	}
	host, err := s.vmk.Host(r.Context())
	if err != nil {
		s.vmkernelError(w, err)
		return
	}
	if req.Confirm != host.Hostname {
		probs = append(probs, api.FieldProblem{Field: "confirm", Message: fmt.Sprintf("must be this host's name, %q", host.Hostname)})
	}
	if len(probs) > 0 {
		fieldProblem(w, probs...)
		return
	}
	b, _ := json.Marshal(req)
	r.Body = io.NopCloser(bytes.NewReader(b))
	r.ContentLength = int64(len(b))
	s.log.Warn("mgmtd: host power requested", "action", req.Action, "reason", req.Reason, "user", principalOf(r).User, "remote", remoteIP(r))
	s.forward(w, r)
}

func certInfo(c *tls.Certificate) api.CertificateInfo {
	leaf := c.Leaf
	if leaf == nil {
		leaf, _ = x509.ParseCertificate(c.Certificate[0])
	}
	info := api.CertificateInfo{Fingerprint: client.Fingerprint(c.Certificate[0])}
	if leaf != nil {
		info.Subject = leaf.Subject.String()
		info.NotBefore, info.NotAfter = leaf.NotBefore.UTC(), leaf.NotAfter.UTC()
		info.SelfSigned = leaf.CheckSignatureFrom(leaf) == nil
	}
	return info
}

func (s *Server) getCertificate(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, certInfo(s.cert.Load()))
}

// putCertificate replaces the TLS certificate: checked (a matching key,
// valid now, for server authentication), written to STATE, and served to
// new connections at once.
func (s *Server) putCertificate(w http.ResponseWriter, r *http.Request) {
	var req api.CertificateRequest
	if !decodeStrict(w, r, 0, &req) {
		return
	}
	if !strings.Contains(req.CertificatePEM, "-----BEGIN CERTIFICATE-----") {
		fieldProblem(w, api.FieldProblem{Field: "certificate_pem", Message: "holds no PEM CERTIFICATE block"})
		return
	}
	if blk, _ := pem.Decode([]byte(req.KeyPEM)); blk == nil || !strings.Contains(blk.Type, "PRIVATE KEY") {
		fieldProblem(w, api.FieldProblem{Field: "key_pem", Message: "holds no PEM PRIVATE KEY block (an encrypted key is not accepted)"})
		return
	}
	cert, err := tls.X509KeyPair([]byte(req.CertificatePEM), []byte(req.KeyPEM))
	if err != nil {
		fieldProblem(w, api.FieldProblem{Field: "key_pem", Message: "does not go with the certificate: " + err.Error()})
		return
	}
	leaf := cert.Leaf
	now := s.now()
	switch {
	case now.Before(leaf.NotBefore):
		fieldProblem(w, api.FieldProblem{Field: "certificate_pem", Message: "is not valid before " + leaf.NotBefore.UTC().Format(time.RFC3339)})
		return
	case now.After(leaf.NotAfter):
		fieldProblem(w, api.FieldProblem{Field: "certificate_pem", Message: "expired on " + leaf.NotAfter.UTC().Format(time.RFC3339)})
		return
	case len(leaf.ExtKeyUsage) > 0 && !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageServerAuth):
		fieldProblem(w, api.FieldProblem{Field: "certificate_pem", Message: "is not for server authentication (extended key usage)"})
		return
	}
	fp, err := installCert(s.cfg.StateDir+"/tls", []byte(req.CertificatePEM), []byte(req.KeyPEM))
	if err != nil {
		writeProblem(w, api.Problem{Status: http.StatusInternalServerError, Detail: err.Error()})
		return
	}
	s.cert.Store(&cert)
	s.log.Warn("mgmtd: TLS certificate replaced", "fingerprint", fp, "user", principalOf(r).User)
	writeJSON(w, http.StatusOK, certInfo(&cert))
}

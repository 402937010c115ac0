// Package tlscert is the TLS certificate mgmtd serves, kept in STATE
// (layout.Host.TLSDir: cert.pem, key.pem and the fingerprint the console
// shows): made self-signed on first use, checked and replaced through the
// host settings (vmkernel, as root, for the owner of the directory), and
// reloaded by mgmtd when it changes (Watch).
package tlscert

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/atomicfile"
	"github.com/plinth/plinth/client"
)

// Files in the TLS directory.
const (
	certFile        = "cert.pem"
	keyFile         = "key.pem"
	fingerprintFile = "fingerprint"
	// replacementFile journals a certificate replacement (certificate and
	// key in one file) until both are in place.
	replacementFile = "replacement.pem"
	certLifetime    = 10 * 365 * 24 * time.Hour
)

// LoadOrCreate returns the TLS certificate kept in dir, making a
// self-signed ECDSA P-256 one on first use. The key is written before the
// certificate, each atomically, so a crash in between leaves no certificate
// and the next start makes a fresh pair; nobody can have pinned it yet. A
// certificate without its key is an error, never silently replaced, since
// clients pin the fingerprint. The fingerprint is (re)written to
// dir/fingerprint for the console.
func LoadOrCreate(dir string) (cert tls.Certificate, created bool, err error) {
	certPath, keyPath := filepath.Join(dir, certFile), filepath.Join(dir, keyFile)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return cert, false, fmt.Errorf("tls directory: %w", err)
	}
	if err := finishReplacement(dir); err != nil {
		return cert, false, err
	}
	switch _, err := os.Stat(certPath); {
	case errors.Is(err, fs.ErrNotExist):
		if err := createCert(certPath, keyPath); err != nil {
			return cert, false, err
		}
		created = true
	case err != nil:
		return cert, false, fmt.Errorf("tls certificate: %w", err)
	}
	cert, err = tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil {
		return cert, false, fmt.Errorf("loading %s and %s: %w", certPath, keyPath, err)
	}
	fp := client.Fingerprint(cert.Certificate[0])
	if err := atomicfile.Write(filepath.Join(dir, fingerprintFile), []byte(fp+"\n"), 0o644); err != nil {
		return cert, created, err
	}
	return cert, created, nil
}

func createCert(certPath, keyPath string) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("generating TLS key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return fmt.Errorf("generating serial: %w", err)
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "plinth"
	}
	dns, ips := certNames(host)
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: host, Organization: []string{"Plinth"}},
		NotBefore:             now.Add(-time.Hour), // tolerate a host clock that is a bit behind
		NotAfter:              now.Add(certLifetime),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		DNSNames:              dns,
		IPAddresses:           ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return fmt.Errorf("creating TLS certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("encoding TLS key: %w", err)
	}
	if err := atomicfile.Write(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return err
	}
	return atomicfile.Write(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}

// certNames are the certificate's SANs: the hostname, localhost, the
// loopback addresses and the host's current global unicast addresses.
func certNames(host string) ([]string, []net.IP) {
	dns := []string{host}
	if host != "localhost" {
		dns = append(dns, "localhost")
	}
	ips := []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	addrs, _ := net.InterfaceAddrs() // no addresses yet is fine: names still work
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.IsGlobalUnicast() {
			ips = append(ips, n.IP)
		}
	}
	return dns, ips
}

// install replaces the certificate and key in dir and returns the new
// fingerprint. The pair is first written as one journal file, then as the
// two files, then the journal is removed: a crash at any point leaves
// either the old pair or (completed by the next LoadOrCreate or Install) the new.
func install(dir string, certPEM, keyPEM []byte) (string, error) {
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return "", fmt.Errorf("replace certificate: %w", err)
	}
	journal := append(append(append([]byte{}, certPEM...), '\n'), keyPEM...)
	if err := writeAs(dir, replacementFile, journal, 0o600); err != nil {
		return "", fmt.Errorf("replace certificate: %w", err)
	}
	if err := finishReplacement(dir); err != nil {
		return "", err
	}
	return client.Fingerprint(cert.Certificate[0]), nil
}

// finishReplacement completes a journalled replacement, if there is one.
func finishReplacement(dir string) error {
	jpath := filepath.Join(dir, replacementFile)
	b, err := os.ReadFile(jpath)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("replace certificate: %w", err)
	}
	var certPEM, keyPEM []byte
	for rest := b; ; {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		enc := pem.EncodeToMemory(blk)
		if strings.Contains(blk.Type, "PRIVATE KEY") {
			keyPEM = append(keyPEM, enc...)
		} else {
			certPEM = append(certPEM, enc...)
		}
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil { // a torn journal: the old pair is intact, drop it
		return os.Remove(jpath)
	}
	steps := []struct {
		name string
		data []byte
		mode os.FileMode
	}{
		{keyFile, keyPEM, 0o600},
		{certFile, certPEM, 0o644},
		{fingerprintFile, []byte(client.Fingerprint(cert.Certificate[0]) + "\n"), 0o644},
	}
	for _, st := range steps {
		if err := writeAs(dir, st.name, st.data, st.mode); err != nil {
			return fmt.Errorf("replace certificate: %w", err)
		}
	}
	if err := os.Remove(jpath); err != nil {
		return fmt.Errorf("replace certificate: %w", err)
	}
	return atomicfile.SyncDir(dir)
}

// writeAs writes dir/name atomically for the owner of dir: root (vmkernel)
// writes mgmtd's files, which mgmtd, the directory's owner, must read. The
// rename replaces whatever was at the name (a symbolic link included) and
// Lchown does not follow one.
func writeAs(dir, name string, data []byte, mode os.FileMode) error {
	path := filepath.Join(dir, name)
	if err := atomicfile.Write(path, data, mode); err != nil {
		return err
	}
	if os.Geteuid() != 0 {
		return nil
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || st.Uid == 0 {
		return nil
	}
	return os.Lchown(path, int(st.Uid), int(st.Gid))
}

// Info describes c.
func Info(c *tls.Certificate) api.CertificateInfo {
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

// Read describes the certificate kept in dir.
func Read(dir string) (api.CertificateInfo, error) {
	b, err := os.ReadFile(filepath.Join(dir, certFile))
	if err != nil {
		return api.CertificateInfo{}, fmt.Errorf("TLS certificate: %w", err)
	}
	var c tls.Certificate
	for rest := b; ; {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		if blk.Type == "CERTIFICATE" {
			c.Certificate = append(c.Certificate, blk.Bytes)
		}
	}
	if len(c.Certificate) == 0 {
		return api.CertificateInfo{}, fmt.Errorf("TLS certificate: %s holds no certificate", filepath.Join(dir, certFile))
	}
	return Info(&c), nil
}

// Check says what is wrong with a replacement certificate, naming the
// field (certificate_pem, key_pem): it must be a PEM certificate with its
// unencrypted key, valid at now, for server authentication.
func Check(req api.CertificateRequest, now time.Time) (tls.Certificate, []api.FieldProblem) {
	bad := func(field, msg string) (tls.Certificate, []api.FieldProblem) {
		return tls.Certificate{}, []api.FieldProblem{{Field: field, Message: msg}}
	}
	if !strings.Contains(req.CertificatePEM, "-----BEGIN CERTIFICATE-----") {
		return bad("certificate_pem", "holds no PEM CERTIFICATE block")
	}
	if blk, _ := pem.Decode([]byte(req.KeyPEM)); blk == nil || !strings.Contains(blk.Type, "PRIVATE KEY") {
		return bad("key_pem", "holds no PEM PRIVATE KEY block (an encrypted key is not accepted)")
	}
	cert, err := tls.X509KeyPair([]byte(req.CertificatePEM), []byte(req.KeyPEM))
	if err != nil {
		return bad("key_pem", "does not go with the certificate: "+err.Error())
	}
	leaf := cert.Leaf
	switch {
	case now.Before(leaf.NotBefore):
		return bad("certificate_pem", "is not valid before "+leaf.NotBefore.UTC().Format(time.RFC3339))
	case now.After(leaf.NotAfter):
		return bad("certificate_pem", "expired on "+leaf.NotAfter.UTC().Format(time.RFC3339))
	case len(leaf.ExtKeyUsage) > 0 && !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageServerAuth):
		return bad("certificate_pem", "is not for server authentication (extended key usage)")
	}
	return cert, nil
}

// Install replaces the certificate in dir with req's, once Check finds
// nothing wrong (else it returns the problems as Invalid).
func Install(dir string, req api.CertificateRequest, now time.Time) (api.CertificateInfo, error) {
	cert, probs := Check(req, now)
	if probs != nil {
		return api.CertificateInfo{}, Invalid(probs)
	}
	if _, err := install(dir, []byte(req.CertificatePEM), []byte(req.KeyPEM)); err != nil {
		return api.CertificateInfo{}, err
	}
	return Info(&cert), nil
}

// Invalid is a replacement that Check refused.
type Invalid []api.FieldProblem

func (p Invalid) Error() string { return "invalid certificate: " + p[0].Field + " " + p[0].Message }

// Watch serves the certificate kept in dir to TLS handshakes, reloading it
// when it changes on disk (Install, by vmkernel): Certificate is a
// tls.Config's GetCertificate.
type Watch struct {
	dir string
	mu  sync.Mutex
	cur *tls.Certificate
	// seen identifies cert.pem as last loaded; checked is when it was
	// last looked at (at most once a second).
	seen    fileID
	checked time.Time
	log     func(msg string, args ...any)
}

type fileID struct {
	ino   uint64
	mtime time.Time
	size  int64
}

func idOf(path string) fileID {
	fi, err := os.Stat(path)
	if err != nil {
		return fileID{}
	}
	id := fileID{mtime: fi.ModTime(), size: fi.Size()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		id.ino = st.Ino
	}
	return id
}

// NewWatch loads (or makes) the certificate in dir and watches it; log,
// when set, hears of reloads.
func NewWatch(dir string, log func(msg string, args ...any)) (*Watch, bool, error) {
	cert, created, err := LoadOrCreate(dir)
	if err != nil {
		return nil, false, err
	}
	return &Watch{dir: dir, cur: &cert, seen: idOf(filepath.Join(dir, certFile)), checked: time.Now(), log: log}, created, nil
}

// Current is the certificate to serve now.
func (w *Watch) Current() *tls.Certificate {
	w.mu.Lock()
	defer w.mu.Unlock()
	if time.Since(w.checked) < time.Second {
		return w.cur
	}
	w.checked = time.Now()
	id := idOf(filepath.Join(w.dir, certFile))
	if id == w.seen || id == (fileID{}) {
		return w.cur
	}
	cert, err := tls.LoadX509KeyPair(filepath.Join(w.dir, certFile), filepath.Join(w.dir, keyFile))
	if err != nil {
		// Between the two renames of an Install: the next look finds both.
		return w.cur
	}
	w.cur, w.seen = &cert, id
	if w.log != nil {
		w.log("TLS certificate reloaded", "fingerprint", client.Fingerprint(cert.Certificate[0]))
	}
	return w.cur
}

// Certificate is Current for tls.Config.GetCertificate.
func (w *Watch) Certificate(*tls.ClientHelloInfo) (*tls.Certificate, error) { return w.Current(), nil }

package mgmtd

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
	"strings"
	"time"

	"github.com/plinth/plinth/atomicfile"
	"github.com/plinth/plinth/client"
)

// Files under <state>/tls.
const (
	certFile        = "cert.pem"
	keyFile         = "key.pem"
	fingerprintFile = "fingerprint"
	// replacementFile journals a certificate replacement (certificate and
	// key in one file) until both are in place.
	replacementFile = "replacement.pem"
	certLifetime    = 10 * 365 * 24 * time.Hour
)

// LoadOrCreateCert returns the TLS certificate kept in dir, making a
// self-signed ECDSA P-256 one on first use. The key is written before the
// certificate, each atomically, so a crash in between leaves no certificate
// and the next start makes a fresh pair; nobody can have pinned it yet. A
// certificate without its key is an error, never silently replaced, since
// clients pin the fingerprint. The fingerprint is (re)written to
// dir/fingerprint for the console.
func LoadOrCreateCert(dir string) (cert tls.Certificate, created bool, err error) {
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

// installCert replaces the certificate and key in dir and returns the new
// fingerprint. The pair is first written as one journal file, then as the
// two files, then the journal is removed: a crash at any point leaves
// either the old pair or (completed by the next LoadOrCreateCert) the new.
func installCert(dir string, certPEM, keyPEM []byte) (string, error) {
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return "", fmt.Errorf("replace certificate: %w", err)
	}
	journal := append(append(append([]byte{}, certPEM...), '\n'), keyPEM...)
	if err := atomicfile.Write(filepath.Join(dir, replacementFile), journal, 0o600); err != nil {
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
		if err := atomicfile.Write(filepath.Join(dir, st.name), st.data, st.mode); err != nil {
			return fmt.Errorf("replace certificate: %w", err)
		}
	}
	if err := os.Remove(jpath); err != nil {
		return fmt.Errorf("replace certificate: %w", err)
	}
	return atomicfile.SyncDir(dir)
}

// Package peerstest runs Debian's servers for tests to talk to: chronyd as an
// NTP server, rsyslogd as a remote log server (UDP, TCP and TLS). Each runs
// in the foreground under the test, in a directory of its own, and is
// killed by its cleanup; a missing binary is testenv.Unmet.
package peerstest

import (
	"bufio"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/plinth/plinth/internal/testenv"
)

// start runs cmd until the test ends, with its output in dir/NAME.out.
func start(t testing.TB, dir, name string, cmd *exec.Cmd) {
	t.Helper()
	out, err := os.Create(filepath.Join(dir, name+".out"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
		out.Close()
		if t.Failed() {
			b, _ := os.ReadFile(out.Name())
			t.Logf("%s's output:\n%s", name, b)
		}
	})
}

// FreePort is a free port on 127.0.0.1 (TCP and, most likely, UDP).
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Chrony runs chronyd as an NTP server on ip:port, its clock its
// reference at stratum 8; it never sets the host's clock (-x).
func Chrony(t testing.TB, ip string, port int) {
	t.Helper()
	bin := testenv.Command(t, "chronyd")
	dir := t.TempDir()
	conf := fmt.Sprintf("port %d\nbindaddress %s\nallow all\nlocal stratum 8\ncmdport 0\npidfile %s\n",
		port, ip, filepath.Join(dir, "chronyd.pid"))
	path := filepath.Join(dir, "chrony.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	start(t, dir, "chronyd", exec.Command(bin, "-d", "-x", "-u", "root", "-f", path))
	waitLog(t, filepath.Join(dir, "chronyd.out"), "Disabled control of system clock")
}

// Syslog is a running rsyslogd that writes each message it receives as
// one line: "PROTOCOL-VERSION APP-NAME PROCID MSGID HOSTNAME SEVERITY | MSG".
type Syslog struct{ out string }

// SyslogPorts are where Rsyslog listens; a zero port is not opened.
type SyslogPorts struct {
	UDP, TCP, TLS int
	// CertPEM and KeyPEM are the TLS listener's certificate and key.
	CertPEM, KeyPEM []byte
}

// Rsyslog runs rsyslogd on 127.0.0.1 (or ip) at the ports given.
func Rsyslog(t testing.TB, ip string, p SyslogPorts) *Syslog {
	t.Helper()
	bin := testenv.Command(t, "rsyslogd")
	dir := t.TempDir()
	s := &Syslog{out: filepath.Join(dir, "messages")}
	var c strings.Builder
	fmt.Fprintf(&c, "global(workDirectory=%q)\n", dir)
	if p.TLS != 0 {
		for name, b := range map[string][]byte{"cert.pem": p.CertPEM, "key.pem": p.KeyPEM} {
			if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		fmt.Fprintf(&c, "global(DefaultNetstreamDriver=\"gtls\" DefaultNetstreamDriverCertFile=%q DefaultNetstreamDriverKeyFile=%q)\n",
			filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"))
	}
	if p.UDP != 0 {
		fmt.Fprintf(&c, "module(load=\"imudp\")\ninput(type=\"imudp\" address=%q port=\"%d\")\n", ip, p.UDP)
	}
	if p.TCP != 0 || p.TLS != 0 {
		c.WriteString("module(load=\"imtcp\" StreamDriver.Name=\"gtls\" StreamDriver.Mode=\"1\" StreamDriver.AuthMode=\"anon\")\n")
	}
	if p.TCP != 0 {
		fmt.Fprintf(&c, "input(type=\"imtcp\" address=%q port=\"%d\" StreamDriver.Mode=\"0\")\n", ip, p.TCP)
	}
	if p.TLS != 0 {
		fmt.Fprintf(&c, "input(type=\"imtcp\" address=%q port=\"%d\")\n", ip, p.TLS)
	}
	c.WriteString(`template(name="plinth" type="string" string="%protocol-version% %app-name% %procid% %msgid% %hostname% %syslogseverity-text% | %msg%\n")` + "\n")
	fmt.Fprintf(&c, "*.* action(type=\"omfile\" file=%q template=\"plinth\")\n", s.out)
	conf := filepath.Join(dir, "rsyslog.conf")
	if err := os.WriteFile(conf, []byte(c.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	start(t, dir, "rsyslogd", exec.Command(bin, "-n", "-f", conf, "-i", filepath.Join(dir, "rsyslogd.pid")))
	// Listening once its ports take connections (UDP: once the pid file
	// is there, written after the inputs are set up).
	deadline := time.Now().Add(15 * time.Second)
	for _, port := range []int{p.TCP, p.TLS} {
		for port != 0 {
			c, err := net.DialTimeout("tcp", net.JoinHostPort(ip, strconv.Itoa(port)), time.Second)
			if err == nil {
				c.Close()
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("rsyslogd does not listen on %d: %v", port, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "rsyslogd.pid")); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("rsyslogd wrote no pid file")
		}
		time.Sleep(50 * time.Millisecond)
	}
	return s
}

// Lines are the messages received so far.
func (s *Syslog) Lines() []string {
	b, _ := os.ReadFile(s.out)
	var out []string
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}

// Wait waits up to d for a message line containing every one of parts.
func (s *Syslog) Wait(d time.Duration, parts ...string) (string, error) {
	deadline := time.Now().Add(d)
	for {
	lines:
		for _, l := range s.Lines() {
			for _, p := range parts {
				if !strings.Contains(l, p) {
					continue lines
				}
			}
			return l, nil
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("no message with %q within %s; received %d:\n%s", parts, d, len(s.Lines()), strings.Join(s.Lines(), "\n"))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitLog waits for a line of a server's output.
func waitLog(t testing.TB, path, want string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		b, _ := os.ReadFile(path)
		if strings.Contains(string(b), want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no %q within 15 s:\n%s", path, want, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ServerCert makes a CA and a server certificate signed by it for ip (an
// RSA key, which every TLS library takes): PEM each.
func ServerCert(t testing.TB, ip string) (caPEM, certPEM, keyPEM []byte) {
	t.Helper()
	caKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Plinth test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: ip},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IPAddresses: []net.IP{net.ParseIP(ip)},
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caTmpl, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM = pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	return caPEM, certPEM, keyPEM
}

package pxe

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/server4"
	"pack.ag/tftp"

	"github.com/plinth/plinth/installer"
)

// Config says what Serve serves and where.
type Config struct {
	// Dir is the bundle (see the package comment).
	Dir string
	// Answers holds the per-host answer files; empty means Dir/answers.
	Answers string
	// Iface is the interface PXE clients are on; proxy DHCP listens there.
	Iface string
	// ServerIP is the address clients reach this server at; empty means
	// Iface's first IPv4 address.
	ServerIP netip.Addr
	// HTTPAddr is the HTTP listen address; empty means ":8080".
	HTTPAddr string
	// TFTPAddr is the TFTP listen address; empty means ":69".
	TFTPAddr string
	// Cmdline is added to every host's kernel command line.
	Cmdline []string
	// Install adds plinth.answer=URL, so hosts run the unattended
	// installer with their answer file; without it they boot stateless:
	// plinth.config=URL, and the host (having no STATE partition) fetches
	// its answer file from this server at every boot and applies it.
	Install bool
	// Logf receives one line per request served; nil discards.
	Logf func(format string, args ...any)
}

func (c *Config) answers() string {
	if c.Answers != "" {
		return c.Answers
	}
	return filepath.Join(c.Dir, AnswersDir)
}

// Server is a running PXE server.
type Server struct {
	cfg       Config
	scriptURL string // http://IP:PORT/boot.ipxe
	baseURL   string
}

// NewServer checks cfg and resolves the server's address.
func NewServer(cfg Config) (*Server, error) {
	for _, f := range []string{KernelFile, InitrdFile} {
		if _, err := os.Stat(filepath.Join(cfg.Dir, f)); err != nil {
			return nil, fmt.Errorf("pxe: bundle %s is incomplete: %w (run make pxe)", cfg.Dir, err)
		}
	}
	if cfg.HTTPAddr == "" {
		cfg.HTTPAddr = ":8080"
	}
	if cfg.TFTPAddr == "" {
		cfg.TFTPAddr = ":69"
	}
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	if !cfg.ServerIP.IsValid() {
		if cfg.Iface == "" {
			return nil, errors.New("pxe: no interface (-iface) and no server address")
		}
		ip, err := interfaceIPv4(cfg.Iface)
		if err != nil {
			return nil, fmt.Errorf("pxe: %w", err)
		}
		cfg.ServerIP = ip
	}
	_, port, err := net.SplitHostPort(cfg.HTTPAddr)
	if err != nil {
		return nil, fmt.Errorf("pxe: HTTP address %q: %w", cfg.HTTPAddr, err)
	}
	base := "http://" + net.JoinHostPort(cfg.ServerIP.String(), port)
	return &Server{cfg: cfg, baseURL: base, scriptURL: base + "/" + ScriptFile}, nil
}

// ScriptURL is the URL iPXE clients are told to boot.
func (s *Server) ScriptURL() string { return s.scriptURL }

// Serve runs proxy DHCP (ports 67 and 4011 on the interface), TFTP and HTTP
// until ctx ends or one of them fails.
func (s *Server) Serve(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 4)
	var closers []io.Closer
	defer func() {
		for _, c := range closers {
			c.Close()
		}
	}()
	if s.cfg.Iface != "" {
		for _, port := range []int{dhcpv4.ServerPort, PXEPort} {
			srv, err := server4.NewServer(s.cfg.Iface, &net.UDPAddr{Port: port}, s.handleDHCP)
			if err != nil {
				return fmt.Errorf("pxe: proxy DHCP on %s port %d: %w", s.cfg.Iface, port, err)
			}
			closers = append(closers, srv)
			go func() { errc <- fmt.Errorf("pxe: proxy DHCP port %d: %w", port, srv.Serve()) }()
		}
	}
	ts, err := tftp.NewServer(s.cfg.TFTPAddr, tftp.ServerSinglePort(false))
	if err != nil {
		return fmt.Errorf("pxe: TFTP: %w", err)
	}
	ts.ReadHandler(tftp.ReadHandlerFunc(s.serveTFTP))
	tconn, err := listenUDP(s.cfg.TFTPAddr)
	if err != nil {
		return fmt.Errorf("pxe: TFTP on %s: %w", s.cfg.TFTPAddr, err)
	}
	closers = append(closers, ts)
	go func() { errc <- fmt.Errorf("pxe: TFTP: %w", ts.Serve(tconn)) }()

	hl, err := net.Listen("tcp", s.cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("pxe: HTTP: %w", err)
	}
	hs := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second}
	closers = append(closers, hs)
	go func() { errc <- fmt.Errorf("pxe: HTTP: %w", hs.Serve(hl)) }()

	s.cfg.Logf("pxe: serving %s on %s (proxy DHCP on %s, TFTP %s, script %s)", s.cfg.Dir, s.cfg.ServerIP, s.cfg.Iface, s.cfg.TFTPAddr, s.scriptURL)
	select {
	case <-ctx.Done():
		return nil
	case err := <-errc:
		return err
	}
}

func listenUDP(addr string) (*net.UDPConn, error) {
	a, err := net.ResolveUDPAddr("udp4", addr)
	if err != nil {
		return nil, err
	}
	return net.ListenUDP("udp4", a)
}

func (s *Server) handleDHCP(conn net.PacketConn, peer net.Addr, req *dhcpv4.DHCPv4) {
	// On port 67 only DISCOVERs are ours: the REQUEST that follows goes to
	// the site's DHCP server, and PXE clients ask us again on port 4011.
	port67 := conn.LocalAddr().(*net.UDPAddr).Port == dhcpv4.ServerPort
	if port67 && req.MessageType() != dhcpv4.MessageTypeDiscover {
		return
	}
	resp, err := ProxyReply(req, net.IP(s.cfg.ServerIP.AsSlice()), s.scriptURL)
	if err != nil {
		s.cfg.Logf("pxe: DHCP from %s: %v", req.ClientHWAddr, err)
		return
	}
	if resp == nil {
		return
	}
	// A client without an address (port 67) hears a broadcast; one that
	// asks on port 4011 has its address and gets the answer back.
	to := peer
	if up, ok := peer.(*net.UDPAddr); !ok || up.IP.IsUnspecified() || port67 {
		to = &net.UDPAddr{IP: net.IPv4bcast, Port: dhcpv4.ClientPort}
	}
	if _, err := conn.WriteTo(resp.ToBytes(), to); err != nil {
		s.cfg.Logf("pxe: DHCP reply to %s: %v", req.ClientHWAddr, err)
		return
	}
	s.cfg.Logf("pxe: %s to %s (port %d): boot file %s", resp.MessageType(), req.ClientHWAddr, conn.LocalAddr().(*net.UDPAddr).Port, resp.BootFileName)
}

// serveTFTP sends one of the iPXE binaries (the firmware's first stage):
// TFTP serves nothing else.
func (s *Server) serveTFTP(w tftp.ReadRequest) {
	name := strings.TrimPrefix(w.Name(), "/")
	if !slices.Contains(IPXEFiles, name) {
		w.WriteError(tftp.ErrCodeFileNotFound, "no such file")
		return
	}
	f, err := os.Open(filepath.Join(s.cfg.Dir, name))
	if err != nil {
		w.WriteError(tftp.ErrCodeFileNotFound, "no such file")
		return
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil {
		w.WriteSize(fi.Size())
	}
	n, err := io.Copy(w, f)
	s.cfg.Logf("pxe: TFTP %s to %s: %d bytes%s", name, w.Addr(), n, errSuffix(err))
}

func errSuffix(err error) string {
	if err == nil {
		return ""
	}
	return ", " + err.Error()
}

// answerName is the name of a host's answer file as LookupAnswer looks
// for it: a MAC (dashes or colons), an SMBIOS UUID, or default.txt.
var answerName = regexp.MustCompile(`^(([0-9a-f]{2}-){5}[0-9a-f]{2}|([0-9a-f]{2}:){5}[0-9a-f]{2}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|default)\.txt$`)

// Handler is the HTTP side, and it serves what it means to and nothing
// else: /boot.ipxe (the chain script, or with ?mac= and/or ?uuid= the
// host's own), the bundle's kernel, initramfs and iPXE binaries by name,
// and /answers/NAME for a host's answer file (NAME as LookupAnswer names
// it, a regular file inside the answers directory). No directory is ever
// listed and no other file of the bundle's directory is served.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /"+ScriptFile, s.serveScript)
	for _, name := range append([]string{KernelFile, InitrdFile}, IPXEFiles...) {
		mux.HandleFunc("GET /"+name, func(w http.ResponseWriter, r *http.Request) {
			s.cfg.Logf("pxe: HTTP %s from %s", r.URL.Path, r.RemoteAddr)
			s.serveFile(w, r, s.cfg.Dir, name)
		})
	}
	mux.HandleFunc("GET /"+AnswersDir+"/{name}", func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		if !answerName.MatchString(name) {
			http.NotFound(w, r)
			return
		}
		s.cfg.Logf("pxe: HTTP %s from %s", r.URL.Path, r.RemoteAddr)
		s.serveFile(w, r, s.cfg.answers(), name)
	})
	mux.HandleFunc("/", http.NotFound)
	return mux
}

// serveFile sends the regular file name inside dir, never following a
// link out of it (os.OpenInRoot).
func (s *Server) serveFile(w http.ResponseWriter, r *http.Request, dir, name string) {
	f, err := os.OpenInRoot(dir, name)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	http.ServeContent(w, r, "", fi.ModTime(), f)
}

func (s *Server) serveScript(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	q := r.URL.Query()
	mac, uuid := q.Get("mac"), q.Get("uuid")
	if mac == "" && uuid == "" {
		s.cfg.Logf("pxe: chain script to %s", r.RemoteAddr)
		io.WriteString(w, ChainScript(s.scriptURL))
		return
	}
	body, err := s.HostScript(mac, uuid)
	if err != nil {
		s.cfg.Logf("pxe: script for mac %s uuid %s: %v", mac, uuid, err)
		// iPXE shows the script's echo on the console: say why.
		fmt.Fprintf(w, "#!ipxe\necho Plinth PXE: %s\nshell\n", strings.ReplaceAll(err.Error(), "\n", " "))
		return
	}
	s.cfg.Logf("pxe: script for mac %s uuid %s", mac, uuid)
	io.WriteString(w, body)
}

// HostScript renders the iPXE script of the host with this MAC or UUID.
func (s *Server) HostScript(mac, uuid string) (string, error) {
	f, err := LookupAnswer(s.cfg.answers(), mac, uuid)
	if err != nil {
		return "", err
	}
	// The settings the command line can carry bring the network up; the
	// answer file's URL is the host's configuration, for an install or,
	// stateless, at every boot.
	cmd := HostCmdline(f.Answer)
	answerURL := s.baseURL + "/" + AnswersDir + "/" + f.Name
	mode := "stateless"
	if s.cfg.Install {
		cmd = append(cmd, installer.CmdlineKey+"="+answerURL)
		mode = "install"
	} else {
		cmd = append(cmd, installer.ConfigKey+"="+answerURL)
	}
	// The answer file comes over plain http: the host uses it only as its
	// command line pins it.
	cmd = append(cmd, installer.AnswerSHA256Key+"="+f.SHA256)
	cmd = append(cmd, s.cfg.Cmdline...)
	return Script{
		BaseURL: s.baseURL,
		Cmdline: cmd,
		Comment: []string{
			"Plinth network boot for mac " + mac + " uuid " + uuid,
			"answer file " + AnswersDir + "/" + f.Name + " (matched by " + f.By + "), " + mode,
		},
	}.Render(), nil
}

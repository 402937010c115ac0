package installer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestFindAnswerSources(t *testing.T) {
	ctx := context.Background()
	sys := t.TempDir()
	none := AnswerEnv{Sys: sys, Cmdline: map[string]string{}}
	if _, err := FindAnswer(ctx, none); !errors.Is(err, ErrNoAnswer) {
		t.Fatalf("nothing given: %v, want ErrNoAnswer", err)
	}

	// SMBIOS OEM string (type 11): a 5-byte formatted area, then strings.
	oem := filepath.Join(sys, "firmware", "dmi", "entries", "11-0")
	os.MkdirAll(oem, 0o755)
	raw := append([]byte{11, 5, 0, 0, 2}, []byte("other\x00"+OEMStringPrefix+base64.StdEncoding.EncodeToString([]byte("hostname = oem\n"))+"\x00\x00")...)
	os.WriteFile(filepath.Join(oem, "raw"), raw, 0o444)
	got, err := FindAnswer(ctx, none)
	if err != nil || string(got.Data) != "hostname = oem\n" || got.Source != "SMBIOS OEM string" {
		t.Fatalf("OEM string: %+v %v", got, err)
	}

	// fw_cfg wins over the OEM string; the module is asked for when the
	// directory is missing.
	loaded := ""
	env := none
	env.LoadModule = func(name string) error {
		loaded = name
		fw := filepath.Join(sys, "firmware", "qemu_fw_cfg", "by_name", FWCfgName)
		os.MkdirAll(fw, 0o755)
		return os.WriteFile(filepath.Join(fw, "raw"), []byte("hostname = fwcfg\n"), 0o444)
	}
	got, err = FindAnswer(ctx, env)
	if err != nil || string(got.Data) != "hostname = fwcfg\n" || loaded != "qemu_fw_cfg" {
		t.Fatalf("fw_cfg: %+v %v (loaded %q)", got, err, loaded)
	}

	// The kernel command line wins over everything.
	f := filepath.Join(t.TempDir(), "a.cfg")
	os.WriteFile(f, []byte("hostname = url\n"), 0o644)
	env.Cmdline = map[string]string{CmdlineKey: "file://" + f}
	got, err = FindAnswer(ctx, env)
	if err != nil || string(got.Data) != "hostname = url\n" {
		t.Fatalf("plinth.answer: %+v %v", got, err)
	}
	env.Cmdline = map[string]string{CmdlineKey: "ftp://x/y"}
	if _, err := FindAnswer(ctx, env); err == nil {
		t.Fatal("ftp:// accepted")
	}
}

// TestNetworkAnswerNeedsAPin: an answer file from the network is used only
// as the kernel command line pins it: over http with its sha256, over
// https with its sha256 or the server certificate's fingerprint; otherwise
// (or when it does not match) it is refused, saying why, and an unpinned
// http URL is not even fetched.
func TestNetworkAnswerNeedsAPin(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	body := []byte("hostname = pinned\nroot_password_hash = $2a$10$abcdefghijklmnopqrstuv\n")
	sum := sha256.Sum256(body)
	var hits atomic.Int32
	serve := func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if r.URL.Path == "/elsewhere" {
			http.Redirect(w, r, "http://127.0.0.1:1/answer.cfg", http.StatusFound)
			return
		}
		w.Write(body)
	}
	plain := httptest.NewServer(http.HandlerFunc(serve))
	defer plain.Close()
	tlsSrv := httptest.NewTLSServer(http.HandlerFunc(serve))
	defer tlsSrv.Close()
	fp := sha256.Sum256(tlsSrv.Certificate().Raw)
	other := sha256.Sum256([]byte("another file"))
	hexOf := func(b [32]byte) string { return hex.EncodeToString(b[:]) }
	var parts []string
	for _, b := range fp {
		parts = append(parts, fmt.Sprintf("%02X", b))
	}
	colons := strings.Join(parts, ":") // as the DCUI and clients show fingerprints
	for _, c := range []struct {
		name    string
		cmdline map[string]string
		want    string // "" accepted, else part of the error
	}{
		{"http, no pin", map[string]string{CmdlineKey: plain.URL + "/a.cfg"}, AnswerSHA256Key},
		{"http, sha256", map[string]string{CmdlineKey: plain.URL + "/a.cfg", AnswerSHA256Key: hexOf(sum)}, ""},
		{"http, other sha256", map[string]string{CmdlineKey: plain.URL + "/a.cfg", AnswerSHA256Key: hexOf(other)}, "sha256 is"},
		{"http, fingerprint only", map[string]string{CmdlineKey: plain.URL + "/a.cfg", AnswerFingerprintKey: hexOf(fp)}, AnswerSHA256Key},
		{"https, no pin", map[string]string{CmdlineKey: tlsSrv.URL + "/a.cfg"}, AnswerFingerprintKey},
		{"https, fingerprint", map[string]string{CmdlineKey: tlsSrv.URL + "/a.cfg", AnswerFingerprintKey: colons}, ""},
		{"https, other fingerprint", map[string]string{CmdlineKey: tlsSrv.URL + "/a.cfg", AnswerFingerprintKey: hexOf(other)}, "certificate has SHA-256"},
		{"https, sha256", map[string]string{CmdlineKey: tlsSrv.URL + "/a.cfg", AnswerSHA256Key: hexOf(sum)}, ""},
		{"https, fingerprint, redirected away", map[string]string{CmdlineKey: tlsSrv.URL + "/elsewhere", AnswerFingerprintKey: hexOf(fp)}, "redirect"},
		{"malformed sha256", map[string]string{CmdlineKey: plain.URL + "/a.cfg", AnswerSHA256Key: "abc"}, "not a SHA-256"},
	} {
		before := hits.Load()
		got, err := FindAnswer(ctx, AnswerEnv{Sys: t.TempDir(), Cmdline: c.cmdline})
		switch {
		case c.want == "" && (err != nil || !bytes.Equal(got.Data, body)):
			t.Errorf("%s: %v, want the file", c.name, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: %v, want a refusal naming %q", c.name, err, c.want)
		}
		if c.want == AnswerSHA256Key && hits.Load() != before {
			t.Errorf("%s: the unpinned URL was fetched", c.name)
		}
	}
}

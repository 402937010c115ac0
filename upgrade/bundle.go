// Package upgrade replaces the running Plinth with a newer one, safely.
//
// An upgrade image (a "bundle", build/plinth-VERSION.upgrade) is a tar
// stream: manifest.json first (the version, the monotonic release number
// and each file's size and sha256), then manifest.sig (the ed25519 signature of manifest.json's
// bytes, made at build time with the release key), then the kernel and the
// initramfs. Open reads it as it streams in: the signature is checked
// against the public key built into this binary before a byte of the
// payload is read, each file is hashed as it is staged in a scratch
// directory, and nothing reaches the boot disk unless everything matched.
// An image of an older release than the running system's is a downgrade
// (an old, validly signed image may carry fixed holes): refused unless the
// request asks for it by name (CheckRelease).
//
// The boot disk's ESP holds two banks, A and B (see ESP). An upgrade is
// written to the bank not running and booted on trial: on UEFI through
// systemd-boot's boot counting (a loader entry named plinth-GEN-b+3.conf
// loses a try at each boot and, with none left, sorts behind the old
// entry), on BIOS through syslinux's boot-once command. The new system
// marks itself good (Bless) only once its API answers and vmkernel has its
// VMs; a trial that never gets there falls back to the old bank by itself,
// and the old system, finding the pending upgrade in STATE, records that it
// was rolled back and why (Reconcile).
package upgrade

import (
	"archive/tar"
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"time"
)

// PublicKey is the base64 ed25519 public key upgrade bundles must be
// signed with. The image build sets it with
// -ldflags "-X github.com/plinth/plinth/upgrade.PublicKey=..."; when it is
// empty every bundle is refused.
var PublicKey = ""

// Sentinels; callers test with errors.Is.
var (
	ErrSignature = errors.New("upgrade image signature is not valid")
	ErrChecksum  = errors.New("upgrade image checksum does not match")
	ErrFormat    = errors.New("not a Plinth upgrade image")
	ErrNoKey     = errors.New("this Plinth has no upgrade signing key built in")
)

// Bundle member names, in the order they appear.
const (
	ManifestName  = "manifest.json"
	SignatureName = "manifest.sig"
	KernelName    = "vmlinuz"
	InitrdName    = "initrd"
	// FormatVersion is the manifest's format.
	FormatVersion = 1
	maxManifest   = 64 << 10
	// MaxFileSize bounds a bundle member (a bank is a 256 MiB ESP's half).
	MaxFileSize = 100 << 20
)

// Manifest describes a bundle.
type Manifest struct {
	Format  int    `json:"format"`
	Product string `json:"product"` // "plinth"
	Version string `json:"version"`
	// Release is the build's monotonic release number (api.Release): an
	// image of a lower one than the running system's is a downgrade,
	// refused unless asked for (CheckRelease). Images made before it
	// existed have none: 0, older than every release.
	Release uint64    `json:"release,omitempty"`
	Created time.Time `json:"created"`
	Files   []File    `json:"files"`
}

// ErrDowngrade: the image is an older release than the running system's.
var ErrDowngrade = errors.New("the upgrade image is an older release than the running system")

// CheckRelease refuses an image of release image on a system running
// release running when it is older, unless allowDowngrade.
func CheckRelease(running, image uint64, allowDowngrade bool) error {
	if image < running && !allowDowngrade {
		return fmt.Errorf("%w: release %d is older than the running release %d", ErrDowngrade, image, running)
	}
	return nil
}

// ParseRelease reads a release number as the build sets it (api.Release):
// a decimal number, 0 when empty.
func ParseRelease(s string) (uint64, error) {
	if s == "" {
		return 0, nil
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("release %q is not a number", s)
	}
	return n, nil
}

// File is one member of the payload.
type File struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

var versionRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+~-]{0,63}$`)

// check refuses a manifest that is not one of ours.
func (m Manifest) check() error {
	if m.Format != FormatVersion || m.Product != "plinth" {
		return fmt.Errorf("%w: manifest format %d product %q, want %d %q", ErrFormat, m.Format, m.Product, FormatVersion, "plinth")
	}
	if !versionRE.MatchString(m.Version) {
		return fmt.Errorf("%w: version %q is not a version", ErrFormat, m.Version)
	}
	if len(m.Files) != 2 || m.Files[0].Name != KernelName || m.Files[1].Name != InitrdName {
		return fmt.Errorf("%w: the manifest must list %s and %s", ErrFormat, KernelName, InitrdName)
	}
	for _, f := range m.Files {
		if f.Size <= 0 || f.Size > MaxFileSize {
			return fmt.Errorf("%w: %s has size %d", ErrFormat, f.Name, f.Size)
		}
		if b, err := hex.DecodeString(f.SHA256); err != nil || len(b) != sha256.Size {
			return fmt.Errorf("%w: %s has no sha256", ErrFormat, f.Name)
		}
	}
	return nil
}

// ParsePublicKey decodes a base64 ed25519 public key (PublicKey's form).
func ParsePublicKey(s string) (ed25519.PublicKey, error) {
	if s == "" {
		return nil, ErrNoKey
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(b) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("upgrade public key %q: not a base64 ed25519 key", s)
	}
	return ed25519.PublicKey(b), nil
}

// Staged is a verified bundle, its files in a scratch directory.
type Staged struct {
	Manifest Manifest
	Dir      string // holds KernelName and InitrdName
}

// Open reads a bundle from r, checking its signature with pub before
// reading the payload and each file's size and sha256 while writing it into
// dir (which must exist and be empty; it is left holding the files only on
// success). progress, when not nil, is told the payload bytes read so far
// of the total.
func Open(r io.Reader, pub ed25519.PublicKey, dir string, progress func(done, total int64)) (*Staged, error) {
	return OpenChecked(r, pub, dir, progress, nil)
}

// OpenChecked is Open with accept, when not nil, asked about the signed
// manifest before a byte of the payload is read: its error (e.g.
// CheckRelease's) refuses the image at once.
func OpenChecked(r io.Reader, pub ed25519.PublicKey, dir string, progress func(done, total int64), accept func(Manifest) error) (*Staged, error) {
	if len(pub) != ed25519.PublicKeySize {
		return nil, ErrNoKey
	}
	st, err := open(r, pub, dir, progress, accept)
	if err != nil {
		for _, n := range []string{KernelName, InitrdName} {
			os.Remove(filepath.Join(dir, n))
		}
		return nil, err
	}
	return st, nil
}

func open(r io.Reader, pub ed25519.PublicKey, dir string, progress func(done, total int64), accept func(Manifest) error) (*Staged, error) {
	tr := tar.NewReader(r)
	next := func(want string, limit int64) (*tar.Header, error) {
		h, err := tr.Next()
		if err != nil {
			return nil, fmt.Errorf("%w: reading %s: %v", ErrFormat, want, err)
		}
		if h.Name != want || h.Typeflag != tar.TypeReg {
			return nil, fmt.Errorf("%w: found %q where %s belongs", ErrFormat, h.Name, want)
		}
		if h.Size > limit {
			return nil, fmt.Errorf("%w: %s is %d bytes, more than %d", ErrFormat, want, h.Size, limit)
		}
		return h, nil
	}
	if _, err := next(ManifestName, maxManifest); err != nil {
		return nil, err
	}
	mb, err := io.ReadAll(tr)
	if err != nil {
		return nil, fmt.Errorf("%w: reading %s: %v", ErrFormat, ManifestName, err)
	}
	if _, err := next(SignatureName, ed25519.SignatureSize); err != nil {
		return nil, err
	}
	sig, err := io.ReadAll(tr)
	if err != nil {
		return nil, fmt.Errorf("%w: reading %s: %v", ErrFormat, SignatureName, err)
	}
	if !ed25519.Verify(pub, mb, sig) {
		return nil, fmt.Errorf("%w: %s is not signed by this Plinth's release key", ErrSignature, ManifestName)
	}
	var m Manifest
	if err := json.Unmarshal(mb, &m); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrFormat, ManifestName, err)
	}
	if err := m.check(); err != nil {
		return nil, err
	}
	if accept != nil {
		if err := accept(m); err != nil {
			return nil, err
		}
	}
	var total, done int64
	for _, f := range m.Files {
		total += f.Size
	}
	for _, f := range m.Files {
		h, err := next(f.Name, f.Size)
		if err != nil {
			return nil, err
		}
		if h.Size != f.Size {
			return nil, fmt.Errorf("%w: %s is %d bytes, the manifest says %d", ErrChecksum, f.Name, h.Size, f.Size)
		}
		out, err := os.OpenFile(filepath.Join(dir, f.Name), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err != nil {
			return nil, fmt.Errorf("stage %s: %w", f.Name, err)
		}
		sum := sha256.New()
		n, err := io.Copy(io.MultiWriter(out, sum, progressWriter(func(n int64) {
			done += n
			if progress != nil {
				progress(done, total)
			}
		})), tr)
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("%w: %s is cut off after %d of %d bytes", ErrFormat, f.Name, n, f.Size)
		}
		if err != nil {
			return nil, fmt.Errorf("stage %s after %d bytes: %w", f.Name, n, err)
		}
		if got := hex.EncodeToString(sum.Sum(nil)); got != f.SHA256 {
			return nil, fmt.Errorf("%w: %s has sha256 %s, the signed manifest says %s", ErrChecksum, f.Name, got, f.SHA256)
		}
	}
	return &Staged{Manifest: m, Dir: dir}, nil
}

type progressWriter func(n int64)

func (p progressWriter) Write(b []byte) (int, error) {
	p(int64(len(b)))
	return len(b), nil
}

// Write makes a bundle of version and release (more than 0) from the
// kernel and initramfs files, signed with key, onto w. Build time:
// upgrade/cmd/plinth-bundle.
func Write(w io.Writer, key ed25519.PrivateKey, version string, release uint64, kernel, initrd string, created time.Time) error {
	if release == 0 {
		return errors.New("an upgrade image needs a release number (more than 0)")
	}
	m := Manifest{Format: FormatVersion, Product: "plinth", Version: version, Release: release, Created: created.UTC()}
	paths := []string{kernel, initrd}
	for i, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		sum := sha256.New()
		n, err := io.Copy(sum, f)
		f.Close()
		if err != nil {
			return fmt.Errorf("read %s: %w", p, err)
		}
		m.Files = append(m.Files, File{Name: []string{KernelName, InitrdName}[i], Size: n, SHA256: hex.EncodeToString(sum.Sum(nil))})
	}
	if err := m.check(); err != nil {
		return err
	}
	mb, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	tw := tar.NewWriter(w)
	add := func(name string, size int64, r io.Reader) error {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: size, ModTime: m.Created, Typeflag: tar.TypeReg, Format: tar.FormatPAX}); err != nil {
			return err
		}
		_, err := io.Copy(tw, r)
		return err
	}
	if err := add(ManifestName, int64(len(mb)), bytes.NewReader(mb)); err != nil {
		return err
	}
	sig := ed25519.Sign(key, mb)
	if err := add(SignatureName, int64(len(sig)), bytes.NewReader(sig)); err != nil {
		return err
	}
	for i, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		err = add(m.Files[i].Name, m.Files[i].Size, f)
		f.Close()
		if err != nil {
			return fmt.Errorf("write %s: %w", m.Files[i].Name, err)
		}
	}
	return tw.Close()
}

// GenerateKey writes a new ed25519 private key (PKCS #8 PEM, mode 0600) to
// path and returns it.
func GenerateKey(path string) (ed25519.PrivateKey, error) {
	_, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	b := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return nil, err
	}
	return priv, nil
}

// LoadKey reads a private key written by GenerateKey (or
// `openssl genpkey -algorithm ed25519`).
func LoadKey(path string) (ed25519.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("%s: no PEM PRIVATE KEY block", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%s: not an ed25519 key", path)
	}
	return priv, nil
}

// EncodePublicKey is pub in PublicKey's form.
func EncodePublicKey(pub ed25519.PublicKey) string {
	return base64.StdEncoding.EncodeToString(pub)
}

package upgrade

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// countingReader counts what is read of a bundle.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n += int64(n)
	return n, err
}

// TestOlderReleaseRefusedBeforeThePayload: an image of an older release
// than the running one is refused as a downgrade once its signed manifest
// is read, before its payload (nothing staged, little read), unless a
// downgrade is allowed; the same and newer releases pass.
func TestOlderReleaseRefusedBeforeThePayload(t *testing.T) {
	pub, priv := newKey(t)
	old := makeRelease(t, priv, "1.0", 10)
	for _, c := range []struct {
		running uint64
		allow   bool
		refused bool
	}{
		{11, false, true},
		{11, true, false},
		{10, false, false},
		{9, false, false},
	} {
		dir := t.TempDir()
		cr := &countingReader{r: bytes.NewReader(old)}
		st, err := OpenChecked(cr, pub, dir, nil, func(m Manifest) error { return CheckRelease(c.running, m.Release, c.allow) })
		if c.refused {
			if !errors.Is(err, ErrDowngrade) || st != nil {
				t.Errorf("release 10 on 11: %v, want ErrDowngrade", err)
			}
			if cr.n > 8<<10 {
				t.Errorf("read %d bytes of a refused image, want only its manifest", cr.n)
			}
			if ents, _ := os.ReadDir(dir); len(ents) != 0 {
				t.Errorf("a refused image left %v", ents)
			}
			continue
		}
		if err != nil || st.Manifest.Release != 10 {
			t.Errorf("release 10 on %d (allow %v): %+v, %v", c.running, c.allow, st, err)
		}
	}
	// An image from before release numbers (none in its manifest) is the
	// oldest of all.
	if err := CheckRelease(1, 0, false); !errors.Is(err, ErrDowngrade) {
		t.Errorf("an image without a release on release 1: %v", err)
	}
	k, i := bundleFiles(t, "k", "i")
	if err := Write(io.Discard, priv, "1.0", 0, k, i, testTime); err == nil {
		t.Error("an image without a release number was written")
	}
	if _, err := ParseRelease("12a"); err == nil {
		t.Error("ParseRelease accepted 12a")
	}
	if n, err := ParseRelease(""); err != nil || n != 0 {
		t.Errorf("ParseRelease(\"\") = %d, %v", n, err)
	}
}

// FuzzOpen feeds the upgrade image reader what an API client could send:
// it never panics, stages nothing unless the image is whole and signed,
// and stages exactly the manifest's files when it is.
func FuzzOpen(f *testing.F) {
	pub, priv := newKey(f)
	good := makeRelease(f, priv, "2.0", 3)
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add(good[:1024])
	bad := bytes.Clone(good)
	bad[len(bad)-3000] ^= 1
	f.Add(bad)
	f.Add([]byte("not a tar"))
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		st, err := Open(bytes.NewReader(data), pub, dir, nil)
		ents, _ := os.ReadDir(dir)
		if err != nil {
			if len(ents) != 0 {
				t.Fatalf("a refused image (%v) left %d files", err, len(ents))
			}
			return
		}
		if len(ents) != 2 || st.Manifest.Release == 0 {
			t.Fatalf("an accepted image staged %d files, release %d", len(ents), st.Manifest.Release)
		}
		for _, fl := range st.Manifest.Files {
			fi, err := os.Stat(filepath.Join(dir, fl.Name))
			if err != nil || fi.Size() != fl.Size {
				t.Fatalf("%s: %v, size %v, want %d", fl.Name, err, fi, fl.Size)
			}
		}
	})
}

// Package bundle builds the web client: it installs the pinned npm
// packages of web/package-lock.json (npm ci, with the download cache under
// build/, no install scripts), bundles web/src with esbuild's Go API, and
// writes every output gzipped into web/dist, which package web embeds into
// mgmtd. The same sources and lock file give the same bytes: esbuild's
// output is deterministic, names carry a content hash, and the gzip headers
// carry no time or name.
package bundle

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	"github.com/evanw/esbuild/pkg/api"
)

// MaxCompressedBytes is the budget of the whole client, gzipped.
const MaxCompressedBytes = 500 << 10

// Options says where things are.
type Options struct {
	// Root is the repository's root (web/ and build/ below it).
	Root string
	// Npm is the npm command ("npm" when empty).
	Npm string
	// Log receives progress lines (nil: none).
	Log func(format string, args ...any)
}

// File is one built file as it is embedded.
type File struct {
	Name    string // e.g. app-HASH.js
	Raw     int    // bytes before compression
	Gzipped int    // bytes embedded
}

// Build installs the dependencies, bundles, and writes web/dist. It fails
// when the client outgrows MaxCompressedBytes.
func Build(o Options) ([]File, error) {
	if o.Npm == "" {
		o.Npm = "npm"
	}
	if o.Log == nil {
		o.Log = func(string, ...any) {}
	}
	root, err := filepath.Abs(o.Root)
	if err != nil {
		return nil, fmt.Errorf("bundle: %w", err)
	}
	o.Root = root
	modules, err := install(o)
	if err != nil {
		return nil, err
	}
	out, err := bundle(o.Root, modules)
	if err != nil {
		return nil, err
	}
	files, err := write(filepath.Join(o.Root, "web", "dist"), out)
	if err != nil {
		return nil, err
	}
	total := 0
	for _, f := range files {
		total += f.Gzipped
	}
	if total > MaxCompressedBytes {
		return files, fmt.Errorf("bundle: the client is %d bytes gzipped, over its budget of %d", total, MaxCompressedBytes)
	}
	return files, nil
}

// install runs npm ci in build/web on a copy of web/package.json and its
// lock file, unless the lock file is the one last installed. It answers the
// node_modules directory.
func install(o Options) (string, error) {
	dir := filepath.Join(o.Root, "build", "web")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("bundle: %w", err)
	}
	lock, err := os.ReadFile(filepath.Join(o.Root, "web", "package-lock.json"))
	if err != nil {
		return "", fmt.Errorf("bundle: the lock file: %w", err)
	}
	pkg, err := os.ReadFile(filepath.Join(o.Root, "web", "package.json"))
	if err != nil {
		return "", fmt.Errorf("bundle: %w", err)
	}
	sum := sha256.Sum256(append(append([]byte{}, pkg...), lock...))
	stamp := filepath.Join(dir, "installed.sha256")
	modules := filepath.Join(dir, "node_modules")
	if old, err := os.ReadFile(stamp); err == nil && string(old) == hex.EncodeToString(sum[:]) {
		if _, err := os.Stat(modules); err == nil {
			return modules, nil
		}
	}
	for name, b := range map[string][]byte{"package.json": pkg, "package-lock.json": lock} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return "", fmt.Errorf("bundle: %w", err)
		}
	}
	o.Log("web: npm ci (pinned by web/package-lock.json)")
	cmd := exec.Command(o.Npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--prefer-offline",
		"--cache", filepath.Join(o.Root, "build", "cache", "npm"))
	cmd.Dir = dir
	var outb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &outb, &outb
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("bundle: npm ci in %s: %w\n%s", dir, err, outb.Bytes())
	}
	if err := os.WriteFile(stamp, []byte(hex.EncodeToString(sum[:])), 0o644); err != nil {
		return "", fmt.Errorf("bundle: %w", err)
	}
	return modules, nil
}

// bundle runs esbuild on web/src/main.jsx and answers the files to serve,
// index.html among them, by name.
func bundle(root, modules string) (map[string][]byte, error) {
	src := filepath.Join(root, "web", "src")
	r := api.Build(api.BuildOptions{
		AbsWorkingDir:     src,
		EntryPoints:       []string{filepath.Join(src, "main.jsx")},
		Bundle:            true,
		Format:            api.FormatESModule,
		Target:            api.ES2022,
		MinifyWhitespace:  true,
		MinifyIdentifiers: true,
		MinifySyntax:      true,
		JSX:               api.JSXAutomatic,
		JSXImportSource:   "preact",
		NodePaths:         []string{modules},
		EntryNames:        "app-[hash]",
		ChunkNames:        "chunk-[hash]",
		Splitting:         true, // the consoles and charts load when first shown
		AssetNames:        "[name]-[hash]",
		Outdir:            filepath.Join(root, "build", "web", "out"),
		LegalComments:     api.LegalCommentsExternal,
		Charset:           api.CharsetUTF8,
		Loader:            map[string]api.Loader{".woff2": api.LoaderFile, ".svg": api.LoaderFile},
		Write:             false,
	})
	if len(r.Errors) > 0 {
		msgs := api.FormatMessages(r.Errors, api.FormatMessagesOptions{Kind: api.ErrorMessage})
		return nil, fmt.Errorf("bundle: esbuild: %s", strings.Join(msgs, ""))
	}
	files := map[string][]byte{}
	var js, css string
	for _, f := range r.OutputFiles {
		name := filepath.Base(f.Path)
		files[name] = f.Contents
		switch {
		case strings.HasPrefix(name, "app-") && strings.HasSuffix(name, ".js"):
			js = name
		case strings.HasPrefix(name, "app-") && strings.HasSuffix(name, ".css"):
			css = name
		}
	}
	if js == "" {
		return nil, errors.New("bundle: esbuild wrote no script")
	}
	page, err := os.ReadFile(filepath.Join(src, "index.html"))
	if err != nil {
		return nil, fmt.Errorf("bundle: %w", err)
	}
	head := ""
	if css != "" {
		head = `<link rel="stylesheet" href="/` + css + `">`
	}
	head += `<script type="module" src="/` + js + `"></script>`
	if !bytes.Contains(page, []byte("<!--ASSETS-->")) {
		return nil, errors.New("bundle: web/src/index.html has no <!--ASSETS--> marker")
	}
	files["index.html"] = bytes.Replace(page, []byte("<!--ASSETS-->"), []byte(head), 1)
	return files, nil
}

// write replaces web/dist's built files by the new ones, gzipped.
func write(dist string, files map[string][]byte) ([]File, error) {
	old, err := filepath.Glob(filepath.Join(dist, "*.gz"))
	if err != nil {
		return nil, fmt.Errorf("bundle: %w", err)
	}
	for _, f := range old {
		if err := os.Remove(f); err != nil {
			return nil, fmt.Errorf("bundle: %w", err)
		}
	}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	var out []File
	for _, n := range names {
		var b bytes.Buffer
		zw, err := gzip.NewWriterLevel(&b, gzip.BestCompression)
		if err != nil {
			return nil, fmt.Errorf("bundle: %w", err)
		}
		zw.Write(files[n])
		if err := zw.Close(); err != nil {
			return nil, fmt.Errorf("bundle: gzip %s: %w", n, err)
		}
		if err := os.WriteFile(filepath.Join(dist, n+".gz"), b.Bytes(), 0o644); err != nil {
			return nil, fmt.Errorf("bundle: %w", err)
		}
		out = append(out, File{Name: n, Raw: len(files[n]), Gzipped: b.Len()})
	}
	return out, nil
}

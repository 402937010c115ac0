package board

import (
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// Capture copies into dst/sys and dst/proc exactly the files of root that
// Read looks at, so that FixtureRoot(dst, ...) reads as root did: attributes
// as regular files, sysfs symlinks (class links, driver, iommu_group)
// recreated as the same relative links, the directories they lead to
// created. Unreadable and vanished files are skipped, and so are device
// nodes: a capture holds no disk contents.
func Capture(root Root, dst string) error {
	root.Dev, root.PCIIDs = "", ""
	r := &reader{root: root, touched: map[string]bool{}}
	if _, err := r.inventory(); err != nil {
		return fmt.Errorf("capture: %w", err)
	}
	paths := make([]string, 0, len(r.touched))
	for p := range r.touched {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	trees := []struct{ prefix, src, dst string }{
		{"/sys", root.Sys, filepath.Join(dst, "sys")},
		{"/proc", root.Proc, filepath.Join(dst, "proc")},
	}
	for _, p := range paths {
		for _, t := range trees {
			if p != t.prefix && !strings.HasPrefix(p, t.prefix+"/") {
				continue
			}
			c := copier{src: t.src, dst: t.dst}
			if err := c.ensure(strings.TrimPrefix(p[len(t.prefix):], "/"), 0); err != nil {
				return fmt.Errorf("capture %s: %w", p, err)
			}
		}
	}
	return keepEmptyDirs(dst)
}

// keepEmptyDirs puts a .keep file in every empty directory under dir: git
// tracks no empty directory, and a fixture committed without them has
// dangling driver and iommu_group links in a fresh clone.
func keepEmptyDirs(dir string) error {
	var empty []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		ents, err := os.ReadDir(p)
		if err == nil && len(ents) == 0 {
			empty = append(empty, p)
		}
		return err
	})
	for _, p := range empty {
		if err == nil {
			err = os.WriteFile(filepath.Join(p, ".keep"), nil, 0o644)
		}
	}
	if err != nil {
		return fmt.Errorf("capture: %w", err)
	}
	return nil
}

type copier struct{ src, dst string }

// ensure recreates rel (slash-separated, relative to the tree) in dst,
// following symlinks the way the kernel would and recreating each one.
func (c copier) ensure(rel string, depth int) error {
	if depth > 40 {
		return nil // a link loop; sysfs has none, a bad fixture might
	}
	if err := os.MkdirAll(c.dst, 0o755); err != nil {
		return err
	}
	if rel == "" || rel == "." {
		return nil
	}
	parts := strings.Split(rel, "/")
	cur := ""
	for i, p := range parts {
		next := path.Join(cur, p)
		src, dst := filepath.Join(c.src, next), filepath.Join(c.dst, next)
		fi, err := os.Lstat(src)
		if err != nil {
			return nil // vanished or never there: Read saw the same
		}
		switch {
		case fi.Mode()&os.ModeSymlink != 0:
			target, err := os.Readlink(src)
			if err != nil {
				return nil
			}
			if _, err := os.Lstat(dst); err != nil {
				if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
					return err
				}
				if err := os.Symlink(target, dst); err != nil {
					return err
				}
			}
			resolved := path.Join(path.Dir(next), target)
			if path.IsAbs(target) || resolved == ".." || strings.HasPrefix(resolved, "../") {
				return nil // leads out of the tree
			}
			return c.ensure(path.Join(append([]string{resolved}, parts[i+1:]...)...), depth+1)
		case fi.IsDir():
			if err := os.MkdirAll(dst, 0o755); err != nil {
				return err
			}
			cur = next
		case fi.Mode().IsRegular() && i == len(parts)-1:
			b, err := os.ReadFile(src)
			if err != nil {
				return nil // unreadable (root-only, or EINVAL while a link is down)
			}
			return os.WriteFile(dst, b, 0o644)
		default:
			return nil
		}
	}
	return nil
}

package cli

import (
	"context"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/client"
)

// dsList lists the datastores, or with DS[:PATH] one directory.
func (a *app) dsList(ctx context.Context, args []string) error {
	fs := a.flags("ds ls")
	pos, err := parse(fs, args, "[DS[:PATH]]", 0, 1)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return a.call(ctx, defaultTimeout, func(c *client.Client) error {
			dss, err := c.ListDatastores(ctx)
			if err != nil {
				return err
			}
			if a.json {
				if dss == nil {
					dss = []api.Datastore{}
				}
				return writeJSON(a.out, dss)
			}
			t := newTable(a.out, "NAME", "CAPACITY", "FREE", "USED")
			for _, d := range dss {
				used := "-"
				if d.CapacityBytes > 0 {
					used = fmt.Sprintf("%.0f%%", 100*float64(d.CapacityBytes-d.FreeBytes)/float64(d.CapacityBytes))
				}
				t.row(d.Name, humanBytes(d.CapacityBytes), humanBytes(d.FreeBytes), used)
			}
			return t.flush()
		})
	}
	ds, rel, err := splitDSPath(pos[0], true)
	if err != nil {
		return withCode(ExitUsage, err)
	}
	return a.call(ctx, defaultTimeout, func(c *client.Client) error {
		entries, err := c.BrowseDatastore(ctx, ds, rel)
		if err != nil {
			return err
		}
		if a.json {
			if entries == nil {
				entries = []api.DatastoreEntry{}
			}
			return writeJSON(a.out, entries)
		}
		return printEntries(a.out, entries)
	})
}

func printEntries(w interface{ Write([]byte) (int, error) }, entries []api.DatastoreEntry) error {
	slices.SortFunc(entries, func(x, y api.DatastoreEntry) int {
		// Directories first, then by name.
		if (x.Kind == api.EntryDir) != (y.Kind == api.EntryDir) {
			if x.Kind == api.EntryDir {
				return -1
			}
			return 1
		}
		return strings.Compare(x.Name, y.Name)
	})
	t := newTable(w, "NAME", "KIND", "SIZE", "FORMAT")
	for _, e := range entries {
		name, size := e.Name, humanBytes(e.SizeBytes)
		if e.Kind == api.EntryDir {
			name, size = name+"/", "-"
		}
		t.row(name, e.Kind, size, e.Format)
	}
	return t.flush()
}

// dsUpload streams a local file to DS:PATH (DS:DIR/ or DS: keeps the
// file's name), with a progress bar.
func (a *app) dsUpload(ctx context.Context, args []string) error {
	fs := a.flags("ds upload")
	overwrite := fs.Bool("overwrite", false, "replace an existing file")
	pos, err := parse(fs, args, "FILE DS:PATH", 2, 2)
	if err != nil {
		return err
	}
	local, dest := pos[0], pos[1]
	ds, rel, err := splitDSPath(dest, true)
	if err != nil {
		return withCode(ExitUsage, err)
	}
	if rel == "" || strings.HasSuffix(dest, "/") {
		rel = path.Join(rel, filepath.Base(local))
	}
	f, err := os.Open(local)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return withCode(ExitUsage, fmt.Errorf("%s is not a regular file", local))
	}
	// No timeout: ctx alone bounds an upload of any size.
	return a.call(ctx, 0, func(c *client.Client) error {
		p := a.newProgress("upload "+ds+":"+rel, fi.Size())
		entry, err := c.UploadFile(ctx, ds, rel, &countingReader{r: f, p: p}, fi.Size(), *overwrite)
		p.finish(err == nil)
		if err != nil {
			return err
		}
		if a.json {
			return writeJSON(a.out, entry)
		}
		fmt.Fprintf(a.out, "%s:%s %s\n", ds, entry.Path, humanBytes(entry.SizeBytes))
		return nil
	})
}

func (a *app) dsRemove(ctx context.Context, args []string) error {
	fs := a.flags("ds rm")
	pos, err := parse(fs, args, "DS:PATH...", 1, -1)
	if err != nil {
		return err
	}
	type file struct{ ds, rel string }
	var files []file
	for _, p := range pos {
		ds, rel, err := splitDSPath(p, false)
		if err != nil {
			return withCode(ExitUsage, err)
		}
		files = append(files, file{ds, rel})
	}
	return a.call(ctx, defaultTimeout, func(c *client.Client) error {
		for _, f := range files {
			if err := c.DeleteDatastoreFile(ctx, f.ds, f.rel); err != nil {
				return fmt.Errorf("rm %s:%s: %w", f.ds, f.rel, err)
			}
			if !a.json {
				fmt.Fprintf(a.out, "%s:%s: deleted\n", f.ds, f.rel)
			}
		}
		return nil
	})
}

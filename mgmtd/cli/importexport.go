package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/client"
)

// importTimeout bounds following an import, export or fetch.
const importTimeout = 12 * time.Hour

// vmImport imports the VM of an OVA or OVF on a datastore and prints what
// was not mapped.
func (a *app) vmImport(ctx context.Context, args []string) error {
	fs := a.flags("vm import")
	name := fs.String("name", "", "the new VM's name (default: the descriptor's)")
	folder := fs.String("folder", "", "datastore folder for the disks (default: the VM's name)")
	pos, err := parse(fs, args, "DS:PATH", 1, 1)
	if err != nil {
		return err
	}
	ds, rel, err := splitDSPath(pos[0], false)
	if err != nil {
		return withCode(ExitUsage, err)
	}
	return a.call(ctx, importTimeout, func(c *client.Client) error {
		t, err := c.ImportVM(ctx, api.ImportVMRequest{Datastore: ds, Path: rel, Name: *name, Folder: *folder})
		if err != nil {
			return err
		}
		if t, err = a.follow(ctx, c, t.ID, time.Second, "import "+pos[0]); err != nil {
			return err
		}
		if !a.json && t.Result != nil {
			fmt.Fprintf(a.out, "imported as VM %s\n", t.Result.VM)
			for _, n := range t.Result.Notes {
				fmt.Fprintf(a.out, "  note: %s\n", n)
			}
		}
		return nil
	})
}

// vmExport exports a stopped VM as an OVA to a datastore.
func (a *app) vmExport(ctx context.Context, args []string) error {
	fs := a.flags("vm export")
	pos, err := parse(fs, args, "VM DS:PATH", 2, 2)
	if err != nil {
		return err
	}
	ds, rel, err := splitDSPath(pos[1], false)
	if err != nil {
		return withCode(ExitUsage, err)
	}
	return a.call(ctx, importTimeout, func(c *client.Client) error {
		vm, err := c.GetVM(ctx, pos[0])
		if err != nil {
			return err
		}
		t, err := c.ExportVM(ctx, vm.Spec.ID, api.ExportVMRequest{Datastore: ds, Path: rel})
		if err != nil {
			return err
		}
		if _, err = a.follow(ctx, c, t.ID, time.Second, "export "+vm.Spec.Name); err != nil {
			return err
		}
		if !a.json {
			fmt.Fprintf(a.out, "exported to %s\n", pos[1])
		}
		return nil
	})
}

// dsFetch fetches a file from an https:// URL into a datastore.
func (a *app) dsFetch(ctx context.Context, args []string) error {
	fs := a.flags("ds fetch")
	sum := fs.String("sha256", "", "the file's SHA-256 (hex): a file that does not match is not kept")
	pin := fs.String("fingerprint", "", "the server certificate's SHA-256 (hex), for a server the host cannot verify")
	pos, err := parse(fs, args, "URL DS:PATH", 2, 2)
	if err != nil {
		return err
	}
	ds, rel, err := splitDSPath(pos[1], false)
	if err != nil {
		return withCode(ExitUsage, err)
	}
	return a.call(ctx, importTimeout, func(c *client.Client) error {
		t, err := c.Fetch(ctx, ds, api.FetchRequest{URL: pos[0], Path: rel, SHA256: *sum, TLSFingerprint: *pin})
		if err != nil {
			return err
		}
		if _, err = a.follow(ctx, c, t.ID, time.Second, "fetch "+pos[1]); err != nil {
			return err
		}
		if !a.json {
			fmt.Fprintf(a.out, "fetched %s\n", pos[1])
		}
		return nil
	})
}

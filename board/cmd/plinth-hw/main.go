// Command plinth-hw prints the inventory of the machine it runs on, as a
// table or as JSON, or captures the sysfs/procfs files the inventory reads
// into a fixture tree for board's tests.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"os"

	"github.com/plinth/plinth/board"
)

func main() {
	if err := run(os.Stdout, os.Args); err != nil {
		log.Fatal(err)
	}
}

func run(out io.Writer, args []string) error {
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print JSON instead of a table")
	capture := fs.String("capture", "", "copy the files the inventory reads into `DIR` (a test fixture) and exit")
	root := board.DefaultRoot()
	fs.StringVar(&root.Sys, "sys", root.Sys, "sysfs root")
	fs.StringVar(&root.Proc, "proc", root.Proc, "procfs root")
	fs.StringVar(&root.Dev, "dev", root.Dev, "device directory for partition labels (empty: skip)")
	fs.StringVar(&root.PCIIDs, "pci-ids", root.PCIIDs, "PCI ID database (empty: no names)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *capture != "" {
		return board.Capture(root, *capture)
	}
	hw, err := board.Read(root)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(hw)
	}
	if err := board.WriteTable(out, hw); err != nil {
		return fmt.Errorf("print table: %w", err)
	}
	return nil
}

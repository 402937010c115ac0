// Command plinth-webbuild builds the web client into web/dist (package
// bundle): make web, and the image build, run it before compiling mgmtd.
package main

import (
	"flag"
	"fmt"
	"log"
	"os"

	"github.com/plinth/plinth/web/bundle"
)

func main() {
	root := flag.String("root", ".", "the repository's root")
	flag.Parse()
	files, err := bundle.Build(bundle.Options{Root: *root, Log: log.Printf})
	total := 0
	for _, f := range files {
		fmt.Printf("%-28s %8d raw %8d gzipped\n", f.Name, f.Raw, f.Gzipped)
		total += f.Gzipped
	}
	if len(files) > 0 {
		fmt.Printf("%-28s %8s     %8d gzipped (budget %d)\n", "web client", "", total, bundle.MaxCompressedBytes)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

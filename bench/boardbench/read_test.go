package boardbench

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/plinth/plinth/board"
)

// BenchmarkRead gathers the full inventory of this machine (with the
// distribution's pci.ids when it has one: parsing it is most of the cost),
// of this machine without names (the floor: the same reads, no database),
// and of board's q35 fixture with the same database. The target is under
// 50 ms (docs/PERFORMANCE.md).
func BenchmarkRead(b *testing.B) {
	live := board.DefaultRoot()
	bare := live
	bare.PCIIDs = ""
	dir := "../../board/testdata/qemu-q35"
	if _, err := os.Stat(dir); err != nil {
		b.Fatalf("board's q35 fixture: %v", err)
	}
	q35 := board.FixtureRoot(dir, live.PCIIDs)
	if _, err := os.Stat(filepath.Join(dir, "dev")); err == nil {
		q35.Dev = filepath.Join(dir, "dev")
	}
	for _, c := range []struct {
		name string
		root board.Root
	}{{"live", live}, {"live-without-pci.ids", bare}, {"qemu-q35", q35}} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := board.Read(c.root); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

package vmkernel

import (
	"fmt"
	"sync"

	"github.com/plinth/plinth/vmkernel/datastore"
)

// space is the room promised to writes under way (uploads, conversions),
// per datastore: each reserves what it has yet to write, so writes running
// at once cannot together promise more than the free space.
type space struct {
	mu       sync.Mutex
	reserved map[string]int64 // datastore name: bytes still to be written
}

// reservation is one write's share; its remainder shrinks as it writes.
type reservation struct {
	s         *space
	ds        string
	remaining int64
}

// reserve promises n bytes of ds (plus margin, which must stay free) to a
// write, or refuses with errNoSpace saying how much is free and promised.
func (sp *space) reserve(ds datastore.Datastore, n, margin int64) (*reservation, error) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	info, err := ds.Info()
	if err != nil {
		return nil, err
	}
	if sp.reserved == nil {
		sp.reserved = map[string]int64{}
	}
	free := int64(info.FreeBytes) - sp.reserved[ds.Name]
	if need := n + margin; free < need {
		return nil, fmt.Errorf("datastore %s: %d bytes free, %d of them promised to writes under way; this needs %d (with a %d byte margin): %w",
			ds.Name, info.FreeBytes, sp.reserved[ds.Name], need, margin, errNoSpace)
	}
	sp.reserved[ds.Name] += n
	return &reservation{s: sp, ds: ds.Name, remaining: n}, nil
}

// wrote says n more bytes are on disk: no longer promised, but used.
func (r *reservation) wrote(n int64) {
	r.s.mu.Lock()
	defer r.s.mu.Unlock()
	n = min(n, r.remaining)
	r.remaining -= n
	r.s.reserved[r.ds] -= n
}

// release gives back what the write did not use.
func (r *reservation) release() { r.wrote(r.remaining) }

package runner

import (
	"bytes"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestConsoleViewersFanOut: viewers attached to a console get its tail and
// then every write, in order; one that does not read is dropped instead of
// slowing the console's writer, while a reading one keeps everything; a
// closed or ended viewer's output is closed.
func TestConsoleViewersFanOut(t *testing.T) {
	c := newConsole(t.TempDir())
	defer c.closeFile()
	c.Write([]byte("before\n"))
	fast := c.attach(newSerialConn())
	slow := c.attach(newSerialConn())
	if string(fast.Tail) != "before\n" || string(slow.Tail) != "before\n" {
		t.Fatalf("tails %q %q", fast.Tail, slow.Tail)
	}
	var got bytes.Buffer
	var read atomic.Int64 // bytes the fast viewer has taken
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for b := range fast.Output() {
			got.Write(b)
			read.Add(int64(len(b)))
		}
	}()
	var want bytes.Buffer
	var writing time.Duration
	for i := range 10 * viewerQueue {
		line := fmt.Appendf(nil, "line %d\n", i)
		want.Write(line)
		t0 := time.Now()
		c.Write(line)
		writing += time.Since(t0)
		if i%(viewerQueue/2) == 0 {
			// The fast viewer keeps up: it is let catch up every half
			// queue, however busy the machine (the slow one never reads).
			deadline := time.Now().Add(10 * time.Second)
			for read.Load() < int64(want.Len()) {
				if fast.Dropped() || time.Now().After(deadline) {
					t.Fatalf("after %d writes the reading viewer has %d of %d bytes (dropped %v)", i+1, read.Load(), want.Len(), fast.Dropped())
				}
				time.Sleep(100 * time.Microsecond)
			}
		}
	}
	if writing > 60*time.Second { // a viewer that blocked the console would hold it for ever
		t.Errorf("writes took %v: a viewer slowed the console", writing)
	}
	if !slow.Dropped() {
		t.Error("a viewer that never reads was not dropped")
	}
	n := 0
	for range slow.Output() { // closed: ranging ends
		n++
	}
	if n != viewerQueue {
		t.Errorf("slow viewer had %d writes queued, want %d", n, viewerQueue)
	}
	fast.Close()
	fast.Close() // twice is fine
	wg.Wait()
	if fast.Dropped() {
		t.Fatal("the reading viewer was dropped")
	}
	if !bytes.Equal(got.Bytes(), want.Bytes()) {
		t.Fatalf("fast viewer got %d bytes, want %d", got.Len(), want.Len())
	}
	// Ending the viewers (QEMU gone) closes their output.
	v := c.attach(newSerialConn())
	c.endViewers()
	select {
	case _, ok := <-v.Output():
		if ok {
			t.Fatal("output after endViewers")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("output not closed by endViewers")
	}
	if _, err := v.Write([]byte("x")); err == nil {
		t.Error("input without a serial connection accepted")
	}
}

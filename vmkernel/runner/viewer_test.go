package runner

import (
	"bytes"
	"fmt"
	"sync"
	"testing"
	"time"
)

// TestConsoleViewersFanOut: viewers attached to a console get its tail and
// then every write, in order; one that does not read is dropped instead of
// slowing the console's writer, while a reading one keeps everything; a
// closed or ended viewer's Next ends.
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
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			b, ok := fast.Next()
			if !ok {
				return
			}
			got.Write(b)
		}
	}()
	var want bytes.Buffer
	for i := 0; want.Len() <= 2*viewerMaxPending; i++ {
		line := fmt.Appendf(nil, "line %d\n", i)
		want.Write(line)
		c.Write(line)
		if i%1000 == 0 {
			time.Sleep(time.Millisecond) // the reader may run on a busy machine
		}
	}
	if !slow.Dropped() {
		t.Error("a viewer that never reads was not dropped")
	}
	var kept int
	for {
		b, ok := slow.Next() // what it had before the drop, then the end
		if !ok {
			break
		}
		kept += len(b)
	}
	if kept == 0 || kept > viewerMaxPending {
		t.Errorf("the dropped viewer had %d bytes waiting, want 1..%d", kept, viewerMaxPending)
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
	// Ending the viewers (QEMU gone) ends their Next.
	v := c.attach(newSerialConn())
	c.endViewers()
	ended := make(chan bool)
	go func() { _, ok := v.Next(); ended <- ok }()
	select {
	case ok := <-ended:
		if ok {
			t.Fatal("output after endViewers")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Next still waiting after endViewers")
	}
	if _, err := v.Write([]byte("x")); err == nil {
		t.Error("input without a serial connection accepted")
	}
}

// TestConsoleViewerKeepsUpWithAByteAtATime: a guest's boot messages come a
// byte or two per write (QEMU forwards what the UART got); a viewer whose
// reader pauses (a busy browser, a loaded host) for longer than a burst
// takes must get all of it, not be dropped part way through a line.
func TestConsoleViewerKeepsUpWithAByteAtATime(t *testing.T) {
	c := newConsole(t.TempDir())
	defer c.closeFile()
	v := c.attach(newSerialConn())
	var got bytes.Buffer
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			b, ok := v.Next()
			if !ok {
				return
			}
			got.Write(b)
			time.Sleep(50 * time.Millisecond) // a stalled reader
		}
	}()
	var want bytes.Buffer
	for i := range 200 {
		line := fmt.Appendf(nil, "[    %d.%06d] a kernel message of a usual length, written a byte at a time\n", i/100, i)
		want.Write(line)
		for k := range line {
			c.Write(line[k : k+1])
		}
	}
	v.Close()
	<-done
	if v.Dropped() {
		t.Fatalf("a viewer behind by %d bytes (in %d one-byte writes) was dropped", want.Len(), want.Len())
	}
	if !bytes.Equal(got.Bytes(), want.Bytes()) {
		t.Fatalf("the viewer got %d bytes, want %d", got.Len(), want.Len())
	}
}

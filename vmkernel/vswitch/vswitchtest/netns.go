// Package vswitchtest gives tests a network namespace of their own, so that
// bridges, taps and veths they make never touch the host's interfaces.
package vswitchtest

import (
	"fmt"
	"os"
	"runtime"
	"testing"

	"github.com/vishvananda/netns"

	"github.com/plinth/plinth/internal/testenv"
)

// NewNetNS makes a fresh network namespace (skipping the test when not
// root or when namespaces cannot be made, failing it instead under `make
// test`: see internal/testenv) and returns a handle to it; the calling goroutine stays in its own
// namespace. The namespace, and every interface in it, goes away at the end
// of the test once nothing runs in it.
func NewNetNS(t testing.TB) netns.NsHandle {
	t.Helper()
	if os.Geteuid() != 0 {
		testenv.Root(t, "create a network namespace")
	}
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatalf("current network namespace: %v", err)
	}
	defer orig.Close()
	ns, err := netns.New() // unshare(CLONE_NEWNET): this thread is now in it
	if err != nil {
		runtime.UnlockOSThread()
		testenv.Unmet(t, "cannot create a network namespace: %v", err)
	}
	if err := netns.Set(orig); err != nil {
		ns.Close()
		// The thread stays locked in the new namespace; the runtime ends it
		// with the test's goroutine.
		t.Fatalf("back to the original network namespace: %v", err)
	}
	runtime.UnlockOSThread()
	t.Cleanup(func() { ns.Close() })
	return ns
}

// Enter locks the calling goroutine to its thread and moves that thread
// into ns until the end of the test, so that processes it starts (exec.Cmd
// forks from the calling thread) run in ns. Call it from the test's goroutine.
func Enter(t testing.TB, ns netns.NsHandle) {
	t.Helper()
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatalf("current network namespace: %v", err)
	}
	if err := netns.Set(ns); err != nil {
		orig.Close()
		runtime.UnlockOSThread()
		t.Fatalf("entering network namespace: %v", err)
	}
	t.Cleanup(func() {
		defer orig.Close()
		if err := netns.Set(orig); err != nil {
			t.Errorf("leaving network namespace: %v", err) // thread stays locked and dies
			return
		}
		runtime.UnlockOSThread()
	})
}

// Do runs f on an OS thread switched into the named namespace (one `ip
// netns add` made), then switches the thread back. Sockets f opens stay in
// that namespace; goroutines f starts do not run in it.
func Do(name string, f func() error) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		return err
	}
	defer orig.Close()
	ns, err := netns.GetFromName(name)
	if err != nil {
		return fmt.Errorf("network namespace %s: %w", name, err)
	}
	defer ns.Close()
	if err := netns.Set(ns); err != nil {
		return fmt.Errorf("enter network namespace %s: %w", name, err)
	}
	defer netns.Set(orig)
	return f()
}

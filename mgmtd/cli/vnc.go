package cli

import (
	"context"
	"fmt"
	"io"
	"net"
	"sync"
)

// vmVNC serves the VM's screen on a local TCP port for any VNC viewer:
// each connection to the port gets a websocket of its own to mgmtd's
// /vnc/ws (the token in a header, the certificate pinned), bytes copied both
// ways. It runs until ctx ends (Ctrl-C).
func (a *app) vmVNC(ctx context.Context, args []string) error {
	fs := a.flags("vm vnc")
	listen := fs.String("listen", "127.0.0.1:5900", "local address to serve VNC on (port 0: any free port)")
	pos, err := parse(fs, args, "VM", 1, 1)
	if err != nil {
		return err
	}
	c, addr, err := a.connect(ctx, defaultTimeout)
	if err != nil {
		return err
	}
	// Reach the screen once first, so that a VM that is not running (or
	// has no VNC) is an error now, not at the viewer's first connection.
	probe, err := c.VNCWebsocket(ctx, pos[0])
	if err != nil {
		return a.explain(ctx, addr, err)
	}
	probe.Close()
	l, err := net.Listen("tcp", *listen)
	if err != nil {
		return usageErrorf("--listen %s: %v", *listen, err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	fmt.Fprintf(a.out, "The screen of %s is on %s (e.g. vncviewer %s::%d). Ctrl-C ends.\n", pos[0], l.Addr(), l.Addr().(*net.TCPAddr).IP, port)
	go func() { <-ctx.Done(); l.Close() }()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		conn, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("vnc: %w", err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer conn.Close()
			ws, err := c.VNCWebsocket(ctx, pos[0])
			if err != nil {
				fmt.Fprintf(a.errw, "vnc: %s: %v\n", conn.RemoteAddr(), err)
				return
			}
			defer ws.Close()
			done := make(chan struct{}, 2)
			go func() { io.Copy(ws, conn); done <- struct{}{} }()
			go func() { io.Copy(conn, ws); done <- struct{}{} }()
			select {
			case <-done:
			case <-ctx.Done():
			}
		}()
	}
}

package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"golang.org/x/term"
)

// escapeByte is Ctrl-], telnet's escape: it ends the console session.
const escapeByte = 0x1d

// vmConsole attaches the terminal to the VM's serial console through the
// websocket: the terminal in raw mode (so Ctrl-C, arrows and the like go
// to the guest), until Ctrl-], the end of standard input, the host closing
// the console, or ctx ending.
func (a *app) vmConsole(ctx context.Context, args []string) error {
	fs := a.flags("vm console")
	pos, err := parse(fs, args, "VM", 1, 1)
	if err != nil {
		return err
	}
	c, addr, err := a.connect(ctx, defaultTimeout)
	if err != nil {
		return err
	}
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	conn, err := c.ConsoleWebsocket(cctx, pos[0])
	if err != nil {
		return a.explain(ctx, addr, err)
	}
	defer conn.Close()

	nl := "\n"
	if fd, ok := terminal(a.env.Stdin); ok {
		old, err := term.MakeRaw(fd)
		if err != nil {
			return fmt.Errorf("console: raw terminal: %w", err)
		}
		defer term.Restore(fd, old)
		nl = "\r\n" // raw mode: no newline translation
	}
	fmt.Fprintf(a.errw, "Connected to the serial console of %s. Escape character is '^]'.%s", pos[0], nl)

	outDone := make(chan error, 1)
	go func() {
		_, err := io.Copy(a.out, conn)
		outDone <- err
	}()
	inDone := make(chan error, 1)
	go func() { inDone <- copyUntilEscape(conn, a.in) }()

	var result error
	select {
	case err := <-outDone:
		// The host ended the console (the VM stopped, or mgmtd went away).
		conn.Close()
		if err != nil && cctx.Err() == nil {
			result = fmt.Errorf("console: %w", err)
		}
		fmt.Fprintf(a.errw, "%sConnection closed by the host.%s", nl, nl)
		return result
	case err := <-inDone:
		result = err
	case <-ctx.Done():
	}
	conn.Close()
	<-outDone // nothing is written to a.out once vmConsole returns
	fmt.Fprintf(a.errw, "%sConnection closed.%s", nl, nl)
	return result
}

// copyUntilEscape sends what is typed to the console until Ctrl-] (nil)
// or the end of input (nil), or an error.
func copyUntilEscape(w io.Writer, r io.Reader) error {
	buf := make([]byte, 4096)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			chunk := buf[:n]
			i := bytes.IndexByte(chunk, escapeByte)
			if i >= 0 {
				chunk = chunk[:i]
			}
			if len(chunk) > 0 {
				if _, werr := w.Write(chunk); werr != nil {
					return fmt.Errorf("console: %w", werr)
				}
			}
			if i >= 0 {
				return nil
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("console: reading input: %w", err)
		}
	}
}

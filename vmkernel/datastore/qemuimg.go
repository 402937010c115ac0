package datastore

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/vmkernel/qemu"
)

// imgRun is one qemu-img run: it reaches files only as the descriptors it
// is handed (fd 3 on), named /proc/self/fd/N, and runs as the unprivileged
// image user, which can open those (root:image group, 0660) and nothing in
// the datastores' directories (root only).
type imgRun struct {
	files []*os.File
}

// fd hands f to the run and returns the name qemu-img opens it by.
func (r *imgRun) fd(f *os.File) string {
	for i, g := range r.files {
		if g == f {
			return "/proc/self/fd/" + strconv.Itoa(3+i)
		}
	}
	r.files = append(r.files, f)
	return "/proc/self/fd/" + strconv.Itoa(3+len(r.files)-1)
}

// spec is the json: file name of im with its whole chain, each file by
// descriptor and each format named. Without chain, "backing" is null:
// qemu-img info opens no backing image (and refuses options for one).
func (r *imgRun) spec(im *Image, chain bool) (string, error) {
	for _, i := range im.Chain() {
		if err := share(i.File); err != nil {
			return "", fmt.Errorf("datastore %s: %q: %w", i.Datastore, i.Path, err)
		}
	}
	node := im.Node(func(i *Image) string { return r.fd(i.File) })
	if !chain {
		node.Backing = nil
	}
	s, err := node.JSON(qemu.NodeOptions{ReadOnly: !im.Writable})
	if err != nil {
		return "", err
	}
	return "json:" + s, nil
}

// command is qemu-img with args, as the image user when running as root.
func (d Datastore) command(ctx context.Context, r *imgRun, args ...string) *exec.Cmd {
	bin := d.QEMUImg
	if bin == "" {
		bin = "qemu-img"
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.ExtraFiles = r.files
	cmd.Env = []string{"PATH=/usr/bin:/bin", "LC_ALL=C"}
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if os.Geteuid() == 0 {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: api.ImageUID, Gid: api.ImageGID, Groups: []uint32{}}
	}
	return cmd
}

// run runs qemu-img and returns its standard output; a failure carries its
// standard error.
func (d Datastore) run(ctx context.Context, r *imgRun, args ...string) ([]byte, error) {
	cmd := d.command(ctx, r, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &limitedBuffer{b: &stderr, n: 8 << 10}
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("qemu-img %s: %w: %s", args[0], err, strings.TrimSpace(stderr.String()))
	}
	return stdout.Bytes(), nil
}

// limitedBuffer keeps the first n bytes written to it.
type limitedBuffer struct {
	b *bytes.Buffer
	n int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := l.n - l.b.Len(); room > 0 {
		l.b.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

var _ io.Writer = (*limitedBuffer)(nil)

// Package atomicfile writes files so that a crash or power cut at any moment
// leaves either the old content or the new one, never a mix: write a temp file
// in the same directory, fsync it, rename it over the target, fsync the
// directory. The VM inventory, vmkernel's runtime records and mgmtd's TLS
// files all go through it.
package atomicfile

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// TempPrefix starts the name of every temp file Write makes; a reader of the
// directory skips (or removes) such files, left over by a crash.
const TempPrefix = ".tmp-"

// IsTemp reports whether a directory entry's name is one of Write's temp files.
func IsTemp(name string) bool { return strings.HasPrefix(name, TempPrefix) }

// The steps of a write, in order, as passed to a Hook.
const (
	StepCreateTemp = "create-temp"
	StepHalfWrite  = "half-write"
	StepWrite      = "write"
	StepFsync      = "fsync"
	StepClose      = "close"
	StepRename     = "rename"
	StepDirFsync   = "dir-fsync"
)

// A Hook is called after each step. An error from it ends the write at once,
// with no clean-up: tests use it to stop a write where a crash would.
type Hook func(step string) error

// ErrNotDurable wraps the error of a write whose new content is in place (a
// reader sees it) but whose directory could not be fsynced, so the rename may
// not survive a power cut.
var ErrNotDurable = errors.New("renamed but not durable")

// Write stores data at path with mode perm.
func Write(path string, data []byte, perm os.FileMode) error {
	return WriteHooked(path, data, perm, nil)
}

// WriteFrom stores what r yields at path with mode perm.
func WriteFrom(path string, r io.Reader, perm os.FileMode) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return Write(path, data, perm)
}

// WriteOwned is Write for a file another user reads or owns: the temp
// file is given to uid:gid through its descriptor before the rename, so the
// file appears under path already owned by them. Changing the owner by name
// after the rename would follow a symbolic link that user had put at path
// meanwhile (in a directory they own), handing them any file of the host.
func WriteOwned(path string, data []byte, perm os.FileMode, uid, gid int) error {
	return write(path, data, perm, &owner{uid, gid}, nil)
}

type owner struct{ uid, gid int }

// WriteHooked is Write with a Hook called after every step.
func WriteHooked(path string, data []byte, perm os.FileMode, hook Hook) error {
	return write(path, data, perm, nil, hook)
}

func write(path string, data []byte, perm os.FileMode, own *owner, hook Hook) error {
	if hook == nil {
		hook = func(string) error { return nil }
	}
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, TempPrefix+filepath.Base(path)+"-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := hook(StepCreateTemp); err != nil {
		return err
	}
	fail := func(err error) error {
		f.Close()
		os.Remove(f.Name())
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Chmod(perm); err != nil {
		return fail(err)
	}
	if own != nil {
		if err := f.Chown(own.uid, own.gid); err != nil {
			return fail(err)
		}
	}
	half := len(data) / 2
	if _, err := f.Write(data[:half]); err != nil {
		return fail(err)
	}
	if err := hook(StepHalfWrite); err != nil {
		return err
	}
	if _, err := f.Write(data[half:]); err != nil {
		return fail(err)
	}
	if err := hook(StepWrite); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return fail(fmt.Errorf("fsync: %w", err))
	}
	if err := hook(StepFsync); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := hook(StepClose); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := hook(StepRename); err != nil {
		return err
	}
	if err := SyncDir(dir); err != nil {
		return fmt.Errorf("write %s: %w: %w", path, ErrNotDurable, err)
	}
	return hook(StepDirFsync)
}

// SyncDir fsyncs a directory, making the renames and removals in it durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", dir, err)
	}
	return nil
}

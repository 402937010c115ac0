// Command plinth-leftovers ends a test run: it finds every process still
// carrying the run's mark (the environment variable RunEnv=TOKEN, which
// `make unit` and `make e2e` give everything they start, and which
// processes inherit), prints each, kills it, and fails when there was one.
// A test that starts a process (QEMU, vmkernel, mgmtd, a DCUI, a server)
// must end it; this is the check that it did.
//
//	go run ./qemu-test/cmd/plinth-leftovers -run TOKEN
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// RunEnv is the variable that marks a test run's processes.
const RunEnv = "PLINTH_TEST_RUN"

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "plinth-leftovers: %v\n", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("plinth-leftovers", flag.ContinueOnError)
	token := fs.String("run", "", "the run's token (the value of "+RunEnv+")")
	grace := fs.Duration("grace", 5*time.Second, "how long processes that are exiting get before they count")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *token == "" {
		return errors.New("-run TOKEN is required")
	}
	mark := []byte(RunEnv + "=" + *token + "\x00")
	deadline := time.Now().Add(*grace)
	var left []proc
	for {
		left = marked("/proc", mark, os.Getpid())
		if len(left) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if len(left) == 0 {
		fmt.Printf("plinth-leftovers: no process of test run %s is left\n", *token)
		return nil
	}
	for _, p := range left {
		fmt.Fprintf(os.Stderr, "plinth-leftovers: LEFT RUNNING: pid %d (parent %d): %s\n", p.pid, p.ppid, p.cmdline)
		_ = syscall.Kill(p.pid, syscall.SIGKILL)
	}
	return fmt.Errorf("%d processes of test run %s were still running (killed now): every test must end what it starts", len(left), *token)
}

type proc struct {
	pid, ppid int
	cmdline   string
}

// marked lists the processes under procRoot whose environment holds mark,
// except self and its ancestors (the make and go run that started it).
func marked(procRoot string, mark []byte, self int) []proc {
	skip := map[int]bool{}
	for p := self; p > 1 && !skip[p]; p = ppidOf(procRoot, p) {
		skip[p] = true
	}
	ents, _ := os.ReadDir(procRoot)
	var out []proc
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || skip[pid] {
			continue
		}
		env, err := os.ReadFile(filepath.Join(procRoot, e.Name(), "environ"))
		if err != nil || !bytes.Contains(append([]byte{0}, env...), append([]byte{0}, mark...)) {
			continue
		}
		if st := state(procRoot, pid); st == "Z" {
			continue // a zombie is its parent's to reap, and goes with it
		}
		cmd, _ := os.ReadFile(filepath.Join(procRoot, e.Name(), "cmdline"))
		out = append(out, proc{pid: pid, ppid: ppidOf(procRoot, pid),
			cmdline: strings.TrimSpace(strings.ReplaceAll(string(cmd), "\x00", " "))})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].pid < out[j].pid })
	return out
}

// stat returns the fields of /proc/PID/stat after the command name.
func stat(procRoot string, pid int) []string {
	b, err := os.ReadFile(filepath.Join(procRoot, strconv.Itoa(pid), "stat"))
	if err != nil {
		return nil
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(string(b[i+1:]))
}

func state(procRoot string, pid int) string {
	if f := stat(procRoot, pid); len(f) > 0 {
		return f[0]
	}
	return ""
}

func ppidOf(procRoot string, pid int) int {
	if f := stat(procRoot, pid); len(f) > 1 {
		n, _ := strconv.Atoi(f[1])
		return n
	}
	return 0
}

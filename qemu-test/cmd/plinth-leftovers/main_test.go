package main

import (
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestFindsAndKillsAMarkedProcess starts a process with a run's mark and
// one without; only the first is found, reported and killed.
func TestFindsAndKillsAMarkedProcess(t *testing.T) {
	token := "test-" + time.Now().Format("150405.000000")
	marked := exec.Command("sleep", "60")
	marked.Env = append(os.Environ(), RunEnv+"="+token)
	other := exec.Command("sleep", "60")
	other.Env = append(os.Environ(), RunEnv+"="+token+"-other")
	for _, c := range []*exec.Cmd{marked, other} {
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Process.Kill(); c.Wait() })
	}
	err := run([]string{"-run", token, "-grace", "200ms"})
	if err == nil || !strings.Contains(err.Error(), "1 processes") {
		t.Fatalf("run = %v, want one process left", err)
	}
	done := make(chan error, 1)
	go func() { done <- marked.Wait() }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the marked process was not killed")
	}
	if other.ProcessState != nil {
		t.Fatal("the other run's process was killed")
	}
	if err := run([]string{"-run", token, "-grace", "200ms"}); err != nil {
		t.Fatalf("second run = %v, want nothing left", err)
	}
}

//go:build tools

// Package tools pins the Go programs the build runs with `go run`, so their
// versions come from go.mod like every other dependency.
package tools

import (
	_ "github.com/u-root/mkuimage/cmd/mkuimage"
)

//go:build !linux

package main

import (
	"os"
	"testing"
)

// The terminal and FIFO tests run on Linux only, where the pseudo-terminal
// ioctls and mkfifo are.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Skip("pseudo-terminal tests run on Linux only")
	return nil, nil
}

func setWinsize(t *testing.T, _ *os.File, _ uint16) {
	t.Skip("pseudo-terminal tests run on Linux only")
}

func mkfifo(t *testing.T, _ string) { t.Skip("FIFO tests run on Linux only") }

func umask(t *testing.T, _ int) func() {
	t.Skip("file mode tests run on Linux only")
	return func() {}
}

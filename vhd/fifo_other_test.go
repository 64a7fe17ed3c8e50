//go:build !unix

package vhd

import "testing"

func mkfifo(t *testing.T, _ string) { t.Skip("no named pipes in the file system on this platform") }

package main

import (
	"errors"
	"syscall"
)

// hint says what to do next about err, or "".
func hint(err error) string {
	switch {
	case errors.Is(err, syscall.ENOSPC):
		return "the filesystem or device being written is full; nothing was left under the output name. Free some space or write elsewhere."
	}
	return ""
}

// Command xva packs, unpacks, inspects and converts XenServer / XCP-ng
// virtual appliance (XVA) archives.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/xva-tools/xva"
)

// Exit codes, as DESIGN.md §5 defines them.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
	exitCorrupt = 3
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRootCmd().ExecuteContext(ctx)
	interrupted := ctx.Err() != nil
	stop()
	os.Exit(report(err, interrupted))
}

// report prints err and returns the exit code it maps to.
func report(err error, interrupted bool) int {
	if err == nil {
		return exitOK
	}
	code := exitCode(err)
	if interrupted && code != exitCorrupt {
		fmt.Fprintln(os.Stderr, "xva: interrupted; nothing was left under the output name")
		return exitFailure
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, "xva: ") {
		msg = "xva: " + msg
	}
	fmt.Fprintln(os.Stderr, msg)
	return code
}

func exitCode(err error) int {
	var u usageError
	var s silentError
	switch {
	case errors.As(err, &s):
		return s.code
	case errors.As(err, &u):
		return exitUsage
	case xva.IsCorrupt(err):
		return exitCorrupt
	}
	return exitFailure
}

// usageError marks a mistake in the command line.
type usageError struct{ error }

func usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// silentError carries an exit code for a result already printed, such as a
// verify verdict.
type silentError struct {
	code int
	msg  string
}

func (e silentError) Error() string { return e.msg }

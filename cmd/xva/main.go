// Command xva packs, unpacks, inspects and converts XenServer / XCP-ng
// virtual appliance (XVA) archives.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/xva-tools/xva"
)

// Exit codes, as DESIGN.md §5 defines them.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
	exitCorrupt = 3
)

// graceTime is how long an interrupted command has to unwind by itself.
const graceTime = 3 * time.Second

func main() {
	ctx, cancel := context.WithCancel(context.Background())
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	done := make(chan int, 1)
	go func() {
		g := &globals{}
		root := newRootCmd(g)
		root.SetArgs(progressArgs(os.Args[1:]))
		err := root.ExecuteContext(ctx)
		if g.rep != nil {
			g.rep.close() // before any message, so bars do not overdraw it
		}
		done <- report(err, ctx.Err() != nil)
	}()
	select {
	case code := <-done:
		os.Exit(code)
	case <-sigs:
		cancel()
	}
	// Every pipeline honours ctx and removes its temporary output. One stuck
	// in a read that cannot be cancelled (a stalled pipe or network peer)
	// is not waited for past graceTime or a second signal: its temporary
	// files are removed here.
	select {
	case code := <-done:
		os.Exit(code)
	case <-sigs:
	case <-time.After(graceTime):
	}
	xva.RemovePending()
	fmt.Fprintln(os.Stderr, "xva: interrupted; nothing was left under the output name")
	os.Exit(exitFailure)
}

// progressArgs joins "--progress MODE" into "--progress=MODE". --progress
// alone means bar, so the flag parser cannot take the next word as its
// value: it would be an argument. A word that names a mode is taken as
// one; to pass a file named "plain" right after --progress, write
// --progress=bar plain.
func progressArgs(args []string) []string {
	out := make([]string, 0, len(args))
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return append(out, args[i:]...)
		}
		if a == "--progress" && i+1 < len(args) {
			if _, err := parseProgress(args[i+1]); err == nil {
				out = append(out, a+"="+args[i+1])
				i++
				continue
			}
		}
		out = append(out, a)
	}
	return out
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
	msg := "xva: " + printable(xva.PlainError(err))
	fmt.Fprintln(os.Stderr, msg)
	if h := hint(err); h != "" {
		fmt.Fprintln(os.Stderr, "xva: hint: "+h)
	}
	return code
}

// exitCode maps an error to the exit code: the one place that does.
func exitCode(err error) int {
	var s silentError
	switch {
	case errors.As(err, &s):
		return s.code
	case errors.Is(err, xva.ErrBadOptions): // usage errors wrap it too
		return exitUsage
	case xva.IsCorrupt(err):
		return exitCorrupt
	}
	return exitFailure
}

// usageError marks a mistake in the command line. It is an
// xva.ErrBadOptions, the one sentinel of usage errors, without its text.
type usageError struct{ error }

func (usageError) Is(target error) bool { return target == xva.ErrBadOptions }

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

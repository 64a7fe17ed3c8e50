// Command xva packs, unpacks, inspects and converts XenServer / XCP-ng
// virtual appliance (XVA) archives.
//
// It may import the root package, verify, xapi and internal/pipeline;
// never a format package: formats are reached through the root package.
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
		// A command line that failed to parse may not have set g.json.
		done <- report(err, ctx.Err() != nil, g.json || wantsJSON(os.Args[1:]))
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

// wantsJSON reports whether args ask for --json before any "--".
func wantsJSON(args []string) bool {
	for _, a := range args {
		switch a {
		case "--":
			return false
		case "--json", "--json=true":
			return true
		}
	}
	return false
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

// report prints err (on stderr, and under --json as an error document on
// stdout unless the command printed its document) and returns the exit
// code it maps to.
func report(err error, interrupted, asJSON bool) int {
	if err == nil {
		return exitOK
	}
	kind, code := exitCode(err)
	if interrupted && code != exitCorrupt {
		const msg = "interrupted; nothing was left under the output name"
		fmt.Fprintln(os.Stderr, "xva: "+msg)
		if asJSON && !printedJSON {
			printJSON(errorDocument{SchemaVersion: schemaVersion, Error: errorJSON{Kind: "interrupted", Message: msg, Offset: -1}})
		}
		return exitFailure
	}
	msg := xva.PlainError(err)
	fmt.Fprintln(os.Stderr, "xva: "+printable(msg))
	h := hint(err)
	if h != "" {
		fmt.Fprintln(os.Stderr, "xva: hint: "+h)
	}
	var s silentError
	if asJSON && !printedJSON && !errors.As(err, &s) {
		printJSON(errorDoc(err, kind, msg, h))
	}
	return code
}

// Kinds of failure, as the error document names them.
const (
	failUsage       = "usage"       // a bad flag or value, contradictory options: exit 2
	failCorrupt     = "corrupt"     // an integrity failure: exit 3
	failUnsupported = "unsupported" // an archive using what xva does not implement: exit 1
	failNotArchive  = "not-archive" // an input that is no archive at all: exit 1
	failOther       = "failure"     // I/O, an existing output, a missing file: exit 1
)

// exitCode maps an error to its exit code and kind of failure: the one
// place that does.
func exitCode(err error) (string, int) {
	var s silentError
	switch {
	case errors.As(err, &s):
		return failOther, s.code
	case errors.Is(err, xva.ErrBadOptions): // usage errors wrap it too
		return failUsage, exitUsage
	case xva.IsCorrupt(err):
		return failCorrupt, exitCorrupt
	case errors.Is(err, xva.ErrUnsupported):
		return failUnsupported, exitFailure
	case errors.Is(err, xva.ErrNotArchive):
		return failNotArchive, exitFailure
	}
	return failOther, exitFailure
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

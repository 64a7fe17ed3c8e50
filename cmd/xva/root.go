package main

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/spf13/cobra"

	"github.com/xva-tools/xva"
	"github.com/xva-tools/xva/internal/pipeline"
)

// schemaVersion is the version of every --json document.
const schemaVersion = 1

// globals are the flags every command shares.
type globals struct {
	jobs     int
	progress string
	json     bool
	verbose  bool
	quiet    bool
	rep      reporter     // made from progress once flags are parsed
	log      *slog.Logger // debug lines on stderr with --verbose, else nothing
	s3       s3Flags
}

func newRootCmd(g *globals) *cobra.Command {
	root := &cobra.Command{
		Use:   "xva",
		Short: "Pack, unpack, inspect and convert XenServer / XCP-ng XVA archives",
		Long: `xva packs a VM (disk images plus its description) into an XVA archive,
unpacks archives onto sparse raw images, shows what an archive holds, and
converts between the legacy generation (version 0.1, gzip chunks) and the
xapi generation (hashed 1 MiB blocks) that current hosts import, and to and
from OVF/OVA for other hypervisors. It serves the disks inside an archive
over NBD without unpacking it, and sends VMs to and from a pool.

Exit codes: 0 success, 1 failure (I/O and the like), 2 usage error,
3 integrity failure (bad checksum, short or malformed archive).`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().IntVarP(&g.jobs, "jobs", "j", 0, "parallel workers (default: one per core)")
	root.PersistentFlags().StringVar(&g.progress, "progress", progressAuto,
		"progress on stderr: auto (bars on a terminal, else none), bar, plain (a line every 10s, for logs) or none; "+
			"--progress alone means bar; --progress plain and --progress=plain both work")
	root.PersistentFlags().Lookup("progress").NoOptDefVal = progressBar
	root.PersistentFlags().BoolVarP(&g.verbose, "verbose", "v", false, "log each step on stderr (archive form, disks, timings, calls to the pool)")
	root.PersistentFlags().BoolVarP(&g.quiet, "quiet", "q", false, "print only errors (and the result asked for: --json, info, an uploaded VM's uuid); no progress")
	g.s3.register(root)
	root.PersistentPreRunE = func(cmd *cobra.Command, args []string) error {
		if g.jobs < 0 {
			return usagef("--jobs must not be negative, got %d (0 means one per core)", g.jobs)
		}
		if err := g.s3.configure(cmd, g, args); err != nil {
			return err
		}
		if err := applyMode(cmd); err != nil {
			return err
		}
		mode, err := parseProgress(g.progress)
		if err != nil {
			return err
		}
		if g.quiet {
			mode = progressNone
		}
		g.log = slog.New(slog.DiscardHandler)
		if g.verbose {
			g.log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
			b := readBuildInfo()
			g.log.Debug("xva", "command", cmd.CommandPath(), "version", b.Version, "commit", b.Commit, "jobs", pipeline.Jobs(g.jobs))
		}
		g.rep = newReporter(mode, os.Stderr)
		xva.SetLeftoverHandler(func(l xva.Leftover) { reportLeftover(g.chatter(os.Stderr), l) })
		return nil
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(newPackCmd(g), newUnpackCmd(g), newInfoCmd(g), newConvertCmd(g), newVerifyCmd(g),
		newUploadCmd(g), newExportCmd(g), newCatCmd(g), newServeCmd(g), newVersionCmd(g), newCompletionCmd(), newDocsCmd())
	addInsecure(root)
	root.CompletionOptions.DisableDefaultCmd = true
	registerCompletions(root)
	return root
}

// reportLeftover says what was found beside an output: a temporary output
// of a killed run, removed, or one a running xva still writes.
func reportLeftover(w io.Writer, l xva.Leftover) {
	switch {
	case l.Removed:
		fmt.Fprintf(w, "xva: removed %s, left by an earlier xva run that was killed\n", l.Path)
	case l.Err != nil:
		fmt.Fprintf(w, "xva: %s is the temporary output of an earlier xva run and was not removed (%v); "+
			"unless an xva is still writing it, remove it with: rm -r '%s'\n", l.Path, l.Err, l.Path)
	default:
		fmt.Fprintf(w, "xva: note: %s is the temporary output of an xva still running; left alone\n", l.Path)
	}
}

// options turns the shared flags into library options.
func (g *globals) options() []xva.Option {
	return []xva.Option{xva.WithJobs(g.jobs), xva.WithProgress(g.rep), xva.WithLogger(g.log)}
}

// settle ends the progress display before a command prints its result,
// which bars still being redrawn could overwrite on a terminal.
func (g *globals) settle() {
	if g.rep != nil {
		g.rep.close()
	}
}

// chatter is where a command prints what it did, beside its result:
// nowhere with --quiet.
func (g *globals) chatter(w io.Writer) io.Writer {
	if g.quiet {
		return io.Discard
	}
	return w
}

// printedJSON is set once a command has printed its JSON document; a
// failure after it prints no error document.
var printedJSON bool

// printJSON writes v as the command's one JSON document.
func printJSON(v any) error {
	printedJSON = true
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// exactArgs is cobra.ExactArgs with a usage error.
func exactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := cobra.ExactArgs(n)(cmd, args); err != nil {
			return usageError{err}
		}
		return nil
	}
}

func rangeArgs(lo, hi int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := cobra.RangeArgs(lo, hi)(cmd, args); err != nil {
			return usageError{err}
		}
		return nil
	}
}

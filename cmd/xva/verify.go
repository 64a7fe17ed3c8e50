package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/spf13/cobra"

	"github.com/xva-tools/xva"
	"github.com/xva-tools/xva/verify"
)

func newVerifyCmd(g *globals) *cobra.Command {
	var parallel int
	cmd := &cobra.Command{
		Use:   "verify ARCHIVE|PACKAGE.ova|DIR...",
		Short: "Check archives end to end; exit 3 if any is corrupt",
		Long: `Check every byte of each archive, of either generation, reading it once
on all cores: ova.xml first and parsable; every disk present and complete and
nothing left over; legacy chunks' gzip CRC-32, ISIZE and exact 1e9-byte
lengths; xapi blocks' XXH64 or SHA-1 (compared as text, exactly as xapi
does), each checksum member right after its block, names fixed-width and
increasing, disks in lexicographic order, no block past a disk's end; tar
header checksums; the integrity of a whole-archive gzip or zstd stream.

An OVF package (an OVA or an .ovf) is checked too: every file against its
manifest digest (SHA-1, SHA-256 or SHA-512), the manifest against the
package, and each disk read whole through its format's reader (every
compressed grain inflated, its capacity checked against the descriptor).

Every problem is reported with its member, disk and offset. One line per
archive says OK, CORRUPT or ERROR. Exit code: 0 when all are good, 3 when
any is corrupt, 1 when one could not be read (and none is corrupt).
--json prints one document with a report per archive and a summary; its
schema is docs/json/verify.schema.json.

A directory that is not itself an archive (no ova.xml in it) stands for
every archive under it: files named *.xva, *.xva.gz, *.xva.zst and *.tar,
and directory-form archives, hidden entries left out. They are checked
--parallel at a time (default 2), a line for each as it ends and a summary
line at the end; a directory holding none is an error.`,
		Example: `  # Check an archive before restoring it
  xva verify backup.xva

  # Check many in CI, printing only the failures
  xva verify --quiet exports/*.xva

  # Every archive under a directory, four at a time, with one summary
  xva verify --parallel 4 exports/

  # Machine-readable report
  xva verify --json web.xva > report.json`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usagef("verify needs at least one ARCHIVE")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return runVerify(cmd, g, args, parallel)
		},
	}
	cmd.Flags().BoolVar(&g.json, "json", false, "print the full report as JSON")
	cmd.Flags().IntVar(&parallel, "parallel", 2, "archives checked at once under a directory")
	return cmd
}

// verifyItem is one archive to check: named on the command line, or found
// under a directory that was.
type verifyItem struct {
	path  string
	found bool
}

func runVerify(cmd *cobra.Command, g *globals, args []string, parallel int) error {
	ctx := cmd.Context()
	start := time.Now()
	if parallel < 1 {
		return usagef("--parallel must be at least 1, got %d", parallel)
	}
	var items []verifyItem
	var empty []string
	for _, a := range args {
		if !xva.IsArchiveTree(a) {
			items = append(items, verifyItem{path: a})
			continue
		}
		found, err := xva.FindArchives(ctx, a)
		if err != nil {
			return err
		}
		if len(found) == 0 {
			empty = append(empty, a)
		}
		for _, f := range found {
			items = append(items, verifyItem{path: f, found: true})
		}
	}
	// Archives named one by one are checked one after the other with
	// their progress shown, as ever; those found under a directory,
	// --parallel at a time, whose per-disk progress would interleave: a
	// line as each ends says how far the check is.
	tree := len(items) > 0 && slices.ContainsFunc(items, func(it verifyItem) bool { return it.found })
	workers := 1
	progress := g.rep
	if tree && parallel > 1 {
		workers, progress = parallel, nil
	}
	reports := make([]*verify.Report, len(items))
	hints := make([]string, len(items))
	var mu sync.Mutex
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(workers, max(len(items), 1)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				rep, h := verifyOne(ctx, items[i].path, verify.Options{Jobs: g.jobs, Progress: progress})
				mu.Lock()
				if progress != nil {
					g.settle()
				}
				reports[i], hints[i] = rep, h
				if !g.json {
					printVerdict(cmd.OutOrStdout(), rep, g.quiet)
				}
				mu.Unlock()
			}
		}()
	}
	for i := range items {
		next <- i
	}
	close(next)
	wg.Wait()
	for _, dir := range empty {
		rep := notArchiveReport(dir, fmt.Errorf("%s is a directory that holds no archive (no file named *.xva, *.xva.gz, *.xva.zst or *.tar, no directory with ova.xml)", dir))
		reports = append(reports, rep)
		if !g.json {
			printVerdict(cmd.OutOrStdout(), rep, g.quiet)
		}
	}
	doc := verifyDoc(reports, time.Since(start).Seconds())
	if g.json {
		if err := printJSON(doc); err != nil {
			return err
		}
	} else if tree && !g.quiet {
		sum := doc.Summary
		fmt.Fprintf(cmd.OutOrStdout(), "SUMMARY  %s: %d OK, %d corrupt, %d could not be read, in %.1fs\n",
			plural(sum.Archives, "archive"), sum.OK, sum.Corrupt, sum.Failed, sum.Seconds)
	}
	var seen []string
	for _, h := range hints {
		if h != "" && !slices.Contains(seen, h) {
			seen = append(seen, h)
			fmt.Fprintln(cmd.ErrOrStderr(), "xva: hint: "+h)
		}
	}
	return verdictError(reports)
}

// verifyOne checks the archive at a, and returns its report and a hint
// for an input that is no archive.
func verifyOne(ctx context.Context, a string, o verify.Options) (*verify.Report, string) {
	if xva.IsOVF(a) {
		return verify.Archive(ctx, a, o), ""
	}
	if err := xva.NotArchive(a); err != nil {
		// Not a damaged archive: something else altogether.
		return notArchiveReport(a, err), hint(err)
	}
	if re, _ := xva.Retarred(a); re {
		// One cause, one problem, and the way out; not one problem per
		// member out of place.
		return retarredReport(a), ""
	}
	return verify.Archive(ctx, a, o), ""
}

// notArchiveReport is the report of an input that is not an archive: an
// error, not corruption.
func notArchiveReport(path string, err error) *verify.Report {
	return &verify.Report{SchemaVersion: verify.SchemaVersion, Archive: path, Disks: []verify.DiskReport{},
		Problems: []verify.Problem{}, Notes: []string{}, Error: strings.TrimPrefix(err.Error(), path+" is ")}
}

// retarredNote says what a re-tarred archive is and how to repair it.
func retarredNote(path string) string {
	return fmt.Sprintf("the members are out of order, or with directory entries, as tar -cf of an extracted archive stores them; "+
		"hosts refuse it. 'xva convert %s fixed.xva' writes it in order (every block checked), "+
		"as does 'xva convert DIR fixed.xva' from the extracted directory", path)
}

// retarredReport is the verdict on a re-tarred archive: one problem.
func retarredReport(path string) *verify.Report {
	return &verify.Report{SchemaVersion: verify.SchemaVersion, Archive: path, Disks: []verify.DiskReport{},
		Problems: []verify.Problem{{Kind: verify.Order, Offset: -1, Message: retarredNote(path)}}, Notes: []string{}}
}

// verifyDocument is what verify --json prints.
type verifyDocument struct {
	SchemaVersion int              `json:"schema_version"`
	OK            bool             `json:"ok"`
	Archives      []*verify.Report `json:"archives"`
	Summary       verifySummary    `json:"summary"`
}

// verifySummary counts the verdicts.
type verifySummary struct {
	Archives int     `json:"archives"`
	OK       int     `json:"ok"`
	Corrupt  int     `json:"corrupt"`
	Failed   int     `json:"failed"`
	Seconds  float64 `json:"seconds"`
}

func verifyDoc(reports []*verify.Report, seconds float64) verifyDocument {
	doc := verifyDocument{SchemaVersion: verify.SchemaVersion, OK: true, Archives: reports,
		Summary: verifySummary{Archives: len(reports), Seconds: seconds}}
	for _, r := range reports {
		doc.OK = doc.OK && r.OK
		switch {
		case r.Corrupt():
			doc.Summary.Corrupt++
		case r.Error != "":
			doc.Summary.Failed++
		default:
			doc.Summary.OK++
		}
	}
	return doc
}

func printVerdict(w io.Writer, r *verify.Report, quiet bool) {
	switch {
	case r.Corrupt():
		fmt.Fprintf(w, "CORRUPT  %s: %s\n", printable(r.Archive), plural(len(r.Problems), "problem"))
		for _, p := range r.Problems {
			where := xva.Where(p.Member, p.Disk, p.Offset)
			if where == "" {
				fmt.Fprintf(w, "  %-11s %s\n", p.Kind, printable(xva.PlainMessage(p.Message)))
			} else {
				fmt.Fprintf(w, "  %-11s %s: %s\n", p.Kind, printable(where), printable(xva.PlainMessage(p.Message)))
			}
		}
	case r.Error != "":
		fmt.Fprintf(w, "ERROR    %s: %s\n", printable(r.Archive), printable(xva.PlainMessage(r.Error)))
	case !quiet:
		var size, verified int64
		for _, d := range r.Disks {
			size += d.Size
			verified += d.Verified
		}
		fmt.Fprintf(w, "OK       %s: %s, %s, %s checked (%s of data) in %.1fs\n", printable(r.Archive), r.Format,
			plural(len(r.Disks), "disk"), humanize.IBytes(uint64(size)), humanize.IBytes(uint64(verified)), r.Seconds)
	}
}

// verdictError gives the exit code: 3 if any archive is corrupt, else 1 if
// any could not be read.
func verdictError(reports []*verify.Report) error {
	corrupt, failed := 0, 0
	for _, r := range reports {
		switch {
		case r.Corrupt():
			corrupt++
		case r.Error != "":
			failed++
		}
	}
	switch {
	case corrupt > 0 && failed > 0:
		return silentError{code: exitCorrupt, msg: fmt.Sprintf("%d of %s corrupt, %d could not be read",
			corrupt, plural(len(reports), "archive"), failed)}
	case corrupt > 0:
		return silentError{code: exitCorrupt, msg: fmt.Sprintf("%d of %s corrupt", corrupt, plural(len(reports), "archive"))}
	case failed > 0:
		return silentError{code: exitFailure, msg: fmt.Sprintf("%d of %s could not be read", failed, plural(len(reports), "archive"))}
	}
	return nil
}

package main

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/dustin/go-humanize"
	"github.com/spf13/cobra"

	"github.com/xva-tools/xva"
	"github.com/xva-tools/xva/verify"
)

func newVerifyCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "verify ARCHIVE|PACKAGE.ova...",
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
--json prints one document with a report per archive; its schema is
docs/json/verify.schema.json.`,
		Example: `  # Check an archive before restoring it
  xva verify backup.xva

  # Check many in CI, printing only the failures
  xva verify --quiet exports/*.xva

  # Machine-readable report
  xva verify --json web.xva > report.json`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usagef("verify needs at least one ARCHIVE")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			var reports []*verify.Report
			var hints []string
			for _, a := range args {
				var rep *verify.Report
				if xva.IsOVF(a) {
					rep = verify.Archive(cmd.Context(), a, verify.Options{Jobs: g.jobs, Progress: g.rep})
				} else if err := xva.NotArchive(a); err != nil {
					// Not a damaged archive: something else altogether.
					rep = notArchiveReport(a, err)
					if h := hint(err); h != "" && !slices.Contains(hints, h) {
						hints = append(hints, h)
					}
				} else if re, _ := xva.Retarred(a); re {
					// One cause, one problem, and the way out; not one
					// problem per member out of place.
					rep = retarredReport(a)
				} else {
					rep = verify.Archive(cmd.Context(), a, verify.Options{Jobs: g.jobs, Progress: g.rep})
				}
				g.settle()
				reports = append(reports, rep)
				if !g.json {
					printVerdict(cmd.OutOrStdout(), rep, g.quiet)
				}
			}
			if g.json {
				if err := printJSON(verifyDoc(reports)); err != nil {
					return err
				}
			}
			for _, h := range hints {
				fmt.Fprintln(cmd.ErrOrStderr(), "xva: hint: "+h)
			}
			return verdictError(reports)
		},
	}
	cmd.Flags().BoolVar(&g.json, "json", false, "print the full report as JSON")
	return cmd
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
}

func verifyDoc(reports []*verify.Report) verifyDocument {
	doc := verifyDocument{SchemaVersion: verify.SchemaVersion, OK: true, Archives: reports}
	for _, r := range reports {
		doc.OK = doc.OK && r.OK
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

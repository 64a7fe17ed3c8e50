// Package verify checks an XVA archive of either generation end to end and
// reports every problem it finds, with the member, the disk and the offset.
//
// It imports only the root package: it reads through xva.Reader.
package verify

import (
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/xva-tools/xva"
)

// SchemaVersion is the version of the Report JSON document.
const SchemaVersion = 1

// Kind classifies a problem: the kind of the *xva.CorruptError found.
type Kind = xva.Kind

// Problem kinds.
const (
	Metadata    = xva.KindMetadata
	Truncated   = xva.KindTruncated
	Checksum    = xva.KindChecksum
	Length      = xva.KindLength
	Order       = xva.KindOrder
	Missing     = xva.KindMissing
	Extra       = xva.KindExtra
	Name        = xva.KindName
	Tar         = xva.KindTar
	Compression = xva.KindCompression
	PastEnd     = xva.KindPastEnd
	Import      = xva.KindImport
)

// Problem is one finding. Offset is the disk offset, -1 when none applies.
type Problem struct {
	Kind    Kind   `json:"kind"`
	Member  string `json:"member"`
	Disk    string `json:"disk"`
	Offset  int64  `json:"offset"`
	Message string `json:"message"`
}

// DiskReport says what was checked of one disk.
type DiskReport struct {
	Device   string   `json:"device"`
	ID       string   `json:"id"`
	Size     int64    `json:"size_bytes"`
	Members  int      `json:"members"`        // chunks, or data blocks
	Verified int64    `json:"verified_bytes"` // disk bytes whose checksum was checked and matched
	Checks   []string `json:"checks"`
	OK       bool     `json:"ok"`
}

// Report is the result of checking one archive.
type Report struct {
	SchemaVersion int          `json:"schema_version"`
	Archive       string       `json:"archive"`
	OK            bool         `json:"ok"`
	Format        string       `json:"format"` // legacy, xapi, or "" if ova.xml could not be read
	Form          string       `json:"form"`
	Compression   string       `json:"compression"`
	ExportVsn     int64        `json:"export_vsn"`
	Disks         []DiskReport `json:"disks"`
	Problems      []Problem    `json:"problems"`
	Notes         []string     `json:"notes"`
	Error         string       `json:"error,omitempty"` // an I/O error that stopped the check
	BytesRead     int64        `json:"bytes_read"`
	Seconds       float64      `json:"seconds"`
}

// Corrupt reports whether the check found integrity problems.
func (r *Report) Corrupt() bool { return len(r.Problems) > 0 }

// Options tunes a check.
type Options struct {
	Jobs     int          // workers; 0 means one per core
	Progress xva.Progress // told the disk bytes covered, per disk
}

// Archive checks the archive at path: a file (plain, gzip or zstd), a
// directory, or "-" for standard input. It reads every byte once.
func Archive(ctx context.Context, path string, o Options) *Report {
	if xva.IsOVF(path) {
		return checkOVF(ctx, path, o)
	}
	return check(ctx, path, func(opts ...xva.Option) (*xva.Reader, error) { return xva.OpenReader(path, opts...) }, o)
}

// Stream checks an archive read from r (a download, say), named name in
// the report.
func Stream(ctx context.Context, r io.Reader, name string, o Options) *Report {
	return check(ctx, name, func(opts ...xva.Option) (*xva.Reader, error) { return xva.NewReader(r, opts...) }, o)
}

// check reads the whole archive through an xva.Reader that goes on past
// every problem, collecting them.
func check(ctx context.Context, name string, open func(...xva.Option) (*xva.Reader, error), o Options) *Report {
	start := time.Now()
	rep := &Report{SchemaVersion: SchemaVersion, Archive: name, Disks: []DiskReport{}, Problems: []Problem{}, Notes: []string{}}
	collect := func(e *xva.CorruptError) error {
		rep.Problems = append(rep.Problems, problem(e))
		return nil
	}
	read(ctx, rep, open, o, collect)
	slices.SortStableFunc(rep.Problems, func(a, b Problem) int {
		if c := strings.Compare(a.Disk, b.Disk); c != 0 {
			return c
		}
		return int(min(max(a.Offset-b.Offset, -1), 1))
	})
	rep.OK = rep.Error == "" && len(rep.Problems) == 0
	for i := range rep.Disks {
		d := &rep.Disks[i]
		d.OK = rep.Error == "" && !slices.ContainsFunc(rep.Problems, func(p Problem) bool { return p.Disk == d.Device })
	}
	rep.Seconds = time.Since(start).Seconds()
	return rep
}

func problem(e *xva.CorruptError) Problem {
	return Problem{Kind: e.Kind, Member: e.Member, Disk: e.Disk, Offset: e.Offset, Message: e.Err.Error()}
}

// read fills rep from the archive open gives.
func read(ctx context.Context, rep *Report, open func(...xva.Option) (*xva.Reader, error), o Options, collect func(*xva.CorruptError) error) {
	opts := []xva.Option{xva.WithJobs(o.Jobs), xva.WithOnProblem(collect), xva.WithDiscard(true)}
	if o.Progress != nil {
		opts = append(opts, xva.WithProgress(o.Progress))
	}
	r, err := open(opts...)
	if err != nil {
		stop(rep, err)
		return
	}
	defer r.Close()
	rep.Form, rep.Compression = r.Form(), r.Compression()
	if rep.Compression == "" {
		rep.Compression = "none"
	}
	meta := r.Metadata()
	rep.Format = meta.Generation.String()
	if meta.Export != nil {
		rep.ExportVsn = meta.Export.ExportVersion()
	}
	for _, d := range meta.Disks {
		checks := []string{"names", "order", "size"}
		if meta.Generation == xva.XAPI {
			checks = append(checks, "block-hash")
		} else {
			checks = append(checks, "gzip-crc32", "gzip-isize", "chunk-length")
		}
		rep.Disks = append(rep.Disks, DiskReport{Device: d.Device, ID: d.ID, Size: d.Size, Checks: checks})
	}
	defer func() {
		for i, c := range r.Checked() {
			rep.Disks[i].Members, rep.Disks[i].Verified = c.Members, c.Verified
		}
		rep.Notes = append(rep.Notes, r.Notes()...)
		rep.BytesRead = r.BytesRead()
	}()
	for {
		if err := ctx.Err(); err != nil {
			rep.Error = err.Error()
			return
		}
		_, err := r.Next()
		if err == io.EOF {
			return
		}
		if err != nil {
			stop(rep, err)
			return
		}
	}
}

// stop records err, which ended the check: corruption is a problem of the
// kind it carries, anything else (the medium's errors, cancellation, an
// unsupported archive) the error that stopped the check.
func stop(rep *Report, err error) {
	var ce *xva.CorruptError
	if !errors.As(err, &ce) {
		rep.Error = err.Error()
		return
	}
	rep.Problems = append(rep.Problems, problem(ce))
}

// checkOVF checks an OVF package (an OVA or an .ovf): its manifest's
// digests and each disk's image, read whole.
func checkOVF(ctx context.Context, path string, o Options) *Report {
	start := time.Now()
	rep := &Report{SchemaVersion: SchemaVersion, Archive: path, Format: "ovf", Compression: "none",
		Disks: []DiskReport{}, Problems: []Problem{}, Notes: []string{}}
	opts := []xva.Option{xva.WithJobs(o.Jobs)}
	if o.Progress != nil {
		opts = append(opts, xva.WithProgress(o.Progress))
	}
	res, err := xva.CheckOVF(ctx, path, func(e *xva.CorruptError) { rep.Problems = append(rep.Problems, problem(e)) }, opts...)
	if err != nil {
		stop(rep, err)
	} else {
		rep.Form, rep.Notes, rep.BytesRead = res.Form, append(rep.Notes, res.Notes...), res.BytesRead
		for _, d := range res.Disks {
			rep.Disks = append(rep.Disks, DiskReport{Device: d.Device, ID: d.ID, Size: d.Size, Members: d.Members,
				Verified: d.Verified, Checks: d.Checks})
		}
	}
	rep.OK = rep.Error == "" && len(rep.Problems) == 0
	for i := range rep.Disks {
		d := &rep.Disks[i]
		d.OK = rep.Error == "" && !slices.ContainsFunc(rep.Problems, func(p Problem) bool { return p.Disk == d.Device })
	}
	rep.Seconds = time.Since(start).Seconds()
	return rep
}

// Package verify checks an XVA archive of either generation end to end and
// reports every problem it finds, with the member, the disk and the offset.
package verify

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/xva-tools/xva"
	"github.com/xva-tools/xva/chunk"
	"github.com/xva-tools/xva/internal/pipeline"
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
	return check(ctx, path, o, func() (*xva.Reader, error) { return xva.OpenReader(path, xva.WithJobs(o.Jobs)) })
}

// Stream checks an archive read from r (a download, say), named name in
// the report.
func Stream(ctx context.Context, r io.Reader, name string, o Options) *Report {
	return check(ctx, name, o, func() (*xva.Reader, error) { return xva.OpenReaderFrom(r, xva.WithJobs(o.Jobs)) })
}

func check(ctx context.Context, name string, o Options, open func() (*xva.Reader, error)) *Report {
	start := time.Now()
	rep := &Report{SchemaVersion: SchemaVersion, Archive: name, Disks: []DiskReport{}, Problems: []Problem{}, Notes: []string{}}
	c := &checker{rep: rep, opts: o, jobs: pipeline.Jobs(o.Jobs), disks: map[string]*diskState{}, firstLen: -1}
	if c.opts.Progress == nil {
		c.opts.Progress = nopProgress{}
	}
	c.run(ctx, open)
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

// checker holds the state of one check.
type checker struct {
	rep   *Report
	opts  Options
	jobs  int
	mu    sync.Mutex // guards rep.Problems and diskState.verified
	meta  *xva.Metadata
	disks map[string]*diskState // by disk ID
	cur   *diskState
	last  string // ID of the last disk whose members came
	work  *errgroup.Group
	ctx   context.Context
	xapi  bool
	// firstLen is the size of the archive's first data member, -1 before
	// it: xapi sizes every gap by it (see layout).
	firstLen int64
	dir      bool // the archive is a directory: member order means nothing
	random   bool // members can be read independently, by workers
}

// diskState follows one disk's members.
type diskState struct {
	d        *xva.Disk
	rep      *DiskReport
	legacy   *chunk.LegacySeq
	blocks   *chunk.BlockSeq
	started  bool
	finished bool
	pending  *pendingBlock // xapi data member awaiting its checksum
	covered  int64         // disk bytes reached, for progress
	verified int64
}

type pendingBlock struct {
	name string
	off  int64
	data []byte                        // read already (a stream)
	open func() (io.ReadCloser, error) // or read by the worker (a tar file)
	size int64
}

// load returns the block's data, reading it if it was left for a worker.
func (p *pendingBlock) load() ([]byte, error) {
	if p.open == nil {
		return p.data, nil
	}
	rc, err := p.open()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	data := getBlock(p.size)
	if _, err := io.ReadFull(rc, data); err != nil {
		putBlock(data)
		if errors.Is(err, io.ErrUnexpectedEOF) || err == io.EOF {
			return nil, &xva.CorruptError{Kind: Truncated, Member: p.name, Offset: p.off, Err: errors.New("member truncated")}
		}
		return nil, err
	}
	return data, nil
}

func (c *checker) problem(kind Kind, member, disk string, off int64, format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rep.Problems = append(c.rep.Problems, Problem{Kind: kind, Member: member, Disk: disk, Offset: off, Message: fmt.Sprintf(format, args...)})
}

func (c *checker) run(ctx context.Context, open func() (*xva.Reader, error)) {
	r, err := open()
	if err != nil {
		c.stop("", err)
		return
	}
	defer r.Close()
	c.rep.Form, c.rep.Compression = r.Form(), r.Compression()
	if c.rep.Compression == "" {
		c.rep.Compression = "none"
	}
	c.dir = r.Form() == "directory"
	c.random = r.Random()
	if !c.readMetadata(r) {
		return
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(2 * c.jobs)
	c.work, c.ctx = g, gctx
	ok := c.members(r)
	if err := g.Wait(); err != nil && c.rep.Error == "" {
		c.rep.Error = err.Error()
	}
	if c.rep.Error != "" {
		return
	}
	// Even when corruption stopped the reading, say what was not there.
	c.finishAll()
	if !ok {
		return
	}
	if sawEnd, strays := r.TarEnd(); !sawEnd {
		c.problem(Truncated, "", "", -1, "the archive ends without the two zero blocks that close a tar")
	} else if strays > 0 {
		c.rep.Notes = append(c.rep.Notes, fmt.Sprintf("%d stray zero blocks between tar headers (xapi tolerates them)", strays))
	}
}

// stop records err, which ended the check: corruption is a problem of the
// kind it carries, anything else (the medium's errors, cancellation, an
// unsupported archive) the error that stopped the check.
func (c *checker) stop(member string, err error) {
	var ce *xva.CorruptError
	if !errors.As(err, &ce) {
		c.rep.Error = err.Error()
		return
	}
	m := ce.Member
	if m == "" {
		m = member
	}
	c.problem(ce.Kind, m, ce.Disk, -1, "%s", ce.Err.Error())
}

// readMetadata checks that ova.xml comes first and parses.
func (c *checker) readMetadata(r *xva.Reader) bool {
	m, err := r.Next()
	if err == io.EOF {
		c.problem(Metadata, "ova.xml", "", -1, "the archive is empty")
		return false
	}
	if err != nil {
		c.stop("ova.xml", err)
		return false
	}
	if m.Name != "ova.xml" || m.Dir {
		c.problem(Metadata, m.Raw, "", -1, "the first member must be ova.xml")
		return false
	}
	if m.Raw != "ova.xml" {
		c.problem(Tar, m.Raw, "", -1, "xapi's importer wants the first member named exactly ova.xml")
	}
	doc, err := readAll(m, 32<<20)
	if err != nil {
		c.stop("ova.xml", err)
		return false
	}
	c.rep.BytesRead += int64(len(doc))
	meta, err := xva.ParseMetadata(doc)
	if err != nil {
		c.problem(Metadata, "ova.xml", "", -1, "%v", err)
		return false
	}
	c.meta = meta
	c.xapi = meta.Generation == xva.XAPI
	c.rep.Format = meta.Generation.String()
	if meta.Export != nil {
		c.rep.ExportVsn = meta.Export.ExportVersion()
		for _, p := range meta.Export.ImportProblems() {
			c.problem(Import, "ova.xml", "", -1, "%s", p)
		}
	}
	for i := range meta.Disks {
		d := &meta.Disks[i]
		checks := []string{"names", "order", "size"}
		if c.xapi {
			checks = append(checks, "block-hash")
		} else {
			checks = append(checks, "gzip-crc32", "gzip-isize", "chunk-length")
		}
		c.rep.Disks = append(c.rep.Disks, DiskReport{Device: d.Device, ID: d.ID, Size: d.Size, Checks: checks})
	}
	for i := range meta.Disks {
		d := &meta.Disks[i]
		st := &diskState{d: d, rep: &c.rep.Disks[i]}
		if c.xapi {
			st.blocks = chunk.NewBlockSeq(d.ID, d.Size)
		} else {
			st.legacy = chunk.NewLegacySeq(d.ID, d.Size)
		}
		c.disks[d.ID] = st
	}
	return true
}

func readAll(m *xva.Member, limit int64) ([]byte, error) {
	if m.Size > limit {
		return nil, &xva.CorruptError{Kind: Metadata, Member: m.Name, Offset: -1, Err: fmt.Errorf("%d bytes, more than the %d allowed", m.Size, limit)}
	}
	b := make([]byte, m.Size)
	if _, err := io.ReadFull(m.R, b); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || err == io.EOF {
			return nil, &xva.CorruptError{Kind: Truncated, Member: m.Name, Offset: -1, Err: errors.New("member truncated")}
		}
		return nil, err
	}
	return b, nil
}

// members checks every member after ova.xml. It returns false when the
// archive could not be read to its end.
func (c *checker) members(r *xva.Reader) bool {
	seen := map[string]bool{}
	for {
		if err := c.ctx.Err(); err != nil {
			c.rep.Error = err.Error()
			return false
		}
		m, err := r.Next()
		if err == io.EOF {
			return true
		}
		if err != nil {
			c.stop("", err)
			return false
		}
		if m.Dir {
			if c.xapi {
				c.problem(Tar, m.Raw, "", -1, "a directory entry; xapi's importer refuses it (\"Invalid XVA file\")")
			}
			continue
		}
		if seen[m.Name] {
			c.problem(Extra, m.Name, "", -1, "a second member with this name")
		}
		seen[m.Name] = true
		if err := c.member(m); err != nil {
			c.stop(m.Name, err)
			return false
		}
	}
}

// member checks one member: its place among its disk's members, then its
// data.
func (c *checker) member(m *xva.Member) error {
	d := c.meta.DiskOf(m.Name)
	if d == nil {
		if c.xapi && c.rep.ExportVsn == 1 && c.allStarted() {
			c.rep.Notes = append(c.rep.Notes, fmt.Sprintf("%s taken for the export_vsn 1 checksum table", m.Name))
		} else {
			c.problem(Extra, m.Name, "", -1, "the member belongs to no disk of ova.xml")
		}
		return c.discard(m)
	}
	st := c.disks[d.ID]
	if st != c.cur {
		c.switchDisk(st, m.Name)
	}
	c.rep.BytesRead += m.Size
	c.opts.Progress.Stored(m.Size)
	if c.xapi {
		return c.block(st, m)
	}
	return c.chunk(st, m)
}

func (c *checker) allStarted() bool {
	for _, st := range c.disks {
		if !st.started {
			return false
		}
	}
	return true
}

func (c *checker) discard(m *xva.Member) error {
	n, err := io.Copy(io.Discard, m.R)
	c.rep.BytesRead += n
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return &xva.CorruptError{Kind: Truncated, Member: m.Name, Offset: -1, Err: errors.New("member truncated")}
	}
	return err
}

// switchDisk moves on to st, whose members begin with member.
func (c *checker) switchDisk(st *diskState, member string) {
	if c.cur != nil {
		c.finish(c.cur)
	}
	switch {
	case st.started:
		c.problem(Order, member, st.d.Device, -1, "members of this disk resume after another disk's members")
	case !c.dir && c.last != "" && st.d.ID < c.last:
		c.problem(Order, member, st.d.Device, -1, "disk %s comes after disk %s; importers read disks in lexicographic order of their ids", st.d.ID, c.last)
	}
	if st.d.ID > c.last {
		c.last = st.d.ID
	}
	if !st.started {
		c.opts.Progress.StartDisk(st.d.Device, st.d.Size)
	}
	st.started = true
	c.cur = st
}

// finish checks that a disk's members reached its end.
func (c *checker) finish(st *diskState) {
	if st.finished {
		return
	}
	st.finished = true
	var err error
	if st.blocks != nil {
		if st.pending != nil {
			c.problem(Order, st.pending.name, st.d.Device, st.pending.off, "%v", chunk.ErrNoChecksum)
			st.pending = nil
		}
		err = st.blocks.End()
	} else {
		err = st.legacy.End()
	}
	if err != nil {
		c.memberProblem(st, err)
	}
	c.opts.Progress.Advance(st.d.Size - st.covered)
	c.opts.Progress.EndDisk()
}

func (c *checker) finishAll() {
	if c.cur != nil {
		c.finish(c.cur)
	}
	for i := range c.meta.Disks {
		st := c.disks[c.meta.Disks[i].ID]
		if !st.started && st.d.Size > 0 {
			c.problem(Missing, "", st.d.Device, 0, "the archive holds no data for this %d-byte disk (members %s/…)", st.d.Size, st.d.ID)
		}
	}
	for _, st := range c.disks {
		st.rep.Verified = st.verified
	}
}

// memberProblem records a codec error under the right kind.
func (c *checker) memberProblem(st *diskState, err error) {
	var me *chunk.MemberError
	member, off := "", int64(-1)
	if errors.As(err, &me) {
		member, off, err = me.Member, me.Offset, me.Err
	}
	c.problem(kindOf(err), member, st.d.Device, off, "%v", err)
}

func kindOf(err error) Kind {
	switch {
	case errors.Is(err, chunk.ErrChecksum), errors.Is(err, chunk.ErrHashMismatch):
		return Checksum
	case errors.Is(err, chunk.ErrLength), errors.Is(err, chunk.ErrTooLong), errors.Is(err, chunk.ErrTooShort):
		return Length
	case errors.Is(err, chunk.ErrChunkMissing), errors.Is(err, chunk.ErrMissingBlocks):
		return Missing
	case errors.Is(err, chunk.ErrChunkOrder), errors.Is(err, chunk.ErrBlockOrder), errors.Is(err, chunk.ErrNoChecksum):
		return Order
	case errors.Is(err, chunk.ErrChunkPastEnd), errors.Is(err, chunk.ErrPastEnd):
		return PastEnd
	case errors.Is(err, chunk.ErrBlockName), errors.Is(err, chunk.ErrBlockTooLarge):
		return Name
	case errors.Is(err, io.ErrUnexpectedEOF):
		return Truncated
	}
	return Compression
}

// chunk checks a legacy chunk: its place, then its gzip data, in parallel
// with other chunks when the archive can be read at random.
func (c *checker) chunk(st *diskState, m *xva.Member) error {
	st.rep.Members++
	start, want, err := st.legacy.Add(m.Name)
	if err != nil {
		c.memberProblem(st, err)
		want = -1 // its place is wrong: check its gzip integrity alone
	}
	c.opts.Progress.Advance(max(start+max(want, 0)-st.covered, 0))
	st.covered = max(st.covered, start+max(want, 0))
	check := func(r io.Reader) error {
		n, err := chunk.ReadGzipChunk(c.ctx, r, want, func(int64, []byte) error { return nil }, chunk.GzipOptions{Jobs: c.jobs})
		switch {
		case xva.IsIOError(err) || c.ctx.Err() != nil:
			return err
		case err != nil:
			c.memberProblem(st, &chunk.MemberError{Member: m.Name, Offset: start, Err: err})
		default:
			c.mu.Lock()
			st.verified += n
			c.mu.Unlock()
		}
		return nil
	}
	if rc, err := m.Open(); err == nil {
		c.work.Go(func() error {
			defer rc.Close()
			return check(rc)
		})
		return nil
	}
	return check(m.R)
}

// block checks an xapi member: a data member is held until its checksum
// member comes; then the hash is checked on a worker.
func (c *checker) block(st *diskState, m *xva.Member) error {
	if chunk.IsChecksumName(m.Name) && st.pending != nil {
		p := st.pending
		st.pending = nil
		kind, err := st.blocks.Checksum(m.Name)
		if err != nil {
			c.memberProblem(st, err)
			return c.discard(m)
		}
		text, err := chunk.ReadHash(chunk.Member{Name: m.Name, Size: m.Size, R: m.R}, p.off)
		if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
			c.memberProblem(st, err)
			return c.discard(m)
		}
		if err != nil {
			return unwrapTruncation(err)
		}
		name := m.Name
		c.work.Go(func() error {
			data, err := p.load()
			if err != nil {
				if xva.IsCorrupt(err) {
					c.stop(p.name, err)
					return nil
				}
				return err
			}
			defer putBlock(data)
			if bad := chunk.CheckHash(name, p.off, kind, data, text); bad != nil {
				c.memberProblem(st, bad)
			} else {
				c.mu.Lock()
				st.verified += int64(len(data))
				c.mu.Unlock()
			}
			return nil
		})
		return nil
	}
	if st.pending != nil {
		c.problem(Order, st.pending.name, st.d.Device, st.pending.off, "%v", chunk.ErrNoChecksum)
		st.pending = nil
	}
	if chunk.IsChecksumName(m.Name) {
		c.problem(Order, m.Name, st.d.Device, st.blocks.Pos(), "a checksum member with no block before it")
		return c.discard(m)
	}
	st.rep.Members++
	before := st.blocks.Pos()
	off, err := st.blocks.Data(m.Name, m.Size)
	if err != nil {
		c.memberProblem(st, err)
	} else {
		c.layout(st, m, before, off)
	}
	c.opts.Progress.Advance(max(st.blocks.Pos()-st.covered, 0))
	st.covered = max(st.covered, st.blocks.Pos())
	if m.Size > 64<<20 {
		return c.discard(m)
	}
	if c.random {
		// A worker reads it, in parallel with the others.
		st.pending = &pendingBlock{name: m.Name, off: off, open: m.Open, size: m.Size}
		return nil
	}
	data := getBlock(m.Size)
	if _, err := io.ReadFull(m.R, data); err != nil {
		putBlock(data)
		if errors.Is(err, io.ErrUnexpectedEOF) || err == io.EOF {
			return &xva.CorruptError{Kind: Truncated, Member: m.Name, Offset: off, Err: errors.New("member truncated")}
		}
		return err
	}
	st.pending = &pendingBlock{name: m.Name, off: off, data: data}
	return nil
}

// layout reports what xapi's importer would get wrong in a data member
// that xva reads correctly (chunk.XapiMisreads).
func (c *checker) layout(st *diskState, m *xva.Member, before, off int64) {
	if c.firstLen < 0 {
		c.firstLen = m.Size
	}
	for _, msg := range chunk.XapiMisreads(c.firstLen, off-before, off, m.Size) {
		c.problem(Import, m.Name, st.d.Device, off, "%s", msg)
	}
}

func unwrapTruncation(err error) error {
	var me *chunk.MemberError
	if errors.As(err, &me) && errors.Is(err, io.ErrUnexpectedEOF) {
		return &xva.CorruptError{Kind: Truncated, Member: me.Member, Offset: me.Offset, Err: errors.New("member truncated")}
	}
	return err
}

// Block buffers are reused: allocating and zeroing a fresh MiB per block
// cost a fifth of a check's time.
var blocks = sync.Pool{New: func() any { b := make([]byte, chunk.BlockSize); return &b }}

func getBlock(n int64) []byte {
	if n > chunk.BlockSize {
		return make([]byte, n)
	}
	return (*blocks.Get().(*[]byte))[:n]
}

func putBlock(b []byte) {
	if cap(b) == chunk.BlockSize {
		b = b[:cap(b)]
		blocks.Put(&b)
	}
}

type nopProgress struct{}

func (nopProgress) StartDisk(string, int64) {}
func (nopProgress) Advance(int64)           {}
func (nopProgress) Stored(int64)            {}
func (nopProgress) EndDisk()                {}

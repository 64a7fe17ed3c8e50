package xva

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sync/errgroup"

	"github.com/xva-tools/xva/chunk"
	"github.com/xva-tools/xva/internal/pipeline"
)

// archive is an open archive being read front to back, disk by disk: the
// one walker of archives, under Unpack, Convert, Info and Reader (and so
// verify). It checks every rule of the format as it goes. A problem that
// keeps it from reading the archive correctly is the error, unless
// opts.onProblem is set and lets it go on; a problem it reads past
// correctly but a host's importer would not (strict: kind import, xapi's
// order rules, a directory entry) is only told to opts.onProblem.
type archive struct {
	meta *Metadata
	c    container // the archive's container, as opened
	p    *peeker   // its members, directory entries left out
	seen map[string]bool
	opts *options
	// stored, if set, is told the archive bytes read.
	stored  func(int64)
	rawSeen atomic.Int64 // compressed bytes already reported

	mu       sync.Mutex // serialises onProblem, and guards checks
	names    map[string]bool
	lastDisk string // the greatest disk ID whose members came
	firstLen int64  // size of the archive's first data member, -1 before it
	checks   map[string]*DiskCheck
	notes    []string
	read     atomic.Int64 // member bytes taken, ova.xml included
	ended    bool
	// unread is set when reading stopped for another reason than
	// corruption (the medium, cancellation): a checker is then told no
	// more, since what was not read is not missing.
	unread atomic.Bool
}

// openArchive opens path and reads its ova.xml.
func openArchive(path string, o *options) (*archive, error) {
	c, err := openContainer(path, o.jobs)
	if err != nil {
		return nil, err
	}
	return newArchive(c, path, o)
}

// newArchive reads the ova.xml of the archive in c, found at path ("-"
// for a stream).
func newArchive(c container, path string, o *options) (*archive, error) {
	sd := &skipDirs{container: c}
	p := &peeker{c: sd}
	first, _ := p.peek()
	doc, err := readOVA(p, path)
	if err != nil {
		c.close()
		return nil, err
	}
	meta, err := ParseMetadata(doc)
	if err != nil {
		c.close()
		if errors.Is(err, ErrUnsupported) {
			return nil, err
		}
		return nil, &CorruptError{Kind: KindMetadata, Member: "ova.xml", Offset: -1, Err: err}
	}
	a := &archive{meta: meta, c: c, p: p, seen: map[string]bool{}, opts: o, stored: o.progress.Stored,
		names: map[string]bool{}, firstLen: -1, checks: map[string]*DiskCheck{}}
	a.read.Add(int64(len(doc)))
	for i := range meta.Disks {
		a.checks[meta.Disks[i].ID] = &DiskCheck{Disk: &meta.Disks[i]}
	}
	if err := a.strictMetadata(first); err != nil {
		c.close()
		return nil, err
	}
	sd.onDir = func(m *member) error {
		if meta.Generation != XAPI {
			return nil
		}
		return a.strict(corrupt(KindTar, m.raw, "", -1, "a directory entry; xapi's importer refuses it (\"Invalid XVA file\")"))
	}
	if tf, ok := c.(*tarFileContainer); ok && o.onProblem == nil && (meta.Generation == Legacy || tf.madeByTar()) {
		// tar(1) stores a directory's files in readdir order: a tar file
		// made from an extracted archive has its members out of order,
		// which a file, unlike a stream, can be read past. An xapi archive
		// without tar(1)'s marks keeps its order, whose faults are its own.
		// A checker (onProblem) sees the archive as it is.
		tf.sortByName()
		if tf.reordered {
			o.log.Debug("members out of order; reading them in name order", "path", path)
		}
	}
	o.log.Debug("archive opened", "path", path, "form", c.form(), "format", meta.Generation.String(),
		"disks", len(meta.Disks), "ova_xml_bytes", len(doc))
	return a, nil
}

// strictMetadata tells onProblem what a host would refuse in ova.xml: a
// first member not named exactly so, and the records' import problems.
func (a *archive) strictMetadata(first *member) error {
	if first != nil && first.raw != "ova.xml" {
		if err := a.strict(corrupt(KindTar, first.raw, "", -1, "xapi's importer wants the first member named exactly ova.xml")); err != nil {
			return err
		}
	}
	if a.meta.Export == nil {
		return nil
	}
	for _, p := range a.meta.Export.ImportProblems() {
		if err := a.strict(corrupt(KindImport, "ova.xml", "", -1, "%s", p)); err != nil {
			return err
		}
	}
	return nil
}

// fail is told of a problem that keeps the archive from being read
// correctly: without onProblem it is the error; with it, onProblem
// decides (nil: go on past it).
func (a *archive) fail(err error) error {
	var ce *CorruptError
	if a.opts.onProblem == nil || !errors.As(err, &ce) {
		return err
	}
	if a.unread.Load() {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.opts.onProblem(ce)
}

// strict is told of what a host's importer refuses or misreads but xva
// reads correctly: only onProblem hears of it.
func (a *archive) strict(err error) error {
	if a.opts.onProblem == nil {
		return nil
	}
	return a.fail(err)
}

func (a *archive) close() error { return a.c.close() }

// nextDisk returns the disk whose members come next, or, once the members
// are used up, a declared disk that had none (a problem unless it is
// empty). It returns io.EOF when every disk has been returned.
func (a *archive) nextDisk() (*Disk, error) {
	for {
		d, err := a.peekDisk()
		if err != nil || d != nil {
			return d, err
		}
	}
}

// peekDisk is one step of nextDisk: nil, nil when it passed over a member
// that belongs to no disk.
func (a *archive) peekDisk() (*Disk, error) {
	m, err := a.p.peek()
	if err == io.EOF {
		for i := range a.meta.Disks {
			d := &a.meta.Disks[i]
			if a.seen[d.ID] {
				continue
			}
			a.seen[d.ID] = true
			if d.Size == 0 {
				return d, nil
			}
			if err := a.fail(corrupt(KindMissing, "", d.Device, 0, "the archive holds no data for this %d-byte disk (members %s/…)", d.Size, d.ID)); err != nil {
				return nil, err
			}
		}
		return nil, a.end()
	}
	if err != nil {
		return nil, err
	}
	d := a.meta.diskOf(m.name)
	if d != nil {
		// An empty xapi disk has no members; it takes its place in the
		// order before the disk whose members come next.
		for i := range a.meta.Disks {
			e := &a.meta.Disks[i]
			if e.ID < d.ID && e.Size == 0 && !a.seen[e.ID] {
				a.seen[e.ID] = true
				return e, nil
			}
		}
	}
	if d == nil && a.trailingTable() {
		// export_vsn 1: the checksum table after the last disk
		a.notes = append(a.notes, fmt.Sprintf("%s taken for the export_vsn 1 checksum table", m.name))
		return nil, a.skip()
	}
	if d == nil {
		if err := a.fail(corrupt(KindExtra, m.name, "", -1, "the member belongs to no disk of ova.xml")); err != nil {
			return nil, err
		}
		return nil, a.skip()
	}
	if a.seen[d.ID] {
		if err := a.fail(corrupt(KindOrder, m.name, d.Device, -1, "members of this disk resume after another disk's members")); err != nil {
			return nil, err
		}
		return nil, a.skip()
	}
	if a.c.form() != "directory" && a.lastDisk != "" && d.ID < a.lastDisk {
		err := corrupt(KindOrder, m.name, d.Device, -1, "disk %s comes after disk %s; importers read disks in lexicographic order of their ids", d.ID, a.lastDisk)
		if err := a.strict(err); err != nil {
			return nil, err
		}
	}
	a.lastDisk = max(a.lastDisk, d.ID)
	a.seen[d.ID] = true
	return d, nil
}

// abandon tells onProblem, when reading stopped at err, of the disks that
// had not come yet: what could not be read is missing.
func (a *archive) abandon() {
	if a.opts.onProblem == nil {
		return
	}
	for i := range a.meta.Disks {
		d := &a.meta.Disks[i]
		if !a.seen[d.ID] && d.Size > 0 {
			a.seen[d.ID] = true
			a.fail(corrupt(KindMissing, "", d.Device, 0, "the archive holds no data for this %d-byte disk (members %s/…)", d.Size, d.ID))
		}
	}
}

// skip reads past the member that comes next, which no disk takes.
func (a *archive) skip() error {
	m, err := a.p.next()
	if err != nil {
		return err
	}
	if err := a.take(m); err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, a.counted(m.r))
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return corrupt(KindTruncated, m.name, "", -1, "member truncated")
	}
	return err
}

// take counts a member taken, and tells onProblem of a second one of the
// same name.
func (a *archive) take(m *member) error {
	a.read.Add(m.size)
	if a.names[m.name] {
		if err := a.strict(corrupt(KindExtra, m.name, "", -1, "a second member with this name")); err != nil {
			return err
		}
	}
	a.names[m.name] = true
	return nil
}

// end checks, once the members are used up, how a tar archive ended: the
// two zero blocks that close it (which xapi's importer needs), and stray
// single zero blocks between headers (which it tolerates). It returns io.EOF.
func (a *archive) end() error {
	if a.ended {
		return io.EOF
	}
	a.ended = true
	sawEnd, strays := true, 0
	switch c := a.c.(type) {
	case *tarContainer:
		sawEnd, strays = c.tr.SawEnd(), c.tr.StrayZeroBlocks()
	case *tarFileContainer:
		sawEnd, strays = c.sawEnd, c.strays
	}
	if !sawEnd {
		if err := a.strict(corrupt(KindTruncated, "", "", -1, "the archive ends without the two zero blocks that close a tar")); err != nil {
			return err
		}
	} else if strays > 0 {
		a.notes = append(a.notes, fmt.Sprintf("%d stray zero blocks between tar headers (xapi tolerates them)", strays))
	}
	return io.EOF
}

// trailingTable reports whether the member that comes next may be the
// end-of-archive checksum table of an export_vsn 1 archive: every disk has
// been read. Its content is not needed, since every block carries its own
// hash.
func (a *archive) trailingTable() bool {
	if a.meta.Export == nil || a.meta.Export.ExportVersion() != 1 {
		return false
	}
	for _, d := range a.meta.Disks {
		if !a.seen[d.ID] {
			return false
		}
	}
	return true
}

// decode decodes disk d, handing its data to emit in increasing order.
func (a *archive) decode(ctx context.Context, d *Disk, emit chunk.Emit) error {
	if a.meta.Generation == XAPI {
		_, err := a.decodeXapi(ctx, d, emit)
		return err
	}
	return a.decodeLegacy(ctx, d, emit)
}

// DiskCheck says what reading an archive checked of one disk.
type DiskCheck struct {
	Disk     *Disk
	Members  int   // chunks, or xapi data blocks
	Verified int64 // disk bytes whose checksum was checked and matched
}

func (a *archive) check(d *Disk, members int, verified int64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	c := a.checks[d.ID]
	c.Members += members
	c.Verified += verified
}

// memberProblem makes a problem of a *chunk.MemberError of disk d.
func memberProblem(me *chunk.MemberError, d *Disk) error {
	kind := chunkKind(me.Err)
	if kind == "" {
		return me.Err
	}
	return &CorruptError{Kind: kind, Member: me.Member, Disk: d.Device, Offset: me.Offset, Err: me.Err}
}

// decodeXapi checks and decodes d's hashed blocks.
func (a *archive) decodeXapi(ctx context.Context, d *Disk, emit chunk.Emit) (chunk.BlockStats, error) {
	members := func(yield func(chunk.Member, error) bool) {
		for m, err := range a.members(d) {
			if err != nil {
				yield(chunk.Member{}, err)
				return
			}
			if !yield(chunk.Member{Name: m.name, Size: m.size, R: m.r}, nil) {
				return
			}
		}
	}
	o := chunk.BlockOptions{Jobs: a.opts.jobs, Progress: a.opts.progress.Advance, OnBadBlock: a.opts.onBadBlock}
	if a.opts.onProblem != nil {
		o.OnProblem = func(me *chunk.MemberError) error { return a.fail(memberProblem(me, d)) }
		o.OnData = func(name string, before, off, size int64) { a.layout(d, name, before, off, size) }
	}
	st, err := chunk.ReadBlocks(ctx, members, d.ID, d.Size, func(off int64, p []byte) error {
		if err := emit(off, p); err != nil {
			return writeError{err}
		}
		return nil
	}, o)
	a.check(d, st.Blocks, st.Verified)
	if err != nil {
		return st, classify(ctx, err, "", d.Device, -1)
	}
	return st, nil
}

// layout tells onProblem what xapi's importer would get wrong in a data
// member that xva reads correctly (chunk.XapiMisreads).
func (a *archive) layout(d *Disk, name string, before, off, size int64) {
	if a.firstLen < 0 {
		a.firstLen = size
	}
	for _, msg := range chunk.XapiMisreads(a.firstLen, off-before, off, size) {
		a.strict(corrupt(KindImport, name, d.Device, off, "%s", msg))
	}
}

// members yields the members of d that come next in the archive.
func (a *archive) members(d *Disk) iter.Seq2[*member, error] {
	return func(yield func(*member, error) bool) {
		for {
			m, err := a.p.peek()
			if err == io.EOF {
				return
			}
			if err != nil {
				a.unread.Store(!IsCorrupt(err))
				yield(nil, err)
				return
			}
			if a.meta.diskOf(m.name) != d {
				return
			}
			a.p.next()
			if err := a.take(m); err != nil {
				yield(nil, err)
				return
			}
			m.r = a.counted(m.r)
			if !yield(m, nil) {
				return
			}
		}
	}
}

// counted reports what is read from r to a.stored.
//
// For an archive compressed as a whole, the archive's bytes are the
// compressed ones: what was read of those since the last report is
// reported instead of the member's bytes.
func (a *archive) counted(r io.Reader) io.Reader {
	if a.stored == nil {
		return r
	}
	if tc, ok := a.c.(*tarContainer); ok && tc.raw != nil {
		return countingReader{r, func(int64) {
			n := tc.raw.Load()
			a.stored(n - a.rawSeen.Swap(n))
		}}
	}
	return countingReader{r, a.stored}
}

type countingReader struct {
	r     io.Reader
	count func(int64)
}

func (c countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if n > 0 {
		c.count(int64(n))
	}
	return n, err
}

// writeError marks an error returned by the consumer of decoded data (a
// sink), which is never corruption of the archive.
type writeError struct{ err error }

func (e writeError) Error() string { return e.err.Error() }
func (e writeError) Unwrap() error { return e.err }

// decodeLegacy inflates d's chunks and hands the data to emit at disk
// offsets, in increasing order. A chunk out of its place (with
// onProblem) is still inflated and checked, its data going nowhere.
func (a *archive) decodeLegacy(ctx context.Context, d *Disk, emit chunk.Emit) error {
	plan := chunk.NewLegacySeq(d.ID, d.Size)
	for m, err := range a.members(d) {
		if err != nil {
			// A checker is still told where the disk stopped.
			a.strict(classify(ctx, plan.End(), "", d.Device, -1))
			return err
		}
		a.check(d, 1, 0)
		start, want, err := plan.Add(m.name)
		to := emit
		if err != nil {
			if err := a.fail(classify(ctx, err, m.name, d.Device, start)); err != nil {
				return err
			}
			want, to = -1, func(int64, []byte) error { return nil }
		}
		if err := a.fail(a.decodeChunk(ctx, d, m.name, m.r, start, want, a.opts.jobs, to)); err != nil {
			return err
		}
	}
	return a.fail(classify(ctx, plan.End(), "", d.Device, -1))
}

// decodeLegacyConcurrent is decodeLegacy for archives whose members can be
// opened independently: all names are checked first, then up to jobs chunks
// are inflated at once, each on jobs/chunks cores, so that the work is
// jobs workers whatever the number of chunks. emit is called concurrently
// and out of order.
func (a *archive) decodeLegacyConcurrent(ctx context.Context, d *Disk, emit chunk.Emit) error {
	type planned struct {
		m           *member
		start, want int64
	}
	plan := chunk.NewLegacySeq(d.ID, d.Size)
	var chunks []planned
	for m, err := range a.members(d) {
		if err != nil {
			a.strict(classify(ctx, plan.End(), "", d.Device, -1))
			return err
		}
		if m.open == nil {
			return fmt.Errorf("xva: member %s cannot be opened on its own", m.name)
		}
		a.check(d, 1, 0)
		start, want, err := plan.Add(m.name)
		if err != nil {
			if err := a.fail(classify(ctx, err, m.name, d.Device, start)); err != nil {
				return err
			}
			want = -1 // out of its place: its gzip integrity alone is checked
		}
		chunks = append(chunks, planned{m, start, want})
	}
	if err := a.fail(classify(ctx, plan.End(), "", d.Device, -1)); err != nil {
		return err
	}
	jobs := pipeline.Jobs(a.opts.jobs)
	workers := min(jobs, len(chunks))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(workers, 1))
	for _, c := range chunks {
		g.Go(func() error {
			r, err := c.m.open()
			if err != nil {
				return err
			}
			defer r.Close()
			to := emit
			if c.want < 0 {
				to = func(int64, []byte) error { return nil }
			}
			// Each chunk inflates its pieces on jobs/workers cores.
			return a.fail(a.decodeChunk(gctx, d, c.m.name, a.counted(r), c.start, c.want, max(jobs/workers, 1), to))
		})
	}
	return g.Wait()
}

// decodeChunk inflates one chunk placed at start; want -1 checks its gzip
// integrity alone.
func (a *archive) decodeChunk(ctx context.Context, d *Disk, name string, r io.Reader, start, want int64, jobs int, emit chunk.Emit) error {
	gz := chunk.GzipOptions{Jobs: jobs, Progress: a.opts.progress.Advance, Discard: a.opts.discard || want < 0}
	if want < 0 {
		gz.Progress = nil
	}
	n, err := chunk.ReadGzipChunk(ctx, r, want, func(off int64, p []byte) error {
		if err := emit(start+off, p); err != nil {
			return writeError{err}
		}
		return nil
	}, gz)
	if err != nil {
		return classify(ctx, err, name, d.Device, start)
	}
	a.check(d, 0, n)
	return nil
}

// classify turns a decoder error into the error the caller sees: the
// medium's and the sink's errors and cancellation pass through; the
// decoders' own are corruption of member, or of the member a
// *chunk.MemberError names, of the kind their sentinel says.
func classify(ctx context.Context, err error, member, device string, off int64) error {
	if err == nil {
		return nil
	}
	var ioe ioError
	var we writeError
	var ce *CorruptError
	var be *chunk.MemberError
	if errors.As(err, &be) && !errors.As(err, &we) && !errors.As(err, &ioe) {
		member, off, err = be.Member, be.Offset, be.Err
	}
	switch {
	case errors.As(err, &we):
		return we.err
	case errors.As(err, &ioe), errors.As(err, &ce):
		return err
	case ctx.Err() != nil:
		return context.Cause(ctx)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return corrupt(KindTruncated, member, device, off, "member truncated")
	}
	if kind := chunkKind(err); kind != "" {
		return corrupt(kind, member, device, off, "%w", err)
	}
	return err // not the decoders' finding: it says what it is
}

// diskStats is what a pass over a disk's members learned without decoding.
type diskStats struct {
	Members    int   // chunks, or xapi data blocks
	Compressed int64 // bytes stored, checksum members included
	Checksums  map[chunk.Checksum]int
}

// skipDisk reads past d's members, counting them.
func (a *archive) skipDisk(d *Disk) (diskStats, error) {
	s := diskStats{Checksums: map[chunk.Checksum]int{}}
	for m, err := range a.members(d) {
		if err != nil {
			return s, err
		}
		s.Compressed += m.size
		switch {
		case a.meta.Generation == XAPI && strings.HasSuffix(m.name, chunk.XXHash.Ext()):
			s.Checksums[chunk.XXHash]++
		case a.meta.Generation == XAPI && strings.HasSuffix(m.name, chunk.SHA1.Ext()):
			s.Checksums[chunk.SHA1]++
		default:
			s.Members++
		}
	}
	return s, nil
}

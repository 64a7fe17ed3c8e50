package xva

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"strings"
	"sync/atomic"

	"golang.org/x/sync/errgroup"

	"github.com/xva-tools/xva/chunk"
	"github.com/xva-tools/xva/internal/pipeline"
)

// archive is an open archive being read front to back, disk by disk.
type archive struct {
	meta *Metadata
	c    container // the archive's container, as opened
	p    *peeker   // its members, directory entries left out
	seen map[string]bool
	opts *options
	// stored, if set, is told the archive bytes read.
	stored  func(int64)
	rawSeen atomic.Int64 // compressed bytes already reported
}

// openArchive opens path and reads its ova.xml.
func openArchive(path string, o *options) (*archive, error) {
	c, err := openContainer(path, o.jobs)
	if err != nil {
		return nil, err
	}
	p := &peeker{c: skipDirs{c}}
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
	if tf, ok := c.(*tarFileContainer); ok && (meta.Generation == Legacy || tf.madeByTar()) {
		// tar(1) stores a directory's files in readdir order: a tar file
		// made from an extracted archive has its members out of order,
		// which a file, unlike a stream, can be read past. An xapi archive
		// without tar(1)'s marks keeps its order, whose faults are its own.
		tf.sortByName()
		if tf.reordered {
			o.log.Debug("members out of order; reading them in name order", "path", path)
		}
	}
	o.log.Debug("archive opened", "path", path, "form", c.form(), "format", meta.Generation.String(),
		"disks", len(meta.Disks), "ova_xml_bytes", len(doc))
	return &archive{meta: meta, c: c, p: p, seen: map[string]bool{}, opts: o, stored: o.progress.Stored}, nil
}

func (a *archive) close() error { return a.c.close() }

// nextDisk returns the disk whose members come next, or, once the members
// are used up, a declared disk that had none (an error unless it is empty).
// It returns io.EOF when every disk has been returned.
func (a *archive) nextDisk() (*Disk, error) {
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
			return nil, corrupt(KindMissing, "", d.Device, 0, "the archive holds no data for this %d-byte disk (members %s/…)", d.Size, d.ID)
		}
		return nil, io.EOF
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
		a.p.next() // export_vsn 1: the checksum table after the last disk
		return a.nextDisk()
	}
	if d == nil {
		return nil, corrupt(KindExtra, m.name, "", -1, "member belongs to no disk of ova.xml")
	}
	if a.seen[d.ID] {
		return nil, corrupt(KindOrder, m.name, d.Device, -1, "member comes after another disk's members")
	}
	a.seen[d.ID] = true
	return d, nil
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
	st, err := chunk.ReadBlocks(ctx, members, d.ID, d.Size, func(off int64, p []byte) error {
		if err := emit(off, p); err != nil {
			return writeError{err}
		}
		return nil
	}, o)
	if err != nil {
		return st, classify(ctx, err, "", d.Device, -1)
	}
	return st, nil
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
				yield(nil, err)
				return
			}
			if a.meta.diskOf(m.name) != d {
				return
			}
			a.p.next()
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
// offsets, in increasing order.
func (a *archive) decodeLegacy(ctx context.Context, d *Disk, emit chunk.Emit) error {
	plan := chunk.NewLegacySeq(d.ID, d.Size)
	for m, err := range a.members(d) {
		if err != nil {
			return err
		}
		start, want, err := plan.Add(m.name)
		if err != nil {
			return classify(ctx, err, m.name, d.Device, start)
		}
		if err := a.decodeChunk(ctx, d, m.name, m.r, start, want, a.opts.jobs, emit); err != nil {
			return err
		}
	}
	return classify(ctx, plan.End(), "", d.Device, -1)
}

// decodeLegacyConcurrent is decodeLegacy for archives whose members can be
// opened independently: all names are checked first, then up to jobs chunks
// are inflated at once. emit is called concurrently and out of order.
func (a *archive) decodeLegacyConcurrent(ctx context.Context, d *Disk, emit chunk.Emit) error {
	type planned struct {
		m           *member
		start, want int64
	}
	plan := chunk.NewLegacySeq(d.ID, d.Size)
	var chunks []planned
	for m, err := range a.members(d) {
		if err != nil {
			return err
		}
		if m.open == nil {
			return fmt.Errorf("xva: member %s cannot be opened on its own", m.name)
		}
		start, want, err := plan.Add(m.name)
		if err != nil {
			return classify(ctx, err, m.name, d.Device, start)
		}
		chunks = append(chunks, planned{m, start, want})
	}
	if err := plan.End(); err != nil {
		return classify(ctx, err, "", d.Device, -1)
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
			// Each chunk inflates its pieces on jobs/workers cores.
			return a.decodeChunk(gctx, d, c.m.name, a.counted(r), c.start, c.want, max(jobs/workers, 1), emit)
		})
	}
	return g.Wait()
}

// decodeChunk inflates one chunk placed at start.
func (a *archive) decodeChunk(ctx context.Context, d *Disk, name string, r io.Reader, start, want int64, jobs int, emit chunk.Emit) error {
	gz := chunk.GzipOptions{Jobs: jobs, Progress: a.opts.progress.Advance}
	_, err := chunk.ReadGzipChunk(ctx, r, want, func(off int64, p []byte) error {
		if err := emit(start+off, p); err != nil {
			return writeError{err}
		}
		return nil
	}, gz)
	if err != nil {
		return classify(ctx, err, name, d.Device, start)
	}
	return nil
}

// classify turns a decoder error into the error the caller sees: the
// medium's and the sink's errors and cancellation pass through; everything
// else is corruption of member, or of the member a *chunk.MemberError names.
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
	return corrupt(chunkKind(err), member, device, off, "%w", err)
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

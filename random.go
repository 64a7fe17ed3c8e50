package xva

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/xva-tools/xva/chunk"
	"github.com/xva-tools/xva/disk"
	"github.com/xva-tools/xva/internal/zstdseek"
)

// ArchiveDisks is every disk of an archive opened for random access.
type ArchiveDisks struct {
	Metadata *Metadata
	Disks    []*ArchiveDisk // in archive order
	// Indexed says what opening built: the restart-point indexes of gzip
	// files and zstd streams (a first read of them at random), how long
	// that took, and where they are kept for the next time.
	Indexed *IndexBuild
	closers []io.Closer
}

// IndexBuild is the indexes built opening an archive.
type IndexBuild struct {
	Files   int           // gzip files and zstd streams indexed
	Zstd    int           // of Files, the zstd streams
	Bytes   int64         // their compressed bytes, read once
	Took    time.Duration // the time it took
	Cache   string        // the cache file they are kept in, "" if none
	Skipped int           // files whose index came from the cache
}

// Close closes the archive's files.
func (a *ArchiveDisks) Close() error { return closers(a.closers).Close() }

// Disk is the disk of the archive with the given device, or nil.
func (a *ArchiveDisks) Disk(device string) *ArchiveDisk {
	for _, d := range a.Disks {
		if d.Device == device {
			return d
		}
	}
	return nil
}

// OpenDisks opens every disk of the archive at path (a tar file, plain or
// gzip-compressed as a whole, or a directory) for random access: each is a
// disk.Source whose extents are known from the archive's layout, and whose
// every byte is checked before it is served (an xapi block against its
// hash, a legacy chunk's piece against the CRC-32 its index carries, or,
// for a chunk of an older xva, the chunk's CRC-32 and length once, then
// each piece against the CRC-32 found for it). A range whose check fails is an error for that
// range only. Gzip files that carry no piece index of ours (the archive
// compressed as a whole, chunks made by split and gzip) are inflated once
// to build an index of restart points (kept in a cache file for the next
// time) and read through it; so is an archive compressed as a whole as
// one zstd stream with no seek table (the zstd program's, a host's
// export), decoded once. ctx bounds that work, and the checks reads
// make later (an older xva's legacy chunk is inflated whole on its first
// read).
func OpenDisks(ctx context.Context, path string, opts ...Option) (*ArchiveDisks, error) {
	o, err := makeOptions(opts)
	if err != nil {
		return nil, err
	}
	if st, err := os.Stat(path); path == "-" || err == nil && !st.Mode().IsRegular() && !st.IsDir() {
		return nil, fmt.Errorf("%w: %s is a stream (standard input, a pipe or a device), which cannot be read at random: give the archive's file or directory", ErrBadOptions, path)
	}
	gz := openRestartIndexes(path)
	defer gz.save()
	start := time.Now()
	a, err := openRandom(ctx, path, gz, o)
	if err != nil {
		return nil, err
	}
	ad := &ArchiveDisks{Metadata: a.meta, closers: []io.Closer{closerFunc(a.close)}}
	if err := ad.index(ctx, a, path, gz, o); err != nil {
		ad.Close()
		return nil, err
	}
	if gz.built > 0 || gz.reused > 0 {
		ad.Indexed = &IndexBuild{Files: gz.built, Zstd: gz.builtZstd, Bytes: gz.builtBytes, Took: time.Since(start), Cache: gz.cache, Skipped: gz.reused}
	}
	return ad, nil
}

// openRandom opens the archive at path with a container whose members can
// be read at random: a tar file or a directory as they are, a tar file
// compressed as a whole with gzip or zstd through its restart-point index
// or seek table.
func openRandom(ctx context.Context, path string, gz *restartIndexes, o *options) (*archive, error) {
	var a *archive
	var err error
	if IsObjectURL(path) {
		var c container
		if c, err = openObjectContainer(path, o.jobs, true); err != nil {
			return nil, err
		}
		a, err = newArchive(c, path, o)
	} else {
		a, err = openArchive(path, o)
	}
	if err != nil {
		return nil, err
	}
	if a.c.random() {
		return a, nil
	}
	kind := ""
	if tc, ok := a.c.(*tarContainer); ok {
		kind = tc.compression
	}
	a.close()
	f, size, err := openCompressed(path)
	if err != nil {
		return nil, err
	}
	r, size, err := decompressedAt(ctx, kind, path, f, size, gz, o)
	if err != nil {
		f.Close()
		return nil, err
	}
	c, err := gz.tarOf(filepath.Base(path), r, size, f)
	if err != nil {
		return nil, err
	}
	return newArchive(c, path, o)
}

// readerAtCloser is a file, or an object in a store, read at random.
type readerAtCloser interface {
	io.ReaderAt
	io.Closer
}

// openCompressed opens the archive file at path, compressed as a whole,
// for reading at random.
func openCompressed(path string) (readerAtCloser, int64, error) {
	if IsObjectURL(path) {
		obj, err := openObject(path)
		if err != nil {
			return nil, 0, err
		}
		return objectAt{obj}, obj.Size(), nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, ioError{err}
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, ioError{err}
	}
	return f, st.Size(), nil
}

// maxZstdFrame bounds the frames of a zstd archive read at random: each
// read decodes a whole frame into memory.
const maxZstdFrame = 64 << 20

// zstdFrames reads a seekable zstd archive at random, its frames' integrity
// failures marked as such.
type zstdFrames struct {
	z    *zstdseek.Reader
	name string
}

func (f zstdFrames) ReadAt(p []byte, off int64) (int, error) {
	n, err := f.z.ReadAt(p, off)
	if err != nil && err != io.EOF && errors.Is(err, zstdseek.ErrCorrupt) {
		err = corrupt(KindCompression, f.name, "", -1, "%v", trimPrefix(err, "zstdseek: "))
	}
	return n, err
}

// decompressedAt reads the tar inside an archive compressed as a whole at
// random: a gzip one through its restart-point index, a zstd one through
// the seek table xva writes (the seekable format), or, one zstd stream
// without a table, through its restart-point index.
func decompressedAt(ctx context.Context, kind, path string, f io.ReaderAt, size int64, gz *restartIndexes, o *options) (io.ReaderAt, int64, error) {
	switch kind {
	case "gzip":
		name := filepath.Base(path)
		if err := gz.indexAll(ctx, []located{{name, size, f}}, o); err != nil {
			return nil, 0, err
		}
		x, err := gz.index(ctx, name, f, size, o)
		if err != nil {
			return nil, 0, err
		}
		return zranReader{x, f, name}, x.Size(), nil
	case "zstd":
		z, err := zstdseek.Open(f, size)
		if errors.Is(err, zstdseek.ErrNotSeekable) {
			// One zstd stream (the zstd program's, a host's export):
			// decoded once to index restart points in it.
			name := filepath.Base(path)
			x, err := gz.zindex(ctx, name, f, size, o)
			if err != nil {
				return nil, 0, err
			}
			return newZstdranReader(x, f, name), x.Size(), nil
		}
		if err != nil {
			return nil, 0, corrupt(KindCompression, filepath.Base(path), "", -1, "%v", trimPrefix(err, "zstdseek: "))
		}
		for i := range z.Frames() {
			if _, ds := z.FrameSizes(i); ds > maxZstdFrame {
				return nil, 0, fmt.Errorf("%w: %s has a zstd frame of %d bytes; reading at random decodes a frame at a time, and frames over %d MiB are not read so "+
					"(xva writes 4 MiB frames: 'xva convert %s seekable.xva.zst')", ErrUnsupported, path, ds, maxZstdFrame>>20, path)
			}
		}
		return zstdFrames{z, filepath.Base(path)}, z.Size(), nil
	}
	return nil, 0, fmt.Errorf("%w: %s is compressed as a whole with %s, which cannot be read at random", ErrUnsupported, path, kind)
}

type closerFunc func() error

func (f closerFunc) Close() error { return f() }

// closers closes each of its closers, all of them, joining their errors.
type closers []io.Closer

func (cs closers) Close() error {
	var errs []error
	for _, c := range cs {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}

// located is an archive member that can be read at random.
type located struct {
	name string
	size int64
	r    io.ReaderAt
}

// index lists the archive's members and lays out each disk's spans.
func (ad *ArchiveDisks) index(ctx context.Context, a *archive, path string, gz *restartIndexes, o *options) error {
	// The walker unpack reads with: its rules (disk order, members of no
	// disk, a disk resumed after another, duplicates, missing disks) hold
	// for reading at random too.
	byDisk := map[*Disk][]located{}
	for {
		d, err := a.nextDisk()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		for m, err := range a.members(d) {
			if err != nil {
				return err
			}
			r, err := ad.readerAt(a, path, m)
			if err != nil {
				return err
			}
			byDisk[d] = append(byDisk[d], located{m.name, m.size, r})
		}
	}
	for i := range a.meta.Disks {
		d := &a.meta.Disks[i]
		var spans []span
		var err error
		if a.meta.Generation == XAPI {
			spans, err = xapiSpans(d, byDisk[d])
		} else {
			spans, err = legacySpans(ctx, d, byDisk[d], gz, o)
		}
		if err != nil {
			return err
		}
		ad.Disks = append(ad.Disks, &ArchiveDisk{Device: d.Device, ID: d.ID, size: d.Size, spans: spans, cache: newSpanCache(spanCacheBytes)})
	}
	return nil
}

// readerAt gives random access to member m: a section of the tar file, or
// the member's file in an archive directory (kept open until Close).
func (ad *ArchiveDisks) readerAt(a *archive, path string, m *member) (io.ReaderAt, error) {
	switch a.c.(type) {
	case *tarFileContainer, *objectDir:
		return ioReaderAt{m.at}, nil
	case *dirContainer:
		f, err := os.OpenFile(filepath.Join(path, filepath.FromSlash(m.name)), os.O_RDONLY|noFollow, 0)
		if err != nil {
			return nil, ioError{err}
		}
		ad.closers = append(ad.closers, f)
		return ioReaderAt{f}, nil
	}
	return nil, fmt.Errorf("%w: this archive's form cannot be read at random", ErrUnsupported)
}

// ioReaderAt marks the errors of reading a member as the medium's, unless
// they already say what they are (a compressed archive's integrity
// failure).
type ioReaderAt struct{ r io.ReaderAt }

func (x ioReaderAt) ReadAt(p []byte, off int64) (int, error) {
	n, err := x.r.ReadAt(p, off)
	if err != nil && err != io.EOF && !IsCorrupt(err) && !IsIOError(err) {
		err = ioError{err}
	}
	return n, err
}

// span is a run of a disk held by one unit of the archive (an xapi block,
// a piece of a legacy chunk), checked before its bytes are served.
type span struct {
	off, size int64
	member    string
	load      func() ([]byte, error) // the span's bytes, checked
}

// xapiSpans places the blocks of d as unpack does (chunk.BlockSeq: running
// offsets, gaps, keep-alive members), each with its checksum member.
func xapiSpans(d *Disk, members []located) ([]span, error) {
	seq := chunk.NewBlockSeq(d.ID, d.Size)
	var spans []span
	for i := 0; i < len(members); i++ {
		m := members[i]
		off, err := seq.Data(m.name, m.size)
		if err != nil {
			return nil, blockError(err, d)
		}
		if i+1 == len(members) {
			return nil, blockError(seq.Unpaired(), d)
		}
		sum := members[i+1]
		kind, err := seq.Checksum(sum.name)
		if err != nil {
			return nil, blockError(err, d)
		}
		i++
		if m.size > 0 {
			spans = append(spans, span{off: off, size: m.size, member: m.name, load: xapiBlock(m, sum, kind)})
		}
	}
	if err := seq.End(); err != nil {
		return nil, blockError(err, d)
	}
	return spans, nil
}

// xapiBlock reads a block and checks it against its checksum member, as
// xapi compares them: as text.
func xapiBlock(m, sum located, kind chunk.Checksum) func() ([]byte, error) {
	return func() ([]byte, error) {
		if sum.size > 128 {
			return nil, fmt.Errorf("%w: checksum member %s holds %d bytes", chunk.ErrHashMismatch, sum.name, sum.size)
		}
		data := make([]byte, m.size)
		if _, err := m.r.ReadAt(data, 0); err != nil {
			return nil, memberReadError(m.name, err)
		}
		want := make([]byte, sum.size)
		if _, err := sum.r.ReadAt(want, 0); err != nil {
			return nil, memberReadError(sum.name, err)
		}
		if got := chunk.HashText(kind, data); got != string(want) {
			return nil, fmt.Errorf("%w: %s hashes to %s, its checksum member says %q", chunk.ErrHashMismatch, m.name, got, want)
		}
		return data, nil
	}
}

// legacySpans places the chunks of d, each a run of 1 MiB pieces that its
// piece index locates; the all-zero pieces are holes.
func legacySpans(ctx context.Context, d *Disk, members []located, gz *restartIndexes, o *options) ([]span, error) {
	if err := gz.indexAll(ctx, foreignChunks(members), o); err != nil {
		return nil, err
	}
	seq := chunk.NewLegacySeq(d.ID, d.Size)
	var spans []span
	for _, m := range members {
		start, want, err := seq.Add(m.name)
		if err != nil {
			return nil, blockError(err, d)
		}
		x, err := chunk.ReadChunkIndex(m.r, m.size)
		if errors.Is(err, chunk.ErrNoIndex) {
			s, err := foreignChunk(ctx, d, m, start, want, gz, o)
			if err != nil {
				return nil, err
			}
			spans = append(spans, s...)
			continue
		}
		if err != nil {
			return nil, corrupt(chunkKind(err), m.name, d.Device, start, "%v", err)
		}
		if x.Length() != want {
			return nil, corrupt(KindLength, m.name, d.Device, start, "the chunk holds %d bytes, %d expected", x.Length(), want)
		}
		for i := range x.Pieces() {
			if x.IsZero(m.r, i) {
				continue
			}
			off := int64(i) * x.PieceSize()
			size := min(x.PieceSize(), x.Length()-off)
			spans = append(spans, span{off: start + off, size: size, member: m.name, load: func() ([]byte, error) {
				if err := x.Verify(ctx, m.r, o.jobs); err != nil {
					return nil, err
				}
				return x.Piece(m.r, i)
			}})
		}
	}
	if err := seq.End(); err != nil {
		return nil, blockError(err, d)
	}
	return spans, nil
}

// foreignChunks are the members that are gzip files without our piece
// index.
func foreignChunks(members []located) []located {
	var out []located
	for _, m := range members {
		if _, err := chunk.ReadChunkIndex(m.r, m.size); errors.Is(err, chunk.ErrNoIndex) {
			out = append(out, m)
		}
	}
	return out
}

// foreignChunk lays out a gzip chunk that carries no piece index (split
// and gzip made it) through its restart-point index: a span per restart
// point, each checked against the CRC-32 the index recorded for it.
func foreignChunk(ctx context.Context, d *Disk, m located, start, want int64, gz *restartIndexes, o *options) ([]span, error) {
	x, err := gz.index(ctx, m.name, m.r, m.size, o)
	if err != nil {
		return nil, err
	}
	if x.Size() != want {
		return nil, corrupt(KindLength, m.name, d.Device, start, "the chunk inflates to %d bytes, %d expected", x.Size(), want)
	}
	var spans []span
	z := zranReader{x, m.r, m.name}
	for off := int64(0); off < x.Size(); off += zranSpan {
		n := min(zranSpan, x.Size()-off)
		spans = append(spans, span{off: start + off, size: n, member: m.name, load: func() ([]byte, error) {
			b := make([]byte, n)
			if _, err := z.ReadAt(b, off); err != nil && err != io.EOF {
				return nil, err
			}
			return b, nil
		}})
	}
	return spans, nil
}

// blockError makes an error of the disk encodings an integrity failure of
// disk d.
func blockError(err error, d *Disk) error {
	if err == nil {
		return nil
	}
	var me *chunk.MemberError
	if errors.As(err, &me) {
		return corrupt(chunkKind(me.Err), me.Member, d.Device, me.Offset, "%v", me.Err)
	}
	return corrupt(chunkKind(err), "", d.Device, -1, "%v", err)
}

func memberReadError(name string, err error) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return corrupt(KindTruncated, name, "", -1, "the member ends early")
	}
	return ioError{err}
}

// ArchiveDisk is one disk of an archive read at random: a disk.Source.
type ArchiveDisk struct {
	Device, ID string
	size       int64
	spans      []span // in offset order, not overlapping
	cache      *spanCache

	mu      sync.Mutex
	loading map[int]*spanLoad // spans being loaded
}

var _ disk.Source = (*ArchiveDisk)(nil)
var _ disk.Extenter = (*ArchiveDisk)(nil)

// Size implements disk.Source.
func (d *ArchiveDisk) Size() int64 { return d.size }

// Close implements disk.Source; the archive's files close with
// ArchiveDisks.Close.
func (d *ArchiveDisk) Close() error { return nil }

// ParallelReads implements disk.Parallel: spans load independently, and
// inflating or hashing one costs CPU.
func (d *ArchiveDisk) ParallelReads() bool { return true }

// Extents implements disk.Extenter: the spans, adjacent ones merged.
func (d *ArchiveDisk) Extents(ctx context.Context) iter.Seq2[disk.Extent, error] {
	return func(yield func(disk.Extent, error) bool) {
		var cur disk.Extent
		for _, s := range d.spans {
			if err := ctx.Err(); err != nil {
				yield(disk.Extent{}, err)
				return
			}
			if cur.Len > 0 && cur.End() == s.off {
				cur.Len += s.size
				continue
			}
			if cur.Len > 0 && !yield(cur, nil) {
				return
			}
			cur = disk.Extent{Off: s.off, Len: s.size}
		}
		if cur.Len > 0 {
			yield(cur, nil)
		}
	}
}

// ReadAt implements disk.Source: the spans overlapping the range are
// loaded (checked) and copied, the rest is zeros. A span that fails its
// check fails the read, naming its member and offset.
func (d *ArchiveDisk) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("xva: negative offset %d", off)
	}
	if off >= d.size {
		return 0, io.EOF
	}
	n := len(p)
	if rest := d.size - off; int64(n) > rest {
		n = int(rest)
	}
	q := p[:n]
	clear(q)
	end := off + int64(n)
	i := sort.Search(len(d.spans), func(i int) bool { return d.spans[i].off+d.spans[i].size > off })
	for ; i < len(d.spans) && d.spans[i].off < end; i++ {
		s := &d.spans[i]
		data, err := d.load(i)
		if err != nil {
			return 0, err
		}
		from, to := max(off, s.off), min(end, s.off+s.size)
		copy(q[from-off:to-off], data[from-s.off:to-s.off])
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// LendAt implements nbd.Lender: the checked spans' own bytes, no copy. A
// span's bytes are never written once loaded (the cache and concurrent
// readers share them already), so lending them is safe; gaps between
// spans are zeros of a shared, never written array.
func (d *ArchiveDisk) LendAt(dst [][]byte, off, n int64) ([][]byte, error) {
	if off < 0 || n < 0 || n > d.size-off {
		return dst, fmt.Errorf("xva: range %d+%d outside the disk (%d bytes)", off, n, d.size)
	}
	end := off + n
	pos := off
	i := sort.Search(len(d.spans), func(i int) bool { return d.spans[i].off+d.spans[i].size > off })
	for ; i < len(d.spans) && d.spans[i].off < end; i++ {
		s := &d.spans[i]
		dst = appendZeros(dst, s.off-pos)
		data, err := d.load(i)
		if err != nil {
			return dst, err
		}
		from, to := max(pos, s.off), min(end, s.off+s.size)
		dst = append(dst, data[from-s.off:to-s.off])
		pos = to
	}
	return appendZeros(dst, end-pos), nil
}

// zeroBytes backs the gaps LendAt lends: never written, so they cost no
// memory.
var zeroBytes [1 << 20]byte

func appendZeros(dst [][]byte, n int64) [][]byte {
	for n > 0 {
		k := min(n, int64(len(zeroBytes)))
		dst = append(dst, zeroBytes[:k])
		n -= k
	}
	return dst
}

// load returns span i's checked bytes, from the cache when recently used;
// concurrent reads of one span (a client's requests in flight, a quarter
// of a block each) wait for one load of it.
func (d *ArchiveDisk) load(i int) ([]byte, error) {
	if b := d.cache.get(i); b != nil {
		return b, nil
	}
	d.mu.Lock()
	if d.loading == nil {
		d.loading = map[int]*spanLoad{}
	}
	if l, ok := d.loading[i]; ok {
		d.mu.Unlock()
		<-l.done
		return l.data, l.err
	}
	l := &spanLoad{done: make(chan struct{})}
	d.loading[i] = l
	d.mu.Unlock()
	l.data, l.err = d.loadSpan(i)
	close(l.done)
	d.mu.Lock()
	delete(d.loading, i)
	d.mu.Unlock()
	return l.data, l.err
}

// spanLoad is a load of a span under way.
type spanLoad struct {
	done chan struct{}
	data []byte
	err  error
}

// loadSpan loads span i, checks it and caches it.
func (d *ArchiveDisk) loadSpan(i int) ([]byte, error) {
	s := &d.spans[i]
	b, err := s.load()
	if err != nil {
		if !IsIOError(err) && !IsCorrupt(err) && !errors.Is(err, context.Canceled) {
			kind := chunkKind(err)
			if kind == "" {
				kind = KindChecksum
			}
			err = corrupt(kind, s.member, d.Device, s.off, "%v", strings.TrimPrefix(err.Error(), "chunk: "))
		}
		return nil, err
	}
	if int64(len(b)) != s.size {
		return nil, corrupt(KindLength, s.member, d.Device, s.off, "%d bytes where %d were placed", len(b), s.size)
	}
	d.cache.put(i, b)
	return b, nil
}

// spanCache keeps the spans read last, up to a number of bytes: a client
// reads a span in many small requests, and each load inflates or hashes a
// whole span (1 MiB for a block or a piece, 4 MiB or so through a gzip
// index).
type spanCache struct {
	mu    sync.Mutex
	limit int
	bytes int
	keys  []int // oldest first
	vals  map[int][]byte
}

// spanCacheBytes bounds each disk's cache.
const spanCacheBytes = 32 << 20

func newSpanCache(limit int) *spanCache {
	return &spanCache{limit: limit, vals: map[int][]byte{}}
}

func (c *spanCache) get(i int) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.vals[i]
}

func (c *spanCache) put(i int, b []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.vals[i]; ok || len(b) > c.limit {
		return
	}
	for c.bytes+len(b) > c.limit && len(c.keys) > 0 {
		old := c.keys[0]
		c.keys = c.keys[1:]
		c.bytes -= len(c.vals[old])
		delete(c.vals, old)
	}
	c.keys = append(c.keys, i)
	c.vals[i] = b
	c.bytes += len(b)
}

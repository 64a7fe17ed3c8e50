package xva

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/xva-tools/xva/internal/fsutil"
	"github.com/xva-tools/xva/internal/pipeline"
	"github.com/xva-tools/xva/internal/zran"
	"github.com/xva-tools/xva/internal/zstdran"
)

// zranSpan is the uncompressed distance between restart points of a gzip
// file read at random: a read inflates at most this much before its
// range, and the index keeps a 32 KiB window (compressed) per span.
const zranSpan = 4 << 20

// restartIndexes are the restart-point indexes of an archive's
// compressed files that cannot be read at random otherwise: gzip files
// that carry no piece index of ours (chunks made by split and gzip, or
// the archive compressed as a whole) and an archive compressed as a
// whole as one zstd stream with no seek table. They are built on first
// access and kept in a cache file that names the archive's size and
// modification time, and each indexed file's size and modification time.
type restartIndexes struct {
	path  string // the archive
	dir   bool   // a directory: its files' mtimes are checked one by one
	size  int64
	mtime int64
	cache string // the cache file, "" when none can be kept

	mu      sync.Mutex
	entries map[string]cacheEntry // by member name (the file's base name for the whole file)
	tars    map[string][]byte     // the member table of a whole-compressed tar, encoded
	dirty   bool

	built, reused int   // indexes built now, and taken from the cache
	builtZstd     int   // of those built, zstd streams
	builtBytes    int64 // the compressed bytes read to build them
}

// cacheEntry is one file's index, gzip or zstd, and the file's mtime when
// it was built.
type cacheEntry struct {
	mtime int64
	gz    *zran.Index
	zs    *zstdran.Index
}

// compressedSize is the size of the file the entry's index was built from.
func (e cacheEntry) compressedSize() int64 {
	if e.gz != nil {
		return e.gz.CompressedSize()
	}
	return e.zs.CompressedSize()
}

// openRestartIndexes loads the cache of the archive at path, if it is
// current.
func openRestartIndexes(path string) *restartIndexes {
	g := &restartIndexes{path: path, entries: map[string]cacheEntry{}, tars: map[string][]byte{}}
	if IsObjectURL(path) {
		// An object's index is kept as a file's is, checked against its
		// size and Last-Modified; a prefix's members have no mtime the
		// cache could check without a request each, so theirs are not kept.
		obj, err := openObject(path)
		if err != nil {
			return g
		}
		g.size, g.mtime = obj.Size(), obj.Info().Modified.UnixNano()
	} else {
		st, err := os.Stat(path)
		if err != nil {
			return g
		}
		g.size, g.mtime, g.dir = st.Size(), st.ModTime().UnixNano(), st.IsDir()
	}
	if g.dir {
		g.size = 0 // a directory's files are checked one by one, by their own size and mtime
	}
	g.cache = cacheFile(path)
	if g.cache != "" {
		if b, err := os.ReadFile(g.cache); err == nil {
			g.load(b)
		}
	}
	return g
}

// memberMtime is the modification time of the file holding member name:
// a directory archive's file of that name (a chunk rewritten in place
// keeps the directory's mtime, and may keep its size), else the archive.
func (g *restartIndexes) memberMtime(name string) int64 {
	if !g.dir {
		return g.mtime
	}
	st, err := os.Stat(filepath.Join(g.path, filepath.FromSlash(name)))
	if err != nil {
		return -1
	}
	return st.ModTime().UnixNano()
}

// current is the entry for member name if it was built from the file as
// it is (size bytes, and its mtime).
func (g *restartIndexes) current(name string, size int64) (cacheEntry, bool) {
	g.mu.Lock()
	e, ok := g.entries[name]
	g.mu.Unlock()
	if !ok || e.compressedSize() != size || e.mtime != g.memberMtime(name) {
		return cacheEntry{}, false
	}
	return e, true
}

// cacheFile is where the indexes of the archive at path are kept:
// $XDG_CACHE_HOME/xva (or ~/.cache/xva), named by the archive's absolute
// path; "" when there is no such directory.
func cacheFile(path string) string {
	dir := os.Getenv("XDG_CACHE_HOME")
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return ""
		}
		dir = filepath.Join(home, ".cache")
	}
	abs, err := filepath.Abs(path)
	if IsObjectURL(path) {
		abs, err = path, nil // a location already absolute
	}
	if err != nil {
		return ""
	}
	sum := sha256.Sum256([]byte(abs))
	return filepath.Join(dir, "xva", hex.EncodeToString(sum[:12])+".zran")
}

// The cache file: cacheMagic, the archive's size and mtime, the number of
// indexes, each (kind: gzip or zstd, name, member size, member mtime,
// index), the number of tar member tables (of an archive compressed as a
// whole), each (name, table), and a CRC-32 of all that. Version 2 had no
// kinds nor member mtimes: such a cache is ignored, and rebuilt.
var cacheMagic = []byte("xva-zran 3\n")

// Kinds of cached index.
const (
	cacheGzip = 0
	cacheZstd = 1
)

// load reads a cache file's entries if it describes the archive as it is;
// anything else (another version, a changed archive, damage) is ignored:
// the indexes are then built again.
func (g *restartIndexes) load(b []byte) {
	if len(b) < len(cacheMagic)+20+4 || !bytes.HasPrefix(b, cacheMagic) {
		return
	}
	body, sum := b[:len(b)-4], binary.LittleEndian.Uint32(b[len(b)-4:])
	if crc32.ChecksumIEEE(body) != sum {
		return
	}
	p := body[len(cacheMagic):]
	if int64(binary.LittleEndian.Uint64(p)) != g.size || int64(binary.LittleEndian.Uint64(p[8:])) != g.mtime {
		return
	}
	n := int(binary.LittleEndian.Uint32(p[16:]))
	p = p[20:]
	loaded := map[string]cacheEntry{}
	for range n {
		if len(p) < 1 {
			return
		}
		kind := p[0]
		name, rest, ok := cacheField(p[1:])
		if !ok || len(rest) < 16 {
			return
		}
		msize := int64(binary.LittleEndian.Uint64(rest))
		e := cacheEntry{mtime: int64(binary.LittleEndian.Uint64(rest[8:]))}
		data, rest2, ok := cacheField(rest[16:])
		if !ok {
			return
		}
		switch kind {
		case cacheGzip:
			e.gz = new(zran.Index)
			if e.gz.UnmarshalBinary([]byte(data)) != nil {
				return
			}
		case cacheZstd:
			e.zs = new(zstdran.Index)
			if e.zs.UnmarshalBinary([]byte(data)) != nil {
				return
			}
		default:
			return
		}
		if e.compressedSize() != msize {
			return
		}
		loaded[name] = e
		p = rest2
	}
	if len(p) < 4 {
		return
	}
	tars := map[string][]byte{}
	n = int(binary.LittleEndian.Uint32(p))
	p = p[4:]
	for range n {
		name, rest, ok := cacheField(p)
		if !ok {
			return
		}
		data, rest2, ok := cacheField(rest)
		if !ok {
			return
		}
		tars[name] = []byte(data)
		p = rest2
	}
	g.entries, g.tars = loaded, tars
}

// cacheField reads a length-prefixed field.
func cacheField(p []byte) (string, []byte, bool) {
	if len(p) < 4 {
		return "", nil, false
	}
	n := int(binary.LittleEndian.Uint32(p))
	if n > len(p)-4 {
		return "", nil, false
	}
	return string(p[4 : 4+n]), p[4+n:], true
}

// save writes the cache file when an index was built, under a temporary
// name renamed into place; a cache that cannot be written is no error.
func (g *restartIndexes) save() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.dirty || g.cache == "" {
		return
	}
	b := append([]byte(nil), cacheMagic...)
	b = binary.LittleEndian.AppendUint64(b, uint64(g.size))
	b = binary.LittleEndian.AppendUint64(b, uint64(g.mtime))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(g.entries)))
	for name, e := range g.entries {
		kind, data, err := byte(cacheGzip), []byte(nil), error(nil)
		if e.gz != nil {
			data, err = e.gz.MarshalBinary()
		} else {
			kind = cacheZstd
			data, err = e.zs.MarshalBinary()
		}
		if err != nil {
			return
		}
		b = append(b, kind)
		b = binary.LittleEndian.AppendUint32(b, uint32(len(name)))
		b = append(b, name...)
		b = binary.LittleEndian.AppendUint64(b, uint64(e.compressedSize()))
		b = binary.LittleEndian.AppendUint64(b, uint64(e.mtime))
		b = binary.LittleEndian.AppendUint32(b, uint32(len(data)))
		b = append(b, data...)
	}
	b = binary.LittleEndian.AppendUint32(b, uint32(len(g.tars)))
	for name, data := range g.tars {
		b = binary.LittleEndian.AppendUint32(b, uint32(len(name)))
		b = append(b, name...)
		b = binary.LittleEndian.AppendUint32(b, uint32(len(data)))
		b = append(b, data...)
	}
	b = binary.LittleEndian.AppendUint32(b, crc32.ChecksumIEEE(b))
	if os.MkdirAll(filepath.Dir(g.cache), 0o700) != nil {
		return
	}
	os.Remove(g.cache)
	if fsutil.WriteNew(g.cache, b) == nil {
		g.dirty = false
	}
}

// index returns the index of the gzip file r (size bytes) called name,
// from the cache or built now (inflating it whole, its CRC-32 checked).
func (g *restartIndexes) index(ctx context.Context, name string, r io.ReaderAt, size int64, o *options) (*zran.Index, error) {
	if e, ok := g.current(name, size); ok && e.gz != nil {
		g.mu.Lock()
		g.reused++
		g.mu.Unlock()
		return e.gz, nil
	}
	mtime := g.memberMtime(name) // before reading: a change while it is read is seen next time
	start := time.Now()
	rec := &failedRead{r: r}
	x, err := zran.Build(ctx, &progressReaderAt{r: rec, progress: o.progress.Advance}, size, zranSpan, nil)
	if err != nil {
		return nil, buildError(ctx, err, rec, name, "zran: ")
	}
	o.log.Debug("gzip index built", "member", name, "bytes", size, "points", x.Points(), "seconds", time.Since(start).Seconds())
	g.mu.Lock()
	g.entries[name], g.dirty = cacheEntry{mtime: mtime, gz: x}, true
	g.built++
	g.builtBytes += size
	g.mu.Unlock()
	return x, nil
}

// buildError sorts out why building an index failed: cancelled, the
// medium (a read of the file failed), or the data.
func buildError(ctx context.Context, err error, rec *failedRead, name, prefix string) error {
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case IsIOError(err):
		return err
	case rec.err != nil:
		if IsIOError(rec.err) || IsCorrupt(rec.err) {
			return rec.err
		}
		return ioError{rec.err}
	}
	return corrupt(KindCompression, name, "", -1, "%v", trimPrefix(err, prefix))
}

// zstdSpan is the least uncompressed distance between restart points of
// a zstd stream read at random; the index spaces them at 8 windows when
// that is more (a default-level stream from a pipe has 2 MiB windows:
// a point every 16 MiB), each keeping the bytes of the window its span
// uses.
const zstdSpan = 4 << 20

// zindex returns the index of the zstd stream r (size bytes) called
// name, from the cache or built now (decoding it whole, under the
// progress bar, the frames' checksums checked).
func (g *restartIndexes) zindex(ctx context.Context, name string, r io.ReaderAt, size int64, o *options) (*zstdran.Index, error) {
	if e, ok := g.current(name, size); ok && e.zs != nil {
		g.mu.Lock()
		g.reused++
		g.mu.Unlock()
		return e.zs, nil
	}
	mtime := g.memberMtime(name)
	o.progress.StartDisk("index", size)
	defer o.progress.EndDisk()
	start := time.Now()
	rec := &failedRead{r: r}
	x, err := zstdran.Build(ctx, &progressReaderAt{r: rec, progress: o.progress.Advance}, size, zstdSpan, nil)
	if err != nil {
		if errors.Is(err, zstdran.ErrWindow) || errors.Is(err, zstdran.ErrDictionary) {
			return nil, fmt.Errorf("%w: %s: %v; 'xva convert %s seekable.xva.zst' writes a zstd archive that can be read at random",
				ErrUnsupported, name, trimPrefix(err, "zstdran: "), g.path)
		}
		return nil, buildError(ctx, err, rec, name, "zstdran: ")
	}
	o.log.Debug("zstd index built", "member", name, "bytes", size, "points", x.Points(), "seconds", time.Since(start).Seconds())
	g.mu.Lock()
	g.entries[name], g.dirty = cacheEntry{mtime: mtime, zs: x}, true
	g.built++
	g.builtZstd++
	g.builtBytes += size
	g.mu.Unlock()
	return x, nil
}

// indexAll builds, on up to jobs workers, the indexes of the gzip files
// whose index is not in the cache yet, under one progress bar; index then
// finds each of them built.
func (g *restartIndexes) indexAll(ctx context.Context, files []located, o *options) error {
	var todo []located
	var total int64
	for _, f := range files {
		if e, ok := g.current(f.name, f.size); !ok || e.gz == nil {
			todo = append(todo, f)
			total += f.size
		}
	}
	if len(todo) == 0 {
		return nil
	}
	o.progress.StartDisk("index", total)
	defer o.progress.EndDisk()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	work := make(chan located)
	errs := make(chan error, len(todo))
	var wg sync.WaitGroup
	for range min(pipeline.Jobs(o.jobs), len(todo)) {
		wg.Go(func() {
			for f := range work {
				if _, err := g.index(ctx, f.name, f.r, f.size, o); err != nil {
					errs <- err
					cancel()
				}
			}
		})
	}
	for _, f := range todo {
		if ctx.Err() != nil {
			break
		}
		work <- f
	}
	close(work)
	wg.Wait()
	close(errs)
	return <-errs // the first error, or nil
}

// progressReaderAt tells progress the bytes read from r: a scan reads a
// file front to back once.
type progressReaderAt struct {
	r        io.ReaderAt
	progress func(int64)
}

func (p *progressReaderAt) ReadAt(b []byte, off int64) (int, error) {
	n, err := p.r.ReadAt(b, off)
	p.progress(int64(n))
	return n, err
}

// zranReader reads a gzip file at random through its index. A span that
// fails its check is an integrity failure of the file; a failed read of
// the file is the medium's.
type zranReader struct {
	x    *zran.Index
	r    io.ReaderAt
	name string
}

func (z zranReader) ReadAt(p []byte, off int64) (int, error) {
	rec := &failedRead{r: z.r}
	n, err := z.x.ReadAt(rec, p, off)
	switch {
	case err == nil || err == io.EOF:
	case rec.err != nil:
		err = ioError{rec.err}
	default:
		err = corrupt(KindCompression, z.name, "", -1, "%v", trimPrefix(err, "zran: "))
	}
	return n, err
}

// zstdranReader reads a zstd stream at random through its index, a whole
// span at a time, keeping the spans read last: a read has to decode to
// its span's end to check it anyway (16 MiB for the 2 MiB window of
// zstd -3), and reads come in runs (a tar's headers on open, a disk's
// blocks in turn), which then decode each span once instead of once per
// read. The cache holds the stream's largest span, and at least 32 MiB
// (two spans of zstd -3's), at most 128 MiB (a span of a 16 MiB window);
// a span over that is read straight into the caller's buffer instead,
// costing the window and no more, but decoded again for each read.
type zstdranReader struct {
	x    *zstdran.Index
	r    io.ReaderAt
	name string

	limit   int64 // the largest span cached
	cache   *spanCache
	mu      sync.Mutex
	loading map[int]*spanLoad
}

func newZstdranReader(x *zstdran.Index, r io.ReaderAt, name string) *zstdranReader {
	var largest int64
	for off := int64(0); off < x.Size(); {
		s, e := x.SpanOf(off)
		largest, off = max(largest, e-s), e
	}
	limit := min(max(32<<20, largest), 128<<20)
	return &zstdranReader{x: x, r: r, name: name, limit: limit, cache: newSpanCache(int(limit)), loading: map[int]*spanLoad{}}
}

func (z *zstdranReader) ReadAt(p []byte, off int64) (int, error) {
	size := z.x.Size()
	if off < 0 || off >= size {
		return z.direct(p, off)
	}
	n := 0
	for n < len(p) && off < size {
		s, e := z.x.SpanOf(off)
		if e-s > z.limit {
			k, err := z.direct(p[n:], off)
			return n + k, err
		}
		b, err := z.span(s, e)
		if err != nil {
			clear(p)
			return 0, err
		}
		c := copy(p[n:], b[off-s:])
		n += c
		off += int64(c)
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// direct reads through the index into p.
func (z *zstdranReader) direct(p []byte, off int64) (int, error) {
	rec := &failedRead{r: z.r}
	n, err := z.x.ReadAt(rec, p, off)
	return n, z.readError(err, rec)
}

func (z *zstdranReader) readError(err error, rec *failedRead) error {
	switch {
	case err == nil || err == io.EOF:
		return err
	case rec.err != nil:
		return ioError{rec.err}
	}
	return corrupt(KindCompression, z.name, "", -1, "%v", trimPrefix(err, "zstdran: "))
}

// span is the checked span [s, e), from the cache or decoded now; reads
// of one span at once wait for one decode of it.
func (z *zstdranReader) span(s, e int64) ([]byte, error) {
	key := int(s)
	if b := z.cache.get(key); b != nil {
		return b, nil
	}
	z.mu.Lock()
	if l, ok := z.loading[key]; ok {
		z.mu.Unlock()
		<-l.done
		return l.data, l.err
	}
	l := &spanLoad{done: make(chan struct{})}
	z.loading[key] = l
	z.mu.Unlock()
	b := make([]byte, e-s)
	if _, err := z.direct(b, s); err != nil && err != io.EOF {
		l.err = err
	} else {
		l.data = b
		z.cache.put(key, b)
	}
	close(l.done)
	z.mu.Lock()
	delete(z.loading, key)
	z.mu.Unlock()
	return l.data, l.err
}

// failedRead remembers the first failed read of r.
type failedRead struct {
	r   io.ReaderAt
	mu  sync.Mutex
	err error
}

func (f *failedRead) ReadAt(p []byte, off int64) (int, error) {
	n, err := f.r.ReadAt(p, off)
	if err != nil && err != io.EOF {
		f.mu.Lock()
		if f.err == nil {
			f.err = err
		}
		f.mu.Unlock()
	}
	return n, err
}

func trimPrefix(err error, prefix string) error {
	s := err.Error()
	if len(s) > len(prefix) && s[:len(prefix)] == prefix {
		return errors.New(s[len(prefix):])
	}
	return err
}

// tarOf indexes the tar held in r (size bytes, the inflated content of
// the archive called name), from the member table in the cache when there
// is one: reading every header through a restart-point index costs about
// one inflation, which the table spares the next open.
func (g *restartIndexes) tarOf(name string, r io.ReaderAt, size int64, closer io.Closer) (*tarFileContainer, error) {
	g.mu.Lock()
	enc, ok := g.tars[name]
	g.mu.Unlock()
	if ok {
		if c, ok := decodeTarTable(enc, size); ok {
			c.f, c.closer = r, closer
			return c, nil
		}
	}
	c, err := indexTar(r, size, closer)
	if err != nil || c.err != nil {
		return c, err
	}
	g.mu.Lock()
	g.tars[name], g.dirty = encodeTarTable(c), true
	g.mu.Unlock()
	return c, nil
}

// encodeTarTable is a tar's member table: count, then name, spelling,
// directory flag, size and offset of each member, then the end's marks.
func encodeTarTable(c *tarFileContainer) []byte {
	b := binary.LittleEndian.AppendUint32(nil, uint32(len(c.members)))
	for _, m := range c.members {
		for _, f := range []string{m.name, m.raw} {
			b = binary.LittleEndian.AppendUint32(b, uint32(len(f)))
			b = append(b, f...)
		}
		dir := byte(0)
		if m.dir {
			dir = 1
		}
		b = append(b, dir)
		b = binary.LittleEndian.AppendUint64(b, uint64(m.size))
		b = binary.LittleEndian.AppendUint64(b, uint64(m.off))
	}
	end := byte(0)
	if c.sawEnd {
		end = 1
	}
	b = append(b, end)
	return binary.LittleEndian.AppendUint32(b, uint32(c.strays))
}

// decodeTarTable reads a member table back, refusing one that does not fit
// a tar of size bytes.
func decodeTarTable(b []byte, size int64) (*tarFileContainer, bool) {
	if len(b) < 4 {
		return nil, false
	}
	n := int(binary.LittleEndian.Uint32(b))
	b = b[4:]
	if n > len(b)/25 { // each member takes at least 25 bytes
		return nil, false
	}
	c := &tarFileContainer{}
	for range n {
		var fields [2]string
		for i := range fields {
			f, rest, ok := cacheField(b)
			if !ok {
				return nil, false
			}
			fields[i], b = f, rest
		}
		if len(b) < 17 {
			return nil, false
		}
		m := indexed{name: fields[0], raw: fields[1], dir: b[0] == 1,
			size: int64(binary.LittleEndian.Uint64(b[1:])), off: int64(binary.LittleEndian.Uint64(b[9:]))}
		b = b[17:]
		if m.size < 0 || m.off < 0 || m.off > size || m.size > size-m.off {
			return nil, false
		}
		c.members = append(c.members, m)
	}
	if len(b) != 5 {
		return nil, false
	}
	c.sawEnd, c.strays = b[0] == 1, int(binary.LittleEndian.Uint32(b[1:]))
	return c, true
}

package xva

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/xva-tools/xva/internal/fsutil"
	"github.com/xva-tools/xva/internal/pipeline"
	"github.com/xva-tools/xva/internal/zran"
)

// zranSpan is the uncompressed distance between restart points of a gzip
// file read at random: a read inflates at most this much before its
// range, and the index keeps a 32 KiB window (compressed) per span.
const zranSpan = 4 << 20

// gzipIndexes are the restart-point indexes of an archive's gzip files
// that carry no piece index of ours (chunks made by split and gzip, or
// the archive compressed as a whole), built on first access and kept in a
// cache file that names the archive's size and modification time.
type gzipIndexes struct {
	path  string // the archive
	size  int64
	mtime int64
	cache string // the cache file, "" when none can be kept

	mu      sync.Mutex
	indexes map[string]*zran.Index // by member name ("" for the whole file)
	tars    map[string][]byte      // the member table of a whole-compressed tar, encoded
	dirty   bool

	built, reused int   // indexes built now, and taken from the cache
	builtBytes    int64 // the compressed bytes read to build them
}

// openGzipIndexes loads the cache of the archive at path, if it is
// current.
func openGzipIndexes(path string) *gzipIndexes {
	g := &gzipIndexes{path: path, indexes: map[string]*zran.Index{}, tars: map[string][]byte{}}
	st, err := os.Stat(path)
	if err != nil {
		return g
	}
	g.size, g.mtime = st.Size(), st.ModTime().UnixNano()
	if st.IsDir() {
		g.size = 0 // a directory's files are checked one by one, by their own size
	}
	g.cache = cacheFile(path)
	if g.cache != "" {
		if b, err := os.ReadFile(g.cache); err == nil {
			g.load(b)
		}
	}
	return g
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
	if err != nil {
		return ""
	}
	sum := sha256.Sum256([]byte(abs))
	return filepath.Join(dir, "xva", hex.EncodeToString(sum[:12])+".zran")
}

// The cache file: cacheMagic, the archive's size and mtime, the number of
// indexes, each (name, member size, index), the number of tar member
// tables (of an archive compressed as a whole), each (name, table), and a
// CRC-32 of all that.
var cacheMagic = []byte("xva-zran 2\n")

// load reads a cache file's entries if it describes the archive as it is;
// anything else (another version, a changed archive, damage) is ignored:
// the indexes are then built again.
func (g *gzipIndexes) load(b []byte) {
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
	loaded := map[string]*zran.Index{}
	for range n {
		name, rest, ok := cacheField(p)
		if !ok || len(rest) < 8 {
			return
		}
		msize := int64(binary.LittleEndian.Uint64(rest))
		data, rest2, ok := cacheField(rest[8:])
		if !ok {
			return
		}
		x := new(zran.Index)
		if x.UnmarshalBinary([]byte(data)) != nil || x.CompressedSize() != msize {
			return
		}
		loaded[name] = x
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
	g.indexes, g.tars = loaded, tars
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
func (g *gzipIndexes) save() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.dirty || g.cache == "" {
		return
	}
	b := append([]byte(nil), cacheMagic...)
	b = binary.LittleEndian.AppendUint64(b, uint64(g.size))
	b = binary.LittleEndian.AppendUint64(b, uint64(g.mtime))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(g.indexes)))
	for name, x := range g.indexes {
		data, err := x.MarshalBinary()
		if err != nil {
			return
		}
		b = binary.LittleEndian.AppendUint32(b, uint32(len(name)))
		b = append(b, name...)
		b = binary.LittleEndian.AppendUint64(b, uint64(x.CompressedSize()))
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
func (g *gzipIndexes) index(ctx context.Context, name string, r io.ReaderAt, size int64, o *options) (*zran.Index, error) {
	g.mu.Lock()
	x, ok := g.indexes[name]
	g.mu.Unlock()
	if ok && x.CompressedSize() == size {
		g.mu.Lock()
		g.reused++
		g.mu.Unlock()
		return x, nil
	}
	start := time.Now()
	x, err := zran.Build(ctx, &progressReaderAt{r: r, progress: o.progress.Advance}, size, zranSpan, nil)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if IsIOError(err) {
			return nil, err
		}
		return nil, corrupt(KindCompression, name, "", -1, "%v", trimPrefix(err, "zran: "))
	}
	o.log.Debug("gzip index built", "member", name, "bytes", size, "points", x.Points(), "seconds", time.Since(start).Seconds())
	g.mu.Lock()
	g.indexes[name], g.dirty = x, true
	g.built++
	g.builtBytes += size
	g.mu.Unlock()
	return x, nil
}

// indexAll builds, on up to jobs workers, the indexes of the gzip files
// whose index is not in the cache yet, under one progress bar; index then
// finds each of them built.
func (g *gzipIndexes) indexAll(ctx context.Context, files []located, o *options) error {
	var todo []located
	var total int64
	g.mu.Lock()
	for _, f := range files {
		if x, ok := g.indexes[f.name]; !ok || x.CompressedSize() != f.size {
			todo = append(todo, f)
			total += f.size
		}
	}
	g.mu.Unlock()
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
func (g *gzipIndexes) tarOf(name string, r io.ReaderAt, size int64, closer io.Closer) (*tarFileContainer, error) {
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

package xva

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"time"

	"github.com/klauspost/pgzip"

	"github.com/xva-tools/xva/chunk"
	"github.com/xva-tools/xva/internal/fsutil"
	"github.com/xva-tools/xva/internal/tarx"
	"github.com/xva-tools/xva/s3"
)

// archiveOut receives an archive being written, member by member. Nothing
// appears under the final name until commit; abort removes everything.
type archiveOut interface {
	// file writes a member whose bytes are known.
	file(name string, data []byte) error
	// chunk writes a member produced by write, whose size is known only
	// once it is written, and returns that size.
	chunk(name string, write func(chunk.ChunkFile) (int64, error)) (int64, error)
	commit() error
	abort()
}

// createOutput picks the archive form for output. "-" is a tar stream on
// stdout. For the legacy generation, a name ending in "/", an existing
// directory or dir means the directory form, anything else a tar file
// written in place. An xapi archive is always one tar stream, compressed as
// a whole if asked, written to a temporary file and renamed.
func createOutput(output string, g Generation, o *options) (archiveOut, error) {
	if g == Legacy && o.compress != "" {
		return nil, fmt.Errorf("%w: legacy archives are not compressed as a whole (their chunks are gzip already); "+
			"whole-archive compression (--compress, or an output name ending in .gz or .zst) needs --format xapi", ErrBadOptions)
	}
	if g == XAPI && o.levelSet && o.compress != "gzip" {
		return nil, fmt.Errorf("%w: --level sets a gzip level, and this xapi archive has no gzip: "+
			"give --compress gzip, or leave --level out", ErrBadOptions)
	}
	if o.writer != nil {
		if g == Legacy {
			return nil, fmt.Errorf("xva: a legacy archive cannot be streamed here")
		}
		return newStreamOut(o.writer, nil, o)
	}
	if output == "-" {
		return newStreamOut(os.Stdout, nil, o)
	}
	if IsObjectURL(output) {
		return createObjectOutput(output, g, o)
	}
	st, err := os.Stat(output)
	isDir := err == nil && st.IsDir()
	wantDir := o.dirForm || isDir || output[len(output)-1] == os.PathSeparator
	switch {
	case wantDir && g == XAPI:
		return nil, fmt.Errorf("%w: xapi archives have no directory form; give a file name, or --format legacy for a directory", ErrBadOptions)
	case wantDir:
		return newDirOut(filepath.Clean(output))
	case err == nil && !st.Mode().IsRegular():
		// A FIFO or a device: a stream, and nothing to replace.
		f, err := os.OpenFile(output, os.O_WRONLY, 0)
		if err != nil {
			return nil, err
		}
		return newStreamOut(f, f, o)
	case err == nil && !o.force:
		return nil, fmt.Errorf("%w: %s (use --force to replace it)", ErrExists, output)
	case g == XAPI:
		f, err := fsutil.CreateTemp(output)
		if err != nil {
			return nil, err
		}
		s, err := newStreamOut(f, f, o)
		if err != nil {
			fsutil.Discard(f)
			return nil, err
		}
		s.tmp, s.final, s.replace = f, output, o.force
		return s, nil
	}
	return newTarFileOut(output, o.force)
}

// prepareDir checks that final may receive a directory: it must not exist
// or be an empty directory. It reports whether it exists.
func prepareDir(final string) (bool, error) {
	entries, err := os.ReadDir(final)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return false, nil
	case err != nil && fsutil.Exists(final):
		return false, fmt.Errorf("%w: %s is not a directory", ErrExists, final)
	case err != nil:
		return false, err
	case len(entries) > 0:
		return false, fmt.Errorf("%w: directory %s is not empty", ErrExists, final)
	}
	return true, nil
}

// dirOut writes the directory form into a temporary directory beside the
// final one and renames it into place.
type dirOut struct {
	final, tmp string
	exists     bool
}

func newDirOut(final string) (*dirOut, error) {
	exists, err := prepareDir(final)
	if err != nil {
		return nil, err
	}
	tmp, err := fsutil.MkdirTemp(final)
	if err != nil {
		return nil, err
	}
	return &dirOut{final: final, tmp: tmp, exists: exists}, nil
}

func (d *dirOut) create(name string) (*os.File, error) {
	path := filepath.Join(d.tmp, filepath.FromSlash(name))
	// Inside the temporary directory (0700 until published), files and
	// directories get their final modes, whatever the umask.
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	for dir := filepath.Dir(path); len(dir) > len(d.tmp); dir = filepath.Dir(dir) {
		if err := os.Chmod(dir, fsutil.DirMode()); err != nil {
			return nil, err
		}
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL|noFollow, 0o600)
	if err != nil {
		return nil, err
	}
	if err := f.Chmod(fsutil.Mode()); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

func (d *dirOut) file(name string, data []byte) error {
	_, err := d.chunk(name, func(cf chunk.ChunkFile) (int64, error) {
		n, err := cf.Write(data)
		return int64(n), err
	})
	return err
}

func (d *dirOut) chunk(name string, write func(chunk.ChunkFile) (int64, error)) (int64, error) {
	f, err := d.create(name)
	if err != nil {
		return 0, err
	}
	n, err := write(f)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return n, err
}

func (d *dirOut) commit() error {
	err := fsutil.PublishDir(d.tmp, d.final, d.exists)
	if err != nil {
		d.abort()
	}
	return err
}

func (d *dirOut) abort() { fsutil.DiscardDir(d.tmp) }

// tarFileOut writes a tar file in place: each chunk is written straight
// after a reserved header block, which is filled in once the chunk's size is
// known, so nothing is buffered or written twice.
type tarFileOut struct {
	f       *os.File
	final   string
	replace bool
	pos     int64
}

func newTarFileOut(final string, replace bool) (*tarFileOut, error) {
	f, err := fsutil.CreateTemp(final)
	if err != nil {
		return nil, err
	}
	return &tarFileOut{f: f, final: final, replace: replace}, nil
}

func (t *tarFileOut) file(name string, data []byte) error {
	_, err := t.chunk(name, func(cf chunk.ChunkFile) (int64, error) {
		n, err := cf.Write(data)
		return int64(n), err
	})
	return err
}

func (t *tarFileOut) chunk(name string, write func(chunk.ChunkFile) (int64, error)) (int64, error) {
	if _, err := tarx.V7Header(name, 0, 0); err != nil {
		return 0, err
	}
	sec := &fileSection{f: t.f, base: t.pos + tarx.Block}
	n, err := write(sec)
	if err != nil {
		return n, err
	}
	h, err := tarx.V7Header(name, n, 0)
	if err != nil {
		return n, err
	}
	if _, err := t.f.WriteAt(h[:], t.pos); err != nil {
		return n, err
	}
	t.pos = sec.base + n + (-n & (tarx.Block - 1))
	return n, nil
}

func (t *tarFileOut) commit() error {
	if err := t.f.Truncate(t.pos + 2*tarx.Block); err != nil {
		t.abort()
		return err
	}
	return fsutil.Publish(t.f, t.final, t.replace)
}

func (t *tarFileOut) abort() { fsutil.Discard(t.f) }

// fileSection is a ChunkFile over a file from offset base on.
type fileSection struct {
	f    *os.File
	base int64
	n    int64
}

func (s *fileSection) Write(p []byte) (int, error) {
	n, err := s.f.WriteAt(p, s.base+s.n)
	s.n += int64(n)
	return n, err
}

func (s *fileSection) WriteAt(p []byte, off int64) (int, error) {
	return s.f.WriteAt(p, s.base+off)
}

// streamOut writes a tar stream: to stdout or a pipe, or to a temporary
// file that commit renames into place; compressed as a whole if asked. A
// legacy chunk's size must be in its header before its data, so each chunk
// is spooled first: in memory while small (the common case, since zero
// pieces are tiny), spilling to a temporary file when large.
type streamOut struct {
	bw      *bufio.Writer
	zw      io.WriteCloser // compressor, or nil
	tw      *tarx.Writer
	closer  io.Closer
	tmp     *os.File // temporary file, renamed to final by commit
	final   string
	replace bool
	obj     *s3.Upload // an object being uploaded, made to appear by commit
	spoolAt int        // bytes of a chunk kept in memory before spilling; 0: spoolMemory
}

func newStreamOut(w io.Writer, closer io.Closer, o *options) (*streamOut, error) {
	s := &streamOut{bw: bufio.NewWriterSize(w, 1<<20), closer: closer}
	var tw io.Writer = s.bw
	if o.compress != "" {
		// The archive's bytes are the compressed ones: count those.
		s.bw = bufio.NewWriterSize(countingWriter{w, o.progress.Stored}, 1<<20)
		o.storedBelow = true
		level := pgzip.DefaultCompression
		if o.levelSet {
			level = o.level
		}
		zw, err := compressor(s.bw, o.compress, level, o.jobs)
		if err != nil {
			return nil, err
		}
		s.zw, tw = zw, zw
	}
	s.tw = tarx.NewWriter(tw)
	return s, nil
}

func (s *streamOut) file(name string, data []byte) error {
	if err := s.tw.WriteHeader(name, int64(len(data)), 0); err != nil {
		return err
	}
	_, err := s.tw.Write(data)
	return err
}

func (s *streamOut) chunk(name string, write func(chunk.ChunkFile) (int64, error)) (int64, error) {
	sp := &spool{limit: cmp.Or(s.spoolAt, spoolMemory)}
	defer sp.close()
	n, err := write(sp)
	if err != nil {
		return n, err
	}
	if err := s.tw.WriteHeader(name, n, 0); err != nil {
		return n, err
	}
	return n, sp.writeTo(s.tw)
}

func (s *streamOut) commit() error {
	err := s.tw.Close()
	if s.zw != nil && err == nil {
		err = s.zw.Close()
	}
	if err == nil {
		err = s.bw.Flush()
	}
	if s.tmp != nil {
		if err != nil {
			s.abort()
			return err
		}
		return fsutil.Publish(s.tmp, s.final, s.replace)
	}
	if s.obj != nil {
		if err != nil {
			s.obj.Abort()
			return err
		}
		return objectError(s.obj.Commit())
	}
	if s.closer != nil {
		if cerr := s.closer.Close(); err == nil {
			err = cerr
		}
	}
	return err
}

// abort removes a temporary file; what a stream has sent cannot be taken
// back, and its reader sees a truncated archive, which every reader rejects.
func (s *streamOut) abort() {
	if s.tmp != nil {
		fsutil.Discard(s.tmp)
		return
	}
	if s.obj != nil {
		s.obj.Abort()
		return
	}
	s.bw.Flush()
	if s.closer != nil {
		s.closer.Close()
	}
}

// spoolMemory is how much of one chunk a stream writer keeps in memory
// before spilling to a temporary file.
const spoolMemory = 64 << 20

// spool holds one member's bytes: in memory up to limit, then in a
// temporary file. Memory is held in slabs from spoolSlabs, given back by
// close: a buffer grown by append would leave each chunk's smaller copies
// as garbage (a legacy pack to stdout peaked at 340 MiB with 58 MB chunks)
// and allocate it all again for the next chunk.
type spool struct {
	limit int
	mem   [][]byte // the bytes while in memory: full slabs, the last partly
	f     *os.File
	n     int64
}

// spoolSlab is the unit a spool's memory grows by.
const spoolSlab = 1 << 20

var spoolSlabs = sync.Pool{New: func() any { return new([spoolSlab]byte) }}

func (s *spool) Write(p []byte) (int, error) {
	if s.f == nil && s.n+int64(len(p)) <= int64(s.limit) {
		n := len(p)
		s.n += int64(n)
		for len(p) > 0 {
			if len(s.mem) == 0 || len(s.mem[len(s.mem)-1]) == spoolSlab {
				s.mem = append(s.mem, spoolSlabs.Get().(*[spoolSlab]byte)[:0])
			}
			last := &s.mem[len(s.mem)-1]
			c := min(len(p), spoolSlab-len(*last))
			*last = append(*last, p[:c]...)
			p = p[c:]
		}
		return n, nil
	}
	if s.f == nil {
		f, err := os.CreateTemp("", "xva-spool-*")
		if err != nil {
			return 0, err
		}
		os.Remove(f.Name()) // unlinked: vanishes with the process
		s.f = f
		for _, b := range s.mem {
			if _, err := f.Write(b); err != nil {
				return 0, err
			}
		}
		s.release()
	}
	n, err := s.f.Write(p)
	s.n += int64(n)
	return n, err
}

func (s *spool) WriteAt(p []byte, off int64) (int, error) {
	if s.f != nil {
		return s.f.WriteAt(p, off)
	}
	if off < 0 || off+int64(len(p)) > s.n {
		return 0, io.ErrShortWrite
	}
	n := 0
	for n < len(p) {
		c := copy(s.mem[off/spoolSlab][off%spoolSlab:], p[n:])
		n += c
		off += int64(c)
	}
	return n, nil
}

func (s *spool) writeTo(w io.Writer) error {
	if s.f == nil {
		for _, b := range s.mem {
			if _, err := w.Write(b); err != nil {
				return err
			}
		}
		return nil
	}
	_, err := io.Copy(w, io.NewSectionReader(s.f, 0, s.n))
	return err
}

// release gives the memory's slabs back.
func (s *spool) release() {
	for _, b := range s.mem {
		spoolSlabs.Put((*[spoolSlab]byte)(b[:spoolSlab]))
	}
	s.mem = nil
}

func (s *spool) close() {
	s.release()
	if s.f != nil {
		s.f.Close()
	}
}

// RemovePending removes every temporary file and directory that work in
// progress has not yet renamed into place or removed. It is for a process
// exiting on a signal while some work cannot unwind by itself.
func RemovePending() {
	fsutil.RemoveTemps()
	s3.AbortAll(5 * time.Second)
}

// PlainError returns err's message with temporary file names replaced by
// the output names they were to become.
func PlainError(err error) string { return PlainMessage(err.Error()) }

// internalPrefix matches the package prefixes that errors carry inside the
// program ("chunk: ", "tarx: ", "xva: " after the first), which say
// nothing to a user.
var internalPrefix = regexp.MustCompile(`(^|: |\()(?:chunk|tarx|raw|vhd|lvm|ova|disk|fsutil|pipeline|blockdev|s3|xva): `)

// PlainMessage is a message as a user should read it: the temporary names
// in it replaced by the final ones, and the packages' prefixes removed.
func PlainMessage(s string) string {
	return internalPrefix.ReplaceAllString(fsutil.FinalNames(s), "$1")
}

// countingWriter reports the bytes written through it.
type countingWriter struct {
	w     io.Writer
	count func(int64)
}

func (c countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	if n > 0 {
		c.count(int64(n))
	}
	return n, err
}

// Leftover is a temporary output that an earlier run left beside an output
// about to be written: removed when the run that made it is gone (killed,
// or its machine crashed: its lock went with it), else left alone.
type Leftover = fsutil.Leftover

// SetLeftoverHandler makes fn be told of each Leftover found, before any
// work starts. Call it once, before the work.
func SetLeftoverHandler(fn func(Leftover)) { fsutil.OnLeftover = fn }

// AtomicFile is a file written under a temporary name and renamed into
// place by Commit, or removed by Abort; or, for an s3:// path, an object
// uploaded in parts that appears on Commit and leaves nothing on Abort.
type AtomicFile struct {
	f       *os.File
	obj     *s3.Upload
	final   string
	replace bool
}

// CreateAtomic starts a file that appears at path only when committed;
// path must not exist unless replace.
func CreateAtomic(path string, replace bool) (*AtomicFile, error) {
	if IsObjectURL(path) {
		u, s, err := parseObjectURL(path)
		if err != nil {
			return nil, err
		}
		up, err := s.Create(context.Background(), u, s3.CreateOptions{Replace: replace})
		if err != nil {
			return nil, objectError(err)
		}
		return &AtomicFile{obj: up, final: path}, nil
	}
	if fsutil.Exists(path) && !replace {
		return nil, fmt.Errorf("%w: %s (use --force to replace it)", ErrExists, path)
	}
	f, err := fsutil.CreateTemp(path)
	if err != nil {
		return nil, err
	}
	return &AtomicFile{f: f, final: path, replace: replace}, nil
}

// Write writes to the file or the upload.
func (a *AtomicFile) Write(p []byte) (int, error) {
	if a.obj != nil {
		return a.obj.Write(p)
	}
	return a.f.Write(p)
}

// Commit flushes the file to stable storage and renames it into place, or
// completes the upload.
func (a *AtomicFile) Commit() error {
	if a.obj != nil {
		return objectError(a.obj.Commit())
	}
	return fsutil.Publish(a.f, a.final, a.replace)
}

// Abort removes the file, or aborts the upload.
func (a *AtomicFile) Abort() {
	if a.obj != nil {
		a.obj.Abort()
		return
	}
	fsutil.Discard(a.f)
}

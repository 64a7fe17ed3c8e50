package xva

import (
	"errors"
	"io"
)

// Reader reads an archive member by member in the order the archive holds
// them, decoding nothing, reordering nothing and skipping nothing (tar
// directory entries included). It is what a checker needs; Unpack and
// Convert read through the same containers.
type Reader struct {
	c container
}

// Member is one member of an archive.
type Member struct {
	Name string // a leading "./" removed
	Raw  string // the name exactly as the archive spells it
	Size int64
	Dir  bool      // a tar directory entry
	R    io.Reader // the data; valid until the next call to Next
	open func() (io.ReadCloser, error)
}

// ErrNotRandom is returned by Member.Open for a member of a stream.
var ErrNotRandom = errors.New("xva: the member of a stream cannot be reopened")

// Open returns a reader of the member's data of its own, so that members of
// a directory or a tar file can be read concurrently.
func (m *Member) Open() (io.ReadCloser, error) {
	if m.open == nil {
		return nil, ErrNotRandom
	}
	return m.open()
}

// OpenReader opens the archive at path: a directory, a tar file (plain, or
// gzip- or zstd-compressed as a whole), or "-" for standard input.
func OpenReader(path string, opts ...Option) (*Reader, error) {
	o, err := makeOptions(opts)
	if err != nil {
		return nil, err
	}
	c, err := openContainer(path, o.jobs)
	if err != nil {
		return nil, err
	}
	return &Reader{c: c}, nil
}

// Next returns the next member, or io.EOF after the last. Errors of the
// medium are I/O errors; a malformed or truncated archive gives a
// *CorruptError.
func (r *Reader) Next() (*Member, error) {
	m, err := r.c.next()
	if err != nil {
		return nil, err
	}
	return &Member{Name: m.name, Raw: m.raw, Size: m.size, Dir: m.dir, R: m.r, open: m.open}, nil
}

// Form is "directory", "tar", "tar stream", "tar.gz stream" or "tar.zst stream".
func (r *Reader) Form() string { return r.c.form() }

// Random reports whether members can be opened independently.
func (r *Reader) Random() bool { return r.c.random() }

// Compression is "gzip" or "zstd" for an archive compressed as a whole,
// otherwise "".
func (r *Reader) Compression() string {
	if tc, ok := r.c.(*tarContainer); ok {
		return tc.compression
	}
	return ""
}

// TarEnd reports, once Next has returned io.EOF, whether a tar archive ended
// with the two zero blocks that mark its end, and how many single zero
// blocks stood between headers. A directory reports true, 0.
func (r *Reader) TarEnd() (sawEnd bool, strayZeroBlocks int) {
	switch c := r.c.(type) {
	case *tarContainer:
		return c.tr.SawEnd(), c.tr.StrayZeroBlocks()
	case *tarFileContainer:
		return c.sawEnd, c.strays
	}
	return true, 0
}

// Close releases the archive.
func (r *Reader) Close() error { return r.c.close() }

// IsIOError reports whether err is an error of the medium (reading a file,
// a pipe), as opposed to corruption of the data.
func IsIOError(err error) bool {
	var e ioError
	return errors.As(err, &e)
}

// DiskOf returns the disk a member belongs to: the one whose ID followed by
// "/" begins its name, or nil.
func (m *Metadata) DiskOf(name string) *Disk { return m.diskOf(name) }

package xva

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/xva-tools/xva/chunk"
	"github.com/xva-tools/xva/internal/fsutil"
	"github.com/xva-tools/xva/internal/tarx"
)

// maxOVASize caps ova.xml. Real documents are a few hundred KiB at most
// (xapi builds them in memory); anything larger is hostile or broken.
const maxOVASize = 32 << 20

// member is one file of an archive.
type member struct {
	name string // normalised: a leading "./" removed
	raw  string // as the archive spells it
	dir  bool   // a tar directory entry, which carries no data
	size int64
	r    io.Reader // the member's data; valid until the next member
	// open gives an independent reader of the data, for reading members
	// concurrently. It is nil for a stream.
	open func() (io.ReadCloser, error)
	// at reads the data at random, in a tar file; nil elsewhere.
	at io.ReaderAt
}

// container yields an archive's members in archive order.
type container interface {
	next() (*member, error) // io.EOF after the last member
	form() string           // "directory", "tar" or "tar stream"
	random() bool           // members can be opened independently
	close() error
}

// peeker adds one member of lookahead to a container.
type peeker struct {
	c      container
	peeked *member
	err    error
}

func (p *peeker) peek() (*member, error) {
	if p.peeked == nil && p.err == nil {
		p.peeked, p.err = p.c.next()
	}
	return p.peeked, p.err
}

func (p *peeker) next() (*member, error) {
	m, err := p.peek()
	p.peeked = nil
	return m, err
}

// openContainer opens path: a directory, a tar file, or "-" for a tar
// stream on stdin. A file or stream compressed as a whole with gzip or zstd
// is recognised by its magic number and read as a stream.
func openContainer(path string, jobs int) (container, error) {
	if path == "-" {
		return openStream(os.Stdin, nil, jobs)
	}
	if IsObjectURL(path) {
		return openObjectContainer(path, jobs, false)
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, ioError{err}
	}
	if st.IsDir() {
		return openDirContainer(path)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, ioError{err}
	}
	if !st.Mode().IsRegular() {
		return openStream(f, f, jobs)
	}
	var magic [4]byte
	n, err := io.ReadFull(f, magic[:])
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		f.Close()
		return nil, ioError{err}
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		f.Close()
		return nil, ioError{err}
	}
	if compressionOf(magic[:n]) != "" {
		return openStream(f, f, jobs)
	}
	return indexTarFile(f)
}

// openStream reads a tar stream, decompressing it if it starts with a gzip
// or zstd magic number.
func openStream(r io.Reader, closer io.Closer, jobs int) (container, error) {
	raw := &countedReader{r: r}
	br := bufio.NewReaderSize(ioReader{raw}, 1<<20)
	magic, _ := br.Peek(4)
	kind := compressionOf(magic)
	if kind == "" {
		return newTarContainer(br, closer, "tar stream"), nil
	}
	zr, err := decompress(br, kind, jobs)
	if err != nil {
		if closer != nil {
			closer.Close()
		}
		return nil, corrupt(KindCompression, "", "", -1, "reading the %s stream: %w", kind, err)
	}
	c := newTarContainer(zr, closer, "tar."+map[string]string{"gzip": "gz", "zstd": "zst"}[kind]+" stream")
	c.compression = kind
	c.decomp = zr
	c.raw = &raw.n
	return c, nil
}

// countedReader counts the bytes read from the medium.
type countedReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countedReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// Magic numbers of whole-archive compression, as xapi's importer tests them.
var (
	gzipMagic = []byte{0x1f, 0x8b}
	zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}
)

func compressionOf(magic []byte) string {
	switch {
	case bytes.HasPrefix(magic, zstdMagic) || isSkippableFrame(magic):
		return "zstd"
	case bytes.HasPrefix(magic, gzipMagic):
		return "gzip"
	}
	return ""
}

// isSkippableFrame reports whether magic starts a zstd skippable frame
// (RFC 8878 §3.1.2: magic 0x184D2A50 to 0x184D2A5F, little-endian), which
// may come before the first frame of a valid zstd stream.
func isSkippableFrame(magic []byte) bool {
	return len(magic) >= 4 && magic[0]&0xf0 == 0x50 && magic[1] == 0x2a && magic[2] == 0x4d && magic[3] == 0x18
}

// tarContainer reads members from a tar stream. Directory entries are
// skipped: legacy archives made with tar(1) have them and nothing in them
// matters.
type tarContainer struct {
	tr          *tarx.Reader
	closer      io.Closer
	kind        string
	compression string
	decomp      io.ReadCloser
	raw         *atomic.Int64 // compressed bytes read, when compressed
}

// newTarContainer reads a tar stream from r. Callers wrap the medium, not a
// decompressor, in ioReader: a broken compressed stream is corruption.
func newTarContainer(r io.Reader, closer io.Closer, kind string) *tarContainer {
	return &tarContainer{tr: tarx.NewReader(r), closer: closer, kind: kind}
}

func (t *tarContainer) form() string { return t.kind }
func (t *tarContainer) random() bool { return false }

// drain reads a compressed stream to its end after the tar's end, so that
// the decompressor checks its own trailer (gzip's CRC-32 and ISIZE, zstd's
// frame checksum): the tar reader stops at the end-of-archive blocks. It
// returns io.EOF when the stream is sound.
func (t *tarContainer) drain() error {
	if t.decomp == nil {
		return io.EOF
	}
	_, err := io.Copy(io.Discard, t.decomp)
	t.decomp = nil
	if err == nil {
		return io.EOF
	}
	if errors.As(err, new(ioError)) {
		return err
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return corrupt(KindTruncated, "", "", -1, "the %s stream is truncated after the end of the tar", t.compression)
	}
	var ce *CorruptError
	if errors.As(err, &ce) {
		cause := ce.Err
		if u := errors.Unwrap(cause); u != nil {
			cause = u // the decompressor's own words
		}
		return corrupt(ce.Kind, "", "", -1, "the %s stream is damaged after the end of the tar: %w", t.compression, cause)
	}
	return err // the decompressor says what it is (unsupported)
}

func (t *tarContainer) close() error {
	if t.decomp != nil {
		t.decomp.Close()
	}
	if t.closer != nil {
		return t.closer.Close()
	}
	return nil
}

func (t *tarContainer) next() (*member, error) {
	h, err := t.tr.Next()
	if err == io.EOF {
		return nil, t.drain()
	}
	if err != nil {
		return nil, tarError(err, t.tr.Pos())
	}
	name := strings.TrimPrefix(h.Name, "./")
	dir := h.Typeflag == tarx.TypeDir || (strings.HasSuffix(name, "/") && h.Size == 0)
	if !dir && !h.IsRegular() {
		return nil, corrupt(KindTar, h.Name, "", -1, "tar member of type %q is not a regular file", h.Typeflag)
	}
	if local := strings.TrimSuffix(name, "/"); local != "" && local != "." && (!filepath.IsLocal(local) || strings.Contains(name, `\`)) {
		return nil, corrupt(KindName, h.Name, "", -1, "member name escapes the archive")
	}
	return &member{name: name, raw: h.Name, dir: dir, size: h.Size, r: t.tr}, nil
}

// skipDirs hides directory entries: readers of the data never need them.
// onDir, if set, is told of each.
type skipDirs struct {
	container
	onDir func(*member) error
}

func (s *skipDirs) next() (*member, error) {
	for {
		m, err := s.container.next()
		if err != nil || !m.dir {
			return m, err
		}
		if s.onDir != nil {
			if err := s.onDir(m); err != nil {
				return nil, err
			}
		}
	}
}

// tarError gives a tar reader error its kind: a truncation or a bad
// header is corruption; the errors of what the tar is read from (the
// medium's, a decompressor's) already say what they are and pass as they
// are.
func tarError(err error, pos int64) error {
	var te *tarx.TruncatedError
	switch {
	case errors.As(err, &te):
		return corrupt(KindTruncated, strings.TrimPrefix(te.Member, "./"), "", -1, "member truncated: the archive ends inside its data")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return corrupt(KindTruncated, "", "", -1, "archive truncated at byte %d", pos)
	case errors.Is(err, tarx.ErrHeader), errors.Is(err, tarx.ErrChecksum), errors.Is(err, tarx.ErrTooLarge):
		return corrupt(KindTar, "", "", -1, "%w", err)
	}
	return err
}

// tarFileContainer reads a tar file on disk. Its members are indexed once,
// seeking over their data. For a legacy archive they can then be read in
// the same order as the directory form (sortByName): tar(1) stores a
// directory's files in readdir order, and a seekable archive has no reason
// to reject that. An xapi archive's order is part of its format and is kept.
type tarFileContainer struct {
	f       io.ReaderAt // the tar file, or its content read at random another way
	closer  io.Closer
	members []indexed
	// section, if set, opens a member read front to back more cheaply
	// than through f (an object in a store: one GET, read ahead).
	section func(off, n int64) io.ReadCloser
	// reordered is set when the physical order differed from name order.
	reordered bool
	sawEnd    bool  // the archive ends with two zero blocks
	strays    int   // single zero blocks between headers
	err       error // what stopped the indexing, returned after the last good member
}

type indexed struct {
	name, raw string
	dir       bool
	size, off int64
}

func indexTarFile(f *os.File) (*tarFileContainer, error) {
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, ioError{err}
	}
	return indexTar(f, st.Size(), f)
}

// indexTar indexes the tar held in r (size bytes), closed with closer.
func indexTar(r io.ReaderAt, size int64, closer io.Closer) (*tarFileContainer, error) {
	t, _, err := indexTarVia(r, r, size, closer, 0)
	return t, err
}

// indexTarVia indexes the tar held in data, reading its headers through
// hdr (for an object in a store: one small GET each), and gives up,
// reporting false, past limit members (0: no limit) or, with a limit, at
// the first block checksum member: an xapi archive, two members per MiB,
// which would pass the limit anyway.
func indexTarVia(hdr, data io.ReaderAt, size int64, closer io.Closer, limit int) (*tarFileContainer, bool, error) {
	t := &tarFileContainer{f: data, closer: closer}
	f := closer
	// Headers are read by offset: skipping a member's data costs nothing.
	tc := newTarContainer(fileReader{io.NewSectionReader(hdr, 0, size)}, nil, "tar")
	for {
		if limit > 0 && len(t.members) > limit {
			return nil, false, nil
		}
		m, err := tc.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			if xerr := new(ioError); errors.As(err, xerr) {
				f.Close()
				return nil, true, err
			}
			// Corruption: the members before it can still be read.
			t.err = err
			break
		}
		if limit > 0 && chunk.IsChecksumName(m.name) {
			return nil, false, nil
		}
		t.members = append(t.members, indexed{m.name, m.raw, m.dir, m.size, tc.tr.DataOffset()})
	}
	t.sawEnd, t.strays = tc.tr.SawEnd(), tc.tr.StrayZeroBlocks()
	return t, true, nil
}

// sortByName puts the members not yet read (all after ova.xml) in
// directory-form order, which for an xapi archive is its own order: disks
// in the lexicographic order of their ids, each block before its checksum
// member and the next block.
func (t *tarFileContainer) sortByName() {
	cmp := func(a, b indexed) int { return compareMemberPaths(a.name, b.name) }
	if !slices.IsSortedFunc(t.members, cmp) {
		t.reordered = true
		slices.SortStableFunc(t.members, cmp)
	}
}

// madeByTar reports whether the members not yet read carry tar(1)'s marks:
// directory entries or names under "./", which neither xapi nor xva writes.
func (t *tarFileContainer) madeByTar() bool {
	return slices.ContainsFunc(t.members, func(m indexed) bool { return m.dir || m.raw != m.name })
}

func (t *tarFileContainer) form() string { return "tar" }
func (t *tarFileContainer) random() bool { return true }
func (t *tarFileContainer) close() error { return t.closer.Close() }

func (t *tarFileContainer) next() (*member, error) {
	if len(t.members) == 0 {
		if t.err != nil {
			return nil, t.err
		}
		return nil, io.EOF
	}
	m := t.members[0]
	t.members = t.members[1:]
	open := func() (io.ReadCloser, error) {
		return io.NopCloser(&memberReader{r: io.NewSectionReader(t.f, m.off, m.size)}), nil
	}
	r, _ := open()
	if t.section != nil {
		open = func() (io.ReadCloser, error) {
			return sectionReader{t.section(m.off, m.size)}, nil
		}
	}
	return &member{name: m.name, raw: m.raw, dir: m.dir, size: m.size, r: r, open: open,
		at: io.NewSectionReader(t.f, m.off, m.size)}, nil
}

// fileReader reads a file by offset: seeking is free and the size known,
// and its errors are the medium's.
type fileReader struct{ *io.SectionReader }

func (f fileReader) Read(p []byte) (int, error) {
	n, err := f.SectionReader.Read(p)
	if err != nil && err != io.EOF && !IsCorrupt(err) {
		err = ioError{err}
	}
	return n, err
}

// sectionReader reads a member through tarFileContainer.section: the
// member cut short is truncation, as for memberReader; any other failure
// is the medium's.
type sectionReader struct{ io.ReadCloser }

func (s sectionReader) Read(p []byte) (int, error) {
	n, err := s.ReadCloser.Read(p)
	if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF && !IsCorrupt(err) {
		err = ioError{err}
	}
	return n, err
}

// memberReader reads a member of a tar file; reaching the end of the file
// before the member's end is truncation.
type memberReader struct {
	r *io.SectionReader
}

func (m *memberReader) Read(p []byte) (int, error) {
	n, err := m.r.Read(p)
	if err == io.EOF {
		if off, _ := m.r.Seek(0, io.SeekCurrent); off < m.r.Size() {
			return n, io.ErrUnexpectedEOF
		}
	}
	if err != nil && err != io.EOF {
		err = ioError{err}
	}
	return n, err
}

// dirContainer reads the directory form: ova.xml, then each subdirectory
// in name order with its files in name order, which is the order xapi's
// importer reads a tar of the same tree.
type dirContainer struct {
	root  string
	names []string
	cur   io.Closer
}

func openDirContainer(root string) (*dirContainer, error) {
	d := &dirContainer{root: root}
	top, err := os.ReadDir(root)
	if err != nil {
		return nil, ioError{err}
	}
	hasOVA := false
	var files []string
	for _, e := range top {
		switch {
		case e.Name() == "ova.xml" && e.Type().IsRegular():
			hasOVA = true
		case e.IsDir():
			sub, err := os.ReadDir(filepath.Join(root, e.Name()))
			if err != nil {
				return nil, ioError{err}
			}
			for _, s := range sub {
				name := path.Join(e.Name(), s.Name())
				if !s.Type().IsRegular() {
					return nil, corrupt(KindTar, name, "", -1, "not a regular file")
				}
				files = append(files, name)
			}
		case e.Type()&fs.ModeSymlink != 0:
			return nil, corrupt(KindTar, e.Name(), "", -1, "symlinks are not followed in an archive directory")
		case !e.Type().IsRegular():
			// A FIFO would block the open until a writer comes.
			return nil, corrupt(KindTar, e.Name(), "", -1, "not a regular file")
		default:
			files = append(files, e.Name())
		}
	}
	if !hasOVA {
		return nil, corrupt(KindMetadata, "ova.xml", "", -1, "directory %s has no ova.xml", root)
	}
	slices.SortFunc(files, compareMemberPaths)
	d.names = append([]string{"ova.xml"}, files...)
	return d, nil
}

// compareMemberPaths orders by directory, then by file name, so that "sda"
// files come before "sda-x" files whatever characters sort below "/".
func compareMemberPaths(a, b string) int {
	da, fa, _ := strings.Cut(a, "/")
	db, fb, _ := strings.Cut(b, "/")
	if c := strings.Compare(da, db); c != 0 {
		return c
	}
	return strings.Compare(fa, fb)
}

func (d *dirContainer) form() string { return "directory" }
func (d *dirContainer) random() bool { return true }

func (d *dirContainer) next() (*member, error) {
	if d.cur != nil {
		d.cur.Close()
		d.cur = nil
	}
	if len(d.names) == 0 {
		return nil, io.EOF
	}
	name := d.names[0]
	d.names = d.names[1:]
	path := filepath.Join(d.root, filepath.FromSlash(name))
	open := func() (io.ReadCloser, error) {
		f, err := fsutil.OpenInput(path, false, noFollow)
		if err != nil {
			return nil, ioError{err}
		}
		return dirFile{f}, nil
	}
	f, err := open()
	if err != nil {
		return nil, err
	}
	st, err := f.(interface{ Stat() (fs.FileInfo, error) }).Stat()
	if err != nil {
		f.Close()
		return nil, ioError{err}
	}
	d.cur = f
	return &member{name: name, raw: name, size: st.Size(), r: f, open: open}, nil
}

// dirFile reads a member of a directory archive, its errors marked as I/O
// errors, and closes and stats the file.
type dirFile struct{ f *os.File }

func (d dirFile) Read(p []byte) (int, error) { return ioReader{d.f}.Read(p) }
func (d dirFile) Close() error               { return d.f.Close() }
func (d dirFile) Stat() (fs.FileInfo, error) { return d.f.Stat() }

func (d *dirContainer) close() error {
	if d.cur != nil {
		return d.cur.Close()
	}
	return nil
}

// readOVA reads the first member of the archive at path, which must be
// ova.xml. An input that is not an archive at all (no tar, an empty file,
// a disk image, an OVA) gives a *NotArchiveError saying what it is.
func readOVA(p *peeker, path string) ([]byte, error) {
	m, err := p.next()
	if err == io.EOF {
		if e := notArchive(path); e != nil {
			return nil, e
		}
		return nil, corrupt(KindMetadata, "ova.xml", "", -1, "archive is empty")
	}
	if err != nil && !IsIOError(err) {
		// No first header: something else, or a damaged archive.
		if e := notArchive(path); e != nil {
			return nil, e
		}
		if errors.Is(err, tarx.ErrHeader) || errors.Is(err, tarx.ErrChecksum) {
			return nil, corrupt(KindTar, "", "", -1, "%s does not start with a valid tar header", path)
		}
	}
	if err != nil {
		return nil, err
	}
	if m.name != "ova.xml" {
		if e := notArchive(path); e != nil {
			return nil, e
		}
		return nil, corrupt(KindMetadata, m.name, "", -1, "the first member must be ova.xml")
	}
	if m.size > maxOVASize {
		return nil, corrupt(KindMetadata, "ova.xml", "", -1, "ova.xml is %d bytes, more than the %d allowed", m.size, maxOVASize)
	}
	b, err := io.ReadAll(io.LimitReader(m.r, m.size))
	if errors.Is(err, io.ErrUnexpectedEOF) || (err == nil && int64(len(b)) != m.size) {
		return nil, corrupt(KindTruncated, "ova.xml", "", -1, "archive truncated inside ova.xml")
	}
	return b, err
}

// notArchive says what the file at path is when it is recognisably not an
// archive: a *NotArchiveError, or nil. Standard input cannot be looked at
// again, so it is only ever "not an archive" when it holds no tar header.
func notArchive(path string) error {
	if path == "-" {
		return nil
	}
	return identifyFile(path)
}

// Retarred reports whether the archive at path is a tar file made by tar -cf
// of an extracted archive: directory entries or names under "./", and the
// members out of the order the format requires. Unpack, Convert and Info
// read such a file in name order, but hosts refuse it; Convert writes it
// in order.
func Retarred(path string) (bool, error) {
	st, err := os.Stat(path)
	if err != nil || !st.Mode().IsRegular() {
		return false, err
	}
	c, err := openContainer(path, 1)
	if err != nil {
		return false, err
	}
	defer c.close()
	tf, ok := c.(*tarFileContainer)
	if !ok {
		return false, nil
	}
	// tar(1)'s mark: directory entries, or names under "./". Neither xapi
	// nor xva writes them, and without them a disorder is a fault of its
	// own, which the readers name member by member.
	if !tf.madeByTar() {
		return false, nil
	}
	p := &peeker{c: &skipDirs{container: c}}
	doc, err := readOVA(p, path)
	if err != nil {
		return false, nil // not for this question: the readers say what is wrong
	}
	if _, err := ParseMetadata(doc); err != nil {
		return false, nil
	}
	rest := slices.DeleteFunc(slices.Clone(tf.members), func(m indexed) bool { return m.dir })
	return !slices.IsSortedFunc(rest, func(a, b indexed) int { return compareMemberPaths(a.name, b.name) }), nil
}

// NotArchive reports, for a file xva cannot read as an archive, what it
// is instead (a *NotArchiveError: a disk image, an OVA, an empty file), or
// nil when it may be a damaged archive.
func NotArchive(path string) error { return notArchive(path) }

func isEOF(err error) bool { return err == io.EOF }

// noFollow keeps archive reads from following a symlink planted in a
// directory archive.
const noFollow = fsutil.ONoFollow

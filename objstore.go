package xva

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"
	"sync"

	"github.com/xva-tools/xva/chunk"
	"github.com/xva-tools/xva/s3"
)

// Archives in object storage: wherever an archive path is taken, an
// s3://BUCKET/KEY names an object (a tar file, compressed or not) and
// s3://BUCKET/PREFIX/ a directory-form archive. One store serves the
// process, configured once by ConfigureS3 (the command line's flags) or
// else from the environment alone.
var objectStores struct {
	sync.Mutex
	o     s3.Options
	store *s3.Store
}

// ConfigureS3 sets how s3:// paths are reached from now on.
func ConfigureS3(o s3.Options) {
	objectStores.Lock()
	objectStores.o, objectStores.store = o, nil
	objectStores.Unlock()
}

// IsObjectURL reports whether path names a location in object storage.
func IsObjectURL(path string) bool { return s3.IsURL(path) }

// objectStore returns the process's store, made on first use.
func objectStore() (*s3.Store, error) {
	objectStores.Lock()
	defer objectStores.Unlock()
	if objectStores.store == nil {
		s, err := s3.New(context.Background(), objectStores.o)
		if err != nil {
			return nil, err
		}
		objectStores.store = s
	}
	return objectStores.store, nil
}

// parseObjectURL parses an s3:// path, a bad one being a usage error.
func parseObjectURL(p string) (s3.URL, *s3.Store, error) {
	u, err := s3.Parse(p)
	if err != nil {
		return u, nil, fmt.Errorf("%w: %s", ErrBadOptions, strings.TrimPrefix(err.Error(), "s3: "))
	}
	s, err := objectStore()
	return u, s, err
}

// openObjectContainer opens the archive at an s3:// path: an object read
// through ranged GETs (its tar indexed from its headers, its members read
// in parallel, as a local tar file is; or, compressed as a whole, read
// front to back with read-ahead), or a prefix holding ova.xml.
//
// A tar object is indexed from its headers, one small ranged GET each,
// when it has few members (legacy chunks, up to 1 GB each), so they are
// then read in parallel as a local tar file's are; one with many (an xapi
// archive: two members per MiB of data), whose index would cost a request
// per member, is read as a stream, each byte fetched once, ahead. For
// random access (serve, cat) it is always indexed.
func openObjectContainer(p string, jobs int, random bool) (container, error) {
	u, s, err := parseObjectURL(p)
	if err != nil {
		return nil, err
	}
	ctx := context.Background()
	if !u.IsPrefix() {
		obj, err := s.Open(ctx, u)
		switch {
		case err == nil:
			return openObjectTar(obj, jobs, random)
		case !errors.Is(err, s3.ErrNotFound):
			return nil, ioError{err}
		}
		// No such object: a directory-form archive under KEY/?
		infos, lerr := s.List(ctx, u.Dir())
		if lerr != nil {
			return nil, ioError{lerr} // names a missing bucket, which HEAD cannot
		}
		if len(realObjects(infos)) == 0 {
			return nil, ioError{err}
		}
	}
	return openObjectDir(ctx, s, u.Dir())
}

// openObject opens the object at an s3:// path.
func openObject(p string) (*s3.Object, error) {
	u, s, err := parseObjectURL(p)
	if err != nil {
		return nil, err
	}
	obj, err := s.Open(context.Background(), u)
	if err != nil {
		return nil, ioError{err}
	}
	return obj, nil
}

// objectAt reads an object at random, its failures the medium's.
type objectAt struct{ o *s3.Object }

func (a objectAt) ReadAt(p []byte, off int64) (int, error) { return ioReaderAt{a.o}.ReadAt(p, off) }
func (a objectAt) Close() error                            { return a.o.Close() }

// indexLimit is how many members a tar object may have to be indexed
// from its headers for reading front to back.
const indexLimit = 64

func openObjectTar(obj *s3.Object, jobs int, random bool) (container, error) {
	var magic [4]byte
	n, err := obj.ReadDirect(magic[:], 0)
	if err != nil && err != io.EOF {
		return nil, ioError{err}
	}
	if compressionOf(magic[:n]) != "" {
		return streamObject(obj, jobs)
	}
	limit := indexLimit
	if random {
		limit = 0
	}
	t, ok, err := indexTarVia(ioReaderAt{directReader{obj}}, ioReaderAt{obj}, obj.Size(), obj, limit)
	if err != nil || ok {
		if t != nil {
			t.section = obj.Section
		}
		return t, err
	}
	return streamObject(obj, jobs)
}

// streamObject reads obj front to back with one GET (s3.Object.Stream).
func streamObject(obj *s3.Object, jobs int) (container, error) {
	st := obj.Stream(0)
	return openStream(st, closers{st, obj}, jobs)
}

// directReader reads an object's bytes with a GET of just those bytes.
type directReader struct{ o *s3.Object }

func (d directReader) ReadAt(p []byte, off int64) (int, error) { return d.o.ReadDirect(p, off) }

// realObjects leaves out the empty "folder" objects consoles make (a key
// ending in "/"), which hold nothing of an archive.
func realObjects(infos []s3.Info) []s3.Info {
	return slices.DeleteFunc(slices.Clone(infos), func(i s3.Info) bool {
		return i.Size == 0 && strings.HasSuffix(i.URL.Key, "/")
	})
}

// objectDir reads the directory form from a prefix: ova.xml, then each
// "subdirectory" in name order with its objects in name order, as
// dirContainer reads a local directory.
type objectDir struct {
	s     *s3.Store
	ctx   context.Context
	infos []s3.Info
	names []string
}

func openObjectDir(ctx context.Context, s *s3.Store, u s3.URL) (*objectDir, error) {
	infos, err := s.List(ctx, u)
	if err != nil {
		return nil, ioError{err}
	}
	infos = realObjects(infos)
	if len(infos) == 0 {
		return nil, ioError{fmt.Errorf("%s: no such object, and no objects under that prefix", u)}
	}
	d := &objectDir{s: s, ctx: ctx}
	hasOVA := false
	for _, info := range infos {
		name := strings.TrimPrefix(info.URL.Key, u.Key)
		if strings.Count(name, "/") > 1 {
			return nil, corrupt(KindTar, name, "", -1, "deeper than an archive's directory form")
		}
		hasOVA = hasOVA || name == "ova.xml"
		info := info
		info.URL.Key = name // the member name, until opened
		d.infos = append(d.infos, info)
	}
	if !hasOVA {
		return nil, corrupt(KindMetadata, "ova.xml", "", -1, "%s holds no ova.xml", u)
	}
	slices.SortFunc(d.infos, func(a, b s3.Info) int {
		switch {
		case a.URL.Key == "ova.xml":
			return -1
		case b.URL.Key == "ova.xml":
			return 1
		}
		return compareMemberPaths(a.URL.Key, b.URL.Key)
	})
	for i := range d.infos {
		d.names = append(d.names, d.infos[i].URL.Key)
		d.infos[i].URL.Key = path.Join(u.Key, d.infos[i].URL.Key)
	}
	return d, nil
}

func (d *objectDir) form() string { return "directory" }
func (d *objectDir) random() bool { return true }
func (d *objectDir) close() error { return nil }

func (d *objectDir) next() (*member, error) {
	if len(d.infos) == 0 {
		return nil, io.EOF
	}
	info, name := d.infos[0], d.names[0]
	d.infos, d.names = d.infos[1:], d.names[1:]
	obj := d.s.OpenInfo(d.ctx, info)
	open := func() (io.ReadCloser, error) {
		return sectionReader{obj.Stream(0)}, nil // one GET of the chunk
	}
	return &member{name: name, raw: name, size: info.Size, r: ioReader{obj.Reader(0)}, open: open, at: ioReaderAt{obj}}, nil
}

// createObjectOutput starts an archive written to object storage: one
// object, streamed by a multipart upload that appears only on commit
// (both generations: a legacy tar's chunks are spooled as for any
// stream), or, for a prefix, the legacy directory form.
func createObjectOutput(output string, g Generation, o *options) (archiveOut, error) {
	u, s, err := parseObjectURL(output)
	if err != nil {
		return nil, err
	}
	ctx := context.Background()
	if u.IsPrefix() || o.dirForm {
		if g == XAPI {
			return nil, fmt.Errorf("%w: xapi archives have no directory form; give an object name (s3://BUCKET/NAME.xva), or --format legacy for a prefix", ErrBadOptions)
		}
		return newObjectDirOut(ctx, s, u.Dir(), o.force)
	}
	up, err := s.Create(ctx, u, s3.CreateOptions{Replace: o.force})
	if err != nil {
		return nil, objectError(err)
	}
	out, err := newStreamOut(up, nil, o)
	if err != nil {
		up.Abort()
		return nil, err
	}
	// The upload's parts are this output's memory; a legacy chunk, whose
	// size the tar needs before its bytes, waits in a temporary file
	// past a small spool, not beside them.
	out.obj, out.spoolAt = up, objectSpool
	return out, nil
}

// objectSpool is how much of a legacy chunk going to object storage is
// kept in memory before it spills to a temporary file.
const objectSpool = 16 << 20

// objectError maps the store's refusal to replace an object to ErrExists.
func objectError(err error) error {
	if errors.Is(err, s3.ErrExists) {
		return fmt.Errorf("%w: %s", ErrExists, strings.TrimPrefix(err.Error(), "s3: "))
	}
	return err
}

// objectDirOut writes the directory form under a prefix: each member an
// object, ova.xml last, so that a reader finds no archive until every
// chunk is there; abort deletes what was written.
type objectDirOut struct {
	s       *s3.Store
	ctx     context.Context
	u       s3.URL
	ova     []byte
	written []s3.URL
	stale   []s3.URL // objects already under the prefix (--force), removed on commit
}

func newObjectDirOut(ctx context.Context, s *s3.Store, u s3.URL, force bool) (*objectDirOut, error) {
	infos, err := s.List(ctx, u)
	if err != nil {
		return nil, err
	}
	d := &objectDirOut{s: s, ctx: ctx, u: u}
	if len(infos) > 0 && !force {
		return nil, fmt.Errorf("%w: %s holds %d objects (use --force to replace them)", ErrExists, u, len(infos))
	}
	for _, info := range infos {
		d.stale = append(d.stale, info.URL)
	}
	// Replacing: the old archive stops being one before a member of the
	// new one is written, so no reader ever finds a mix of the two; a
	// failure then leaves the prefix empty rather than half old, half new.
	if ova := u.Join("ova.xml"); slices.Contains(d.stale, ova) {
		if err := s.Delete(ctx, ova); err != nil {
			return nil, err
		}
		d.stale = slices.DeleteFunc(d.stale, func(s s3.URL) bool { return s == ova })
	}
	return d, nil
}

func (d *objectDirOut) put(name string, write func(io.Writer) error) error {
	u := d.u.Join(name)
	up, err := d.s.Create(d.ctx, u, s3.CreateOptions{Replace: true})
	if err != nil {
		return err
	}
	if err := write(up); err != nil {
		up.Abort()
		return err
	}
	if err := up.Commit(); err != nil {
		return err
	}
	d.written = append(d.written, u)
	d.stale = slices.DeleteFunc(d.stale, func(s s3.URL) bool { return s == u })
	return nil
}

func (d *objectDirOut) file(name string, data []byte) error {
	if name == "ova.xml" {
		d.ova = data
		return nil
	}
	return d.put(name, func(w io.Writer) error { _, err := w.Write(data); return err })
}

func (d *objectDirOut) chunk(name string, write func(chunk.ChunkFile) (int64, error)) (int64, error) {
	sp := &spool{limit: objectSpool}
	defer sp.close()
	n, err := write(sp)
	if err != nil {
		return n, err
	}
	return n, d.put(name, sp.writeTo)
}

func (d *objectDirOut) commit() error {
	if d.ova == nil {
		d.abort()
		return errors.New("xva: no ova.xml was written")
	}
	if err := d.put("ova.xml", func(w io.Writer) error { _, err := w.Write(d.ova); return err }); err != nil {
		d.abort()
		return err
	}
	if len(d.stale) > 0 {
		return d.s.Delete(d.ctx, d.stale...)
	}
	return nil
}

func (d *objectDirOut) abort() {
	if gone := append(d.written, d.stale...); len(gone) > 0 {
		d.s.Delete(context.WithoutCancel(d.ctx), gone...)
	}
}

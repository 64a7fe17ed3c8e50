package xva

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sync"
)

// Reader decodes an archive of either generation, in the shape of
// archive/tar: Next returns the next entry, ova.xml first, then each
// disk's data as extents in increasing offset order, and the Reader is
// the io.Reader of the current entry. What Read returns has been checked:
// an xapi block's hash before any of its bytes; a legacy chunk, like a
// gzip file, as it is inflated (its pieces' framing, its length) and
// whole only at its end (its CRC-32 and ISIZE): a chunk's extents are
// tentative until the Next that passes its end reports no problem in it
// (Unpack writes under a temporary name for that reason). Zero runs
// between extents are holes. Errors are sticky.
//
// It reads through the same walker as Unpack, Convert and Info, checking
// every rule of the format: the first problem is Next's error, a
// *CorruptError carrying its Kind, unless WithOnProblem lets the Reader go
// on past problems and collect them (what verify does).
type Reader struct {
	a      *archive
	ctx    context.Context
	cancel context.CancelFunc

	ova    *bytes.Reader // the data of the ova.xml entry
	state  int           // 0: before ova.xml, 1: in ova.xml, 2: in the disks, 3: done
	disk   *Disk         // the disk being decoded
	pieces chan piece    // its extents, from the decoding goroutine
	done   chan error    // the decoder's result
	ack    chan struct{} // the current extent's buffer may be reused
	cur    []byte        // what is left of the current extent
	held   bool          // the decoder waits for an ack
	err    error
}

// Entry is one entry of an archive: its ova.xml, or an extent of a disk's
// data.
type Entry struct {
	Name   string // "ova.xml", or "" for disk data
	Disk   *Disk  // the disk, nil for ova.xml
	Offset int64  // the extent's offset in the disk; -1 for ova.xml
	Size   int64  // bytes Read returns
}

type piece struct {
	off int64
	p   []byte
}

// OpenReader opens the archive at path, a directory, a tar file (plain, or
// gzip- or zstd-compressed as a whole), or "-" for standard input, and
// reads its ova.xml. It takes WithJobs, WithProgress, WithLogger,
// WithOnProblem and WithDiscard; Close stops its work.
func OpenReader(path string, opts ...Option) (*Reader, error) {
	o, err := makeOptions(opts)
	if err != nil {
		return nil, err
	}
	a, err := openArchive(path, o)
	if err != nil {
		return nil, err
	}
	return newReader(a), nil
}

// NewReader reads an archive from a stream (a tar, gzip- or
// zstd-compressed as a whole or not), as OpenReader does a path.
func NewReader(r io.Reader, opts ...Option) (*Reader, error) {
	o, err := makeOptions(opts)
	if err != nil {
		return nil, err
	}
	c, err := openStream(r, nil, o.jobs)
	if err != nil {
		return nil, err
	}
	a, err := newArchive(c, "-", o)
	if err != nil {
		return nil, err
	}
	return newReader(a), nil
}

func newReader(a *archive) *Reader {
	ctx, cancel := context.WithCancel(context.Background())
	return &Reader{a: a, ctx: ctx, cancel: cancel, ova: bytes.NewReader(a.meta.OVA), ack: make(chan struct{})}
}

// Metadata is the archive's ova.xml, parsed.
func (r *Reader) Metadata() *Metadata { return r.a.meta }

// Form is "directory", "tar", "tar stream", "tar.gz stream" or "tar.zst stream".
func (r *Reader) Form() string { return r.a.c.form() }

// Compression is "gzip" or "zstd" for an archive compressed as a whole,
// otherwise "".
func (r *Reader) Compression() string {
	if tc, ok := r.a.c.(*tarContainer); ok {
		return tc.compression
	}
	return ""
}

// Checked says, per disk of ova.xml in its order, what was checked so far.
func (r *Reader) Checked() []DiskCheck {
	r.a.mu.Lock()
	defer r.a.mu.Unlock()
	var out []DiskCheck
	for _, d := range r.a.meta.Disks {
		out = append(out, *r.a.checks[d.ID])
	}
	return out
}

// Notes are remarks on what was read that are no problems (stray zero
// blocks between tar headers, an export_vsn 1 checksum table).
func (r *Reader) Notes() []string { return r.a.notes }

// BytesRead is the member bytes taken so far, ova.xml included.
func (r *Reader) BytesRead() int64 { return r.a.read.Load() }

// Next discards the rest of the current entry and returns the next one,
// or io.EOF after the last.
func (r *Reader) Next() (*Entry, error) {
	if r.err != nil {
		return nil, r.err
	}
	e, err := r.next()
	if err != nil {
		r.err = err
		r.stop()
		if IsCorrupt(err) {
			r.a.abandon()
		}
	}
	return e, err
}

func (r *Reader) next() (*Entry, error) {
	switch r.state {
	case 0:
		r.state = 1
		return &Entry{Name: "ova.xml", Offset: -1, Size: int64(len(r.a.meta.OVA))}, nil
	case 1:
		r.state = 2
	case 3:
		return nil, io.EOF
	}
	r.release()
	for {
		if r.disk != nil {
			select {
			case p := <-r.pieces:
				r.cur, r.held = p.p, true
				return &Entry{Disk: r.disk, Offset: p.off, Size: int64(len(p.p))}, nil
			case err := <-r.done:
				r.a.opts.progress.EndDisk()
				r.disk = nil
				if err != nil {
					return nil, err
				}
			}
		}
		d, err := r.a.nextDisk()
		if err == io.EOF {
			r.state = 3
		}
		if err != nil {
			return nil, err
		}
		if r.a.opts.discard {
			return r.check(d)
		}
		r.start(d)
	}
}

// check decodes and checks d, dropping its data (WithDiscard).
func (r *Reader) check(d *Disk) (*Entry, error) {
	r.a.opts.progress.StartDisk(d.Device, d.Size)
	defer r.a.opts.progress.EndDisk()
	drop := func(int64, []byte) error { return nil }
	var err error
	if r.a.meta.Generation == Legacy && r.a.c.random() {
		err = r.a.decodeLegacyConcurrent(r.ctx, d, drop)
	} else {
		err = r.a.decode(r.ctx, d, drop)
	}
	if err != nil {
		return nil, err
	}
	return &Entry{Disk: d}, nil
}

// start decodes d on a goroutine of its own, which hands each extent over
// and waits until it is read.
func (r *Reader) start(d *Disk) {
	r.disk = d
	r.pieces = make(chan piece)
	r.done = make(chan error, 1)
	r.a.opts.progress.StartDisk(d.Device, d.Size)
	var mu sync.Mutex // emit is called from one goroutine at a time; make sure
	go func() {
		r.done <- r.a.decode(r.ctx, d, func(off int64, p []byte) error {
			mu.Lock()
			defer mu.Unlock()
			select {
			case r.pieces <- piece{off, p}:
			case <-r.ctx.Done():
				return r.ctx.Err()
			}
			select {
			case <-r.ack:
				return nil
			case <-r.ctx.Done():
				return r.ctx.Err()
			}
		})
	}()
}

// release lets the decoder reuse the current extent's buffer.
func (r *Reader) release() {
	r.cur = nil
	if r.held {
		r.held = false
		r.ack <- struct{}{}
	}
}

// Read reads the current entry's checked bytes.
func (r *Reader) Read(p []byte) (int, error) {
	if r.err != nil && r.err != io.EOF {
		return 0, r.err
	}
	if r.state == 1 {
		return r.ova.Read(p)
	}
	if len(r.cur) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.cur)
	r.cur = r.cur[n:]
	return n, nil
}

// stop ends the decoding goroutine, if any, and waits for it.
func (r *Reader) stop() {
	r.cancel()
	if r.disk != nil {
		r.held = false
		<-r.done
		r.disk = nil
	}
}

// Close releases the archive.
func (r *Reader) Close() error {
	r.stop()
	if r.err == nil {
		r.err = errors.New("xva: Reader closed")
	}
	return r.a.close()
}

// IsIOError reports whether err is an error of the medium (reading a file,
// a pipe), as opposed to corruption of the data.
func IsIOError(err error) bool {
	var e ioError
	return errors.As(err, &e)
}

// DiskOf returns the disk a member belongs to: the one whose ID followed by
// "/" begins its name, or nil.
func (m *Metadata) DiskOf(name string) *Disk { return m.diskOf(name) }

package ovf

import (
	"errors"
	"fmt"
	"hash"
	"io"
	"os"

	"github.com/xva-tools/xva/internal/tarx"
)

// Written is one member a Writer wrote: its name, size, and digest when
// the Writer has a Hash (nil otherwise), which is what a manifest line
// needs.
type Written struct {
	Name   string
	Size   int64
	Digest []byte
}

// Writer writes an OVA in one pass: ustar members, no directories, in the
// order they are added (put the .ovf first, DSP0243). A member of unknown
// size is either patched in place (Begin/End, on a seekable file) or cut
// into chunks of a fixed size (BeginChunked/EndChunked, on any output,
// stdout included), the way ovf:chunkSize describes.
//
// Every member's bytes pass through Hash when it is set, and Written lists
// every member with its digest, so a manifest written at the end of the
// archive (which DSP0243 allows) needs no second pass.
type Writer struct {
	// ModTime is the modification time of every member, in seconds since
	// the epoch. It is 0 unless set, so that the same input gives the
	// same bytes.
	ModTime int64
	// Hash, when set, makes a hash for each member (sha256.New, say).
	Hash func() hash.Hash

	w       io.Writer
	file    *os.File // w, when it is a file that can be patched
	base    int64    // w's offset when the Writer began
	pos     int64    // bytes written to w
	err     error
	written []Written
	names   map[string]bool // members written, to refuse a second of a name
	open    *openMember     // the member being written, if any
	closed  bool
}

// openMember is a member being written.
type openMember struct {
	name    string
	header  int64 // offset of its header, for Begin/End
	size    int64
	hash    hash.Hash
	chunked *chunker
	ended   bool // written and recorded: its writer refuses more data
}

// NewWriter returns a Writer on w.
func NewWriter(w io.Writer) *Writer {
	ow := &Writer{w: w}
	if f, ok := w.(*os.File); ok {
		st, err := f.Stat()
		if err == nil && st.Mode().IsRegular() {
			if off, err := f.Seek(0, io.SeekCurrent); err == nil {
				ow.file, ow.base = f, off
			}
		}
	}
	return ow
}

// CanPatch reports whether the output is a regular file that can seek, so
// that Begin can write members of unknown size. (A file opened O_APPEND
// cannot be written at an offset: End reports that.)
func (w *Writer) CanPatch() bool { return w.file != nil }

// Written lists the members written so far, in archive order.
func (w *Writer) Written() []Written { return append([]Written(nil), w.written...) }

// Add writes a member of known contents.
func (w *Writer) Add(name string, data []byte) error {
	if err := w.ready(name); err != nil {
		return err
	}
	m := w.start(name)
	if err := w.header(name, int64(len(data))); err != nil {
		return err
	}
	if _, err := (memberWriter{w, m}).Write(data); err != nil {
		return err
	}
	return w.finish(m)
}

// Begin starts a member of unknown size: a placeholder header, which no
// reader takes for a valid one (its checksum is blank), then the data
// written to the returned writer until End. Only when CanPatch.
func (w *Writer) Begin(name string) (io.Writer, error) {
	if !w.CanPatch() {
		return nil, fmt.Errorf("ovf: member %s of unknown size needs a seekable output file; write it in chunks instead", name)
	}
	if err := w.ready(name); err != nil {
		return nil, err
	}
	h, err := tarx.USTARHeader(name, 0, w.ModTime)
	if err != nil {
		return nil, fmt.Errorf("ovf: member %s: %w", name, err)
	}
	copy(h[148:156], "        ")
	m := w.start(name)
	m.header = w.pos
	if err := w.raw(h[:]); err != nil {
		return nil, err
	}
	w.open = m
	return memberWriter{w, m}, nil
}

// End finishes the member Begin started: pads it to a block, writes its
// real header over the placeholder, and returns its size.
func (w *Writer) End() (int64, error) {
	m := w.open
	if m == nil || m.chunked != nil {
		return 0, errors.New("ovf: End without Begin")
	}
	if w.err != nil {
		return 0, w.err
	}
	h, err := tarx.USTARHeader(m.name, m.size, w.ModTime)
	if err != nil {
		return 0, w.fail(fmt.Errorf("ovf: member %s: %w", m.name, err))
	}
	if _, err := w.file.WriteAt(h[:], w.base+m.header); err != nil {
		return 0, w.fail(fmt.Errorf("ovf: writing the header of %s at offset %d: %w", m.name, w.base+m.header, err))
	}
	w.open = nil
	return m.size, w.finish(m)
}

// BeginChunked starts a file of unknown size for an output that cannot
// seek: the data written to the returned writer becomes members
// name.000000000, name.000000001, … of chunkSize bytes each but the last,
// which is shorter (or empty, when there is no data at all). One chunk is
// held in memory at a time. The References then carry ovf:chunkSize.
func (w *Writer) BeginChunked(name string, chunkSize int64) (io.Writer, error) {
	if chunkSize <= 0 {
		return nil, fmt.Errorf("ovf: chunk size %d of %s is not positive", chunkSize, name)
	}
	if err := w.ready(chunkName(name, 0)); err != nil {
		return nil, err
	}
	c := &chunker{w: w, name: name, size: chunkSize}
	w.open = &openMember{name: name, chunked: c}
	return c, nil
}

// EndChunked writes the last chunk and returns the chunks written.
func (w *Writer) EndChunked() ([]Written, error) {
	m := w.open
	if m == nil || m.chunked == nil {
		return nil, errors.New("ovf: EndChunked without BeginChunked")
	}
	c := m.chunked
	if len(c.buf) > 0 || c.n == 0 {
		if err := c.flush(); err != nil {
			return nil, err
		}
	}
	w.open = nil
	c.done = true
	return w.Written()[len(w.written)-c.n:], nil
}

// Close ends the archive with two zero blocks. It does not close the
// underlying writer.
func (w *Writer) Close() error {
	if w.closed {
		return w.err
	}
	if w.open != nil {
		return fmt.Errorf("ovf: Close with member %s still open", w.open.name)
	}
	w.closed = true
	return w.raw(make([]byte, 2*tarx.Block))
}

// ready checks that a new member may start.
func (w *Writer) ready(name string) error {
	switch {
	case w.err != nil:
		return w.err
	case w.closed:
		return fmt.Errorf("ovf: member %s added after Close", name)
	case w.open != nil:
		return fmt.Errorf("ovf: member %s started while %s is open", name, w.open.name)
	}
	if clean, err := memberName(name); err != nil || clean != name {
		return fmt.Errorf("ovf: member name %q is not a plain local name", name)
	}
	if w.names[name] {
		return fmt.Errorf("ovf: member %s written twice", name)
	}
	// Checked now, so that a name ustar cannot hold fails before any
	// byte of the member is written.
	if _, err := tarx.USTARHeader(name, 0, w.ModTime); err != nil {
		return fmt.Errorf("ovf: member %s: %w", name, err)
	}
	return nil
}

func (w *Writer) start(name string) *openMember {
	m := &openMember{name: name}
	if w.Hash != nil {
		m.hash = w.Hash()
	}
	return m
}

func (w *Writer) header(name string, size int64) error {
	h, err := tarx.USTARHeader(name, size, w.ModTime)
	if err != nil {
		return fmt.Errorf("ovf: member %s: %w", name, err)
	}
	return w.raw(h[:])
}

// finish pads the member to a block and records it.
func (w *Writer) finish(m *openMember) error {
	if err := w.raw(make([]byte, -m.size&(tarx.Block-1))); err != nil {
		return err
	}
	m.ended = true
	if w.names == nil {
		w.names = map[string]bool{}
	}
	w.names[m.name] = true
	wr := Written{Name: m.name, Size: m.size}
	if m.hash != nil {
		wr.Digest = m.hash.Sum(nil)
	}
	w.written = append(w.written, wr)
	return nil
}

func (w *Writer) raw(b []byte) error {
	if w.err != nil {
		return w.err
	}
	n, err := w.w.Write(b)
	w.pos += int64(n)
	if err != nil {
		return w.fail(fmt.Errorf("ovf: writing at offset %d: %w", w.pos, err))
	}
	return nil
}

// fail makes err sticky: the archive is broken from here on.
func (w *Writer) fail(err error) error {
	w.err = err
	return err
}

// memberWriter writes a member's data, counting and hashing it.
type memberWriter struct {
	w *Writer
	m *openMember
}

func (mw memberWriter) Write(b []byte) (int, error) {
	if mw.m.ended {
		return 0, fmt.Errorf("ovf: write to member %s after its end", mw.m.name)
	}
	if err := mw.w.raw(b); err != nil {
		return 0, err
	}
	mw.m.size += int64(len(b))
	if mw.m.hash != nil {
		mw.m.hash.Write(b)
	}
	return len(b), nil
}

// chunker cuts a stream into chunk members.
type chunker struct {
	w    *Writer
	name string
	size int64
	buf  []byte
	n    int  // chunks written
	done bool // EndChunked was called
}

func (c *chunker) Write(b []byte) (int, error) {
	if c.done {
		return 0, fmt.Errorf("ovf: write to %s after EndChunked", c.name)
	}
	done := 0
	for len(b) > 0 {
		if c.w.err != nil {
			return done, c.w.err
		}
		k := int(min(int64(len(b)), c.size-int64(len(c.buf))))
		c.buf = append(c.buf, b[:k]...)
		b, done = b[k:], done+k
		if int64(len(c.buf)) == c.size {
			if err := c.flush(); err != nil {
				return done, err
			}
		}
	}
	return done, nil
}

// flush writes the buffered bytes as the next chunk.
func (c *chunker) flush() error {
	if c.n >= 1000000000 {
		return c.w.fail(fmt.Errorf("ovf: %s needs more than 10^9 chunks", c.name))
	}
	name := chunkName(c.name, c.n)
	m := c.w.start(name)
	if err := c.w.header(name, int64(len(c.buf))); err != nil {
		return c.w.fail(err)
	}
	if _, err := (memberWriter{c.w, m}).Write(c.buf); err != nil {
		return err
	}
	if err := c.w.finish(m); err != nil {
		return err
	}
	c.n++
	c.buf = c.buf[:0]
	return nil
}

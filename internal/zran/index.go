// Package zran reads any range of a gzip file's content without
// inflating it all: an index of restart points (the zlib "zran"
// technique) records, at deflate block boundaries every span bytes of
// output, the bit offset in the compressed data and the 32 KiB window
// of output before it, so that a read starts inflating at the last
// point before it. Each span between points has its CRC-32 in the
// index, so every byte a read returns has been checked.
//
// The DEFLATE decoder is this package's own (RFC 1951): the standard
// decoders do not report block boundaries, which the index needs.
// It imports nothing of the module.
package zran

import (
	"bytes"
	"compress/flate"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"sort"
	"sync"
)

// MinSpan is the smallest span Build accepts: a point costs a window
// of 32 KiB, so points closer than that cost more than they save.
const MinSpan = windowSize

// maxFile is the largest file whose bit offsets fit an int64.
const maxFile = 1 << 60

// maxPoints caps the points for a compressed file of size bytes, so a
// hostile file (DEFLATE expands up to 1032 times) cannot make the
// index grow past a small fraction of the file: a point per KiB.
func maxPoints(size int64) int64 {
	return 16 + size/1024
}

// Index is a gzip file's restart points: enough to read any range of its
// uncompressed content by inflating at most Span bytes before it.
type Index struct {
	size   int64 // uncompressed
	csize  int64 // compressed: the file the index was built from
	span   int64
	points []point
}

// point is a restart point: a deflate block starts at bit offset bit
// of the file, output offset out; win is the (flate-compressed)
// history it needs, wlen bytes once inflated; crc is the CRC-32 of the
// output from out to the next point (or the end).
type point struct {
	bit  int64
	out  int64
	crc  uint32
	wlen int
	win  []byte
}

// Size is the uncompressed size.
func (x *Index) Size() int64 { return x.size }

// Points is the number of restart points.
func (x *Index) Points() int { return len(x.points) }

// Span is the span the index was built with.
func (x *Index) Span() int64 { return x.span }

// CompressedSize is the size of the gzip file the index was built from.
func (x *Index) CompressedSize() int64 { return x.csize }

// spanEnd is the output offset where the span of point k ends.
func (x *Index) spanEnd(k int) int64 {
	if k+1 < len(x.points) {
		return x.points[k+1].out
	}
	return x.size
}

// builder is Build's state.
type builder struct {
	ctx      context.Context
	x        *Index
	progress func(int64)
	f        *inflater
	out      int64  // output so far
	spanCRC  uint32 // of the output since the last point
	memCRC   uint32 // of the current member's output
	memLen   uint32 // of the current member, modulo 2^32
	zw       *flate.Writer
	zbuf     bytes.Buffer
}

// Build inflates the gzip file r (size bytes: every member in turn, as
// gzip -d does) once, checks each member's CRC-32 and ISIZE, and
// records a restart point at the first deflate block boundary at or
// after every span bytes of output, with the CRC-32 of the output
// between consecutive points, so that later reads are checked too.
// progress (may be nil) is told output bytes as they are inflated. ctx
// cancels it.
func Build(ctx context.Context, r io.ReaderAt, size int64, span int64, progress func(int64)) (*Index, error) {
	if span < MinSpan {
		return nil, fmt.Errorf("zran: span %d is under the minimum %d", span, MinSpan)
	}
	if size <= 0 {
		return nil, errors.New("zran: empty file: not gzip")
	}
	if size > maxFile {
		return nil, fmt.Errorf("zran: a %d-byte file is past the %d bytes bit offsets can count", size, int64(maxFile))
	}
	b := &builder{ctx: ctx, x: &Index{csize: size, span: span}, progress: progress}
	b.zw, _ = flate.NewWriter(&b.zbuf, flate.DefaultCompression)
	br := newBitReader(r, size)
	b.f = newInflater(br, b.sink)
	more, err := true, readHeader(br)
	for more && err == nil {
		if err = b.member(); err == nil {
			more, err = nextMember(br)
		}
	}
	if err != nil {
		return nil, err
	}
	b.x.size = b.out
	b.x.points[len(b.x.points)-1].crc = b.spanCRC
	return b.x, nil
}

// sink takes output: the CRCs and the progress count.
func (b *builder) sink(p []byte) error {
	b.spanCRC = crc32.Update(b.spanCRC, crc32.IEEETable, p)
	b.memCRC = crc32.Update(b.memCRC, crc32.IEEETable, p)
	b.memLen += uint32(len(p))
	b.out += int64(len(p))
	if b.progress != nil {
		b.progress(int64(len(p)))
	}
	return nil
}

// member inflates one member, from its first block to its trailer.
func (b *builder) member() error {
	f := b.f
	start := f.br.byteAt()
	f.reset(nil)
	b.memCRC, b.memLen = 0, 0
	for !f.final {
		if err := b.boundary(); err != nil {
			return err
		}
		if err := f.block(); err != nil {
			return err
		}
	}
	if err := f.emit(); err != nil {
		return err
	}
	crc, isize, err := readTrailer(f.br)
	if err != nil {
		return err
	}
	if crc != b.memCRC || isize != b.memLen {
		return fmt.Errorf("zran: gzip member at byte %d: CRC-32 or length check fails (trailer at byte %d)", start, f.br.byteAt()-8)
	}
	return nil
}

// boundary is called at each block start: it records a point if span
// bytes of output have passed since the last one.
func (b *builder) boundary() error {
	f := b.f
	if err := f.emit(); err != nil {
		return err
	}
	if err := b.ctx.Err(); err != nil {
		return err
	}
	pts := b.x.points
	if len(pts) > 0 && b.out-pts[len(pts)-1].out < b.x.span {
		return nil
	}
	if int64(len(pts)) >= maxPoints(b.x.csize) {
		return fmt.Errorf("zran: more than %d restart points for a %d-byte file (at byte %d): use a larger span", len(pts), b.x.csize, f.br.pos()/8)
	}
	win, err := b.squeeze(f.window())
	if err != nil {
		return err
	}
	if len(pts) > 0 {
		pts[len(pts)-1].crc = b.spanCRC
	}
	b.spanCRC = 0
	b.x.points = append(pts, point{bit: f.br.pos(), out: b.out, wlen: len(f.window()), win: win})
	return nil
}

// squeeze compresses a window for keeping.
func (b *builder) squeeze(w []byte) ([]byte, error) {
	b.zbuf.Reset()
	b.zw.Reset(&b.zbuf)
	if _, err := b.zw.Write(w); err != nil {
		return nil, err
	}
	if err := b.zw.Close(); err != nil {
		return nil, err
	}
	return bytes.Clone(b.zbuf.Bytes()), nil
}

// window inflates point k's window.
func (x *Index) window(k int) ([]byte, error) {
	p := x.points[k]
	w := make([]byte, p.wlen+1)
	n, err := io.ReadFull(flate.NewReader(bytes.NewReader(p.win)), w)
	if (err != io.ErrUnexpectedEOF && err != io.EOF) || n != p.wlen {
		return nil, fmt.Errorf("zran: window of the point at uncompressed byte %d is damaged", p.out)
	}
	return w[:n], nil
}

// ReadAt reads p at uncompressed offset off from the gzip file r the
// index was built from: it inflates from the last point at or before
// off to the end of the span(s) covering the range and checks each
// span it inflated against its CRC-32. A span that fails is an error
// naming its uncompressed and compressed offsets, and p is then zeroed:
// it never holds wrong data as if it were good.
//
// Output goes straight into p as it is inflated rather than through a
// span-sized buffer (a span ends at a block boundary, and a deflate
// block has no size limit), so memory per call is the window and the
// decoder's buffers, whatever the span.
func (x *Index) ReadAt(r io.ReaderAt, p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("zran: read at negative offset %d", off)
	}
	if off >= x.size {
		if len(p) == 0 {
			return 0, nil
		}
		return 0, io.EOF
	}
	want := p[:min(int64(len(p)), x.size-off)]
	if len(want) == 0 {
		return 0, nil
	}
	k := sort.Search(len(x.points), func(i int) bool { return x.points[i].out > off }) - 1
	if err := x.inflate(r, k, want, off); err != nil {
		clear(p)
		return 0, err
	}
	if len(want) < len(p) {
		return len(want), io.EOF
	}
	return len(p), nil
}

// reading is one ReadAt's state.
type reading struct {
	x   *Index
	k   int    // the span being inflated
	pos int64  // output offset of the next byte
	crc uint32 // of the span so far
	dst []byte
	off int64 // output offset of dst[0]
	f   *inflater
}

// decoders keeps ReadAt's decoders (some 350 KiB of buffers each) for
// the next call, so that many small reads do not each allocate them.
var decoders = sync.Pool{New: func() any { return newInflater(newBitReader(nil, 0), nil) }}

// inflate fills dst (output from off) starting at point k.
func (x *Index) inflate(r io.ReaderAt, k int, dst []byte, off int64) error {
	win, err := x.window(k)
	if err != nil {
		return err
	}
	g := &reading{x: x, k: k, pos: x.points[k].out, dst: dst, off: off}
	g.f = decoders.Get().(*inflater)
	defer func() {
		g.f.br.reset(nil, 0)
		g.f.sink = nil
		decoders.Put(g.f)
	}()
	g.f.sink = g.sink
	br := g.f.br
	br.reset(r, x.csize)
	if err := br.seek(x.points[k].bit); err != nil {
		return g.fail(err)
	}
	g.f.reset(win)
	for {
		done, err := g.step()
		if err != nil {
			return g.fail(err)
		}
		if done {
			return nil
		}
	}
}

// step decodes a block (or crosses to the next member), and checks the
// span when it ends; done once the span holding dst's end is checked.
func (g *reading) step() (bool, error) {
	f, x := g.f, g.x
	if err := f.emit(); err != nil {
		return false, err
	}
	if g.pos == x.spanEnd(g.k) {
		if g.crc != x.points[g.k].crc {
			return false, errors.New("CRC-32 check fails")
		}
		if g.pos >= g.off+int64(len(g.dst)) || g.k+1 == len(x.points) {
			return true, nil
		}
		g.k++
		g.crc = 0
		return false, nil
	}
	if f.final {
		if _, _, err := readTrailer(f.br); err != nil {
			return false, err
		}
		more, err := nextMember(f.br)
		if err == nil && !more {
			err = errors.New("the file ends before the span does")
		}
		f.reset(nil)
		return false, err
	}
	return false, f.block()
}

// sink checks and copies output: the part of it in dst.
func (g *reading) sink(p []byte) error {
	if g.pos+int64(len(p)) > g.x.spanEnd(g.k) {
		return errors.New("more output than the span has")
	}
	g.crc = crc32.Update(g.crc, crc32.IEEETable, p)
	if lo := g.off - g.pos; lo < int64(len(p)) && g.pos < g.off+int64(len(g.dst)) {
		src := p[max(lo, 0):]
		copy(g.dst[max(-lo, 0):], src)
	}
	g.pos += int64(len(p))
	return nil
}

// fail names the span a read failed in.
func (g *reading) fail(err error) error {
	pt := g.x.points[g.k]
	return fmt.Errorf("zran: span at uncompressed byte %d (compressed byte %d): %w", pt.out, pt.bit/8, err)
}

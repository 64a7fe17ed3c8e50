// Package zstdran reads any range of a zstd stream's content without
// decoding it all, when the stream has no seek table (one frame, as the
// zstd program or a XenServer host's /export?compress=zstd writes): an
// index of restart points records, at block boundaries, everything
// decoding needs to start there — the compressed offset, the window of
// output before it, the literals Huffman table and the three sequence
// FSE tables (as their descriptions) and the repeat offsets — so that a
// read decodes from the last point before it. Each span between points
// has its CRC-32 in the index: a frame's content checksum cannot be
// checked from a restart point, so every byte a read returns is checked
// against that instead.
//
// The zstd decoder is this package's own (RFC 8878): other decoders do
// not expose their state at block boundaries, which the index needs.
// Dictionaries are not supported. A point's window keeps only the bytes
// its span's matches use (the rest zeroed, then compressed), which keeps
// the index small even for multi-megabyte windows.
package zstdran

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"sort"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// MinSpan is the smallest span Build accepts.
const MinSpan = 64 << 10

// maxPoints caps the points for a compressed file of size bytes, so a
// hostile file (zstd expands over 30000 times with RLE blocks) cannot
// make the index grow without bound.
func maxPoints(size int64) int64 {
	return 64 + size/64
}

// maxWindowBytes caps the compressed windows an index keeps, for the
// same reason: a window is output, which matches can repeat at little
// cost in input.
func maxWindowBytes(size int64) int64 {
	return 64<<20 + size/2
}

// Index is a zstd stream's restart points: enough to read any range of
// its content by decoding at most a span (and a block) before it.
type Index struct {
	size   int64 // uncompressed
	csize  int64 // compressed: the file the index was built from
	span   int64
	points []point
}

// point is a restart point: decoding starts at compressed offset coff,
// output offset out; crc is the CRC-32 of the output from out to the
// next point (or the end). A point at a frame's start (mid false) needs
// nothing else; one at a block inside a frame needs the frame's facts,
// its output so far, the repeat offsets, the tables and the window.
type point struct {
	coff int64
	out  int64
	crc  uint32
	mid  bool

	frame    frameInfo
	frameOut int64
	rep      [3]uint32
	huf      []uint8 // Huffman weights, nil when the frame has none yet
	seq      [3]seqDesc
	wlen     int
	win      []byte // compressed
}

// seqDesc describes a sequence table.
type seqDesc struct {
	mode uint8 // modePredefined, modeRLE, modeFSE, or 0xff: none yet
	rle  uint8
	desc fseDesc
}

// Size is the uncompressed size.
func (x *Index) Size() int64 { return x.size }

// Points is the number of restart points.
func (x *Index) Points() int { return len(x.points) }

// Span is the span the index was built with.
func (x *Index) Span() int64 { return x.span }

// CompressedSize is the size of the zstd file the index was built from.
func (x *Index) CompressedSize() int64 { return x.csize }

// SpanOf is the span holding uncompressed offset off (in [0, Size)): a
// read checks whole spans, so a reader that keeps what it decoded reads
// by spans.
func (x *Index) SpanOf(off int64) (start, end int64) {
	k := sort.Search(len(x.points), func(i int) bool { return x.points[i].out > off }) - 1
	return x.points[max(k, 0)].out, x.spanEnd(max(k, 0))
}

// spanEnd is the output offset where the span of point k ends.
func (x *Index) spanEnd(k int) int64 {
	if k+1 < len(x.points) {
		return x.points[k+1].out
	}
	return x.size
}

// The windows are kept compressed with zstd: one encoder and decoder
// shared by all indexes (EncodeAll and DecodeAll are safe for
// concurrent use).
var (
	codecOnce sync.Once
	winEnc    *zstd.Encoder
	winDec    *zstd.Decoder
)

func codec() (*zstd.Encoder, *zstd.Decoder) {
	codecOnce.Do(func() {
		winEnc, _ = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
		winDec, _ = zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(MaxWindow+1<<20))
	})
	return winEnc, winDec
}

// tracker records which bytes of a point's window matches read, so
// that only those are kept: until the output is a window past the
// point, or its frame ends, a match may reach into it (from the point's
// span, or from the next one when points are closer than a window).
type tracker struct {
	k      int    // the point
	lo, hi int64  // output offsets of the window
	w      []byte // the window
	used   []bool
}

func (t *tracker) mark(from int64, n int) {
	if from >= t.hi {
		return
	}
	to := min(from+int64(n), t.hi)
	for i := max(from, t.lo); i < to; i++ {
		t.used[i-t.lo] = true
	}
}

// builder is Build's state.
type builder struct {
	ctx      context.Context
	x        *Index
	d        *decoder
	progress func(int64)
	gap      int64 // if > 0, the spacing of points, whatever the window (tests)
	spanCRC  uint32
	active   []*tracker
	winBytes int64
}

// Build decodes the zstd stream r (size bytes: every frame in turn,
// skippable frames skipped) once, checks each frame's content size and
// checksum, and records a restart point at the first block boundary at
// or after every max(span, 8 windows) bytes of output (and at frame
// starts at least span apart), with the CRC-32 of the output between
// consecutive points, so that later reads are checked too. A frame
// whose window is over MaxWindow is refused (ErrWindow). progress (may
// be nil) is told output bytes as they are decoded. ctx cancels it.
func Build(ctx context.Context, r io.ReaderAt, size int64, span int64, progress func(int64)) (*Index, error) {
	if span < MinSpan {
		return nil, fmt.Errorf("zstdran: span %d is under the minimum %d", span, MinSpan)
	}
	if size <= 0 {
		return nil, errors.New("zstdran: empty file: not zstd")
	}
	b := &builder{ctx: ctx, x: &Index{csize: size, span: span}, progress: progress}
	return b.build(r)
}

func (b *builder) build(r io.ReaderAt) (*Index, error) {
	size := b.x.csize
	b.d = newDecoder(newSource(r, size))
	d := b.d
	d.onRef = func(from int64, n int) {
		for _, t := range b.active {
			t.mark(from, n)
		}
	}
	for {
		if !d.inFrame {
			if err := b.boundary(false); err != nil {
				return nil, err
			}
			ok, err := d.startFrame()
			if err != nil {
				return nil, err
			}
			if !ok {
				break
			}
			if d.frame.window > MaxWindow {
				return nil, fmt.Errorf("%w: the frame at compressed byte %d has a %d MiB window, over the %d MiB read at random", ErrWindow, d.frameStart, d.frame.window>>20, MaxWindow>>20)
			}
			continue
		}
		if err := b.boundary(true); err != nil {
			return nil, err
		}
		out, err := d.block()
		if err != nil {
			return nil, err
		}
		b.spanCRC = crc32.Update(b.spanCRC, crc32.IEEETable, out)
		if b.progress != nil {
			b.progress(int64(len(out)))
		}
	}
	if len(b.x.points) == 0 {
		return nil, errors.New("zstdran: no zstd frame in the file")
	}
	if err := b.retire(true); err != nil {
		return nil, err
	}
	b.x.size = d.out
	b.x.points[len(b.x.points)-1].crc = b.spanCRC
	return b.x, nil
}

// boundary is called before each block (mid) and frame: it records a
// point when enough output has passed since the last one.
func (b *builder) boundary(mid bool) error {
	if err := b.ctx.Err(); err != nil {
		return err
	}
	d := b.d
	if err := b.retire(!mid); err != nil {
		return err
	}
	pts := b.x.points
	if len(pts) > 0 && !mid && d.src.atEnd() {
		return nil // no point with nothing after it
	}
	if len(pts) > 0 {
		gap := b.x.span
		if mid {
			gap = max(gap, 8*d.frame.window)
		}
		if b.gap > 0 {
			gap = b.gap
		}
		if d.out-pts[len(pts)-1].out < gap {
			return nil
		}
	} else if mid {
		return errors.New("zstdran: internal error: the first point inside a frame")
	}
	if int64(len(pts)) >= maxPoints(b.x.csize) {
		return fmt.Errorf("zstdran: more than %d restart points for a %d-byte file (at compressed byte %d): use a larger span", len(pts), b.x.csize, d.src.pos())
	}
	if len(pts) > 0 {
		pts[len(pts)-1].crc = b.spanCRC
	}
	b.spanCRC = 0
	p := point{coff: d.src.pos(), out: d.out, mid: mid}
	if mid {
		p.frame, p.frameOut, p.rep = d.frame, d.frameOut, d.rep
		if d.hufOK {
			p.huf = append([]uint8(nil), d.huf.weights...)
		}
		for k := range d.seq {
			s := &d.seq[k]
			p.seq[k] = seqDesc{mode: s.mode, rle: s.rle}
			if s.mode == modeFSE {
				p.seq[k].desc = fseDesc{log: s.desc.log, norm: append([]int16(nil), s.desc.norm...)}
			}
		}
		w := d.window()
		p.wlen = len(w)
		b.active = append(b.active, &tracker{k: len(pts), lo: d.out - int64(len(w)), hi: d.out, w: bytes.Clone(w), used: make([]bool, len(w))})
		d.trackHi = d.out
	}
	b.x.points = append(pts, p)
	return nil
}

// retire stores the windows no match can reach any more (all: every
// one, at a frame's end): the bytes matches used, the rest zeroed,
// compressed.
func (b *builder) retire(all bool) error {
	d := b.d
	keep := b.active[:0]
	for _, t := range b.active {
		if !all && d.out-t.hi < d.frame.window {
			keep = append(keep, t)
			continue
		}
		for i, u := range t.used {
			if !u {
				t.w[i] = 0
			}
		}
		enc, _ := codec()
		c := enc.EncodeAll(t.w, nil)
		b.winBytes += int64(len(c))
		if b.winBytes > maxWindowBytes(b.x.csize) {
			return fmt.Errorf("zstdran: the index's windows pass %d bytes for a %d-byte file: use a larger span", maxWindowBytes(b.x.csize), b.x.csize)
		}
		b.x.points[t.k].win = c
	}
	clear(b.active[len(keep):])
	b.active = keep
	if len(keep) == 0 {
		d.trackHi = 0
	}
	return nil
}

// window inflates point k's window.
func (x *Index) window(k int) ([]byte, error) {
	p := x.points[k]
	_, dec := codec()
	w, err := dec.DecodeAll(p.win, make([]byte, 0, p.wlen))
	if err != nil || len(w) != p.wlen {
		return nil, fmt.Errorf("zstdran: window of the point at uncompressed byte %d is damaged", p.out)
	}
	return w, nil
}

// restart makes a decoder positioned at point k.
func (x *Index) restart(r io.ReaderAt, k int) (*decoder, error) {
	p := x.points[k]
	d := readDecoder(r, x.csize)
	d.src.seek(p.coff)
	d.out = p.out
	if !p.mid {
		return d, nil
	}
	d.frame = p.frame
	d.resetFrame()
	d.checkSum = false
	d.frameOut = p.frameOut
	d.rep = p.rep
	if p.huf != nil {
		d.huf.weights = p.huf
		if err := d.huf.build(); err != nil {
			d.release()
			return nil, err
		}
		d.hufOK = true
	}
	for k := range d.seq {
		s := &d.seq[k]
		s.mode, s.rle, s.desc = p.seq[k].mode, p.seq[k].rle, p.seq[k].desc
		if s.mode == 0xff {
			continue
		}
		if err := s.set(k); err != nil {
			d.release()
			return nil, err
		}
	}
	w, err := x.window(k)
	if err != nil {
		d.release()
		return nil, err
	}
	d.buf = append(d.buf[:0], w...)
	d.room()
	return d, nil
}

// ReadAt reads p at uncompressed offset off from the zstd file r the
// index was built from: it decodes from the last point at or before
// off to the end of the span(s) covering the range and checks each
// span it decoded against its CRC-32. A span that fails is an error
// naming its uncompressed and compressed offsets, and p is then zeroed:
// it never holds wrong data as if it were good.
func (x *Index) ReadAt(r io.ReaderAt, p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("zstdran: read at negative offset %d", off)
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
	if err := x.decode(r, k, want, off); err != nil {
		clear(p)
		return 0, err
	}
	if len(want) < len(p) {
		return len(want), io.EOF
	}
	return len(p), nil
}

// decode fills dst (output from off) starting at point k.
func (x *Index) decode(r io.ReaderAt, k int, dst []byte, off int64) error {
	fail := func(err error) error {
		pt := x.points[k]
		return fmt.Errorf("zstdran: span at uncompressed byte %d (compressed byte %d): %w", pt.out, pt.coff, err)
	}
	d, err := x.restart(r, k)
	if err != nil {
		return fail(err)
	}
	defer d.release()
	pos := x.points[k].out
	var crc uint32
	end := off + int64(len(dst))
	for {
		if pos == x.spanEnd(k) {
			if crc != x.points[k].crc {
				return fail(errors.New("CRC-32 check fails"))
			}
			if pos >= end || k+1 == len(x.points) {
				return nil
			}
			k++
			crc = 0
		}
		if !d.inFrame {
			ok, err := d.startFrame()
			if err != nil {
				return fail(err)
			}
			if !ok {
				return fail(errors.New("the stream ends before the span does"))
			}
			if d.frame.window > MaxWindow {
				return fail(fmt.Errorf("%w: the frame at compressed byte %d", ErrWindow, d.frameStart))
			}
			continue
		}
		out, err := d.block()
		if err != nil {
			return fail(err)
		}
		if pos+int64(len(out)) > x.spanEnd(k) {
			return fail(errors.New("more output than the span has"))
		}
		crc = crc32.Update(crc, crc32.IEEETable, out)
		if lo := off - pos; lo < int64(len(out)) && pos < end {
			copy(dst[max(-lo, 0):], out[max(lo, 0):])
		}
		pos += int64(len(out))
	}
}

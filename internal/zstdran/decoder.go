package zstdran

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/cespare/xxhash/v2"
)

const (
	frameMagic     = 0xFD2FB528
	skipMagicMask  = 0xFFFFFFF0
	skipMagic      = 0x184D2A50
	maxBlock       = 128 << 10 // Block_Maximum_Size's bound (RFC 8878 3.1.1.2.3)
	minWindow      = 1 << 10
	maxFrameWindow = 1 << 31 // what a decoder must support at most; larger is refused
)

// ErrWindow is returned for a frame whose window is larger than
// MaxWindow: a restart point keeps a window, and reading at random
// would need that much memory per read.
var ErrWindow = errors.New("zstdran: the zstd window is too large to read at random")

// ErrDictionary is returned for a frame that needs a dictionary.
var ErrDictionary = errors.New("zstdran: the zstd frame needs a dictionary, which is not supported")

// MaxWindow is the largest window read at random.
const MaxWindow = 64 << 20

// frameInfo is what a frame header says that decoding needs after it.
type frameInfo struct {
	window  int64 // effective: at most the content size when that is known
	fcs     int64 // content size, -1 unknown
	hasSum  bool
	singleS bool
}

// source reads the compressed file forward through a buffer; a block
// (at most 128 KiB) is always returned as one slice.
type source struct {
	r      io.ReaderAt
	size   int64
	buf    []byte
	bufOff int64 // file offset of buf[0]
	lo, hi int
	err    error // the first read error of r
}

func newSource(r io.ReaderAt, size int64) *source {
	return &source{r: r, size: size, buf: make([]byte, 1<<20)}
}

func (s *source) pos() int64 { return s.bufOff + int64(s.lo) }

func (s *source) seek(off int64) {
	s.bufOff, s.lo, s.hi = off, 0, 0
}

func (s *source) atEnd() bool { return s.pos() >= s.size }

// next returns the next n bytes (n <= len(buf)), valid until the next
// call.
func (s *source) next(n int) ([]byte, error) {
	if s.hi-s.lo < n {
		if s.pos()+int64(n) > s.size {
			return nil, io.ErrUnexpectedEOF
		}
		m := copy(s.buf, s.buf[s.lo:s.hi])
		s.bufOff += int64(s.lo)
		s.lo, s.hi = 0, m
		want := int(min(int64(len(s.buf)-m), s.size-(s.bufOff+int64(m))))
		k, err := s.r.ReadAt(s.buf[m:m+want], s.bufOff+int64(m))
		s.hi += k
		if k < want {
			if err == nil || err == io.EOF {
				err = io.ErrUnexpectedEOF
			} else if s.err == nil {
				s.err = err
			}
			return nil, err
		}
	}
	b := s.buf[s.lo : s.lo+n]
	s.lo += n
	return b, nil
}

// decoder decodes a zstd stream a block at a time, its output appended
// to buf, which keeps the window before it.
type decoder struct {
	src *source

	inFrame    bool
	frame      frameInfo
	frameStart int64 // compressed offset of the frame
	frameOut   int64 // output of the frame before the current block
	last       bool  // the frame's last block is done
	sum        *xxhash.Digest
	checkSum   bool // false when restarted mid-frame: the checksum then covers bytes not decoded

	out        int64 // output before the current block, in the whole stream
	buf        []byte
	blockStart int // len(buf) when the block began

	huf     hufTable
	hufOK   bool
	seq     [3]seqTable
	rep     [3]uint32
	lits    []byte
	scratch []fseEntry

	// During Build: matches reading output before trackHi are told to
	// onRef, which notes the window bytes restarts will need.
	trackHi int64
	onRef   func(from int64, n int)
}

func newDecoder(src *source) *decoder {
	d := &decoder{src: src, sum: xxhash.New()}
	for k := range d.seq {
		d.seq[k].mode = 0xff
	}
	return d
}

// decoders keeps ReadAt's decoders for the next call: a decoder's buffers
// (the window and more, the input's) cost more to allocate and clear
// than a small read costs to decode.
var decoders sync.Pool

// readDecoder is a decoder reading r (size bytes) from its start, its
// buffers reused when one is in the pool.
func readDecoder(r io.ReaderAt, size int64) *decoder {
	d, ok := decoders.Get().(*decoder)
	if !ok {
		return newDecoder(newSource(r, size))
	}
	buf := d.src.buf
	*d.src = source{r: r, size: size, buf: buf}
	d.inFrame, d.last, d.out, d.frameOut = false, false, 0, 0
	d.buf = d.buf[:0]
	d.hufOK = false
	for k := range d.seq {
		d.seq[k].mode = 0xff
	}
	d.trackHi, d.onRef = 0, nil
	return d
}

// release puts d back in the pool, holding no reader.
func (d *decoder) release() {
	d.src.r = nil
	decoders.Put(d)
}

func (d *decoder) corrupt(format string, args ...any) error {
	return fmt.Errorf("zstdran: at compressed byte %d: %s", d.src.pos(), fmt.Sprintf(format, args...))
}

// readErr says why the source failed: its read error, or a stream cut
// short.
func (d *decoder) readErr(err error, what string) error {
	if d.src.err != nil {
		return fmt.Errorf("zstdran: reading %s: %w", what, d.src.err)
	}
	return d.corrupt("the stream ends within %s", what)
}

// startFrame reads a frame header (skipping skippable frames); it
// returns false at the end of the stream.
func (d *decoder) startFrame() (bool, error) {
	for {
		if d.src.atEnd() {
			return false, nil
		}
		at := d.src.pos()
		b, err := d.src.next(4)
		if err != nil {
			return false, d.readErr(err, "a frame's magic number")
		}
		magic := binary.LittleEndian.Uint32(b)
		if magic&skipMagicMask == skipMagic {
			b, err := d.src.next(4)
			if err != nil {
				return false, d.readErr(err, "a skippable frame")
			}
			n := int64(binary.LittleEndian.Uint32(b))
			if d.src.pos()+n > d.src.size {
				return false, d.corrupt("a skippable frame runs past the end")
			}
			d.src.seek(d.src.pos() + n)
			continue
		}
		if magic != frameMagic {
			return false, fmt.Errorf("zstdran: at compressed byte %d: not a zstd frame (magic %#08x)", at, magic)
		}
		d.frameStart = at
		return true, d.frameHeader()
	}
}

func (d *decoder) frameHeader() error {
	b, err := d.src.next(1)
	if err != nil {
		return d.readErr(err, "a frame header")
	}
	fhd := b[0]
	fcsFlag := fhd >> 6
	single := fhd&0x20 != 0
	if fhd&0x08 != 0 {
		return d.corrupt("frame header's reserved bit set")
	}
	dictLen := [4]int{0, 1, 2, 4}[fhd&3]
	fcsLen := [4]int{0, 2, 4, 8}[fcsFlag]
	if fcsFlag == 0 && single {
		fcsLen = 1
	}
	n := dictLen + fcsLen
	if !single {
		n++
	}
	h, err := d.src.next(n)
	if err != nil {
		return d.readErr(err, "a frame header")
	}
	var window int64
	if !single {
		exp, mant := int64(h[0]>>3), int64(h[0]&7)
		base := int64(1) << (10 + exp)
		window = base + base/8*mant
		h = h[1:]
	}
	var dict uint32
	for i := range dictLen {
		dict |= uint32(h[i]) << (8 * i)
	}
	h = h[dictLen:]
	if dict != 0 {
		return fmt.Errorf("%w (frame at compressed byte %d, dictionary %d)", ErrDictionary, d.frameStart, dict)
	}
	fcs := int64(-1)
	switch fcsLen {
	case 1:
		fcs = int64(h[0])
	case 2:
		fcs = int64(binary.LittleEndian.Uint16(h)) + 256
	case 4:
		fcs = int64(binary.LittleEndian.Uint32(h))
	case 8:
		v := binary.LittleEndian.Uint64(h)
		if v > 1<<62 {
			return d.corrupt("frame content size %d", v)
		}
		fcs = int64(v)
	}
	if single {
		window = fcs
	}
	if window > maxFrameWindow {
		return fmt.Errorf("%w: a window of %d bytes (frame at compressed byte %d)", ErrWindow, window, d.frameStart)
	}
	if fcs >= 0 && fcs < window {
		window = fcs
	}
	d.frame = frameInfo{window: window, fcs: fcs, hasSum: fhd&0x04 != 0, singleS: single}
	d.resetFrame()
	d.checkSum = true
	return nil
}

// resetFrame starts a frame's state: no history, no tables, the
// initial repeat offsets.
func (d *decoder) resetFrame() {
	d.inFrame, d.last = true, false
	d.frameOut = 0
	d.buf = d.buf[:0]
	d.hufOK = false
	for k := range d.seq {
		d.seq[k].mode = 0xff
	}
	d.rep = [3]uint32{1, 4, 8}
	d.sum.Reset()
}

// window is the history a restart at the current block needs.
func (d *decoder) window() []byte {
	n := min(int64(len(d.buf)), d.frame.window, d.frameOut)
	return d.buf[len(d.buf)-int(n):]
}

// room makes space for a block's output, keeping the window: the
// buffer grows to at most twice the window plus a block, so the window
// is copied down at most once per window's worth of output.
func (d *decoder) room() {
	w := int(d.frame.window)
	limit := w + max(w, 8<<20) + maxBlock
	if len(d.buf)+maxBlock <= cap(d.buf) {
		return
	}
	if len(d.buf) > w && len(d.buf)+maxBlock > limit {
		n := copy(d.buf, d.buf[len(d.buf)-w:])
		d.buf = d.buf[:n]
		if len(d.buf)+maxBlock <= cap(d.buf) {
			return
		}
	}
	nb := make([]byte, len(d.buf), min(limit, max(2*cap(d.buf), len(d.buf)+maxBlock)))
	copy(nb, d.buf)
	d.buf = nb
}

// block decodes the frame's next block, its output appended to buf;
// it returns that output. After the last block it reads the checksum.
func (d *decoder) block() ([]byte, error) {
	h, err := d.src.next(3)
	if err != nil {
		return nil, d.readErr(err, "a block header")
	}
	bh := uint32(h[0]) | uint32(h[1])<<8 | uint32(h[2])<<16
	last, typ, size := bh&1 != 0, bh>>1&3, int(bh>>3)
	blockMax := int(min(int64(maxBlock), max(d.frame.window, minWindow)))
	d.room()
	d.blockStart = len(d.buf)
	switch typ {
	case 0: // raw
		if size > blockMax {
			return nil, d.corrupt("a raw block of %d bytes", size)
		}
		b, err := d.src.next(size)
		if err != nil {
			return nil, d.readErr(err, "a raw block")
		}
		d.buf = append(d.buf, b...)
	case 1: // RLE
		if size > blockMax {
			return nil, d.corrupt("an RLE block of %d bytes", size)
		}
		b, err := d.src.next(1)
		if err != nil {
			return nil, d.readErr(err, "an RLE block")
		}
		n := len(d.buf)
		d.buf = d.buf[:n+size] // room left a block's capacity
		fill := d.buf[n:]
		for i := range fill {
			fill[i] = b[0]
		}
	case 2:
		if size > blockMax {
			return nil, d.corrupt("a compressed block of %d bytes", size)
		}
		b, err := d.src.next(size)
		if err != nil {
			return nil, d.readErr(err, "a compressed block")
		}
		if err := d.compressed(b); err != nil {
			return nil, fmt.Errorf("zstdran: block at compressed byte %d: %w", d.src.pos()-int64(size)-3, err)
		}
	default:
		return nil, d.corrupt("a block of the reserved type")
	}
	out := d.buf[d.blockStart:]
	if len(out) > blockMax {
		return nil, d.corrupt("a block's output of %d bytes", len(out))
	}
	if d.checkSum {
		d.sum.Write(out)
	}
	d.frameOut += int64(len(out))
	d.out += int64(len(out))
	if d.frame.fcs >= 0 && d.frameOut > d.frame.fcs {
		return nil, d.corrupt("the frame's output exceeds its content size %d", d.frame.fcs)
	}
	if last {
		d.last, d.inFrame = true, false
		if err := d.endFrame(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// endFrame checks the content size and reads (and checks, when the
// whole frame was decoded) the content checksum.
func (d *decoder) endFrame() error {
	if d.frame.fcs >= 0 && d.frameOut != d.frame.fcs {
		return d.corrupt("the frame holds %d bytes, its header says %d", d.frameOut, d.frame.fcs)
	}
	if !d.frame.hasSum {
		return nil
	}
	b, err := d.src.next(4)
	if err != nil {
		return d.readErr(err, "a frame's checksum")
	}
	if d.checkSum && binary.LittleEndian.Uint32(b) != uint32(d.sum.Sum64()) {
		return fmt.Errorf("zstdran: frame at compressed byte %d: content checksum check fails", d.frameStart)
	}
	return nil
}

// compressed decodes a compressed block: literals, then sequences.
func (d *decoder) compressed(in []byte) error {
	lits, used, err := d.literals(in)
	if err != nil {
		return err
	}
	return d.sequences(in[used:], lits)
}

// literals decodes a literals section (RFC 8878 3.1.1.3.1).
func (d *decoder) literals(in []byte) ([]byte, int, error) {
	if len(in) == 0 {
		return nil, 0, errors.New("literals: section missing")
	}
	typ, sf := in[0]&3, in[0]>>2&3
	var regen, csize, hlen int
	switch typ {
	case 0, 1:
		switch sf {
		case 0, 2:
			regen, hlen = int(in[0]>>3), 1
		case 1:
			if len(in) < 2 {
				return nil, 0, errors.New("literals: header cut short")
			}
			regen, hlen = int(in[0]>>4)+int(in[1])<<4, 2
		case 3:
			if len(in) < 3 {
				return nil, 0, errors.New("literals: header cut short")
			}
			regen, hlen = int(in[0]>>4)+int(in[1])<<4+int(in[2])<<12, 3
		}
	default:
		hlen = [4]int{3, 3, 4, 5}[sf]
		if len(in) < hlen {
			return nil, 0, errors.New("literals: header cut short")
		}
		var v uint64
		for i := range hlen {
			v |= uint64(in[i]) << (8 * i)
		}
		nb := [4]uint{10, 10, 14, 18}[sf]
		regen = int(v >> 4 & (1<<nb - 1))
		csize = int(v >> (4 + nb) & (1<<nb - 1))
	}
	if regen > maxBlock {
		return nil, 0, fmt.Errorf("literals: %d bytes, over 128 KiB", regen)
	}
	if cap(d.lits) < regen {
		d.lits = make([]byte, maxBlock)
	}
	lits := d.lits[:regen]
	in = in[hlen:]
	switch typ {
	case 0:
		if len(in) < regen {
			return nil, 0, errors.New("literals: raw literals run past the block")
		}
		copy(lits, in)
		return lits, hlen + regen, nil
	case 1:
		if len(in) < 1 {
			return nil, 0, errors.New("literals: RLE byte missing")
		}
		for i := range lits {
			lits[i] = in[0]
		}
		return lits, hlen + 1, nil
	}
	if csize > len(in) {
		return nil, 0, errors.New("literals: compressed literals run past the block")
	}
	in = in[:csize]
	if typ == 2 {
		w, n, err := readHufDesc(in, &d.scratch)
		if err != nil {
			return nil, 0, err
		}
		d.huf.weights = w
		if err := d.huf.build(); err != nil {
			d.hufOK = false
			return nil, 0, err
		}
		d.hufOK = true
		in = in[n:]
	} else if !d.hufOK {
		return nil, 0, errors.New("literals: treeless literals with no previous Huffman table")
	}
	if err := d.huf.decodeLiterals(in, lits, sf != 0); err != nil {
		return nil, 0, err
	}
	return lits, hlen + csize, nil
}

package zran

import (
	"fmt"
	"sync"
)

const (
	// windowSize is how far back a DEFLATE match may reach.
	windowSize = 32 << 10
	// maxMatch is the longest match.
	maxMatch = 258
	// outSize is the output buffer: the window plus room to decode
	// into before handing output on, so the window moves seldom.
	outSize = windowSize + 224<<10
)

// Length and distance codes (RFC 1951 3.2.5): base value and extra bits.
var (
	lengthBase = [29]uint16{3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31,
		35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258}
	lengthExtra = [29]uint8{0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2,
		3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0}
	distBase = [30]uint16{1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193,
		257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577}
	distExtra = [30]uint8{0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6,
		7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13}
	// clOrder is the order code length code lengths are sent in.
	clOrder = [19]uint8{16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15}
)

// The fixed Huffman codes (RFC 1951 3.2.6), built once.
var (
	fixedOnce       sync.Once
	fixedLit, fixed huffman
)

func fixedTables() (*huffman, *huffman) {
	fixedOnce.Do(func() {
		var l [288]uint8
		for i := range l {
			switch {
			case i < 144:
				l[i] = 8
			case i < 256:
				l[i] = 9
			case i < 280:
				l[i] = 7
			default:
				l[i] = 8
			}
		}
		_ = fixedLit.build(l[:], 9, false)
		var d [32]uint8
		for i := range d {
			d[i] = 5
		}
		_ = fixed.build(d[:], 5, false)
	})
	return &fixedLit, &fixed
}

// inflater decodes DEFLATE blocks one at a time, so that its caller
// sees every block boundary. Output collects in out and is handed to
// sink in pieces (out[emitted:n]); the 32 KiB before n stay in out as
// the window matches copy from.
type inflater struct {
	br      *bitReader
	out     []byte
	n       int
	emitted int
	// hist is how many bytes before n a match may reach: the output
	// of this member so far (with the starting window), up to 32 KiB.
	hist  int
	final bool // the last block of the member has been decoded
	sink  func([]byte) error

	lit, dist, clh huffman
	lens           [320]uint8
}

func newInflater(br *bitReader, sink func([]byte) error) *inflater {
	f := &inflater{br: br, out: make([]byte, outSize), sink: sink}
	f.lit.table = make([]uint32, 0, 1<<10+288<<5)
	f.dist.table = make([]uint32, 0, 1<<8+32<<7)
	f.clh.table = make([]uint32, 0, 1<<7)
	return f
}

// reset starts a member (or a restart point) whose history is window.
func (f *inflater) reset(window []byte) {
	f.n = copy(f.out, window)
	f.emitted = f.n
	f.hist = f.n
	f.final = false
}

// window is the history a restart point here needs.
func (f *inflater) window() []byte {
	return f.out[f.n-f.hist : f.n]
}

// emit hands the output not yet handed on to sink.
func (f *inflater) emit() error {
	if f.emitted == f.n {
		return nil
	}
	p := f.out[f.emitted:f.n]
	f.emitted = f.n
	return f.sink(p)
}

// room makes space for at least maxMatch more bytes, emitting the
// output and moving the window to the front of out.
func (f *inflater) room() error {
	if err := f.emit(); err != nil {
		return err
	}
	keep := min(f.n, windowSize)
	copy(f.out, f.out[f.n-keep:f.n])
	f.n, f.emitted = keep, keep
	return nil
}

// block decodes one block, at the current bit offset.
func (f *inflater) block() error {
	start := f.br.pos()
	hdr, err := f.br.take(3)
	if err != nil {
		return err
	}
	f.final = hdr&1 != 0
	switch hdr >> 1 {
	case 0:
		err = f.stored()
	case 1:
		lit, dist := fixedTables()
		err = f.codes(lit, dist)
	case 2:
		if err = f.dynamic(); err == nil {
			err = f.codes(&f.lit, &f.dist)
		}
	default:
		err = fmt.Errorf("zran: reserved block type at byte %d", start/8)
	}
	return err
}

// stored copies a stored block's bytes.
func (f *inflater) stored() error {
	br := f.br
	if err := br.align(); err != nil {
		return err
	}
	at := br.byteAt()
	var hdr [4]byte
	if err := br.readFull(hdr[:]); err != nil {
		return err
	}
	length := int(hdr[0]) | int(hdr[1])<<8
	if hdr[2] != ^hdr[0] || hdr[3] != ^hdr[1] {
		return fmt.Errorf("zran: stored block length check fails at byte %d", at)
	}
	for length > 0 {
		if f.n == len(f.out) {
			if err := f.room(); err != nil {
				return err
			}
		}
		k := min(length, len(f.out)-f.n)
		if err := br.readFull(f.out[f.n : f.n+k]); err != nil {
			return err
		}
		f.n += k
		f.hist = min(f.hist+k, windowSize)
		length -= k
	}
	return nil
}

// dynamic reads a dynamic block's code definitions (RFC 1951 3.2.7)
// into f.lit and f.dist.
func (f *inflater) dynamic() error {
	br := f.br
	at := br.pos() / 8
	v, err := br.take(14)
	if err != nil {
		return err
	}
	nlit, ndist, nclen := int(v&31)+257, int(v>>5&31)+1, int(v>>10)+4
	if nlit > 286 || ndist > 30 {
		return fmt.Errorf("zran: %d literal/length or %d distance codes at byte %d", nlit, ndist, at)
	}
	var cl [19]uint8
	for i := range nclen {
		l, err := br.take(3)
		if err != nil {
			return err
		}
		cl[clOrder[i]] = uint8(l)
	}
	clh := &f.clh
	if err := clh.build(cl[:], 7, false); err != nil {
		return fmt.Errorf("zran: code length code: %w at byte %d", err, at)
	}
	lens := f.lens[:nlit+ndist]
	if err := f.readLengths(clh, lens, at); err != nil {
		return err
	}
	if lens[256] == 0 {
		return fmt.Errorf("zran: no end-of-block code at byte %d", at)
	}
	if err := f.lit.build(lens[:nlit], 10, false); err != nil {
		return fmt.Errorf("zran: literal/length code: %w at byte %d", err, at)
	}
	if err := f.dist.build(lens[nlit:], 8, true); err != nil {
		return fmt.Errorf("zran: distance code: %w at byte %d", err, at)
	}
	return nil
}

// readLengths decodes the code lengths of both codes, which repeat
// codes may run across.
func (f *inflater) readLengths(clh *huffman, lens []uint8, at int64) error {
	br := f.br
	for i := 0; i < len(lens); {
		sym, err := br.decode(clh)
		if err != nil {
			return f.codeErr(err)
		}
		if sym < 16 {
			lens[i] = uint8(sym)
			i++
			continue
		}
		var val uint8
		var rep uint32
		switch sym {
		case 16:
			if i == 0 {
				return fmt.Errorf("zran: repeat with no previous length at byte %d", at)
			}
			val = lens[i-1]
			rep, err = br.take(2)
			rep += 3
		case 17:
			rep, err = br.take(3)
			rep += 3
		default:
			rep, err = br.take(7)
			rep += 11
		}
		if err != nil {
			return err
		}
		if i+int(rep) > len(lens) {
			return fmt.Errorf("zran: code lengths overrun at byte %d", at)
		}
		for range rep {
			lens[i] = val
			i++
		}
	}
	return nil
}

// codeErr names the place of a bad code.
func (f *inflater) codeErr(err error) error {
	if err == errBadCode {
		return fmt.Errorf("zran: %w at byte %d", err, f.br.pos()/8)
	}
	return err
}

// codes decodes a Huffman block's symbols up to its end-of-block code.
func (f *inflater) codes(lit, dist *huffman) error {
	br := f.br
	for {
		if f.n > len(f.out)-maxMatch {
			if err := f.room(); err != nil {
				return err
			}
		}
		sym, err := br.decode(lit)
		if err != nil {
			return f.codeErr(err)
		}
		if sym < 256 {
			f.out[f.n] = byte(sym)
			f.n++
			if f.hist < windowSize {
				f.hist++
			}
			continue
		}
		if sym == 256 {
			return nil
		}
		if err := f.match(sym-257, dist); err != nil {
			return err
		}
	}
}

// match decodes a length code's extra bits and the distance that
// follows, and copies the match.
func (f *inflater) match(code uint32, dist *huffman) error {
	br := f.br
	if code >= 29 {
		return fmt.Errorf("zran: invalid length code at byte %d", br.pos()/8)
	}
	if br.nb < 48 {
		br.fill()
	}
	extra, err := br.take(uint(lengthExtra[code]))
	if err != nil {
		return err
	}
	length := int(lengthBase[code]) + int(extra)
	dc, err := br.decode(dist)
	if err != nil {
		return f.codeErr(err)
	}
	if dc >= 30 {
		return fmt.Errorf("zran: invalid distance code at byte %d", br.pos()/8)
	}
	extra, err = br.take(uint(distExtra[dc]))
	if err != nil {
		return err
	}
	d := int(distBase[dc]) + int(extra)
	if d > f.hist {
		return fmt.Errorf("zran: distance %d too far back at byte %d", d, br.pos()/8)
	}
	f.copyMatch(d, length)
	return nil
}

// copyMatch appends length bytes copied from d bytes back. An overlapping
// match repeats its source, so it is copied in runs of at most d bytes.
func (f *inflater) copyMatch(d, length int) {
	out, n := f.out, f.n
	if d >= length {
		copy(out[n:n+length], out[n-d:])
	} else {
		for k := 0; k < length; {
			k += copy(out[n+k:n+length], out[n-d:n+k])
		}
	}
	f.n = n + length
	f.hist = min(f.hist+length, windowSize)
}

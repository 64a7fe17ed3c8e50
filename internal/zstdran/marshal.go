package zstdran

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// The binary form, big-endian:
//
//	magic "xva-zstdran", version uint16,
//	compressed size, uncompressed size, span (uint64 each), points uint32,
//	per point: compressed offset, output offset (uint64), span CRC-32
//	  (uint32), kind (uint8: 0 at a frame, 1 at a block inside one);
//	  for a block: window, content size (-1 unknown), the frame's output
//	  so far (uint64 each), checksum and single-segment flags (uint8
//	  each), repeat offsets (3 uint32), Huffman weights (uint16 count,
//	  the weights), three sequence tables (mode, RLE symbol, accuracy
//	  log (uint8 each), uint16 count, the normalized counts (int16
//	  each)), window length and compressed window length (uint32), the
//	  window (zstd),
//	CRC-32 of all the above (uint32).
//
// The trailing CRC catches a damaged cache file; the checks of
// UnmarshalBinary make sure that even an index that passes it cannot
// make a read go wrong (every read is checked against the span CRC-32s
// anyway).
const (
	magic      = "xva-zstdran"
	version    = 1
	headerLen  = len(magic) + 2 + 3*8 + 4
	pointFixed = 8 + 8 + 4 + 1
)

// MarshalBinary is the index's binary form, for a cache file.
func (x *Index) MarshalBinary() ([]byte, error) {
	if len(x.points) == 0 {
		return nil, errors.New("zstdran: marshal of an empty index")
	}
	be := binary.BigEndian
	b := []byte(magic)
	b = be.AppendUint16(b, version)
	b = be.AppendUint64(b, uint64(x.csize))
	b = be.AppendUint64(b, uint64(x.size))
	b = be.AppendUint64(b, uint64(x.span))
	b = be.AppendUint32(b, uint32(len(x.points)))
	for _, p := range x.points {
		b = be.AppendUint64(b, uint64(p.coff))
		b = be.AppendUint64(b, uint64(p.out))
		b = be.AppendUint32(b, p.crc)
		if !p.mid {
			b = append(b, 0)
			continue
		}
		b = append(b, 1)
		b = be.AppendUint64(b, uint64(p.frame.window))
		b = be.AppendUint64(b, uint64(p.frame.fcs))
		b = be.AppendUint64(b, uint64(p.frameOut))
		b = append(b, flag(p.frame.hasSum), flag(p.frame.singleS))
		for _, r := range p.rep {
			b = be.AppendUint32(b, r)
		}
		b = be.AppendUint16(b, uint16(len(p.huf)))
		b = append(b, p.huf...)
		for _, s := range p.seq {
			b = append(b, s.mode, s.rle, s.desc.log)
			b = be.AppendUint16(b, uint16(len(s.desc.norm)))
			for _, c := range s.desc.norm {
				b = be.AppendUint16(b, uint16(c))
			}
		}
		b = be.AppendUint32(b, uint32(p.wlen))
		b = be.AppendUint32(b, uint32(len(p.win)))
		b = append(b, p.win...)
	}
	return be.AppendUint32(b, crc32.ChecksumIEEE(b)), nil
}

func flag(v bool) byte {
	if v {
		return 1
	}
	return 0
}

// UnmarshalBinary reads an index MarshalBinary made, checking all of
// it; a damaged index is refused (the caller then builds it again).
func (x *Index) UnmarshalBinary(data []byte) error {
	if len(data) < headerLen+4 || string(data[:len(magic)]) != magic {
		return errors.New("zstdran: not an index")
	}
	body := data[:len(data)-4]
	if crc32.ChecksumIEEE(body) != binary.BigEndian.Uint32(data[len(body):]) {
		return errors.New("zstdran: index damaged: CRC-32 check fails")
	}
	if v := binary.BigEndian.Uint16(body[len(magic):]); v != version {
		return fmt.Errorf("zstdran: index version %d, not %d", v, version)
	}
	body = bytes.Clone(body)
	be := binary.BigEndian
	h := body[len(magic)+2:]
	csize, size, span := be.Uint64(h), be.Uint64(h[8:]), be.Uint64(h[16:])
	n := int64(be.Uint32(h[24:]))
	const limit = 1 << 62
	switch {
	case csize == 0 || csize > limit || size > limit:
		return fmt.Errorf("zstdran: index damaged: sizes %d and %d", csize, size)
	case span < MinSpan || span > limit:
		return fmt.Errorf("zstdran: index damaged: span %d", span)
	case n < 1 || n > int64(len(body)-headerLen)/pointFixed || n > maxPoints(int64(csize)):
		return fmt.Errorf("zstdran: index damaged: %d points in %d bytes", n, len(body))
	}
	y := &Index{csize: int64(csize), size: int64(size), span: int64(span), points: make([]point, n)}
	r := &fields{b: body[headerLen:]}
	for k := range y.points {
		if err := y.parsePoint(r, k); err != nil {
			return err
		}
	}
	if r.bad || len(r.b) != 0 {
		return errors.New("zstdran: index damaged: its length does not match its points")
	}
	*x = *y
	return nil
}

// fields reads big-endian fields, noting a read past the end.
type fields struct {
	b   []byte
	bad bool
}

func (f *fields) take(n int) []byte {
	if f.bad || n > len(f.b) {
		f.bad = true
		return make([]byte, n)
	}
	v := f.b[:n:n]
	f.b = f.b[n:]
	return v
}

func (f *fields) u8() uint8   { return f.take(1)[0] }
func (f *fields) u16() uint16 { return binary.BigEndian.Uint16(f.take(2)) }
func (f *fields) u32() uint32 { return binary.BigEndian.Uint32(f.take(4)) }
func (f *fields) u64() uint64 { return binary.BigEndian.Uint64(f.take(8)) }

// parsePoint reads point k and checks it against the one before and
// by rebuilding its tables and window.
func (x *Index) parsePoint(r *fields, k int) error {
	p := point{coff: int64(r.u64()), out: int64(r.u64()), crc: r.u32()}
	kind := r.u8()
	bad := func() error {
		return fmt.Errorf("zstdran: index damaged: point %d (compressed byte %d, byte %d)", k, p.coff, p.out)
	}
	if r.bad || kind > 1 || p.coff < 0 || p.coff >= x.csize || p.out < 0 || p.out > x.size {
		return bad()
	}
	if k == 0 {
		if p.out != 0 || kind != 0 {
			return bad()
		}
	} else if q := x.points[k-1]; p.coff <= q.coff || p.out-q.out < x.span {
		return bad()
	}
	p.mid = kind == 1
	if p.mid {
		p.frame.window = int64(r.u64())
		p.frame.fcs = int64(r.u64())
		p.frameOut = int64(r.u64())
		sum, single := r.u8(), r.u8()
		p.frame.hasSum, p.frame.singleS = sum == 1, single == 1
		for i := range p.rep {
			p.rep[i] = r.u32()
		}
		if nh := int(r.u16()); nh > 0 {
			if nh > 256 {
				return bad()
			}
			p.huf = r.take(nh)
		}
		for i := range p.seq {
			s := &p.seq[i]
			s.mode, s.rle, s.desc.log = r.u8(), r.u8(), r.u8()
			nn := int(r.u16())
			if nn > 256 {
				return bad()
			}
			if nn > 0 {
				s.desc.norm = make([]int16, nn)
				for j := range s.desc.norm {
					s.desc.norm[j] = int16(r.u16())
				}
			}
		}
		p.wlen = int(r.u32())
		p.win = r.take(int(r.u32()))
		f := p.frame
		switch {
		case r.bad, sum > 1, single > 1,
			f.window < 0 || f.window > MaxWindow, f.fcs < -1, f.fcs >= 0 && f.window > f.fcs,
			p.frameOut <= 0 || p.frameOut > p.out || f.fcs >= 0 && p.frameOut > f.fcs,
			int64(p.wlen) != min(f.window, p.frameOut),
			p.rep[0] == 0 || p.rep[1] == 0 || p.rep[2] == 0:
			return bad()
		}
	}
	x.points[k] = p
	if !p.mid {
		return nil
	}
	d := newDecoder(nil)
	if p.huf != nil {
		d.huf.weights = p.huf
		if d.huf.build() != nil {
			return bad()
		}
	}
	for i := range d.seq {
		s := &d.seq[i]
		s.mode, s.rle, s.desc = p.seq[i].mode, p.seq[i].rle, p.seq[i].desc
		if s.mode != 0xff && s.set(i) != nil {
			return bad()
		}
	}
	_, err := x.window(k)
	return err
}

package zran

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// The binary form, big-endian:
//
//	magic "xva-zran", version uint16,
//	compressed size, uncompressed size, span (uint64 each), points uint32,
//	per point: bit offset, output offset (uint64), span CRC-32 (uint32),
//	  window length (uint16), compressed window length (uint32), the
//	  compressed window (flate),
//	CRC-32 of all the above (uint32).
//
// The trailing CRC catches a damaged cache file; the checks of
// UnmarshalBinary make sure that even an index that passes it cannot
// make a read go wrong.
const (
	magic      = "xva-zran"
	version    = 1
	headerLen  = len(magic) + 2 + 3*8 + 4
	pointFixed = 8 + 8 + 4 + 2 + 4
)

// MarshalBinary is the index's binary form, for a cache file.
func (x *Index) MarshalBinary() ([]byte, error) {
	if len(x.points) == 0 {
		return nil, errors.New("zran: marshal of an empty index")
	}
	b := make([]byte, 0, x.marshalSize())
	b = append(b, magic...)
	b = binary.BigEndian.AppendUint16(b, version)
	b = binary.BigEndian.AppendUint64(b, uint64(x.csize))
	b = binary.BigEndian.AppendUint64(b, uint64(x.size))
	b = binary.BigEndian.AppendUint64(b, uint64(x.span))
	b = binary.BigEndian.AppendUint32(b, uint32(len(x.points)))
	for _, p := range x.points {
		b = binary.BigEndian.AppendUint64(b, uint64(p.bit))
		b = binary.BigEndian.AppendUint64(b, uint64(p.out))
		b = binary.BigEndian.AppendUint32(b, p.crc)
		b = binary.BigEndian.AppendUint16(b, uint16(p.wlen))
		b = binary.BigEndian.AppendUint32(b, uint32(len(p.win)))
		b = append(b, p.win...)
	}
	return binary.BigEndian.AppendUint32(b, crc32.ChecksumIEEE(b)), nil
}

func (x *Index) marshalSize() int {
	n := headerLen + 4
	for _, p := range x.points {
		n += pointFixed + len(p.win)
	}
	return n
}

// UnmarshalBinary reads an index MarshalBinary made, checking all of
// it; a damaged index is refused (the caller then builds it again).
func (x *Index) UnmarshalBinary(data []byte) error {
	if len(data) < headerLen+4 || string(data[:len(magic)]) != magic {
		return errors.New("zran: not an index")
	}
	body := data[:len(data)-4]
	if crc32.ChecksumIEEE(body) != binary.BigEndian.Uint32(data[len(body):]) {
		return errors.New("zran: index damaged: CRC-32 check fails")
	}
	if v := binary.BigEndian.Uint16(body[len(magic):]); v != version {
		return fmt.Errorf("zran: index version %d, not %d", v, version)
	}
	body = bytes.Clone(body)
	y, err := parseHeader(body)
	if err != nil {
		return err
	}
	if err := y.parsePoints(body[headerLen:], len(y.points)); err != nil {
		return err
	}
	*x = *y
	return nil
}

// parseHeader checks the sizes and the point count against the data.
func parseHeader(b []byte) (*Index, error) {
	be := binary.BigEndian
	csize, size, span := be.Uint64(b[10:]), be.Uint64(b[18:]), be.Uint64(b[26:])
	n := int64(be.Uint32(b[34:]))
	const limit = 1 << 62
	switch {
	case csize == 0 || csize > maxFile || size > limit:
		return nil, fmt.Errorf("zran: index damaged: sizes %d and %d", csize, size)
	case span < MinSpan || span > limit:
		return nil, fmt.Errorf("zran: index damaged: span %d", span)
	case n < 1 || n > int64(len(b)-headerLen)/pointFixed || n > maxPoints(int64(csize)):
		return nil, fmt.Errorf("zran: index damaged: %d points in %d bytes", n, len(b))
	}
	return &Index{csize: int64(csize), size: int64(size), span: int64(span), points: make([]point, n)}, nil
}

// parsePoints reads n points from b, which they must use up, checking
// each against the one before.
func (x *Index) parsePoints(b []byte, n int) error {
	be := binary.BigEndian
	for k := range n {
		if len(b) < pointFixed {
			return fmt.Errorf("zran: index damaged: point %d cut short", k)
		}
		p := point{bit: int64(be.Uint64(b)), out: int64(be.Uint64(b[8:])), crc: be.Uint32(b[16:]), wlen: int(be.Uint16(b[20:]))}
		clen := int64(be.Uint32(b[22:]))
		b = b[pointFixed:]
		if clen > int64(len(b)) {
			return fmt.Errorf("zran: index damaged: point %d window cut short", k)
		}
		p.win, b = b[:clen:clen], b[clen:]
		x.points[k] = p
		if err := x.checkPoint(k); err != nil {
			return err
		}
	}
	if len(b) != 0 {
		return fmt.Errorf("zran: index damaged: %d bytes after the last point", len(b))
	}
	return nil
}

// checkPoint checks point k's offsets and window.
func (x *Index) checkPoint(k int) error {
	p := x.points[k]
	bad := p.bit < 0 || p.bit >= x.csize*8 || p.out < 0 || p.out > x.size ||
		p.wlen > windowSize || int64(p.wlen) > p.out
	if k == 0 {
		bad = bad || p.out != 0
	} else {
		q := x.points[k-1]
		bad = bad || p.bit <= q.bit || p.out-q.out < x.span
	}
	if bad {
		return fmt.Errorf("zran: index damaged: point %d (bit %d, byte %d, window %d)", k, p.bit, p.out, p.wlen)
	}
	_, err := x.window(k)
	return err
}

package zran

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// inBufSize is how much of the compressed file one read brings in.
const inBufSize = 64 << 10

// errShort marks a stream that ends before its data does.
var errShort = errors.New("unexpected end of data")

// bitReader reads a DEFLATE stream (least significant bit first) from
// an io.ReaderAt, and knows the absolute bit offset it is at, which is
// what a restart point records.
type bitReader struct {
	r    io.ReaderAt
	size int64 // bytes of r that belong to the file
	buf  []byte
	base int64 // file offset of buf[0]
	i, n int   // buf[i:n] is read but not yet in bits
	bits uint64
	nb   uint // valid bits in bits
	err  error
}

func newBitReader(r io.ReaderAt, size int64) *bitReader {
	return &bitReader{r: r, size: size, buf: make([]byte, inBufSize)}
}

// reset makes b read r (size bytes) from the start, keeping its buffer.
func (b *bitReader) reset(r io.ReaderAt, size int64) {
	*b = bitReader{r: r, size: size, buf: b.buf}
}

// pos is the offset, in bits from the start of the file, of the next
// bit to be consumed.
func (b *bitReader) pos() int64 {
	return (b.base+int64(b.i))*8 - int64(b.nb)
}

// refill reads the next part of the file once buf is used up; false
// when there is nothing more (b.err says why if not the end).
func (b *bitReader) refill() bool {
	if b.i < b.n {
		return true
	}
	if b.err != nil {
		return false
	}
	b.base += int64(b.n)
	b.i, b.n = 0, 0
	want := min(int64(len(b.buf)), b.size-b.base)
	if want <= 0 {
		return false
	}
	n, err := b.r.ReadAt(b.buf[:want], b.base)
	b.n = n
	if n < int(want) {
		if err == nil || err == io.EOF {
			err = fmt.Errorf("file shorter than %d bytes", b.size)
		}
		b.err = fmt.Errorf("zran: read at byte %d: %w", b.base+int64(n), err)
	}
	return n > 0
}

// fill tops bits up to at least 56 bits, or as many as the file has
// left. The fast path loads 8 bytes at once and keeps what fits.
func (b *bitReader) fill() {
	if b.i+8 <= b.n {
		v := binary.LittleEndian.Uint64(b.buf[b.i:])
		b.bits |= v << b.nb
		k := (63 - b.nb) >> 3
		b.i += int(k)
		b.nb += k * 8
		return
	}
	for b.nb <= 56 && b.refill() {
		b.bits |= uint64(b.buf[b.i]) << b.nb
		b.i++
		b.nb += 8
	}
}

// need makes sure n (≤ 56) bits are in bits.
func (b *bitReader) need(n uint) error {
	if b.nb < n {
		b.fill()
		if b.nb < n {
			return b.short()
		}
	}
	return nil
}

// short is the error for data that ends too soon: the read error if
// there was one.
func (b *bitReader) short() error {
	if b.err != nil {
		return b.err
	}
	return fmt.Errorf("zran: %w at byte %d", errShort, b.pos()/8)
}

// take consumes and returns n (≤ 56) bits.
func (b *bitReader) take(n uint) (uint32, error) {
	if err := b.need(n); err != nil {
		return 0, err
	}
	v := uint32(b.bits & (1<<n - 1))
	b.bits >>= n
	b.nb -= n
	return v, nil
}

// seek moves to bit offset bit, keeping buffered data when it can.
func (b *bitReader) seek(bit int64) error {
	off := bit / 8
	if off >= b.base && off <= b.base+int64(b.n) {
		b.i = int(off - b.base)
	} else {
		b.base, b.i, b.n = off, 0, 0
	}
	b.bits, b.nb = 0, 0
	_, err := b.take(uint(bit % 8))
	return err
}

// align drops the bits up to the next byte boundary and leaves bits
// empty, so that bytes can be read directly.
func (b *bitReader) align() error {
	return b.seek((b.pos() + 7) &^ 7)
}

// readFull fills p with the next bytes; only after align.
func (b *bitReader) readFull(p []byte) error {
	for len(p) > 0 {
		if !b.refill() {
			return b.short()
		}
		k := copy(p, b.buf[b.i:b.n])
		b.i += k
		p = p[k:]
	}
	return nil
}

// byteAt is the offset of the next byte; only after align.
func (b *bitReader) byteAt() int64 {
	return b.base + int64(b.i)
}

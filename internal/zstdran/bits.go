package zstdran

import (
	"encoding/binary"
	"errors"
	"math/bits"
)

// revBits reads a zstd backward bit stream (RFC 8878 4.1): written
// forward, read from its end, the highest set bit of the last byte
// marking where the bits begin. value holds the last 8 bytes loaded,
// bitsRead how many of its top bits are consumed. Reads past the start
// yield zeros (Go's shifts past 63 give 0) and leave bitsRead over 64,
// which overflowed reports: the FSE decoders of the Huffman weights
// rely on that condition to stop.
type revBits struct {
	in       []byte
	off      int // in[:off] not loaded yet
	value    uint64
	bitsRead int
}

var errNoMarker = errors.New("a bit stream's last byte is zero (no end marker)")

func (b *revBits) init(in []byte) error {
	if len(in) == 0 {
		return errors.New("an empty bit stream")
	}
	last := in[len(in)-1]
	if last == 0 {
		return errNoMarker
	}
	b.in = in
	if len(in) >= 8 {
		b.off = len(in) - 8
		b.value = binary.LittleEndian.Uint64(in[b.off:])
		b.bitsRead = 0
	} else {
		b.off = 0
		b.value = 0
		for i := range in {
			b.value |= uint64(in[i]) << (8 * i)
		}
		b.bitsRead = 64 - 8*len(in)
	}
	b.bitsRead += bits.LeadingZeros8(last) + 1
	return nil
}

// get reads n bits (n <= 32 after a refill, up to 56 in general).
func (b *revBits) get(n uint8) uint64 {
	if n == 0 {
		return 0
	}
	v := b.value << uint(b.bitsRead) >> (64 - n)
	b.bitsRead += int(n)
	return v
}

// peek is the next n bits (n >= 1), not consumed.
func (b *revBits) peek(n uint8) uint64 {
	return b.value << uint(b.bitsRead) >> (64 - n)
}

func (b *revBits) skip(n uint8) { b.bitsRead += int(n) }

// refill loads bytes so that at least 56 bits are unread, or all that
// are left.
func (b *revBits) refill() {
	if b.off >= 8 {
		// value is in[off:off+8]: move down by the bytes consumed.
		n := b.bitsRead >> 3
		b.off -= n
		b.value = binary.LittleEndian.Uint64(b.in[b.off:])
		b.bitsRead &= 7
		return
	}
	for b.off > 0 && b.bitsRead >= 8 {
		b.off--
		b.value = b.value<<8 | uint64(b.in[b.off])
		b.bitsRead -= 8
	}
}

// finished: every bit read, none past the start.
func (b *revBits) finished() bool { return b.off == 0 && b.bitsRead == 64 }

// overflowed: bits read past the start.
func (b *revBits) overflowed() bool { return b.off == 0 && b.bitsRead > 64 }

// fwdBits reads a forward little-endian bit stream: the FSE table
// descriptions.
type fwdBits struct {
	in  []byte
	pos int // bits consumed
}

var errShort = errors.New("a table description runs past its data")

// peek is the next n bits (n <= 24), zeros past the data: skip then
// says whether they were there.
func (b *fwdBits) peek(n int) uint32 {
	var v uint64
	first := b.pos >> 3
	for i := 0; i < 5 && first+i < len(b.in); i++ {
		v |= uint64(b.in[first+i]) << (8 * i)
	}
	v >>= uint(b.pos & 7)
	return uint32(v & (1<<n - 1))
}

func (b *fwdBits) skip(n int) error {
	b.pos += n
	if b.pos > 8*len(b.in) {
		return errShort
	}
	return nil
}

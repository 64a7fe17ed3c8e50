package zran

import (
	"errors"
	"math/bits"
)

// maxCodeLen is the longest Huffman code DEFLATE allows (RFC 1951 3.2.7).
const maxCodeLen = 15

var (
	errOversubscribed = errors.New("over-subscribed Huffman code")
	errIncomplete     = errors.New("incomplete Huffman code")
	errBadCode        = errors.New("invalid Huffman code")
)

// huffman is a decoding table. The first 1<<primary entries are indexed
// by the next primary bits of the stream (codes arrive most significant
// bit first, so a table index is the code bit-reversed); codes longer
// than primary go through a link to a second-level table indexed by the
// bits that follow. One lookup, or two for rare long codes, decodes a
// symbol: this is what makes the scan run at inflate speed.
//
// An entry is sym<<4 | length for a symbol (length 1..15, counting the
// bits of both levels), 1<<31 | offset<<4 | subBits for a link, and 0
// for a bit pattern no code has (only in the degenerate one-code case).
type huffman struct {
	primary uint
	mask    uint64
	table   []uint32
}

// entryLink marks a link to a second-level table.
const entryLink = 1 << 31

// build makes the table for the code lengths (0 = symbol unused). An
// over-subscribed set is refused; so is an incomplete one, except one
// code of length 1 (which zlib and gzip accept) or, if allowEmpty, no
// code at all.
func (h *huffman) build(lengths []uint8, primary uint, allowEmpty bool) error {
	var count [maxCodeLen + 1]int
	for _, l := range lengths {
		count[l]++
	}
	count[0] = 0
	left, longest, total := 1, 0, 0
	for l := 1; l <= maxCodeLen; l++ {
		left = left<<1 - count[l]
		if left < 0 {
			return errOversubscribed
		}
		if count[l] > 0 {
			longest = l
		}
		total += count[l]
	}
	switch {
	case total == 0 && !allowEmpty:
		return errIncomplete
	case left > 0 && total > 0 && !(total == 1 && longest == 1):
		return errIncomplete
	}
	h.primary = min(primary, uint(max(longest, 1)))
	h.mask = 1<<h.primary - 1
	h.table = h.table[:0]
	h.table = append(h.table, make([]uint32, 1<<h.primary)...)
	var next [maxCodeLen + 2]int
	code := 0
	for l := 1; l <= maxCodeLen; l++ {
		code = (code + count[l-1]) << 1
		next[l] = code
	}
	for sym, l := range lengths {
		if l == 0 {
			continue
		}
		rev := uint32(bits.Reverse16(uint16(next[l]))) >> (16 - uint(l))
		next[l]++
		h.add(uint32(sym), uint(l), rev, uint(longest))
	}
	return nil
}

// add puts the symbol sym, whose code is l bits long and reads as rev
// (bit-reversed), into the table, making its second-level table if it
// needs one.
func (h *huffman) add(sym uint32, l uint, rev uint32, longest uint) {
	entry := sym<<4 | uint32(l)
	p := h.primary
	if l <= p {
		for i := rev; i < 1<<p; i += 1 << l {
			h.table[i] = entry
		}
		return
	}
	lo := rev & uint32(h.mask)
	link := h.table[lo]
	if link == 0 {
		sub := longest - p
		link = entryLink | uint32(len(h.table))<<4 | uint32(sub)
		h.table[lo] = link
		h.table = append(h.table, make([]uint32, 1<<sub)...)
	}
	off, sub := link>>4&0x7ffffff, uint(link&15)
	for i := rev >> p; i < 1<<sub; i += 1 << (l - p) {
		h.table[off+i] = entry
	}
}

// decode reads one symbol.
func (b *bitReader) decode(h *huffman) (uint32, error) {
	if b.nb < maxCodeLen {
		b.fill()
	}
	e := h.table[b.bits&h.mask]
	if e&entryLink != 0 {
		off, sub := e>>4&0x7ffffff, uint(e&15)
		e = h.table[off+uint32(b.bits>>h.primary)&(1<<sub-1)]
	}
	n := uint(e & 15)
	if n == 0 {
		return 0, errBadCode
	}
	if n > b.nb {
		return 0, b.short()
	}
	b.bits >>= n
	b.nb -= n
	return e >> 4, nil
}

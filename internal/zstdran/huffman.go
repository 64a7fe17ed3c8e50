package zstdran

import (
	"encoding/binary"
	"errors"
	"math/bits"
)

// maxHufBits is the longest literal code (RFC 8878 4.2.1).
const maxHufBits = 11

// hufEntry is a cell of a Huffman decoding table indexed by the next
// maxBits bits.
type hufEntry struct {
	sym    uint8
	nbBits uint8
}

// hufTable is a literals Huffman table and the weights it was built
// from (what a restart point keeps).
type hufTable struct {
	weights []uint8 // one per symbol, the last one's implied weight included
	maxBits uint8
	t       []hufEntry
}

// readHufDesc reads a Huffman tree description (RFC 8878 4.2.1) and
// returns the weights, with the last symbol's implied one appended, and
// the bytes used.
func readHufDesc(in []byte, scratch *[]fseEntry) ([]uint8, int, error) {
	if len(in) == 0 {
		return nil, 0, errors.New("literals: no Huffman tree description")
	}
	h := int(in[0])
	var w []uint8
	used := 0
	if h >= 128 {
		n := h - 127
		used = 1 + (n+1)/2
		if used > len(in) {
			return nil, 0, errors.New("literals: Huffman weights run past the block")
		}
		w = make([]uint8, n, n+1)
		for i := range n {
			b := in[1+i/2]
			if i%2 == 0 {
				w[i] = b >> 4
			} else {
				w[i] = b & 15
			}
		}
	} else {
		used = 1 + h
		if used > len(in) || h == 0 {
			return nil, 0, errors.New("literals: Huffman weights run past the block")
		}
		src := in[1:used]
		desc, n, err := readFSEDesc(src, 255, 6)
		if err != nil {
			return nil, 0, err
		}
		t, err := desc.build(*scratch)
		if err != nil {
			return nil, 0, err
		}
		*scratch = t
		if n >= len(src) {
			return nil, 0, errors.New("literals: Huffman weights have no bit stream")
		}
		var br revBits
		if err := br.init(src[n:]); err != nil {
			return nil, 0, err
		}
		s1, s2 := fseState{t: t}, fseState{t: t}
		s1.init(&br, desc.log)
		s2.init(&br, desc.log)
		w = make([]uint8, 0, 256)
		// Two states take turns until the stream is read past its start
		// (RFC 8878 4.2.1.2): then the other state's symbol is the last.
		for {
			if len(w) >= 254 {
				return nil, 0, errors.New("literals: too many Huffman weights")
			}
			br.refill()
			w = append(w, s1.sym())
			s1.update(&br)
			br.refill()
			if br.overflowed() {
				w = append(w, s2.sym())
				break
			}
			w = append(w, s2.sym())
			s2.update(&br)
			br.refill()
			if br.overflowed() {
				w = append(w, s1.sym())
				break
			}
		}
	}
	// The last symbol's weight makes the total a power of two.
	total := 0
	for _, x := range w {
		if x > maxHufBits {
			return nil, 0, errors.New("literals: Huffman weight over 11")
		}
		if x > 0 {
			total += 1 << (x - 1)
		}
	}
	if total == 0 {
		return nil, 0, errors.New("literals: Huffman weights all zero")
	}
	maxBits := bits.Len(uint(total))
	left := 1<<maxBits - total
	if maxBits > maxHufBits || left&(left-1) != 0 {
		return nil, 0, errors.New("literals: Huffman weights do not make a code")
	}
	if len(w) >= 256 {
		return nil, 0, errors.New("literals: too many Huffman weights")
	}
	w = append(w, uint8(bits.Len(uint(left))))
	return w, used, nil
}

// build makes the decoding table of h.weights, checking them (a
// restart point's may come from a file).
func (h *hufTable) build() error {
	w := h.weights
	if len(w) < 2 || len(w) > 256 {
		return errors.New("literals: bad Huffman weights")
	}
	total := 0
	var rank [maxHufBits + 2]int
	for _, x := range w {
		if x > maxHufBits {
			return errors.New("literals: Huffman weight over 11")
		}
		if x > 0 {
			total += 1 << (x - 1)
		}
		rank[x]++
	}
	maxBits := bits.Len(uint(total)) - 1
	if total == 0 || 1<<maxBits != total || maxBits > maxHufBits || maxBits < 1 {
		return errors.New("literals: Huffman weights do not make a code")
	}
	h.maxBits = uint8(maxBits)
	size := 1 << maxBits
	if cap(h.t) < size {
		h.t = make([]hufEntry, size)
	}
	h.t = h.t[:size]
	// Codes go to symbols by increasing weight, then symbol value: the
	// longest codes are the smallest (RFC 8878 4.2.1.1).
	var start [maxHufBits + 2]int
	pos := 0
	for x := 1; x <= maxHufBits; x++ {
		start[x] = pos
		pos += rank[x] << (x - 1)
	}
	for s, x := range w {
		if x == 0 {
			continue
		}
		n := 1 << (x - 1)
		e := hufEntry{sym: uint8(s), nbBits: uint8(maxBits + 1 - int(x))}
		p := start[x]
		for i := range n {
			h.t[p+i] = e
		}
		start[x] += n
	}
	return nil
}

// decodeStream decodes len(out) literals from one Huffman stream, which
// they must use up exactly.
func (h *hufTable) decodeStream(in []byte, out []byte) error {
	var br revBits
	if err := br.init(in); err != nil {
		return err
	}
	mb := h.maxBits
	t := h.t
	i := 0
	for i+4 <= len(out) {
		br.refill()
		for k := range 4 {
			e := t[br.peek(mb)]
			br.skip(e.nbBits)
			out[i+k] = e.sym
		}
		i += 4
		if br.overflowed() {
			return errors.New("literals: Huffman stream too short")
		}
	}
	for ; i < len(out); i++ {
		br.refill()
		e := t[br.peek(mb)]
		br.skip(e.nbBits)
		out[i] = e.sym
	}
	if !br.finished() {
		return errors.New("literals: Huffman stream not used up exactly")
	}
	return nil
}

// decodeLiterals decodes the regenerated literals from the streams in
// (one, or four after a jump table).
func (h *hufTable) decodeLiterals(in []byte, out []byte, four bool) error {
	if !four {
		return h.decodeStream(in, out)
	}
	if len(in) < 10 {
		return errors.New("literals: four streams in under 10 bytes")
	}
	s1 := int(binary.LittleEndian.Uint16(in))
	s2 := int(binary.LittleEndian.Uint16(in[2:]))
	s3 := int(binary.LittleEndian.Uint16(in[4:]))
	in = in[6:]
	if s1+s2+s3 >= len(in) {
		return errors.New("literals: jump table past the streams")
	}
	seg := (len(out) + 3) / 4
	if 3*seg > len(out) {
		return errors.New("literals: too few literals for four streams")
	}
	ins := [4][]byte{in[:s1], in[s1 : s1+s2], in[s1+s2 : s1+s2+s3], in[s1+s2+s3:]}
	for k := range 4 {
		o := out[k*seg:]
		if k < 3 {
			o = o[:seg]
		}
		if err := h.decodeStream(ins[k], o); err != nil {
			return err
		}
	}
	return nil
}

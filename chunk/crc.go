package chunk

// CRC-32 (IEEE) is linear over GF(2): crc(A‖B) = shift(crc(A), len(B)) ⊕
// crc(B), where shift is the effect of feeding len(B) zero bytes through the
// raw register. That lets workers checksum pieces in parallel and the writer
// or reader combine them in order, and lets an all-zero piece contribute its
// constant CRC without touching a byte. This is zlib's crc32_combine, with
// the operator for a whole piece cached.

// crcOp is a 32×32 matrix over GF(2); column i is the image of bit i.
type crcOp [32]uint32

func (m *crcOp) apply(v uint32) uint32 {
	var sum uint32
	for i := 0; v != 0; i, v = i+1, v>>1 {
		if v&1 != 0 {
			sum ^= m[i]
		}
	}
	return sum
}

// then returns the operator that applies m and then n.
func (m *crcOp) then(n *crcOp) crcOp {
	var r crcOp
	for i := range r {
		r[i] = n.apply(m[i])
	}
	return r
}

// zerosOp returns the operator that feeds length zero bytes through the
// register.
func zerosOp(length int64) crcOp {
	var bit crcOp // one zero bit
	bit[0] = 0xedb88320
	for i := 1; i < 32; i++ {
		bit[i] = 1 << (i - 1)
	}
	base := bit
	for range 3 { // 8 bits = one byte
		base = base.then(&base)
	}
	var r crcOp
	for i := range r {
		r[i] = 1 << i
	}
	for ; length > 0; length >>= 1 {
		if length&1 != 0 {
			r = r.then(&base)
		}
		base = base.then(&base)
	}
	return r
}

var pieceOp = zerosOp(PieceSize)

// crcCombine returns the CRC-32 of A‖B given crc1 = crc(A), crc2 = crc(B)
// and len2 = len(B).
func crcCombine(crc1, crc2 uint32, len2 int64) uint32 {
	if len2 == PieceSize {
		return pieceOp.apply(crc1) ^ crc2
	}
	op := zerosOp(len2)
	return op.apply(crc1) ^ crc2
}

package chunk

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
)

// Legacy (dir-gzipped-chunks) encoding: a disk cut into ChunkSize-byte
// chunks, each a standalone gzip file.
const (
	// ChunkSize is the raw size of every legacy chunk but the last: 1e9
	// bytes, decimal, as xapi's exporter and the xe CLI wrote them.
	ChunkSize = 1_000_000_000

	// PieceSize is the unit the gzip writer compresses independently. Each
	// piece ends on a byte boundary (a sync flush) and uses no dictionary
	// from the piece before it, so pieces can be inflated in parallel.
	PieceSize = 1 << 20

	// DefaultLevel is the compression level when none is given.
	DefaultLevel = 6
)

// Errors of the gzip chunk codec. Truncation is io.ErrUnexpectedEOF.
var (
	ErrNotGzip     = errors.New("chunk: not a gzip file")
	ErrChecksum    = errors.New("chunk: gzip CRC-32 mismatch")
	ErrLength      = errors.New("chunk: gzip length (ISIZE) mismatch")
	ErrTooLong     = errors.New("chunk: chunk inflates past its expected size")
	ErrTooShort    = errors.New("chunk: chunk inflates to less than its expected size")
	ErrTrailing    = errors.New("chunk: data after the end of the gzip stream")
	ErrBadIndex    = errors.New("chunk: piece index does not match the compressed data")
	ErrInvalidData = errors.New("chunk: corrupt deflate data")
)

// The piece index lives in the gzip header's FEXTRA field, which gzip, zlib
// and xapi skip. It lets a reader find each piece's compressed bytes, inflate
// pieces in parallel, and recognise all-zero pieces without inflating them.
//
//	subfield id "Xv", then little-endian:
//	u8  version (2; 1 before per-piece CRCs)     u8 reserved     u16 reserved
//	u32 piece size      u64 uncompressed length     u32 piece count n
//	n × u32: compressed length | zeroFlag (the piece is zeroPiece)
//	n × u32: each piece's CRC-32 (version 2 only)
//	u32 CRC-32 of everything above
//
// The per-piece CRC-32s let a reader check one piece read at random
// without inflating the whole chunk that the trailer's CRC-32 covers.
const (
	gzipHeaderLen = 10
	indexID1      = 'X'
	indexID2      = 'v'
	indexVersion  = 2
	indexFixed    = 1 + 1 + 2 + 4 + 8 + 4
	zeroFlag      = 1 << 31
	maxIndexed    = (65535 - 4 - indexFixed - 4) / 8 // pieces that fit in FEXTRA
)

// finalBlock is an empty, final, fixed-Huffman deflate block: the end of
// every stream we write.
var finalBlock = []byte{0x03, 0x00}

// pieceIndex is the decoded FEXTRA index.
type pieceIndex struct {
	pieceSize int64
	length    int64
	entries   []uint32
	crcs      []uint32 // each piece's CRC-32; nil in a version 1 index
}

func pieceCount(length, pieceSize int64) int {
	return int((length + pieceSize - 1) / pieceSize)
}

// gzipHeader returns a gzip member header carrying idx. MTIME is 0 so the
// output is reproducible; OS is 255 (unknown), as Go's gzip writes.
func gzipHeader(idx *pieceIndex) []byte {
	payload := make([]byte, 0, indexFixed+8*len(idx.entries)+4)
	payload = append(payload, indexVersion, 0, 0, 0)
	payload = binary.LittleEndian.AppendUint32(payload, uint32(idx.pieceSize))
	payload = binary.LittleEndian.AppendUint64(payload, uint64(idx.length))
	payload = binary.LittleEndian.AppendUint32(payload, uint32(len(idx.entries)))
	for _, e := range idx.entries {
		payload = binary.LittleEndian.AppendUint32(payload, e)
	}
	for i := range idx.entries {
		c := uint32(0)
		if i < len(idx.crcs) {
			c = idx.crcs[i]
		}
		payload = binary.LittleEndian.AppendUint32(payload, c)
	}
	payload = binary.LittleEndian.AppendUint32(payload, crc32.ChecksumIEEE(payload))

	h := []byte{0x1f, 0x8b, 8, 0x04, 0, 0, 0, 0, 0, 0xff}
	h = binary.LittleEndian.AppendUint16(h, uint16(4+len(payload)))
	h = append(h, indexID1, indexID2)
	h = binary.LittleEndian.AppendUint16(h, uint16(len(payload)))
	return append(h, payload...)
}

// parseIndex finds and checks our index in a gzip FEXTRA field. It returns
// nil when there is none or it is not usable; the caller then inflates the
// member sequentially, as any gzip reader would.
func parseIndex(extra []byte) *pieceIndex {
	for len(extra) >= 4 {
		id1, id2 := extra[0], extra[1]
		n := int(binary.LittleEndian.Uint16(extra[2:]))
		if 4+n > len(extra) {
			return nil
		}
		if id1 == indexID1 && id2 == indexID2 {
			return decodeIndex(extra[4 : 4+n])
		}
		extra = extra[4+n:]
	}
	return nil
}

func decodeIndex(p []byte) *pieceIndex {
	if len(p) < indexFixed+4 || p[0] != 1 && p[0] != 2 {
		return nil
	}
	per := 4 // bytes per piece: its length, and in version 2 its CRC-32
	if p[0] == 2 {
		per = 8
	}
	body, sum := p[:len(p)-4], binary.LittleEndian.Uint32(p[len(p)-4:])
	if crc32.ChecksumIEEE(body) != sum {
		return nil
	}
	idx := &pieceIndex{
		pieceSize: int64(binary.LittleEndian.Uint32(p[4:])),
		length:    int64(binary.LittleEndian.Uint64(p[8:])),
	}
	n := int(binary.LittleEndian.Uint32(p[16:]))
	// Only our writer's piece size: a piece is read whole before it is
	// inflated, and a larger one would let a tiny hostile header claim a
	// large buffer. Any other index is ignored and the chunk inflated as
	// gzip -d would.
	if idx.pieceSize != PieceSize ||
		idx.length < 0 || n != pieceCount(idx.length, idx.pieceSize) || len(body) != indexFixed+per*n {
		return nil
	}
	idx.entries = make([]uint32, n)
	for i := range idx.entries {
		e := binary.LittleEndian.Uint32(body[indexFixed+4*i:])
		if int64(e&^zeroFlag) > maxCompressed(idx.pieceSize) {
			return nil
		}
		idx.entries[i] = e
	}
	if per == 8 {
		idx.crcs = make([]uint32, n)
		for i := range idx.crcs {
			idx.crcs[i] = binary.LittleEndian.Uint32(body[indexFixed+4*n+4*i:])
		}
	}
	return idx
}

// maxCompressed bounds the deflate size of a piece: stored blocks cost 5
// bytes per 64 KiB, plus the sync flush. Anything larger is not ours.
func maxCompressed(pieceSize int64) int64 {
	return pieceSize + pieceSize/1024 + 1024
}

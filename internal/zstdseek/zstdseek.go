// Package zstdseek writes and reads the zstd seekable format (facebook/zstd,
// contrib/seekable_format/zstd_seekable_compression_format.md, version
// 0.1.0): the content is cut into independent zstd frames, and a skippable
// frame at the end of the file holds a seek table, one entry per frame
// (compressed size, decompressed size, optionally a checksum), and a footer
// (number of frames, descriptor, seekable magic number).
//
// Any zstd decoder reads such a file as an ordinary stream of frames and
// skips the table (a skippable frame, format §"Seek Table Format"); a
// reader that knows the table decompresses only the frames that cover the
// bytes it wants.
//
// It imports nothing of the module but internal/pipeline.
package zstdseek

import (
	"encoding/binary"
	"errors"
	"math/bits"
)

const (
	// skippableMagic is the Skippable_Magic_Number of the seek table frame
	// (format §"Seek Table Format"): one of zstd's skippable frame magics.
	skippableMagic = 0x184D2A5E
	// seekableMagic is the Seekable_Magic_Number, the last four bytes of a
	// seekable file (format §"Seek_Table_Footer").
	seekableMagic = 0x8F92EAB1

	// footerSize is Number_Of_Frames, Seek_Table_Descriptor and
	// Seekable_Magic_Number; headerSize the skippable frame's magic and
	// Frame_Size.
	footerSize = 9
	headerSize = 8

	// checksumFlag is bit 7 of the Seek_Table_Descriptor; reservedBits are
	// bits 6-2, which a decoder must find zero (bits 1-0 are unused and not
	// interpreted).
	checksumFlag = 0x80
	reservedBits = 0x7c

	// MaxFrameSize is the largest frameSize NewWriter accepts: 1 GiB, the
	// bound the reference implementation first set
	// (ZSTD_SEEKABLE_MAX_FRAME_DECOMPRESSED_SIZE) so that a frame's
	// compressed size always fits the table's 4-byte field.
	MaxFrameSize = 1 << 30

	// maxFrameDecompressed is the largest Decompressed_Size Open accepts:
	// 2 GiB, the reference implementation's bound today.
	maxFrameDecompressed = 0x80000000
	// maxFrames is the most frames Open accepts and NewWriter writes, the
	// reference implementation's ZSTD_SEEKABLE_MAXFRAMES.
	maxFrames = 0x8000000

	// minFrame is the smallest a frame of the file can be: a skippable
	// frame's magic and size (a zstd frame is longer still).
	minFrame = 8
	// maxExpansion bounds how much a zstd frame can decompress to per byte:
	// a block decompresses to at most 128 KiB and takes at least 4 bytes
	// (an RLE block), and a frame's header takes more bytes than its blocks'
	// share. A table entry claiming more cannot be true.
	maxExpansion = 1 << 15
)

// ErrNotSeekable is returned by Open for a file that does not end with a
// seek table: an ordinary zstd stream, or not zstd at all.
var ErrNotSeekable = errors.New("zstdseek: no seek table at the end of the file (not the zstd seekable format)")

// ErrCorrupt is wrapped by every error that says a seekable file is
// damaged: a malformed seek table, or a frame that does not decode to what
// the table says.
var ErrCorrupt = errors.New("damaged zstd seekable file")

// XXH64 primes (the xxHash specification).
const (
	prime1 uint64 = 0x9E3779B185EBCA87
	prime2 uint64 = 0xC2B2AE3D27D4EB4F
	prime3 uint64 = 0x165667B19E3779F9
	prime4 uint64 = 0x85EBCA77C2B2AE63
	prime5 uint64 = 0x27D4EB2F165667C5
)

func xxRound(acc, lane uint64) uint64 {
	acc += lane * prime2
	acc = bits.RotateLeft64(acc, 31)
	return acc * prime1
}

func xxMerge(acc, v uint64) uint64 {
	acc ^= xxRound(0, v)
	return acc*prime1 + prime4
}

// xxh64 is the XXH64 digest of b with seed 0: the checksum zstd frames end
// with (its low 32 bits) and the seek table's Checksum field holds.
func xxh64(b []byte) uint64 {
	n := uint64(len(b))
	var h uint64
	if len(b) >= 32 {
		p1 := prime1 // wrapping arithmetic, which constants do not do
		v1 := p1 + prime2
		v2 := prime2
		v3 := uint64(0)
		v4 := -p1
		for len(b) >= 32 {
			v1 = xxRound(v1, binary.LittleEndian.Uint64(b[0:]))
			v2 = xxRound(v2, binary.LittleEndian.Uint64(b[8:]))
			v3 = xxRound(v3, binary.LittleEndian.Uint64(b[16:]))
			v4 = xxRound(v4, binary.LittleEndian.Uint64(b[24:]))
			b = b[32:]
		}
		h = bits.RotateLeft64(v1, 1) + bits.RotateLeft64(v2, 7) +
			bits.RotateLeft64(v3, 12) + bits.RotateLeft64(v4, 18)
		h = xxMerge(h, v1)
		h = xxMerge(h, v2)
		h = xxMerge(h, v3)
		h = xxMerge(h, v4)
	} else {
		h = prime5
	}
	h += n
	for len(b) >= 8 {
		h ^= xxRound(0, binary.LittleEndian.Uint64(b))
		h = bits.RotateLeft64(h, 27)*prime1 + prime4
		b = b[8:]
	}
	if len(b) >= 4 {
		h ^= uint64(binary.LittleEndian.Uint32(b)) * prime1
		h = bits.RotateLeft64(h, 23)*prime2 + prime3
		b = b[4:]
	}
	for _, c := range b {
		h ^= uint64(c) * prime5
		h = bits.RotateLeft64(h, 11) * prime1
	}
	h ^= h >> 33
	h *= prime2
	h ^= h >> 29
	h *= prime3
	h ^= h >> 32
	return h
}

package chunk

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"github.com/xva-tools/xva/internal/pipeline"
)

// ErrNoIndex: a gzip chunk carries no piece index of ours, so it can only
// be inflated front to back.
var ErrNoIndex = errors.New("chunk: the gzip chunk has no piece index")

// ChunkIndex is where each piece of a gzip chunk xva wrote lies, read from
// the index in its header: what reading the chunk at random needs. Its
// CRC-32 covers the whole chunk, so Verify inflates the chunk once, checks
// it, and remembers each piece's CRC-32; Piece then checks every piece it
// inflates against that.
type ChunkIndex struct {
	pieceSize, length int64
	at                []int64  // each piece's compressed bytes: offset in the member
	entries           []uint32 // compressed length | zeroFlag
	tail              int64    // offset of the final block and trailer
	size              int64    // the member's size

	mu   sync.Mutex
	err  error    // an integrity failure found by Verify, kept
	crcs []uint32 // each piece's CRC-32, once verified
}

// ReadChunkIndex reads the index of the gzip chunk r (size bytes): ErrNoIndex
// when it has none, a chunk error when its layout does not fit the member.
func ReadChunkIndex(r io.ReaderAt, size int64) (*ChunkIndex, error) {
	head := make([]byte, gzipHeaderLen+2)
	if _, err := r.ReadAt(head, 0); err != nil {
		return nil, truncated(err)
	}
	if head[0] != 0x1f || head[1] != 0x8b {
		return nil, ErrNotGzip
	}
	if head[2] != 8 || head[3] != 0x04 {
		return nil, ErrNoIndex
	}
	xlen := int64(binary.LittleEndian.Uint16(head[gzipHeaderLen:]))
	extra := make([]byte, xlen)
	if _, err := r.ReadAt(extra, gzipHeaderLen+2); err != nil {
		return nil, truncated(err)
	}
	idx := parseIndex(extra)
	if idx == nil {
		return nil, ErrNoIndex
	}
	// A version 2 index carries each piece's CRC-32: a piece is checked on
	// its own, and the chunk need not be inflated whole first.
	x := &ChunkIndex{pieceSize: idx.pieceSize, length: idx.length, entries: idx.entries, size: size, crcs: idx.crcs}
	off := gzipHeaderLen + 2 + xlen
	for _, e := range idx.entries {
		x.at = append(x.at, off)
		off += int64(e &^ zeroFlag)
	}
	x.tail = off
	if off+int64(len(finalBlock))+8 != size {
		return nil, fmt.Errorf("%w: the pieces end at byte %d of a %d-byte member", ErrBadIndex, off, size)
	}
	return x, nil
}

// Length is the chunk's uncompressed size.
func (x *ChunkIndex) Length() int64 { return x.length }

// PieceSize is the uncompressed size of each piece but the last.
func (x *ChunkIndex) PieceSize() int64 { return x.pieceSize }

// Pieces is the number of pieces.
func (x *ChunkIndex) Pieces() int { return len(x.entries) }

// IsZero reports whether piece i is the fixed encoding of zeros, which
// holds no data.
func (x *ChunkIndex) IsZero(r io.ReaderAt, i int) bool {
	e := x.entries[i]
	if e&zeroFlag == 0 || x.plen(i) != PieceSize || int(e&^zeroFlag) != len(zeroPiece) {
		return false
	}
	b := make([]byte, len(zeroPiece))
	_, err := r.ReadAt(b, x.at[i])
	return err == nil && bytes.Equal(b, zeroPiece)
}

func (x *ChunkIndex) plen(i int) int64 {
	return min(x.pieceSize, x.length-int64(i)*x.pieceSize)
}

// Verify inflates the whole chunk once, on up to jobs workers, and checks
// its CRC-32 and ISIZE; a success (with each piece's CRC-32) or an
// integrity failure is kept, so later calls cost nothing. A chunk whose
// index carries each piece's CRC-32 (version 2) needs no Verify before
// Piece, and Verify then returns at once. A failure to
// read r or a cancellation is not kept: the next call tries again.
func (x *ChunkIndex) Verify(ctx context.Context, r io.ReaderAt, jobs int) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.crcs != nil || x.err != nil {
		return x.err
	}
	rec := &readRecorder{r: r}
	err := x.verify(ctx, rec, jobs)
	if err != nil && !rec.failed.Load() && ctx.Err() == nil {
		x.err = err
	}
	return err
}

// readRecorder notes whether a read of r failed.
type readRecorder struct {
	r      io.ReaderAt
	failed atomic.Bool
}

func (rr *readRecorder) ReadAt(p []byte, off int64) (int, error) {
	n, err := rr.r.ReadAt(p, off)
	if err != nil && err != io.EOF {
		rr.failed.Store(true)
	}
	return n, err
}

func (x *ChunkIndex) verify(ctx context.Context, r io.ReaderAt, jobs int) error {
	crcs := make([]uint32, len(x.entries))
	var crc uint32
	done := 0
	pool := pipeline.NewOrdered(ctx, jobs, func(p *inflated) error {
		crcs[done] = p.crc
		crc = crcCombine(crc, p.crc, p.n)
		done++
		return nil
	}, (*inflated).release)
	for i := range x.entries {
		err := pool.Submit(func(context.Context) (*inflated, error) {
			if x.IsZero(r, i) {
				return &inflated{zero: true, crc: zeroPieceCRC, n: PieceSize}, nil
			}
			comp, err := x.compressed(r, i)
			if err != nil {
				return nil, err
			}
			defer putBuf(comp)
			return inflatePiece(comp, x.plen(i), false)
		})
		if err != nil {
			break
		}
	}
	if err := pool.Close(); err != nil {
		return err
	}
	var tail [10]byte
	if _, err := r.ReadAt(tail[:], x.tail); err != nil {
		return truncated(err)
	}
	switch {
	case !bytes.Equal(tail[:2], finalBlock):
		return fmt.Errorf("%w: no final block after the last piece", ErrBadIndex)
	case binary.LittleEndian.Uint32(tail[2:]) != crc:
		return ErrChecksum
	case binary.LittleEndian.Uint32(tail[6:]) != uint32(x.length):
		return ErrLength
	}
	x.crcs = crcs
	return nil
}

// compressed reads piece i's compressed bytes into a pooled buffer.
func (x *ChunkIndex) compressed(r io.ReaderAt, i int) ([]byte, error) {
	comp := getBuf(int(x.entries[i] &^ zeroFlag))
	if _, err := r.ReadAt(comp, x.at[i]); err != nil {
		putBuf(comp)
		return nil, truncated(err)
	}
	return comp, nil
}

// Piece inflates piece i, after Verify has passed, and checks it against
// the CRC-32 Verify found for it: the bytes returned are the chunk's.
func (x *ChunkIndex) Piece(r io.ReaderAt, i int) ([]byte, error) {
	x.mu.Lock()
	verified := x.crcs != nil
	x.mu.Unlock()
	if !verified {
		return nil, errors.New("chunk: Piece before a successful Verify")
	}
	if x.IsZero(r, i) {
		return make([]byte, x.plen(i)), nil
	}
	comp, err := x.compressed(r, i)
	if err != nil {
		return nil, err
	}
	defer putBuf(comp)
	p, err := inflatePiece(comp, x.plen(i), true)
	if err != nil {
		return nil, err
	}
	defer p.release()
	if p.crc != x.crcs[i] {
		return nil, fmt.Errorf("%w: piece %d changed since the chunk was verified", ErrChecksum, i)
	}
	return bytes.Clone(p.data), nil
}

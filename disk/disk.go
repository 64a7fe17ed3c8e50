// Package disk is the abstraction every image format implements: a virtual
// disk of Size bytes, most of them usually zero, moved as extents of data.
//
// A Source is read at random; a Reader delivers a disk front to back as
// pieces of data with holes between them; a Sink receives data in increasing
// offset order and turns the ranges it never receives into holes, unallocated
// blocks or explicit zeros, whichever its medium needs.
//
// It imports nothing of the module: it is the bottom of the graph.
package disk

import (
	"context"
	"io"
	"iter"
)

// Extent is a byte range of a disk.
type Extent struct {
	Off, Len int64
}

// End is the offset just past the extent.
func (e Extent) End() int64 { return e.Off + e.Len }

// Source is a disk image that can be read at any offset.
type Source interface {
	io.ReaderAt
	Size() int64
	Close() error
}

// Extenter is implemented by sources that know where their data may be
// (SEEK_DATA for sparse files, the BAT for VHD, segments for LVM). Ranges
// outside the listed extents read as zero.
type Extenter interface {
	Extents(ctx context.Context) iter.Seq2[Extent, error]
}

// Extents lists the ranges of s that may hold data, in increasing order. A
// source without an Extents method is reported as one extent of its whole
// size.
func Extents(ctx context.Context, s Source) iter.Seq2[Extent, error] {
	if e, ok := s.(Extenter); ok {
		return e.Extents(ctx)
	}
	return func(yield func(Extent, error) bool) {
		if s.Size() > 0 {
			yield(Extent{0, s.Size()}, nil)
		}
	}
}

// Sink is a disk image being written. WriteAt is called with data in
// increasing, non-overlapping offset order; ranges never written must read
// back as zero. Nothing is visible under the final name until Commit; Abort
// removes whatever was written.
type Sink interface {
	io.WriterAt
	Size() int64
	Commit() error
	Abort() error
}

// Unordered is implemented by sinks that also accept WriteAt calls out of
// offset order and from several goroutines at once (raw files, block
// devices), which lets an archive's chunks be decoded concurrently.
type Unordered interface {
	Unordered() bool
}

// IsUnordered reports whether s accepts concurrent, out-of-order writes.
func IsUnordered(s Sink) bool {
	u, ok := s.(Unordered)
	return ok && u.Unordered()
}

// Piece is a run of a disk's bytes starting at Off.
type Piece struct {
	Off  int64
	Data []byte
}

// End is the offset just past the piece.
func (p Piece) End() int64 { return p.Off + int64(len(p.Data)) }

// Reader delivers a disk front to back. Pieces come in increasing,
// non-overlapping order; bytes between them are zero. A piece's Data is valid
// only until the next call to Next.
type Reader interface {
	Size() int64
	// Next returns the next piece, or io.EOF after the last one.
	Next() (Piece, error)
}

// zeroSource is a disk that reads as all zeros.
type zeroSource int64

// Zero returns a Source of size bytes that are all zero and has no extents.
func Zero(size int64) Source { return zeroSource(size) }

func (z zeroSource) Size() int64  { return int64(z) }
func (z zeroSource) Close() error { return nil }
func (z zeroSource) ReadAt(p []byte, off int64) (int, error) {
	if off >= int64(z) {
		return 0, io.EOF
	}
	n := len(p)
	if rest := int64(z) - off; int64(n) > rest {
		n = int(rest)
	}
	clear(p[:n])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}
func (z zeroSource) Extents(context.Context) iter.Seq2[Extent, error] {
	return func(func(Extent, error) bool) {}
}

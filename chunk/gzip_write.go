package chunk

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"sync"

	"github.com/klauspost/compress/flate"

	"github.com/xva-tools/xva/disk"
	"github.com/xva-tools/xva/internal/pipeline"
)

// Filler fills buf with the disk bytes at off and reports whether the range
// held any data; when it reports false the range is a hole and buf is left
// untouched. disk.Gather implements it.
type Filler interface {
	Fill(buf []byte, off int64) (bool, error)
}

// ChunkFile receives one gzip chunk: written front to back, then its header
// patched once with WriteAt at offset 0. An *os.File is a ChunkFile.
type ChunkFile interface {
	io.Writer
	io.WriterAt
}

// GzipOptions tunes the gzip chunk writer and reader.
type GzipOptions struct {
	Level int // 0–9; compressed bytes depend only on this, not on Jobs
	Jobs  int // workers; 0 means GOMAXPROCS
	// Progress, if set, is called from one goroutine with the number of
	// raw bytes each piece covered, holes included, as it is written.
	Progress func(n int64)
	// Discard makes ReadGzipChunk check a chunk without handing its data
	// to emit: xva's own pieces are then inflated through a small buffer,
	// never held whole (a checker's memory).
	Discard bool
}

// WriteGzipChunk compresses length disk bytes starting at off, taken from
// src, into dst as one gzip member and returns its compressed size.
//
// Pieces are compressed in parallel. All-zero pieces, which make up most of
// a typical VM disk, cost no compression: they become the precomputed
// zeroPiece, and a hole in src is not even scanned.
func WriteGzipChunk(ctx context.Context, dst ChunkFile, src Filler, off, length int64, o GzipOptions) (int64, error) {
	if o.Level < 0 || o.Level > 9 {
		return 0, fmt.Errorf("chunk: compression level %d is not in 0–9", o.Level)
	}
	n := pieceCount(length, PieceSize)
	if n > maxIndexed {
		return 0, fmt.Errorf("chunk: %d bytes are too many for one chunk", length)
	}
	idx := &pieceIndex{pieceSize: PieceSize, length: length, entries: make([]uint32, n), crcs: make([]uint32, n)}
	header := gzipHeader(idx)
	w := &countWriter{w: dst}
	if _, err := w.Write(header); err != nil {
		return w.n, err
	}
	var crc uint32
	i := 0
	pool := pipeline.NewOrdered(ctx, o.Jobs, func(p *packed) error {
		defer p.release()
		if _, err := w.Write(p.data); err != nil {
			return err
		}
		idx.entries[i] = uint32(len(p.data))
		if p.zero {
			idx.entries[i] |= zeroFlag
		}
		idx.crcs[i] = p.crc
		crc = crcCombine(crc, p.crc, p.n)
		i++
		if o.Progress != nil {
			o.Progress(p.n)
		}
		return nil
	}, (*packed).release)

	for p := int64(0); p < length; p += PieceSize {
		plen := min(PieceSize, length-p)
		buf := getBuf(PieceSize)[:plen]
		data, err := src.Fill(buf, off+p)
		if err != nil {
			putBuf(buf)
			return w.n, pool.Abort(err)
		}
		err = pool.Submit(func(context.Context) (*packed, error) {
			defer putBuf(buf)
			return compressPiece(buf, data, o.Level)
		})
		if err != nil {
			putBuf(buf)
			break
		}
	}
	if err := pool.Close(); err != nil {
		return w.n, err
	}
	trailer := append(bytes.Clone(finalBlock), 0, 0, 0, 0, 0, 0, 0, 0)
	binary.LittleEndian.PutUint32(trailer[2:], crc)
	binary.LittleEndian.PutUint32(trailer[6:], uint32(length))
	if _, err := w.Write(trailer); err != nil {
		return w.n, err
	}
	if _, err := dst.WriteAt(gzipHeader(idx), 0); err != nil {
		return w.n, err
	}
	return w.n, nil
}

// packed is one compressed piece.
type packed struct {
	data []byte // compressed bytes; zeroPiece or a pooled buffer
	zero bool   // data is zeroPiece
	crc  uint32 // CRC-32 of the raw bytes
	n    int64  // raw length
	buf  *bytes.Buffer
}

func (p *packed) release() {
	if p.buf != nil {
		p.buf.Reset()
		outBufs.Put(p.buf)
		p.buf = nil
	}
}

func compressPiece(raw []byte, data bool, level int) (*packed, error) {
	full := len(raw) == PieceSize
	if full && (!data || disk.IsZero(raw)) {
		return &packed{data: zeroPiece, zero: true, crc: zeroPieceCRC, n: PieceSize}, nil
	}
	if !data {
		clear(raw) // a hole shorter than a piece: compress real zeros
	}
	out := outBufs.Get().(*bytes.Buffer)
	fw := getFlateWriter(out, level)
	defer putFlateWriter(fw, level)
	if _, err := fw.Write(raw); err != nil {
		return nil, err
	}
	if err := fw.Flush(); err != nil {
		return nil, err
	}
	return &packed{data: out.Bytes(), crc: crc32.ChecksumIEEE(raw), n: int64(len(raw)), buf: out}, nil
}

var (
	rawBufs      sync.Pool
	outBufs      = sync.Pool{New: func() any { return bytes.NewBuffer(make([]byte, 0, PieceSize+PieceSize/8)) }}
	flateWriters [10]sync.Pool
)

func getBuf(n int) []byte {
	if b, ok := rawBufs.Get().(*[]byte); ok && cap(*b) >= n {
		return (*b)[:n]
	}
	return make([]byte, n, max(n, PieceSize))
}

func putBuf(b []byte) {
	if cap(b) >= PieceSize {
		b = b[:cap(b)]
		rawBufs.Put(&b)
	}
}

func getFlateWriter(w io.Writer, level int) *flate.Writer {
	if fw, ok := flateWriters[level].Get().(*flate.Writer); ok {
		fw.Reset(w)
		return fw
	}
	fw, _ := flate.NewWriter(w, level) // level is checked by the caller
	return fw
}

func putFlateWriter(fw *flate.Writer, level int) { flateWriters[level].Put(fw) }

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

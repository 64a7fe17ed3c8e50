package chunk

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"sync"

	"github.com/klauspost/compress/flate"
	"github.com/klauspost/pgzip"

	"github.com/xva-tools/xva/disk"
	"github.com/xva-tools/xva/internal/pipeline"
)

// Emit receives a chunk's data in increasing offset order, offsets relative
// to the chunk's start. Ranges never emitted are zero. p is valid only
// during the call.
type Emit func(off int64, p []byte) error

// ReadGzipChunk inflates one gzip chunk from r, which must decode to exactly
// want bytes, checking CRC-32 and ISIZE, and hands the data to emit. It
// reads r to its end: anything after the gzip data is an error, as is
// output past want (so a decompression bomb stops at want+1 bytes). With
// want < 0 any length up to ChunkSize is accepted. It returns the number of
// bytes the chunk holds.
//
// A chunk carrying our piece index is inflated in parallel and its all-zero
// pieces are recognised without inflating; any other gzip file, multi-member
// ones included, is inflated sequentially as gzip -d would.
func ReadGzipChunk(ctx context.Context, r io.Reader, want int64, emit Emit, o GzipOptions) (int64, error) {
	exact := want >= 0
	if !exact {
		want = ChunkSize
	}
	br := bufio.NewReaderSize(r, 1<<17)
	hdr, err := br.Peek(gzipHeaderLen + 2)
	if len(hdr) < 2 || hdr[0] != 0x1f || hdr[1] != 0x8b {
		if err == io.EOF && len(hdr) == 0 {
			return 0, fmt.Errorf("%w: empty file", ErrNotGzip)
		}
		return 0, ErrNotGzip
	}
	if len(hdr) == gzipHeaderLen+2 && hdr[3]&0x04 != 0 {
		xlen := int(binary.LittleEndian.Uint16(hdr[gzipHeaderLen:]))
		full, _ := br.Peek(gzipHeaderLen + 2 + xlen)
		if len(full) == gzipHeaderLen+2+xlen && hdr[2] == 8 && hdr[3]&^0x04 == 0 {
			idx := parseIndex(full[gzipHeaderLen+2:])
			if idx != nil && (idx.length == want || !exact && idx.length <= ChunkSize) {
				if _, err := br.Discard(len(full)); err != nil {
					return 0, err
				}
				return idx.length, readIndexed(ctx, br, idx, emit, o)
			}
		}
	}
	return readSequential(ctx, br, want, exact, emit, o)
}

// readSequential inflates every gzip member in r in turn.
func readSequential(ctx context.Context, r *bufio.Reader, want int64, exact bool, emit Emit, o GzipOptions) (int64, error) {
	pz, err := pgzip.NewReaderN(r, PieceSize, 4)
	if err != nil {
		return 0, gzipErr(err)
	}
	defer pz.Close()
	pz.Multistream(false)
	zr := cutReader{&members{pz, r}}
	buf := getBuf(PieceSize)
	defer putBuf(buf)
	var off int64
	for off < want {
		if err := ctx.Err(); err != nil {
			return off, err
		}
		p := buf[:min(PieceSize, want-off)]
		n, err := io.ReadFull(zr, p)
		if n > 0 && !disk.IsZero(p[:n]) {
			if err := emit(off, p[:n]); err != nil {
				return off, err
			}
		}
		off += int64(n)
		if o.Progress != nil {
			o.Progress(int64(n))
		}
		if (err == io.EOF || err == io.ErrUnexpectedEOF) && !exact {
			return off, nil // the reader verified the last CRC-32 on reaching EOF
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return off, fmt.Errorf("%w: %d bytes, want %d", ErrTooShort, off, want)
		}
		if err != nil {
			return off, gzipErr(err)
		}
	}
	// Reading on to EOF checks the last CRC-32 and ISIZE and catches
	// output past want.
	var one [1]byte
	switch n, err := zr.Read(one[:]); {
	case n > 0 || err == nil:
		return off, fmt.Errorf("%w of %d bytes", ErrTooLong, want)
	case err == io.EOF:
		return off, nil
	default:
		return off, gzipErr(err)
	}
}

// members reads the gzip members of r one after another as compress/gzip
// does: pgzip's own multistream mode takes a next member's header cut
// short for a clean end, gzip -d and compress/gzip for a truncation.
type members struct {
	z *pgzip.Reader
	r *bufio.Reader // positioned right after a member once z ends it
}

func (m *members) Read(p []byte) (int, error) {
	for {
		n, err := m.z.Read(p)
		if err != io.EOF || n > 0 {
			return n, err
		}
		if _, err := m.r.Peek(1); err != nil {
			return 0, err // io.EOF: the data ends after a whole member
		}
		if err := m.z.Reset(m.r); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return 0, err
		}
		m.z.Multistream(false)
	}
}

// errCut is a gzip stream that ends inside its deflate data or trailer.
var errCut = fmt.Errorf("gzip data ends early: %w", io.ErrUnexpectedEOF)

// cutReader renames the gzip reader's io.ErrUnexpectedEOF, so that below
// it can only mean that io.ReadFull met a clean end of the data.
type cutReader struct{ r io.Reader }

func (c cutReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if err == io.ErrUnexpectedEOF {
		err = errCut
	}
	return n, err
}

// gzipErr maps the gzip library's errors onto ours.
func gzipErr(err error) error {
	var ce flate.CorruptInputError
	var ie flate.InternalError
	switch {
	case errors.Is(err, pgzip.ErrChecksum):
		return ErrChecksum
	case errors.Is(err, pgzip.ErrHeader):
		return fmt.Errorf("%w (or trailing garbage)", ErrNotGzip)
	case errors.As(err, &ce), errors.As(err, &ie):
		// The inflater reports some bad code-length tables as an
		// internal error; for us both mean corrupt data.
		return fmt.Errorf("%w: %v", ErrInvalidData, err)
	case errors.Is(err, io.EOF):
		return io.ErrUnexpectedEOF
	}
	return err
}

// readIndexed inflates an indexed member's pieces in parallel.
func readIndexed(ctx context.Context, br *bufio.Reader, idx *pieceIndex, emit Emit, o GzipOptions) error {
	var crc uint32
	var off int64
	pool := pipeline.NewOrdered(ctx, o.Jobs, func(p *inflated) error {
		defer p.release()
		crc = crcCombine(crc, p.crc, p.n)
		if !p.zero && p.data != nil {
			if err := emit(off, p.data); err != nil {
				return err
			}
		}
		off += p.n
		if o.Progress != nil {
			o.Progress(p.n)
		}
		return nil
	}, (*inflated).release)

	for i, e := range idx.entries {
		plen := min(idx.pieceSize, idx.length-int64(i)*idx.pieceSize)
		comp := getBuf(int(e &^ zeroFlag))
		if _, err := io.ReadFull(br, comp); err != nil {
			putBuf(comp)
			return pool.Abort(truncated(err))
		}
		at := int64(i) * idx.pieceSize
		err := pool.Submit(func(context.Context) (*inflated, error) {
			defer putBuf(comp)
			if e&zeroFlag != 0 && plen == PieceSize && bytes.Equal(comp, zeroPiece) {
				return &inflated{zero: true, crc: zeroPieceCRC, n: plen}, nil
			}
			p, err := inflatePiece(comp, plen, !o.Discard)
			if err != nil {
				return nil, fmt.Errorf("piece at offset %d: %w", at, err)
			}
			return p, nil
		})
		if err != nil {
			putBuf(comp)
			break
		}
	}
	if err := pool.Close(); err != nil {
		return err
	}
	var tail [10]byte
	if _, err := io.ReadFull(br, tail[:]); err != nil {
		return truncated(err)
	}
	if !bytes.Equal(tail[:2], finalBlock) {
		return fmt.Errorf("%w: no final block after the last piece", ErrBadIndex)
	}
	if binary.LittleEndian.Uint32(tail[2:]) != crc {
		return ErrChecksum
	}
	if binary.LittleEndian.Uint32(tail[6:]) != uint32(idx.length) {
		return ErrLength
	}
	if _, err := br.ReadByte(); err != io.EOF {
		if err != nil {
			return err
		}
		return ErrTrailing
	}
	return nil
}

func truncated(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// inflated is one decoded piece.
type inflated struct {
	data []byte
	zero bool
	crc  uint32
	n    int64
}

func (p *inflated) release() {
	if p.data != nil {
		putBuf(p.data)
		p.data = nil
	}
}

var flateReaders = sync.Pool{New: func() any { return flate.NewReader(nil) }}

// inflatePiece decodes one piece, which must produce exactly plen bytes and
// end, without a final block, exactly at the end of comp. Unless keep, the
// data only pass through a small buffer to their CRC-32.
func inflatePiece(comp []byte, plen int64, keep bool) (*inflated, error) {
	src := bytes.NewReader(comp)
	fr := flateReaders.Get().(io.ReadCloser)
	defer flateReaders.Put(fr)
	if err := fr.(flate.Resetter).Reset(src, nil); err != nil {
		return nil, err
	}
	var out []byte
	var crc uint32
	var err error
	if keep {
		out = getBuf(int(plen))
		if _, err = io.ReadFull(fr, out); err == nil {
			crc = crc32.ChecksumIEEE(out)
		}
	} else {
		h := crc32.NewIEEE()
		var n int64
		buf := scratch.Get().(*[]byte)
		n, err = io.CopyBuffer(h, io.LimitReader(fr, plen), *buf)
		scratch.Put(buf)
		if err == nil && n < plen {
			err = io.ErrUnexpectedEOF
		}
		crc = h.Sum32()
	}
	if err != nil {
		putBuf(out)
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return nil, fmt.Errorf("%w: piece inflates to less than %d bytes", ErrBadIndex, plen)
		}
		return nil, fmt.Errorf("%w: %v", ErrInvalidData, err)
	}
	var one [1]byte
	n, err := fr.Read(one[:])
	if n > 0 || err != io.ErrUnexpectedEOF || src.Len() != 0 {
		putBuf(out)
		if _, ok := err.(flate.CorruptInputError); ok {
			return nil, fmt.Errorf("%w: %v", ErrInvalidData, err)
		}
		return nil, fmt.Errorf("%w: piece does not end where the index says", ErrBadIndex)
	}
	return &inflated{data: out, crc: crc, n: plen}, nil
}

// scratch holds the small buffers pieces inflate through when their data
// are only checked.
var scratch = sync.Pool{New: func() any { b := make([]byte, 64<<10); return &b }}

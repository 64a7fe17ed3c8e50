package zstdseek

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// cacheFrames is how many decoded frames a Reader keeps: a run of small
// sequential reads decodes each frame once.
const cacheFrames = 4

// windowSlack is added to the largest frame of the table to make the
// decoders' memory bound: a frame may declare a window larger than its
// content (zstd's default levels declare up to 8 MiB when the content size
// was not known). What a frame decodes into is bounded by its table size
// anyway (WithDecodeAllCapLimit).
const windowSlack = 8 << 20

// Reader reads the uncompressed content of a seekable zstd file at random.
// It is safe for concurrent use.
type Reader struct {
	r      io.ReaderAt
	cOff   []int64 // frame i's compressed bytes are [cOff[i], cOff[i+1])
	dOff   []int64 // frame i's content is [dOff[i], dOff[i+1]) of the whole
	sums   []uint32
	hasSum bool

	decoders chan *zstd.Decoder
	decOpts  []zstd.DOption

	mu       sync.Mutex
	cache    []cached // most recent first
	inflight map[int]*decodeCall
}

type cached struct {
	i    int
	data []byte
}

type decodeCall struct {
	done chan struct{}
	data []byte
	err  error
}

func corruptf(format string, args ...any) error {
	return fmt.Errorf("zstdseek: "+format+": %w", append(args, ErrCorrupt)...)
}

// Open reads the seek table at the end of r, a file of size bytes. It
// returns ErrNotSeekable when the file does not end with the seekable magic
// number, and an error wrapping ErrCorrupt when the table is malformed or
// does not add up to the file's size. Every number is checked before
// anything is allocated after it: Open's memory is bounded by the table's
// size, which must fit the file.
func Open(r io.ReaderAt, size int64) (*Reader, error) {
	if size < footerSize {
		return nil, ErrNotSeekable
	}
	var foot [footerSize]byte
	if err := readFull(r, foot[:], size-footerSize); err != nil {
		return nil, fmt.Errorf("zstdseek: reading the seek table footer: %w", err)
	}
	if binary.LittleEndian.Uint32(foot[5:]) != seekableMagic {
		return nil, ErrNotSeekable
	}
	n := int64(binary.LittleEndian.Uint32(foot[0:]))
	desc := foot[4]
	if desc&reservedBits != 0 {
		return nil, corruptf("seek table descriptor %#02x has reserved bits set", desc)
	}
	entry := int64(8)
	hasSum := desc&checksumFlag != 0
	if hasSum {
		entry = 12
	}
	if n > maxFrames {
		return nil, corruptf("seek table says %d frames, more than the %d the format's reference implementation allows", n, maxFrames)
	}
	tableLen := headerSize + n*entry + footerSize
	if tableLen > size {
		return nil, corruptf("seek table of %d frames needs %d bytes, but the file has only %d", n, tableLen, size)
	}
	data := size - tableLen
	if n*minFrame > data {
		return nil, corruptf("seek table says %d frames, but the %d bytes before the table cannot hold that many", n, data)
	}
	var head [headerSize]byte
	if err := readFull(r, head[:], data); err != nil {
		return nil, fmt.Errorf("zstdseek: reading the seek table: %w", err)
	}
	if m := binary.LittleEndian.Uint32(head[0:]); m != skippableMagic {
		return nil, corruptf("seek table of %d frames should begin at offset %d with the skippable magic %#x, found %#x", n, data, skippableMagic, m)
	}
	if fs := int64(binary.LittleEndian.Uint32(head[4:])); fs != tableLen-headerSize {
		return nil, corruptf("seek table frame says it is %d bytes, %d frames make it %d", fs, n, tableLen-headerSize)
	}

	x := &Reader{
		r:        r,
		cOff:     make([]int64, 1, n+1),
		dOff:     make([]int64, 1, n+1),
		hasSum:   hasSum,
		inflight: map[int]*decodeCall{},
	}
	if hasSum {
		x.sums = make([]uint32, 0, n)
	}
	var buf [12 * 1024]byte
	off := data + headerSize
	var c, d int64
	var maxD int64
	for i := int64(0); i < n; {
		k := min(n-i, int64(len(buf))/entry)
		b := buf[:k*entry]
		if err := readFull(r, b, off); err != nil {
			return nil, fmt.Errorf("zstdseek: reading the seek table: %w", err)
		}
		off += int64(len(b))
		for ; len(b) > 0; b, i = b[entry:], i+1 {
			cs := int64(binary.LittleEndian.Uint32(b[0:]))
			ds := int64(binary.LittleEndian.Uint32(b[4:]))
			if cs < minFrame {
				return nil, corruptf("seek table entry %d: a frame of %d bytes is shorter than any zstd frame", i, cs)
			}
			if ds > maxFrameDecompressed {
				return nil, corruptf("seek table entry %d: a frame of %d bytes decompressed is more than the format allows (%d)", i, ds, int64(maxFrameDecompressed))
			}
			if ds > cs*maxExpansion {
				return nil, corruptf("seek table entry %d: a frame of %d bytes cannot decompress to %d", i, cs, ds)
			}
			c += cs
			if c > data {
				return nil, corruptf("seek table entries 0 to %d add up to %d compressed bytes, more than the %d bytes before the table", i, c, data)
			}
			d += ds
			maxD = max(maxD, ds)
			x.cOff = append(x.cOff, c)
			x.dOff = append(x.dOff, d)
			if hasSum {
				x.sums = append(x.sums, binary.LittleEndian.Uint32(b[8:]))
			}
		}
	}
	if c != data {
		return nil, corruptf("seek table's %d frames add up to %d compressed bytes, but %d bytes precede the table", n, c, data)
	}
	x.decOpts = []zstd.DOption{
		zstd.WithDecoderConcurrency(1),
		zstd.WithDecodeAllCapLimit(true),
		zstd.WithDecoderMaxMemory(uint64(maxD) + windowSlack),
	}
	x.decoders = make(chan *zstd.Decoder, 4)
	if err := x.checkEmpty(); err != nil {
		return nil, err
	}
	return x, nil
}

// checkEmpty makes sure every frame the table says holds nothing does:
// ReadAt never decodes such a frame, so one that held data would be left
// out of what is read at random while every sequential reader decodes it.
// A skippable frame holds nothing by definition.
func (x *Reader) checkEmpty() error {
	for i := range x.Frames() {
		cs, ds := x.FrameSizes(i)
		if ds != 0 {
			continue
		}
		head := make([]byte, min(cs, 18))
		if err := readFull(x.r, head, x.cOff[i]); err != nil {
			return fmt.Errorf("zstdseek: reading frame %d: %w", i, err)
		}
		var h zstd.Header
		if h.Decode(head) == nil && h.Skippable {
			continue
		}
		if _, err := x.decode(i); err != nil {
			return err
		}
	}
	return nil
}

// readFull reads len(p) bytes at off; a short read is io.ErrUnexpectedEOF.
func readFull(r io.ReaderAt, p []byte, off int64) error {
	n, err := r.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return err
}

// Size is the size of the uncompressed content.
func (x *Reader) Size() int64 { return x.dOff[len(x.dOff)-1] }

// Frames is the number of frames in the seek table.
func (x *Reader) Frames() int { return len(x.cOff) - 1 }

// FrameSizes returns frame i's compressed and decompressed sizes.
func (x *Reader) FrameSizes(i int) (compressed, decompressed int64) {
	return x.cOff[i+1] - x.cOff[i], x.dOff[i+1] - x.dOff[i]
}

// ReadAt reads len(p) bytes of the uncompressed content at off. It
// decompresses only the frames that cover the range, each checked: its
// decoded size must be the table's, its content checksum is verified by
// the decoder, and the table's checksum is compared. A frame that fails is
// an error wrapping ErrCorrupt for reads of its range; other frames read.
func (x *Reader) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("zstdseek: negative offset")
	}
	size := x.Size()
	if off >= size {
		if len(p) == 0 {
			return 0, nil
		}
		return 0, io.EOF
	}
	// The first frame whose content ends after off.
	i := sort.Search(x.Frames(), func(i int) bool { return x.dOff[i+1] > off })
	n := 0
	for n < len(p) && i < x.Frames() {
		if x.dOff[i+1] == x.dOff[i] {
			i++
			continue
		}
		data, err := x.frame(i)
		if err != nil {
			return n, err
		}
		n += copy(p[n:], data[off+int64(n)-x.dOff[i]:])
		i++
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// frame returns frame i decoded, from the cache, from a concurrent reader
// decoding it, or decoding it now.
func (x *Reader) frame(i int) ([]byte, error) {
	x.mu.Lock()
	for k, c := range x.cache {
		if c.i == i {
			copy(x.cache[1:k+1], x.cache[:k])
			x.cache[0] = c
			x.mu.Unlock()
			return c.data, nil
		}
	}
	if call, ok := x.inflight[i]; ok {
		x.mu.Unlock()
		<-call.done
		return call.data, call.err
	}
	call := &decodeCall{done: make(chan struct{})}
	x.inflight[i] = call
	x.mu.Unlock()

	call.data, call.err = x.decode(i)

	x.mu.Lock()
	delete(x.inflight, i)
	if call.err == nil {
		if len(x.cache) < cacheFrames {
			x.cache = append(x.cache, cached{})
		}
		copy(x.cache[1:], x.cache[:len(x.cache)-1])
		x.cache[0] = cached{i, call.data}
	}
	x.mu.Unlock()
	close(call.done)
	return call.data, call.err
}

// decode reads and decodes frame i and checks it against the table.
func (x *Reader) decode(i int) ([]byte, error) {
	cs, ds := x.FrameSizes(i)
	src := make([]byte, cs)
	if err := readFull(x.r, src, x.cOff[i]); err != nil {
		return nil, fmt.Errorf("zstdseek: reading frame %d (%d bytes at offset %d): %w", i, cs, x.cOff[i], err)
	}
	// A frame that says its content size must say the table's before
	// anything that size is allocated. (Frames written without it, as a
	// streaming compressor writes them, are bounded by the table alone.)
	var h zstd.Header
	if err := h.Decode(src); err != nil {
		return nil, corruptf("frame %d (%d bytes at offset %d): %v", i, cs, x.cOff[i], err)
	}
	if h.Skippable {
		return nil, corruptf("frame %d (%d bytes at offset %d) is a skippable frame, the seek table says it holds %d bytes", i, cs, x.cOff[i], ds)
	}
	if h.HasFCS && int64(h.FrameContentSize) != ds {
		return nil, corruptf("frame %d (%d bytes at offset %d) says it holds %d bytes, the seek table says %d", i, cs, x.cOff[i], h.FrameContentSize, ds)
	}
	var dec *zstd.Decoder
	select {
	case dec = <-x.decoders:
	default:
		var err error
		if dec, err = zstd.NewReader(nil, x.decOpts...); err != nil {
			return nil, err
		}
	}
	out, err := dec.DecodeAll(src, make([]byte, 0, ds))
	select {
	case x.decoders <- dec:
	default:
		dec.Close()
	}
	if err != nil {
		return nil, corruptf("frame %d (%d bytes at offset %d): %v", i, cs, x.cOff[i], err)
	}
	if int64(len(out)) != ds {
		return nil, corruptf("frame %d (%d bytes at offset %d) decompressed to %d bytes, the seek table says %d", i, cs, x.cOff[i], len(out), ds)
	}
	if x.hasSum {
		if sum := uint32(xxh64(out)); sum != x.sums[i] {
			return nil, corruptf("frame %d (%d bytes at offset %d): content checksum %08x, the seek table says %08x", i, cs, x.cOff[i], sum, x.sums[i])
		}
	}
	return out, nil
}

// Close releases the pooled decoders. The Reader is not used after.
func (x *Reader) Close() error {
	for {
		select {
		case dec := <-x.decoders:
			dec.Close()
		default:
			return nil
		}
	}
}

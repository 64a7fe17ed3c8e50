package zstdseek

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"sync"

	"github.com/klauspost/compress/zstd"

	"github.com/xva-tools/xva/internal/pipeline"
)

// NewWriter returns a WriteCloser that compresses what is written into
// independent zstd frames of frameSize uncompressed bytes (the last
// shorter), each with its content checksum, on jobs workers (the ordered
// pool of internal/pipeline: the output is the same whatever jobs is), at
// the given level. Close writes the last frame and the seek table, with the
// per-frame Checksum field (the low 32 bits of the XXH64 of the frame's
// content, format §"Seek_Table_Entries"); it does not close w.
//
// Memory: about 2×jobs frames (their input and output) in flight.
func NewWriter(w io.Writer, frameSize int64, jobs int, level zstd.EncoderLevel) (io.WriteCloser, error) {
	if frameSize < 1 || frameSize > MaxFrameSize {
		return nil, fmt.Errorf("zstdseek: frame size %d is out of range (1 to %d bytes)", frameSize, MaxFrameSize)
	}
	if level < zstd.SpeedFastest || level > zstd.SpeedBestCompression {
		return nil, fmt.Errorf("zstdseek: unknown zstd level %d", level)
	}
	jobs = pipeline.Jobs(jobs)
	sw := &writer{
		w:         w,
		frameSize: int(frameSize),
		level:     level,
		encoders:  make(chan *zstd.Encoder, jobs),
	}
	// One encoder made now says whether the options are accepted.
	enc, err := sw.newEncoder()
	if err != nil {
		return nil, err
	}
	sw.encoders <- enc
	sw.pool = pipeline.NewOrdered(context.Background(), jobs, sw.emit, sw.discard)
	return sw, nil
}

type writer struct {
	w         io.Writer
	frameSize int
	level     zstd.EncoderLevel
	pool      *pipeline.Ordered[*frame]
	encoders  chan *zstd.Encoder
	bufs      sync.Pool // *[]byte of cap frameSize (input) or any (output)

	buf []byte // the frame being filled

	// Written by emit, which runs on the pool's goroutine; read by Close
	// once the pool is closed.
	table   []byte // Seek_Table_Entries
	nframes int

	err    error
	closed bool
}

// frame is a compressed frame on its way to w.
type frame struct {
	data  *[]byte
	dsize int
	sum   uint32
}

func (sw *writer) newEncoder() (*zstd.Encoder, error) {
	return zstd.NewWriter(nil, zstd.WithEncoderLevel(sw.level), zstd.WithEncoderConcurrency(1),
		zstd.WithEncoderCRC(true))
}

func (sw *writer) getBuf() *[]byte {
	if b, ok := sw.bufs.Get().(*[]byte); ok && cap(*b) >= sw.frameSize {
		*b = (*b)[:0]
		return b
	}
	b := make([]byte, 0, sw.frameSize)
	return &b
}

func (sw *writer) Write(p []byte) (int, error) {
	if sw.err != nil {
		return 0, sw.err
	}
	if sw.closed {
		return 0, errors.New("zstdseek: write after Close")
	}
	n := 0
	for len(p) > 0 {
		if sw.buf == nil {
			sw.buf = *sw.getBuf()
		}
		k := copy(sw.buf[len(sw.buf):sw.frameSize], p)
		sw.buf = sw.buf[:len(sw.buf)+k]
		p = p[k:]
		n += k
		if len(sw.buf) == sw.frameSize {
			if err := sw.submit(); err != nil {
				sw.err = err
				return n, err
			}
		}
	}
	return n, nil
}

// submit hands the frame being filled to the pool.
func (sw *writer) submit() error {
	in := sw.buf
	sw.buf = nil
	return sw.pool.Submit(func(ctx context.Context) (*frame, error) {
		var enc *zstd.Encoder
		select {
		case enc = <-sw.encoders:
		default:
			var err error
			if enc, err = sw.newEncoder(); err != nil {
				return nil, err
			}
		}
		out := sw.getBuf()
		*out = enc.EncodeAll(in, *out)
		select {
		case sw.encoders <- enc:
		default:
			enc.Close()
		}
		f := &frame{data: out, dsize: len(in), sum: uint32(xxh64(in))}
		sw.bufs.Put(&in)
		return f, nil
	})
}

// emit writes a frame to w and its entry to the table, in order.
func (sw *writer) emit(f *frame) error {
	defer sw.discard(f)
	if len(*f.data) > math.MaxUint32 {
		return fmt.Errorf("zstdseek: frame %d compressed to %d bytes, more than the seek table can say", sw.nframes, len(*f.data))
	}
	if sw.nframes == maxFrames {
		return fmt.Errorf("zstdseek: more than %d frames: use larger frames", maxFrames)
	}
	if _, err := sw.w.Write(*f.data); err != nil {
		return err
	}
	sw.table = binary.LittleEndian.AppendUint32(sw.table, uint32(len(*f.data)))
	sw.table = binary.LittleEndian.AppendUint32(sw.table, uint32(f.dsize))
	sw.table = binary.LittleEndian.AppendUint32(sw.table, f.sum)
	sw.nframes++
	return nil
}

func (sw *writer) discard(f *frame) {
	if f.data != nil {
		sw.bufs.Put(f.data)
		f.data = nil
	}
}

// Close writes the last frame and the seek table. It does not close the
// underlying writer.
func (sw *writer) Close() error {
	if sw.closed {
		return sw.err
	}
	sw.closed = true
	if sw.err != nil {
		_ = sw.pool.Abort(sw.err) // the pool's error is sw.err
		sw.closeEncoders()
		return sw.err
	}
	var err error
	if len(sw.buf) > 0 {
		err = sw.submit()
	}
	if err != nil {
		err = sw.pool.Abort(err)
	} else {
		err = sw.pool.Close()
	}
	sw.closeEncoders()
	if err == nil {
		err = sw.writeTable()
	}
	sw.err = err
	sw.table = nil
	return err
}

func (sw *writer) closeEncoders() {
	for {
		select {
		case enc := <-sw.encoders:
			enc.Close()
		default:
			return
		}
	}
}

// writeTable writes the seek table frame (format §"Seek Table Format").
func (sw *writer) writeTable() error {
	t := make([]byte, 0, headerSize+len(sw.table)+footerSize)
	t = binary.LittleEndian.AppendUint32(t, skippableMagic)
	t = binary.LittleEndian.AppendUint32(t, uint32(len(sw.table)+footerSize))
	t = append(t, sw.table...)
	t = binary.LittleEndian.AppendUint32(t, uint32(sw.nframes))
	t = append(t, checksumFlag)
	t = binary.LittleEndian.AppendUint32(t, seekableMagic)
	_, err := sw.w.Write(t)
	return err
}

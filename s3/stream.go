package s3

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// streamAhead is how many blocks a stream reads ahead of its reader: one
// GET needs no requests in flight to hide the store's latency, only room
// for the reader to fall behind for a moment (the socket's buffers add
// more); a legacy unpack reads one chunk per core this way.
const streamAhead = 4

// Stream reads the object front to back from off with one GET, which a
// goroutine reads ahead of the caller into up to streamAhead blocks.
//
// A reader that will read every byte in order gains nothing from ranged
// GETs of a block each: one GET of the rest costs the store one request
// rather than one per 4 MiB, and a store may send a whole object far more
// cheaply than a range of it (versitygw's posix backend answers a GET of
// the whole object with sendfile(2) and a range by copying it through a
// buffer: 0.02 s of its CPU for a 540 MiB archive against 0.3 s). A body
// that breaks off is resumed with a ranged GET from where it stopped, for
// the same ETag, up to readTries times in a row.
func (o *Object) Stream(off int64) io.ReadCloser {
	return o.Section(off, o.info.Size-off)
}

// Section is Stream for the n bytes at off (a tar member), with one
// ranged GET. Nothing is asked of the store before the first Read; the
// caller must Close it, which stops the GET. Bytes asked for past the
// object's end are io.ErrUnexpectedEOF once those before it are read.
func (o *Object) Section(off, n int64) io.ReadCloser {
	ctx, cancel := context.WithCancel(o.ctx)
	end := min(off+max(n, 0), o.info.Size)
	return &stream{o: o, ctx: ctx, cancel: cancel, pieces: make(chan piece, streamAhead),
		off: off, end: end, short: off+n > end}
}

type stream struct {
	o        *Object
	ctx      context.Context
	cancel   context.CancelFunc
	pieces   chan piece // read ahead, in order; closed at the end
	off, end int64      // the bytes to read
	short    bool       // asked past the object's end
	started  bool

	buf *[blockSize]byte // the piece being read from, recycled when done
	cur []byte           // what is left of it
	err error            // the error or io.EOF the stream ended with
}

// piece is a run of the object read ahead: n bytes of buf, or err.
type piece struct {
	buf *[blockSize]byte
	n   int
	err error
}

func (s *stream) Read(p []byte) (int, error) {
	if !s.started {
		s.started = true
		go s.run()
	}
	for len(s.cur) == 0 {
		if s.err != nil {
			return 0, s.err
		}
		s.recycle()
		pc, ok := <-s.pieces
		switch {
		case !ok && s.short:
			s.err = io.ErrUnexpectedEOF
		case !ok:
			s.err = io.EOF
		case pc.err != nil:
			s.err = pc.err
		default:
			s.buf, s.cur = pc.buf, pc.buf[:pc.n]
		}
	}
	n := copy(p, s.cur)
	s.cur = s.cur[n:]
	return n, nil
}

func (s *stream) recycle() {
	if s.buf != nil {
		blockBufs.Put(s.buf)
		s.buf, s.cur = nil, nil
	}
}

// Close stops the GET and waits for the reading goroutine to end.
func (s *stream) Close() error {
	s.cancel()
	if !s.started {
		s.started = true
		close(s.pieces)
	}
	for pc := range s.pieces {
		if pc.buf != nil {
			blockBufs.Put(pc.buf)
		}
	}
	s.recycle()
	if s.err == nil {
		s.err = errors.New("s3: read of a closed stream")
	}
	return nil
}

// run reads the stream's bytes into pieces, resuming a body that broke
// off, until the end, an error or Close.
func (s *stream) run() {
	defer close(s.pieces)
	off := s.off
	failed := 0 // tries in a row that moved nothing
	for off < s.end {
		if failed > 0 {
			select {
			case <-time.After(time.Duration(100<<failed) * time.Millisecond):
			case <-s.ctx.Done():
				return
			}
		}
		next, err := s.body(off)
		if next > off {
			failed = 0
		}
		off = next
		if err == nil {
			continue
		}
		if s.ctx.Err() != nil {
			return // closed
		}
		var se *Error
		if failed++; errors.As(err, &se) || failed >= readTries {
			s.send(piece{err: s.o.rangeError(off, s.end-off, err)})
			return
		}
	}
}

// body GETs the bytes from off to the stream's end and reads them into
// pieces until they end or fail, returning the offset reached.
func (s *stream) body(off int64) (int64, error) {
	end := s.end
	in := &s3.GetObjectInput{Bucket: &s.o.info.URL.Bucket, Key: &s.o.info.URL.Key}
	if off > 0 || end < s.o.info.Size {
		in.Range = aws.String(fmt.Sprintf("bytes=%d-%d", off, end-1))
	}
	if s.o.info.ETag != "" {
		in.IfMatch = aws.String(s.o.info.ETag)
	}
	out, err := s.o.s.c.GetObject(s.ctx, in)
	if err != nil {
		return off, s.o.s.wrap("reading", s.o.info.URL, err)
	}
	defer out.Body.Close()
	if err := s.check(out, off); err != nil {
		return off, err
	}
	for off < end {
		buf := blockBufs.Get().(*[blockSize]byte)
		n, err := io.ReadFull(out.Body, buf[:min(blockSize, end-off)])
		if n > 0 && !s.send(piece{buf: buf, n: n}) {
			return off, context.Canceled
		}
		if n == 0 {
			blockBufs.Put(buf)
		}
		off += int64(n)
		if err == io.ErrUnexpectedEOF || err == io.EOF {
			return off, fmt.Errorf("the store sent fewer bytes than asked: %w", io.ErrUnexpectedEOF)
		}
		if err != nil {
			return off, err
		}
	}
	return off, nil
}

// check refuses an answer that is not the bytes from off to the end: a
// store that ignores Range sends the whole object again.
func (s *stream) check(out *s3.GetObjectOutput, off int64) error {
	end := s.end
	want := fmt.Sprintf("bytes %d-%d/", off, end-1)
	if cr := aws.ToString(out.ContentRange); (off > 0 || end < s.o.info.Size) && !strings.HasPrefix(cr, want) {
		return &Error{Op: "reading", URL: s.o.info.URL, Err: fmt.Errorf("the store answered a ranged GET with Content-Range %q", cr), where: s.o.s.endpoint}
	}
	if n := aws.ToInt64(out.ContentLength); out.ContentLength != nil && n != end-off {
		return &Error{Op: "reading", URL: s.o.info.URL, Err: fmt.Errorf("the store sent %d bytes for %d from offset %d", n, end-off, off), where: s.o.s.endpoint}
	}
	return nil
}

// send hands pc to the reader, or recycles it and reports false if the
// stream was closed.
func (s *stream) send(pc piece) bool {
	select {
	case s.pieces <- pc:
		return true
	case <-s.ctx.Done():
		if pc.buf != nil {
			blockBufs.Put(pc.buf)
		}
		return false
	}
}

package s3

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Stream reads the object front to back from off with one GET, which a
// goroutine reads ahead of the caller into up to readAhead blocks.
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
	ctx, cancel := context.WithCancel(o.ctx)
	s := &stream{o: o, ctx: ctx, cancel: cancel, pieces: make(chan piece, readAhead)}
	go s.run(off)
	return s
}

type stream struct {
	o      *Object
	ctx    context.Context
	cancel context.CancelFunc
	pieces chan piece // read ahead, in order; closed at the end

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
	for len(s.cur) == 0 {
		if s.err != nil {
			return 0, s.err
		}
		s.recycle()
		pc, ok := <-s.pieces
		switch {
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

// run reads the object from off to its end into pieces, resuming a body
// that broke off, until the end, an error or Close.
func (s *stream) run(off int64) {
	defer close(s.pieces)
	size := s.o.info.Size
	failed := 0 // tries in a row that moved nothing
	for off < size {
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
			s.send(piece{err: s.o.rangeError(off, size-off, err)})
			return
		}
	}
}

// body GETs the object from off and reads it into pieces until it ends
// or fails, returning the offset reached.
func (s *stream) body(off int64) (int64, error) {
	size := s.o.info.Size
	in := &s3.GetObjectInput{Bucket: &s.o.info.URL.Bucket, Key: &s.o.info.URL.Key}
	if off > 0 {
		in.Range = aws.String(fmt.Sprintf("bytes=%d-", off))
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
	for off < size {
		buf := blockBufs.Get().(*[blockSize]byte)
		n, err := io.ReadFull(out.Body, buf[:min(blockSize, size-off)])
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
	size := s.o.info.Size
	want := fmt.Sprintf("bytes %d-%d/", off, size-1)
	if cr := aws.ToString(out.ContentRange); off > 0 && !(len(cr) >= len(want) && cr[:len(want)] == want) {
		return &Error{Op: "reading", URL: s.o.info.URL, Err: fmt.Errorf("the store answered a ranged GET with Content-Range %q", cr), where: s.o.s.endpoint}
	}
	if n := aws.ToInt64(out.ContentLength); out.ContentLength != nil && n != size-off {
		return &Error{Op: "reading", URL: s.o.info.URL, Err: fmt.Errorf("the store sent %d bytes from offset %d of an object of %d", n, off, size), where: s.o.s.endpoint}
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

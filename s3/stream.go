package s3

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
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
// the same ETag (readTries tries in a row that bring nothing fail it). If
// the store proves slower than the reader, the rest comes in parallel
// ranged GETs instead (probeBytes).
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
	s := &stream{o: o, ctx: ctx, cancel: cancel, pieces: make(chan piece, streamAhead),
		off: off, pos: off, end: end, short: off+n > end}
	if off < 0 {
		s.err, s.started = fmt.Errorf("s3: negative offset %d", off), true
		close(s.pieces)
	}
	return s
}

type stream struct {
	o        *Object
	ctx      context.Context
	cancel   context.CancelFunc
	pieces   chan piece // read ahead, in order; closed at the end
	off, end int64      // the bytes to read
	pos      int64      // the reader's place
	short    bool       // asked past the object's end
	started  bool

	// The reader's judgement of the one GET's pace (probeBytes).
	began    time.Time     // the first Read
	starved  time.Duration // the reader's waits for pieces
	probed   bool
	goRanged atomic.Bool // the store is slower than the reader

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
		s.started, s.began = true, time.Now()
		go s.run()
	}
	for len(s.cur) == 0 {
		if s.err != nil {
			return 0, s.err
		}
		s.recycle()
		t := time.Now()
		pc, ok := <-s.pieces
		s.starved += time.Since(t)
		switch {
		case !ok && s.pos < s.end:
			// Ended early with nothing said: the context was cancelled.
			s.err = s.o.rangeError(s.pos, s.end-s.pos, cmp.Or(context.Cause(s.ctx), io.ErrUnexpectedEOF))
		case !ok && s.short:
			s.err = io.ErrUnexpectedEOF
		case !ok:
			s.err = io.EOF
		case pc.err != nil:
			s.err = pc.err
		default:
			s.buf, s.cur = pc.buf, pc.buf[:pc.n]
			s.judge(int64(pc.n))
		}
	}
	n := copy(p, s.cur)
	s.cur = s.cur[n:]
	s.pos += int64(n)
	return n, nil
}

func (s *stream) recycle() {
	if s.buf != nil {
		blockBufs.Put(s.buf)
		s.buf, s.cur = nil, nil
	}
}

// Close stops the GET and waits for the reading goroutine to end. It
// must not run beside a Read; a stream read and never closed holds its
// goroutine, connection and buffers until the object's context ends.
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
		// A body that broke off after bringing bytes is resumed at once;
		// one that brought none, after a pause.
		if failed > 1 {
			select {
			case <-time.After(time.Duration(100<<(failed-1)) * time.Millisecond):
			case <-s.ctx.Done():
				return
			}
		}
		next, err := s.body(off)
		if next > off {
			failed = 0
		}
		off = next
		if err == errRanged {
			s.ranged(off)
			return
		}
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
		if s.goRanged.Load() && end-off >= 2*blockSize {
			return off, errRanged
		}
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
	want := fmt.Sprintf("bytes %d-%d/%d", off, end-1, s.o.info.Size)
	if cr := aws.ToString(out.ContentRange); (off > 0 || end < s.o.info.Size) && cr != want {
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

// probeBytes is how much a stream reads with its one GET before judging
// its pace: if its reader spent more than half of that time waiting for
// bytes, the store sends slower than the reader takes (a remote store,
// whose connections each carry a fraction of the link), and the rest is
// fetched as readAhead ranged blocks in parallel instead. A store on a
// fast link keeps the one GET, which it serves more cheaply.
var probeBytes int64 = 32 << 20

// slowStore judges the pace of a stream's GET from the time its reader
// waited for bytes and the time since its first Read (tests replace it).
var slowStore = func(starved, elapsed time.Duration) bool { return 2*starved > elapsed }

// judge tells the reading goroutine to go on with ranged blocks once the
// reader, having got n more bytes, has read probeBytes and spent more
// than half of its time since the first Read waiting for them.
func (s *stream) judge(n int64) {
	if s.probed || s.pos+n-s.off < probeBytes {
		return
	}
	s.probed = true
	if slowStore(s.starved, time.Since(s.began)) {
		s.goRanged.Store(true)
	}
}

// errRanged is body's signal to go on with ranged blocks.
var errRanged = errors.New("s3: the store is slower than the reader")

// ranged fetches the bytes from off to the stream's end as readAhead
// ranged GETs of a block each in flight, handing them over in order.
func (s *stream) ranged(off int64) {
	type fetch struct {
		buf  *[blockSize]byte
		off  int64
		n    int
		done chan error
	}
	var queue []*fetch
	defer func() { // on Close or failure: wait for what is in flight
		for _, f := range queue {
			<-f.done
			blockBufs.Put(f.buf)
		}
	}()
	next := off
	for off < s.end {
		for len(queue) < readAhead && next < s.end {
			f := &fetch{buf: blockBufs.Get().(*[blockSize]byte), off: next, n: int(min(blockSize, s.end-next)), done: make(chan error, 1)}
			go func() { f.done <- s.o.fetch(s.ctx, f.off, f.buf[:f.n]) }()
			queue = append(queue, f)
			next += int64(f.n)
		}
		f := queue[0]
		var err error
		select {
		case err = <-f.done:
		case <-s.ctx.Done():
			return
		}
		queue = queue[1:]
		if err != nil {
			blockBufs.Put(f.buf)
			if s.ctx.Err() == nil {
				s.send(piece{err: err})
			}
			return
		}
		if !s.send(piece{buf: f.buf, n: f.n}) {
			return
		}
		off += int64(f.n)
	}
}

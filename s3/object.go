package s3

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// blockSize is the unit an Object fetches: one ranged GET. Large enough
// that a request's latency is small beside its transfer, small enough that
// a random 4 KiB read does not wait long.
const blockSize = 4 << 20

// Object reads an object at random through ranged GETs, as an
// io.ReaderAt. Bytes are fetched a block at a time and kept in a small
// cache; a read that follows on from the block before it fetches the next
// blocks ahead, up to the store's Jobs at once, so a sequential reader
// (a tar stream, a chunk being inflated) runs at the store's throughput
// while other readers read elsewhere. Each GET names the ETag first seen:
// an object replaced while it is read fails rather than mixing versions.
type Object struct {
	s    *Store
	ctx  context.Context
	info Info

	mu     sync.Mutex
	blocks map[int64]*block // by block number
	clock  int64            // for LRU eviction
	max    int              // blocks kept, fetched or fetching
}

type block struct {
	done chan struct{}
	data []byte
	err  error
	used int64
}

// Open returns the object at u for reading; ctx bounds every request made
// for it.
func (s *Store) Open(ctx context.Context, u URL) (*Object, error) {
	info, err := s.Stat(ctx, u)
	if err != nil {
		return nil, err
	}
	return s.OpenInfo(ctx, *info), nil
}

// OpenInfo is Open for an object already described (by List).
func (s *Store) OpenInfo(ctx context.Context, info Info) *Object {
	return &Object{s: s, ctx: ctx, info: info, blocks: map[int64]*block{}, max: 4 + 4*s.o.Jobs}
}

// Size is the object's size.
func (o *Object) Size() int64 { return o.info.Size }

// Info describes the object.
func (o *Object) Info() Info { return o.info }

// Close drops the cached blocks.
func (o *Object) Close() error {
	o.mu.Lock()
	o.blocks = map[int64]*block{}
	o.mu.Unlock()
	return nil
}

// ReadAt reads len(p) bytes at off; io.EOF past the object's end.
func (o *Object) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("s3: negative offset %d", off)
	}
	n := 0
	for n < len(p) {
		if off >= o.info.Size {
			return n, io.EOF
		}
		b, err := o.block(off / blockSize)
		if err != nil {
			return n, err
		}
		c := copy(p[n:], b[off%blockSize:])
		n += c
		off += int64(c)
	}
	return n, nil
}

// block returns block i's bytes, fetching it (and, for a sequential
// reader, the blocks after it) if need be.
func (o *Object) block(i int64) ([]byte, error) {
	o.mu.Lock()
	b := o.blocks[i]
	if b == nil {
		b = o.start(i)
	}
	o.clock++
	b.used = o.clock
	// A read that follows the block before it is a stream: fetch ahead.
	if prev := o.blocks[i-1]; prev != nil {
		for j := i + 1; j <= i+int64(o.s.o.Jobs) && j*blockSize < o.info.Size; j++ {
			if o.blocks[j] == nil {
				o.start(j)
			}
		}
	}
	o.mu.Unlock()
	<-b.done
	if b.err != nil {
		o.mu.Lock()
		if o.blocks[i] == b {
			delete(o.blocks, i) // a later read tries again
		}
		o.mu.Unlock()
	}
	return b.data, b.err
}

// start begins fetching block i, evicting the least recently used
// finished block if the cache is full. o.mu is held.
func (o *Object) start(i int64) *block {
	for len(o.blocks) >= o.max {
		victim, oldest := int64(-1), int64(0)
		for k, b := range o.blocks {
			select {
			case <-b.done:
			default:
				continue // in flight: someone waits for it
			}
			if victim < 0 || b.used < oldest {
				victim, oldest = k, b.used
			}
		}
		if victim < 0 {
			break // all in flight: go over by one rather than wait here
		}
		delete(o.blocks, victim)
	}
	b := &block{done: make(chan struct{})}
	o.blocks[i] = b
	go func() {
		b.data, b.err = o.fetch(i*blockSize, min(blockSize, o.info.Size-i*blockSize))
		close(b.done)
	}()
	return b
}

// readTries bounds the tries of a GET whose body broke off: the SDK
// retries a request that fails, not a body that stops coming.
const readTries = 3

// fetch reads n bytes at off with a ranged GET.
func (o *Object) fetch(off, n int64) ([]byte, error) {
	rng := fmt.Sprintf("bytes=%d-%d", off, off+n-1)
	var err error
	for try := 0; try < readTries; try++ {
		var buf []byte
		if buf, err = o.get(rng, n); err == nil {
			return buf, nil
		}
		var se *Error
		if errors.As(err, &se) || o.ctx.Err() != nil {
			break // the store answered, or we are cancelled: no retry
		}
	}
	return nil, o.rangeError(off, n, err)
}

func (o *Object) get(rng string, n int64) ([]byte, error) {
	in := &s3.GetObjectInput{Bucket: &o.info.URL.Bucket, Key: &o.info.URL.Key, Range: aws.String(rng)}
	if o.info.ETag != "" {
		in.IfMatch = aws.String(o.info.ETag)
	}
	out, err := o.s.c.GetObject(o.ctx, in)
	if err != nil {
		return nil, o.s.wrap("reading", o.info.URL, err)
	}
	defer out.Body.Close()
	buf := make([]byte, n)
	if _, err := io.ReadFull(out.Body, buf); err != nil {
		if err == io.ErrUnexpectedEOF || err == io.EOF {
			return nil, fmt.Errorf("the store sent fewer bytes than asked: %w", io.ErrUnexpectedEOF)
		}
		return nil, err
	}
	return buf, nil
}

// rangeError names the object and the bytes a failed read asked for.
func (o *Object) rangeError(off, n int64, err error) error {
	r := fmt.Sprintf("bytes %d-%d", off, off+n-1)
	var se *Error
	if errors.As(err, &se) {
		c := *se
		c.Range = r
		if c.kind == ErrExists { // a failed If-Match: the object changed
			c.kind, c.Err = ErrIntegrity, errors.New("the object changed while it was being read")
		}
		return &c
	}
	return &Error{Op: "reading", URL: o.info.URL, Range: r, Err: err, where: o.s.endpoint}
}

// Reader reads the object front to back from off, fetching ahead.
func (o *Object) Reader(off int64) io.Reader {
	return io.NewSectionReader(o, off, o.info.Size-off)
}

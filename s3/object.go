package s3

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// blockSize is the unit an Object fetches: one ranged GET. Large enough
// that a request's latency is small beside its transfer, small enough that
// a random 4 KiB read does not wait long.
const blockSize = 4 << 20

// readAhead is how many blocks a sequential reader has fetched ahead of
// it: enough requests in flight that the store's latency is hidden
// (measured against versitygw: 2 ahead reached 0.7× a local file's
// unpack, 8 ahead 0.87×).
const readAhead = 8

// Object reads an object at random through ranged GETs, as an
// io.ReaderAt. Bytes are fetched a block at a time into the store's block
// cache; a read that follows on from the block before it fetches the next
// blocks ahead (readAhead), so a sequential reader
// (a tar stream, a chunk being inflated) runs at the store's throughput
// while other readers read elsewhere. Each GET names the ETag first seen:
// an object replaced while it is read fails rather than mixing versions.
type Object struct {
	s    *Store
	ctx  context.Context
	info Info
}

// blockCache holds the blocks of every Object of a Store, bounded as a
// whole (a prefix archive opens an Object per member, and a server keeps
// them all), evicting the least recently used finished block.
type blockCache struct {
	mu     sync.Mutex
	blocks map[blockKey]*block
	clock  int64
	max    int // blocks kept, fetched or fetching
}

type blockKey struct {
	o *Object
	i int64
}

type block struct {
	done chan struct{}
	data []byte
	err  error
	used int64
	// refs counts the readers copying out of data; a block out of the
	// cache (evicted, or its object closed) gives its buffer back to
	// blockBufs when the last of them is done, and not before.
	refs    int
	dropped bool
}

// blockBufs recycles block buffers: a stream read through the cache
// would otherwise allocate, zero and fault in a fresh 4 MiB for every
// block, which cost more CPU than the transfer itself.
var blockBufs = sync.Pool{New: func() any { return new([blockSize]byte) }}

// drop takes b out of use; its buffer is recycled once no reader holds
// it. c.mu is held.
func (b *block) drop() {
	b.dropped = true
	b.recycle()
}

// recycle gives b's buffer back if b is dropped, fetched and unread.
// c.mu is held.
func (b *block) recycle() {
	if !b.dropped || b.refs > 0 || b.data == nil {
		return
	}
	select {
	case <-b.done:
	default:
		return // the fetch still writes into it; it recycles when done
	}
	blockBufs.Put((*[blockSize]byte)(b.data[:blockSize]))
	b.data = nil
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
	return &Object{s: s, ctx: ctx, info: info}
}

// Size is the object's size.
func (o *Object) Size() int64 { return o.info.Size }

// Info describes the object.
func (o *Object) Info() Info { return o.info }

// Close drops the object's cached blocks.
func (o *Object) Close() error {
	c := &o.s.cache
	c.mu.Lock()
	for k, b := range c.blocks {
		if k.o == o {
			delete(c.blocks, k)
			b.drop()
		}
	}
	c.mu.Unlock()
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
		c := copy(p[n:], b.data[off%blockSize:])
		o.release(b)
		n += c
		off += int64(c)
	}
	return n, nil
}

// ReadDirect reads len(p) bytes at off with one ranged GET of just those
// bytes, through the cache only if they are there already: for reading a
// tar's headers one by one without fetching the data between them.
func (o *Object) ReadDirect(p []byte, off int64) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if off >= o.info.Size {
		return 0, io.EOF
	}
	c := &o.s.cache
	c.mu.Lock()
	b := c.blocks[blockKey{o, off / blockSize}]
	c.mu.Unlock()
	if b != nil && (off+int64(len(p))-1)/blockSize == off/blockSize {
		return o.ReadAt(p, off)
	}
	n := min(int64(len(p)), o.info.Size-off)
	if err := o.fetch(o.ctx, off, p[:n]); err != nil {
		return 0, err
	}
	if int(n) < len(p) {
		return int(n), io.EOF
	}
	return int(n), nil
}

// block returns block i, fetched (and, for a sequential reader, the
// blocks after it being fetched), held for reading until release.
func (o *Object) block(i int64) (*block, error) {
	c := &o.s.cache
	c.mu.Lock()
	k := blockKey{o, i}
	b := c.blocks[k]
	if b == nil {
		b = o.start(i, true)
	}
	c.clock++
	b.used = c.clock
	b.refs++
	// A read that follows the block before it is a stream: fetch ahead,
	// into room the cache has, never evicting for a guess.
	if c.blocks[blockKey{o, i - 1}] != nil {
		for j := i + 1; j <= i+readAhead && j*blockSize < o.info.Size && len(c.blocks) < c.max; j++ {
			if c.blocks[blockKey{o, j}] == nil {
				o.start(j, false)
			}
		}
	}
	c.mu.Unlock()
	<-b.done
	if b.err != nil {
		c.mu.Lock()
		if c.blocks[k] == b {
			delete(c.blocks, k) // a later read tries again
			b.dropped = true
		}
		b.refs--
		c.mu.Unlock()
		return nil, b.err
	}
	return b, nil
}

// release ends a read of b that block began.
func (o *Object) release(b *block) {
	c := &o.s.cache
	c.mu.Lock()
	b.refs--
	b.recycle()
	c.mu.Unlock()
}

// start begins fetching block i, evicting the least recently used
// finished blocks if the cache is full and the block is wanted now.
// c.mu is held.
func (o *Object) start(i int64, wanted bool) *block {
	c := &o.s.cache
	for wanted && len(c.blocks) >= c.max {
		var victim blockKey
		found, oldest := false, int64(0)
		for k, b := range c.blocks {
			select {
			case <-b.done:
			default:
				continue // in flight: someone waits for it
			}
			if !found || b.used < oldest {
				victim, oldest, found = k, b.used, true
			}
		}
		if !found {
			break // all in flight: go over by one rather than wait here
		}
		c.blocks[victim].drop()
		delete(c.blocks, victim)
	}
	c.clock++
	// A block fetched ahead counts as just used: it is about to be.
	b := &block{done: make(chan struct{}), used: c.clock}
	c.blocks[blockKey{o, i}] = b
	go func() {
		buf := blockBufs.Get().(*[blockSize]byte)[:min(blockSize, o.info.Size-i*blockSize)]
		err := o.fetch(o.ctx, i*blockSize, buf)
		c.mu.Lock()
		if err != nil {
			blockBufs.Put((*[blockSize]byte)(buf[:blockSize]))
			b.err = err
		} else {
			b.data = buf
		}
		close(b.done)
		b.recycle() // dropped while it was fetched
		c.mu.Unlock()
	}()
	return b
}

// readTries bounds the tries of a GET whose body broke off: the SDK
// retries a request that fails, not a body that stops coming.
const readTries = 3

// fetch fills buf with the bytes at off, with a ranged GET; ctx bounds
// it (the object's, or a stream's).
func (o *Object) fetch(ctx context.Context, off int64, buf []byte) error {
	n := int64(len(buf))
	rng := fmt.Sprintf("bytes=%d-%d", off, off+n-1)
	var err error
	for try := 0; try < readTries; try++ {
		if try > 0 {
			select {
			case <-time.After(time.Duration(100<<try) * time.Millisecond):
			case <-ctx.Done():
				return o.rangeError(off, n, ctx.Err())
			}
		}
		if err = o.get(ctx, rng, off, buf); err == nil {
			return nil
		}
		var se *Error
		if errors.As(err, &se) || ctx.Err() != nil {
			break // the store answered, or we are cancelled: no retry
		}
	}
	return o.rangeError(off, n, err)
}

func (o *Object) get(ctx context.Context, rng string, off int64, buf []byte) error {
	n := int64(len(buf))
	in := &s3.GetObjectInput{Bucket: &o.info.URL.Bucket, Key: &o.info.URL.Key, Range: aws.String(rng)}
	if o.info.ETag != "" {
		in.IfMatch = aws.String(o.info.ETag)
	}
	out, err := o.s.c.GetObject(ctx, in)
	if err != nil {
		return o.s.wrap("reading", o.info.URL, err)
	}
	defer out.Body.Close()
	// A store that ignores Range answers with the whole object.
	if cr := aws.ToString(out.ContentRange); cr != fmt.Sprintf("bytes %d-%d/%d", off, off+n-1, o.info.Size) {
		return &Error{Op: "reading", URL: o.info.URL, Err: fmt.Errorf("the store answered a ranged GET with Content-Range %q", cr), where: o.s.endpoint}
	}
	if _, err := io.ReadFull(out.Body, buf); err != nil {
		if err == io.ErrUnexpectedEOF || err == io.EOF {
			return fmt.Errorf("the store sent fewer bytes than asked: %w", io.ErrUnexpectedEOF)
		}
		return err
	}
	return nil
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

package disk

import (
	"context"
	"fmt"
	"io"
	"iter"
	"runtime"
	"sync"
)

// PieceSize is the largest piece a Reader made by NewReader returns. Pieces
// are aligned to it, so they line up with 1 MiB xapi blocks and with the
// sector alignment O_DIRECT needs.
const PieceSize = 1 << 20

// NewReader reads src front to back, visiting only its extents. Reading runs
// one piece ahead of the caller in its own goroutine so that I/O overlaps the
// caller's work; Close stops it. A source whose reads cost CPU and may run
// at once (Parallel: compressed images) is read a few pieces ahead, one
// piece per core at a time, still delivered in order.
func NewReader(ctx context.Context, src Source) *SourceReader {
	return NewReaderJobs(ctx, src, 0)
}

// NewReaderJobs is NewReader reading a Parallel source on at most jobs
// goroutines (0: one per core).
func NewReaderJobs(ctx context.Context, src Source, jobs int) *SourceReader {
	if jobs <= 0 {
		jobs = runtime.NumCPU()
	}
	if !ParallelReads(src) {
		jobs = 1
	}
	ctx, cancel := context.WithCancel(ctx)
	r := &SourceReader{
		size:   src.Size(),
		ctx:    ctx,
		cancel: cancel,
		full:   make(chan result, 2),
		free:   make(chan []byte, 2*jobs+1),
	}
	for range 2*jobs + 1 {
		r.free <- make([]byte, PieceSize)
	}
	r.running.Add(1)
	if jobs > 1 {
		go r.runParallel(ctx, src, jobs)
	} else {
		go r.run(ctx, src)
	}
	return r
}

// Parallel is implemented by a Source whose ReadAt may be called from
// several goroutines at once and spends CPU on each call (inflating
// compressed grains), so that reading ahead on every core pays.
type Parallel interface {
	ParallelReads() bool
}

// ParallelReads reports whether src says it is Parallel.
func ParallelReads(src Source) bool {
	p, ok := src.(Parallel)
	return ok && p.ParallelReads()
}

type result struct {
	p   Piece
	err error
}

// SourceReader is the Reader of a Source.
type SourceReader struct {
	size    int64
	ctx     context.Context
	cancel  context.CancelFunc
	running sync.WaitGroup // the goroutines reading the source
	full    chan result
	free    chan []byte
	held    []byte // buffer of the piece last returned, handed back on Next
	err     error
}

// Size implements Reader.
func (r *SourceReader) Size() int64 { return r.size }

// Close stops the read-ahead and waits until no read of the source is
// under way, so that the source can be closed next. It does not close the
// source.
func (r *SourceReader) Close() error {
	r.cancel()
	r.running.Wait()
	return nil
}

// Next implements Reader.
func (r *SourceReader) Next() (Piece, error) {
	if r.err != nil {
		return Piece{}, r.err
	}
	if r.held != nil {
		r.free <- r.held
		r.held = nil
	}
	res, ok := <-r.full
	if !ok {
		// Ended by its context, the reader has not reached the end.
		r.err = r.ctx.Err()
		if r.err == nil {
			r.err = io.EOF
		}
		r.cancel()
		return Piece{}, r.err
	}
	if res.err != nil {
		r.err = res.err
		r.cancel()
		return Piece{}, res.err
	}
	r.held = res.p.Data[:cap(res.p.Data)]
	return res.p, nil
}

func (r *SourceReader) run(ctx context.Context, src Source) {
	defer r.running.Done()
	defer close(r.full)
	for p, err := range r.pieces(ctx, src) {
		if err == nil {
			err = readPiece(src, p)
		}
		if err != nil {
			r.send(ctx, result{err: err})
			return
		}
		if !r.send(ctx, result{p: p}) {
			return
		}
	}
}

func (r *SourceReader) send(ctx context.Context, res result) bool {
	select {
	case r.full <- res:
		return true
	case <-ctx.Done():
		return false
	}
}

// pieces yields src's extents cut at PieceSize boundaries, each with a free
// buffer of its length to read into; it stops when ctx is done.
func (r *SourceReader) pieces(ctx context.Context, src Source) iter.Seq2[Piece, error] {
	return func(yield func(Piece, error) bool) {
		for e, err := range Extents(ctx, src) {
			if err != nil {
				yield(Piece{}, err)
				return
			}
			for off := e.Off; off < e.End(); {
				end := min(e.End(), (off/PieceSize+1)*PieceSize)
				var buf []byte
				select {
				case buf = <-r.free:
				case <-ctx.Done():
					return
				}
				if !yield(Piece{Off: off, Data: buf[:end-off]}, nil) {
					return
				}
				off = end
			}
		}
	}
}

// readPiece fills p's buffer from src.
func readPiece(src Source, p Piece) error {
	if n, err := src.ReadAt(p.Data, p.Off); n < len(p.Data) {
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return fmt.Errorf("reading disk at offset %d: %w", p.Off+int64(n), err)
	}
	return nil
}

// runParallel reads pieces on jobs goroutines and delivers them in order:
// each piece is queued in order as it is handed to a worker, and taken from
// the queue when its read is done.
func (r *SourceReader) runParallel(ctx context.Context, src Source, jobs int) {
	type job struct {
		p    Piece
		err  error
		done chan struct{}
	}
	work := make(chan *job)
	queue := make(chan *job, 2*jobs+2) // every buffer, and an error
	var workers sync.WaitGroup
	for range jobs {
		workers.Go(func() {
			for j := range work {
				j.err = readPiece(src, j.p)
				close(j.done)
			}
		})
	}
	defer r.running.Done()
	defer workers.Wait()
	workers.Go(func() { // the producer reads extents from the source too
		defer close(queue)
		defer close(work)
		for p, err := range r.pieces(ctx, src) {
			j := &job{p: p, err: err, done: make(chan struct{})}
			if err != nil {
				close(j.done)
				queue <- j
				return
			}
			queue <- j
			select {
			case work <- j:
			case <-ctx.Done():
				return
			}
		}
	})
	defer close(r.full)
	for j := range queue {
		select {
		case <-j.done:
		case <-ctx.Done():
			return
		}
		if j.err != nil {
			r.send(ctx, result{err: j.err})
			return
		}
		if !r.send(ctx, result{p: j.p}) {
			return
		}
	}
}

// Pieces adapts a Reader to a range loop.
func Pieces(r Reader) iter.Seq2[Piece, error] {
	return func(yield func(Piece, error) bool) {
		for {
			p, err := r.Next()
			if err == io.EOF {
				return
			}
			if !yield(p, err) || err != nil {
				return
			}
		}
	}
}

// Gather re-cuts a Reader's pieces into the fixed units an encoder works in
// (1e9-byte chunks cut into 1 MiB pieces, 1 MiB blocks, 2 MiB VHD blocks).
type Gather struct {
	r    Reader
	cur  Piece // unconsumed part of the current piece
	done bool
}

// NewGather returns a Gather over r.
func NewGather(r Reader) *Gather { return &Gather{r: r} }

// Size is the size of the underlying disk.
func (g *Gather) Size() int64 { return g.r.Size() }

// Fill copies the disk bytes of [off, off+len(buf)) into buf. It reports
// false, leaving buf untouched, when no piece overlaps that range (the range
// is a hole). Calls must ask for increasing, non-overlapping ranges.
func (g *Gather) Fill(buf []byte, off int64) (bool, error) {
	end := off + int64(len(buf))
	data := false
	for {
		if len(g.cur.Data) == 0 || g.cur.End() <= off {
			if g.done {
				return data, nil
			}
			p, err := g.r.Next()
			if err == io.EOF {
				g.done = true
				g.cur = Piece{}
				return data, nil
			}
			if err != nil {
				return false, err
			}
			if p.Off < g.cur.End() {
				return false, fmt.Errorf("disk: piece at %d overlaps the previous one", p.Off)
			}
			g.cur = p
			continue
		}
		if g.cur.Off >= end {
			return data, nil
		}
		if !data {
			clear(buf)
			data = true
		}
		// Skip the part of the piece before off, then copy the overlap.
		if g.cur.Off < off {
			g.cur.Data = g.cur.Data[off-g.cur.Off:]
			g.cur.Off = off
		}
		n := copy(buf[g.cur.Off-off:], g.cur.Data)
		g.cur.Data = g.cur.Data[n:]
		g.cur.Off += int64(n)
		if g.cur.Off >= end {
			return true, nil
		}
	}
}

// Copy writes every piece of r to dst in order, without committing it. It
// returns the number of data bytes handed to dst. progress, if not nil, is
// told the offset reached after each piece. It moves an image into another
// (NewReader over a Source into a Sink: xva.ConvertImage and the format
// tests do); archive decoders write their pieces into sinks themselves, in
// parallel where the sink allows.
func Copy(ctx context.Context, dst Sink, r Reader, progress func(off int64)) (int64, error) {
	if dst.Size() < r.Size() {
		return 0, fmt.Errorf("disk: target holds %d bytes, the disk needs %d", dst.Size(), r.Size())
	}
	var n int64
	for p, err := range Pieces(r) {
		if err != nil {
			return n, err
		}
		if err := ctx.Err(); err != nil {
			return n, err
		}
		if p.End() > r.Size() {
			return n, fmt.Errorf("disk: piece at %d runs past the disk's end %d", p.Off, r.Size())
		}
		if _, err := dst.WriteAt(p.Data, p.Off); err != nil {
			return n, err
		}
		n += int64(len(p.Data))
		if progress != nil {
			progress(p.End())
		}
	}
	if progress != nil {
		progress(r.Size())
	}
	return n, nil
}

package disk

import (
	"errors"
	"fmt"
	"io"
	"sync"
)

// Pipe connects a producer that pushes a disk's pieces (a decoder calling
// WriteAt in increasing order) to a consumer that pulls them through Next
// (an encoder). Nothing is copied: WriteAt returns once the consumer has
// moved past the piece, so the piece's bytes are valid while it reads them.
type Pipe struct {
	size    int64
	pieces  chan Piece
	release chan struct{}
	done    chan struct{} // closed by CloseRead
	once    sync.Once
	mu      sync.Mutex
	werr    error // set by CloseWrite
	rerr    error // set by CloseRead
	held    bool  // the consumer holds a piece
	end     int64
}

// NewPipe returns a pipe for a disk of size bytes.
func NewPipe(size int64) *Pipe {
	return &Pipe{size: size, pieces: make(chan Piece), release: make(chan struct{}), done: make(chan struct{})}
}

// ErrPipeClosed is returned to a producer whose consumer has stopped.
var ErrPipeClosed = errors.New("disk: pipe closed by its reader")

// Size implements Reader.
func (p *Pipe) Size() int64 { return p.size }

// WriteAt hands b, the bytes at off, to the consumer and waits until it is
// done with them.
func (p *Pipe) WriteAt(b []byte, off int64) (int, error) {
	if off < p.end || off+int64(len(b)) > p.size {
		return 0, fmt.Errorf("disk: pipe write at %d (%d bytes) out of order or past %d", off, len(b), p.size)
	}
	p.end = off + int64(len(b))
	select {
	case p.pieces <- Piece{Off: off, Data: b}:
	case <-p.done:
		return 0, p.readErr()
	}
	select {
	case <-p.release:
		return len(b), nil
	case <-p.done:
		return 0, p.readErr()
	}
}

func (p *Pipe) readErr() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.rerr != nil {
		return p.rerr
	}
	return ErrPipeClosed
}

// CloseWrite ends the producer's side; err, if not nil, is what the
// consumer's next Next returns instead of io.EOF.
func (p *Pipe) CloseWrite(err error) {
	p.mu.Lock()
	p.werr = err
	p.mu.Unlock()
	close(p.pieces)
}

// Next implements Reader: the previous piece is released to the producer.
func (p *Pipe) Next() (Piece, error) {
	if p.held {
		p.held = false
		p.release <- struct{}{}
	}
	pc, ok := <-p.pieces
	if !ok {
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.werr != nil {
			return Piece{}, p.werr
		}
		return Piece{}, io.EOF
	}
	p.held = true
	return pc, nil
}

// Drain is how a consumer that has all it needs ends: it releases the
// piece it holds and takes the rest (there should be none), so that the
// producer runs to its own end, and checks what follows the data, rather
// than being cut off. It returns the producer's error, if any.
func (p *Pipe) Drain() error {
	for {
		if _, err := p.Next(); err != nil {
			if err == io.EOF {
				return nil
			}
			return err
		}
	}
}

// CloseRead stops the consumer's side: a producer blocked in WriteAt gets
// err (or ErrPipeClosed).
func (p *Pipe) CloseRead(err error) {
	p.once.Do(func() {
		p.mu.Lock()
		p.rerr = err
		p.mu.Unlock()
		close(p.done)
	})
}

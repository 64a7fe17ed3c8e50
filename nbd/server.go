// Package nbd serves disk.Sources read-only over the Network Block Device
// protocol, so that qemu-img, nbdcopy, nbdfuse or guestmount can read a disk
// without it being unpacked first.
//
// It follows the protocol document of the NetworkBlockDevice/nbd repository
// (doc/proto.md); comments name its sections in quotes. The server speaks
// the fixed newstyle handshake only, with NBD_OPT_GO/INFO/LIST, structured
// replies, the base:allocation metadata context and, when a TLS
// configuration is given, NBD_OPT_STARTTLS in FORCEDTLS mode. Every export
// is read-only; requests on one connection are served concurrently and
// their replies may come out of order.
//
// It imports nothing of the module but disk.
package nbd

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/semaphore"

	"github.com/xva-tools/xva/disk"
)

// Export is a disk served under a name.
type Export struct {
	Name, Description string
	// Source is read concurrently by the server: the caller guarantees its
	// ReadAt is safe for concurrent use. The server never closes it.
	Source disk.Source
}

// Lender is a Source that can lend the bytes of a range instead of copying
// them into the caller's buffer: the server then writes a read's reply
// straight from the source's memory (an archive's checked span, say),
// which saves a copy and a buffer per request. A Source that does not
// implement it is read with ReadAt.
type Lender interface {
	// LendAt appends to dst slices whose concatenation is the n bytes at
	// off, checked as ReadAt checks them, and returns it; an error fails
	// the whole range. The slices are the source's and must stay unchanged
	// for ever: the server only reads them, and may still be sending them
	// when the source has stopped holding them itself.
	LendAt(dst [][]byte, off, n int64) ([][]byte, error)
}

// Server serves its Exports to every client that connects.
type Server struct {
	Exports []Export
	// TLSConfig, when set, makes TLS mandatory: NBD_OPT_STARTTLS is offered
	// and every other option before it is refused with
	// NBD_REP_ERR_TLS_REQD ("FORCEDTLS mode"). Nil: no TLS.
	TLSConfig *tls.Config
	// Log receives read errors (export, offset, length, error) and
	// connection events. Nil: discarded.
	Log *slog.Logger
	// MaxInFlight is how many requests of one connection are served at
	// once (0: 16).
	MaxInFlight int
	// MaxConnections is how many clients are served at once (0: 64); a
	// connection past it is closed at once.
	MaxConnections int
	// MaxMemory bounds the bytes the replies to reads hold at once, all
	// connections together (0: 256 MiB): a read waits until its reply
	// fits rather than failing. It is at least 32 MiB, the longest read a
	// client may ask for, which a simple reply or NBD_CMD_FLAG_DF must
	// hold whole.
	MaxMemory int64

	budgetOnce sync.Once
	budget     *budget
}

// DefaultMaxMemory is the budget of read replies when MaxMemory is 0.
const DefaultMaxMemory = 256 << 20

// MinMaxMemory is the smallest MaxMemory: the longest read a client may
// ask for.
const MinMaxMemory = maxPayload

// memBudget is the server's budget of reply bytes, made on first use: a
// Server is one budget however many times it serves.
func (s *Server) memBudget() *budget {
	s.budgetOnce.Do(func() {
		size := s.MaxMemory
		if size <= 0 {
			size = DefaultMaxMemory
		}
		s.budget = &budget{sem: semaphore.NewWeighted(size)}
	})
	return s.budget
}

// budget is the server-wide allowance of bytes held by read replies: the
// per-request (32 MiB), per-connection (MaxInFlight) and connection
// (MaxConnections) bounds alone allowed 32 GiB.
type budget struct {
	sem  *semaphore.Weighted
	held atomic.Int64 // bytes held now
	peak atomic.Int64 // the most ever held, which tests check
}

// acquire waits until n bytes fit in the budget, or ctx is done. The
// semaphore serves waiters in order: a long read is not overtaken for
// ever by short ones.
func (b *budget) acquire(ctx context.Context, n int64) error {
	if err := b.sem.Acquire(ctx, n); err != nil {
		return err
	}
	h := b.held.Add(n)
	for {
		p := b.peak.Load()
		if h <= p || b.peak.CompareAndSwap(p, h) {
			return nil
		}
	}
}

func (b *budget) release(n int64) {
	b.held.Add(-n)
	b.sem.Release(n)
}

// handshakeTime is how long a client has to finish option haggling: one
// that says nothing holds no connection slot for ever.
const handshakeTime = 30 * time.Second

// export is an Export with its extent list, computed once.
type export struct {
	Export
	mu      sync.Mutex
	extents []disk.Extent // nil until computed; sorted, merged, within Size
	done    bool
}

// dataExtents returns the export's data extents, from disk.Extents on
// first use and cached from then on (an error is not cached).
func (e *export) dataExtents(ctx context.Context) ([]disk.Extent, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.done {
		return e.extents, nil
	}
	size := e.Source.Size()
	var list []disk.Extent
	for x, err := range disk.Extents(ctx, e.Source) {
		if err != nil {
			return nil, err
		}
		start, end := max(x.Off, 0), min(x.End(), size)
		if end > start {
			list = append(list, disk.Extent{Off: start, Len: end - start})
		}
	}
	// The order is promised, but a merge of adjacent and overlapping
	// extents needs it: sort anyway.
	if !slices.IsSortedFunc(list, func(a, b disk.Extent) int { return cmp64(a.Off, b.Off) }) {
		slices.SortFunc(list, func(a, b disk.Extent) int { return cmp64(a.Off, b.Off) })
	}
	merged := list[:0]
	for _, x := range list {
		if n := len(merged); n > 0 && x.Off <= merged[n-1].End() {
			merged[n-1].Len = max(merged[n-1].End(), x.End()) - merged[n-1].Off
			continue
		}
		merged = append(merged, x)
	}
	e.extents, e.done = slices.Clip(merged), true
	return e.extents, nil
}

func cmp64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// segment is a part of a request's range: data to read, or a hole.
type segment struct {
	off, len int64
	hole     bool
}

// segments splits [off, off+n) into data and holes by the extent list,
// found by binary search.
func segments(list []disk.Extent, off, n int64) []segment {
	end := off + n
	i := sort.Search(len(list), func(i int) bool { return list[i].End() > off })
	var out []segment
	for pos := off; pos < end; {
		if i < len(list) && list[i].Off <= pos {
			e := min(list[i].End(), end)
			out = append(out, segment{pos, e - pos, false})
			pos = e
			i++
			continue
		}
		e := end
		if i < len(list) {
			e = min(list[i].Off, end)
		}
		out = append(out, segment{pos, e - pos, true})
		pos = e
	}
	return out
}

// Serve accepts connections on l and serves them until ctx is done or l
// fails. When ctx is done it closes l and every connection, waits for their
// handlers and returns nil; when l fails it does the same and returns the
// error.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	if s.MaxMemory > 0 && s.MaxMemory < MinMaxMemory {
		return fmt.Errorf("nbd: a memory budget of %d bytes is under the longest read a client may ask for (%d)", s.MaxMemory, MinMaxMemory)
	}
	exports := make(map[string]*export, len(s.Exports))
	var order []*export
	for _, e := range s.Exports {
		if _, dup := exports[e.Name]; dup {
			return fmt.Errorf("nbd: two exports named %q", e.Name)
		}
		if e.Source == nil {
			return fmt.Errorf("nbd: export %q has no source", e.Name)
		}
		x := &export{Export: e}
		exports[e.Name] = x
		order = append(order, x)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	var (
		mu    sync.Mutex
		conns = map[net.Conn]bool{}
		wg    sync.WaitGroup
	)
	stopped := make(chan struct{})
	go func() {
		<-ctx.Done()
		l.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		close(stopped)
	}()
	defer func() {
		cancel()
		<-stopped
		wg.Wait()
	}()
	for {
		c, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return err
		}
		mu.Lock()
		if ctx.Err() != nil {
			mu.Unlock()
			c.Close()
			return nil
		}
		if len(conns) >= s.maxConnections() {
			mu.Unlock()
			s.log().Warn("nbd: too many connections; one refused", "limit", s.maxConnections())
			c.Close()
			continue
		}
		conns[c] = true
		wg.Add(1)
		mu.Unlock()
		go func() {
			defer wg.Done()
			s.serveConn(ctx, c, exports, order)
			c.Close()
			mu.Lock()
			delete(conns, c)
			mu.Unlock()
		}()
	}
}

func (s *Server) maxConnections() int {
	if s.MaxConnections > 0 {
		return s.MaxConnections
	}
	return 64
}

func (s *Server) log() *slog.Logger {
	if s.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Log
}

// serveConn runs one connection: the handshake, then transmission. It
// returns when the client or the server ends it; the caller closes c.
func (s *Server) serveConn(ctx context.Context, c net.Conn, exports map[string]*export, order []*export) {
	h := &handshake{s: s, conn: c, exports: exports, order: order}
	c.SetDeadline(time.Now().Add(handshakeTime))
	t, err := h.run(ctx)
	c.SetDeadline(time.Time{})
	if err != nil {
		if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && !errors.Is(err, io.ErrUnexpectedEOF) {
			s.log().Debug("nbd: handshake ended", "remote", c.RemoteAddr(), "err", err)
		}
		return
	}
	if t != nil {
		t.run(ctx)
		if t.conn != c {
			t.conn.Close() // the TLS layer's close_notify before the socket goes
		}
	}
}

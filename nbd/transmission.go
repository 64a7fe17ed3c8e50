package nbd

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
)

// transmission is the transmission phase of one connection ("Transmission").
type transmission struct {
	s          *Server
	mem        *budget // the server's, for read replies
	conn       net.Conn
	e          *export
	flags      uint16
	structured bool // NBD_OPT_STRUCTURED_REPLY negotiated
	meta       bool // base:allocation selected for this export

	wmu sync.Mutex // replies are written whole, one at a time
	// w gathers a reply's parts into TLS records; nil on a plain socket,
	// where a reply is one writev of its parts.
	w      *bufio.Writer
	broken bool // a write failed: the connection is going
}

// request is a request message ("Request message").
type request struct {
	flags, typ uint16
	cookie     uint64
	off        uint64
	len        uint32
}

// dataChunk bounds an NBD_REPLY_TYPE_OFFSET_DATA chunk when the reply may be
// fragmented: the memory a request holds is this, not its length.
const dataChunk = 1 << 20

// sendBuffer is the socket send buffer asked for: a client that stops
// reading for a moment, to write what it has received (nbdcopy waits for
// each write to reach the disk before the next), finds the next replies
// queued instead of the server waiting to send them. Linux's default
// (about 200 KiB on a Unix socket) holds less than one reply to
// nbdcopy's 256 KiB reads. The kernel caps it (net.core.wmem_max); it is
// kernel memory per connection, outside MaxMemory.
const sendBuffer = 4 << 20

// run reads requests and serves them, up to MaxInFlight at once, until
// NBD_CMD_DISC, an error on the connection or ctx; it returns when every
// request it started has been answered.
func (t *transmission) run(ctx context.Context) {
	switch c := t.conn.(type) {
	case *net.UnixConn:
		c.SetWriteBuffer(sendBuffer)
	case *net.TCPConn:
		c.SetWriteBuffer(sendBuffer)
	default:
		t.w = bufio.NewWriterSize(t.conn, 64<<10)
	}
	r := bufio.NewReaderSize(t.conn, 64<<10)
	limit := t.s.MaxInFlight
	if limit <= 0 {
		limit = 16
	}
	sem := make(chan struct{}, limit)
	// Requests waiting for memory give up when the connection is gone;
	// after NBD_CMD_DISC they are still answered.
	ctx, cancel := context.WithCancel(ctx)
	disc := false
	var wg sync.WaitGroup
	defer func() {
		if !disc {
			cancel()
		}
		wg.Wait()
		cancel()
	}()
	log := t.s.log()
	for {
		var hdr [28]byte
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				log.Debug("nbd: connection ended", "export", t.e.Name, "err", err)
			}
			return
		}
		if binary.BigEndian.Uint32(hdr[0:]) != requestMagic {
			log.Debug("nbd: bad request magic; hanging up", "export", t.e.Name)
			return
		}
		q := request{
			flags:  binary.BigEndian.Uint16(hdr[4:]),
			typ:    binary.BigEndian.Uint16(hdr[6:]),
			cookie: binary.BigEndian.Uint64(hdr[8:]),
			off:    binary.BigEndian.Uint64(hdr[16:]),
			len:    binary.BigEndian.Uint32(hdr[24:]),
		}
		switch q.typ {
		case cmdDisc:
			// "NBD_CMD_DISC": handle all outstanding requests (the
			// deferred Wait), then close; no reply.
			disc = true
			return
		case cmdWrite:
			// The payload follows the header whatever the answer: skip
			// it to stay in step with the client.
			if _, err := io.CopyN(io.Discard, r, int64(q.len)); err != nil {
				return
			}
			t.fail(q, errPerm, "the export is read-only")
			continue
		case cmdTrim, cmdWriteZeroes:
			// "Error values": NBD_EPERM for a write or trim on a
			// read-only export.
			t.fail(q, errPerm, "the export is read-only")
			continue
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			t.serve(ctx, q)
		}()
	}
}

// serve answers one request other than DISC and the writes.
func (t *transmission) serve(ctx context.Context, q request) {
	size := uint64(t.e.Source.Size())
	inRange := q.off <= size && uint64(q.len) <= size-q.off
	switch q.typ {
	case cmdRead:
		var known uint16
		if t.structured {
			known = cmdFlagDF
		}
		switch {
		case q.flags&^known != 0:
			t.fail(q, errInval, "unsupported command flags")
		case !inRange:
			t.fail(q, errInval, "read past the end of the export")
		case q.len > maxPayload:
			t.fail(q, errInval, "read longer than the maximum payload")
		default:
			t.read(ctx, q)
		}
	case cmdBlockStatus:
		switch {
		case !t.meta:
			// "Servers SHOULD reply with NBD_EINVAL to clients sending
			// NBD_CMD_BLOCK_STATUS without selecting" a context.
			t.fail(q, errInval, "no metadata context selected")
		case q.flags&^cmdFlagReqOne != 0:
			t.fail(q, errInval, "unsupported command flags")
		case !inRange || q.len == 0:
			t.fail(q, errInval, "block status past the end of the export")
		default:
			t.blockStatus(ctx, q)
		}
	case cmdFlush:
		// Never advertised (nothing is ever written), but harmless:
		// nothing needs to reach permanent storage.
		if q.flags != 0 {
			t.fail(q, errInval, "unsupported command flags")
			return
		}
		t.ok(q)
	default:
		// "The server SHOULD return NBD_EINVAL if it receives an unknown
		// command."
		t.fail(q, errInval, fmt.Sprintf("command %d is not supported", q.typ))
	}
}

// read answers NBD_CMD_READ ("NBD_CMD_READ (0)").
func (t *transmission) read(ctx context.Context, q request) {
	off, n := int64(q.off), int64(q.len)
	list, err := t.e.dataExtents(ctx)
	var segs []segment
	if err != nil {
		// The extents are a way to skip holes, not needed to read: read
		// the whole range.
		t.s.log().Warn("nbd: listing extents failed; reading the range whole", "export", t.e.Name, "err", err)
		segs = []segment{{off, n, false}}
	} else {
		segs = segments(list, off, n)
	}

	if t.structured && n == 0 {
		t.none(q)
		return
	}
	if !t.structured || q.flags&cmdFlagDF != 0 {
		// One piece of data: the simple reply ("Simple replies"), which
		// cannot report an error once its header is sent, or the one
		// content chunk NBD_CMD_FLAG_DF allows. Holes are zeros; a range
		// that is all hole is one NBD_REPLY_TYPE_OFFSET_HOLE.
		if t.structured && len(segs) == 1 && segs[0].hole {
			t.holeChunk(q, segs[0], true)
			return
		}
		// The reply is held whole. Should the connection or the server
		// end first, the request goes unanswered.
		if t.mem.acquire(ctx, n) != nil {
			return
		}
		defer t.mem.release(n)
		var data [][]byte
		var buf []byte
		for _, s := range segs {
			var err error
			if data, buf, err = t.fetch(data, buf, s, off, n); err != nil {
				t.readFailed(q, s.off, err)
				return
			}
		}
		if !t.structured {
			t.simple(q, 0, data)
			return
		}
		t.dataChunk(q, off, data, true)
		return
	}

	// "Structured replies": a chunk per hole, data in chunks of at most
	// dataChunk bytes, each read before its header is sent so that an
	// error becomes an NBD_REPLY_TYPE_ERROR_OFFSET chunk, never a short
	// chunk.
	if slices.ContainsFunc(segs, func(s segment) bool { return !s.hole }) {
		// One data chunk is held at a time.
		hold := min(n, dataChunk)
		if t.mem.acquire(ctx, hold) != nil {
			return
		}
		defer t.mem.release(hold)
	}
	var buf []byte
	var data [][]byte
	for i, s := range segs {
		last := i == len(segs)-1
		if s.hole {
			if !t.holeChunk(q, s, last) {
				return
			}
			continue
		}
		for p := s.off; p < s.off+s.len; p += dataChunk {
			m := min(s.off+s.len-p, dataChunk)
			var err error
			if data, buf, err = t.fetch(data[:0], buf, segment{p, m, false}, p, min(n, dataChunk)); err != nil {
				t.readFailed(q, p, err)
				return
			}
			if !t.dataChunk(q, p, data, last && p+m == s.off+s.len) {
				return
			}
		}
	}
}

// fetch appends segment s of a reply starting at base to data: zeros for
// a hole, the source's own bytes when it lends them, or else bytes read
// into buf, made of size bytes when nil (the reply's length: segments of
// one reply share it).
func (t *transmission) fetch(data [][]byte, buf []byte, s segment, base, size int64) ([][]byte, []byte, error) {
	if s.hole {
		return appendZeros(data, s.len), buf, nil
	}
	if l, ok := t.e.Source.(Lender); ok {
		var err error
		data, err = l.LendAt(data, s.off, s.len)
		return data, buf, err
	}
	if buf == nil {
		buf = make([]byte, size)
	}
	// Segments come in order and fill the reply's range without gaps:
	// the buffer's part for this one starts at s.off-base.
	p := buf[s.off-base : s.off-base+s.len]
	if err := t.readAt(p, s.off); err != nil {
		return data, buf, err
	}
	return append(data, p), buf, nil
}

// zeros are the bytes of holes in replies that carry data: never written,
// so that sending them costs no memory.
var zeros [dataChunk]byte

// appendZeros appends n zero bytes to data, as slices of zeros.
func appendZeros(data [][]byte, n int64) [][]byte {
	for ; n > 0; n -= min(n, dataChunk) {
		data = append(data, zeros[:min(n, dataChunk)])
	}
	return data
}

// readAt reads p at off: every byte, or an error.
func (t *transmission) readAt(p []byte, off int64) error {
	k, err := t.e.Source.ReadAt(p, off)
	if k == len(p) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return err
}

// readFailed logs a read error and answers the request with NBD_EIO: an
// error chunk naming the offset with structured replies, a simple reply's
// error otherwise.
func (t *transmission) readFailed(q request, at int64, err error) {
	t.s.log().Error("nbd: read failed", "export", t.e.Name, "offset", int64(q.off), "length", q.len, "at", at, "err", err)
	msg := truncateMsg(fmt.Sprintf("read error at offset %d: %v", at, err))
	if !t.structured {
		t.simple(q, errIO, nil)
		return
	}
	// "NBD_REPLY_TYPE_ERROR_OFFSET": error, message length, message,
	// offset (within the request).
	p := binary.BigEndian.AppendUint32(nil, errIO)
	p = binary.BigEndian.AppendUint16(p, uint16(len(msg)))
	p = append(p, msg...)
	p = binary.BigEndian.AppendUint64(p, uint64(at))
	t.chunk(q, replyFlagDone, replyErrorOffset, p)
}

// blockStatus answers NBD_CMD_BLOCK_STATUS for base:allocation
// ("NBD_CMD_BLOCK_STATUS (7)", "base:allocation metadata context"): data
// extents 0, holes NBD_STATE_HOLE|NBD_STATE_ZERO, descriptors within the
// request, one with NBD_CMD_FLAG_REQ_ONE.
func (t *transmission) blockStatus(ctx context.Context, q request) {
	list, err := t.e.dataExtents(ctx)
	if err != nil {
		t.s.log().Error("nbd: listing extents failed", "export", t.e.Name, "offset", int64(q.off), "length", q.len, "err", err)
		t.fail(q, errIO, truncateMsg("listing extents: "+err.Error()))
		return
	}
	segs := segments(list, int64(q.off), int64(q.len))
	if q.flags&cmdFlagReqOne != 0 {
		segs = segs[:1]
	}
	const maxDescriptors = 1 << 16 // "SHOULD NOT send more than 2^20"
	if len(segs) > maxDescriptors {
		segs = segs[:maxDescriptors]
	}
	p := make([]byte, 0, 4+8*len(segs))
	p = binary.BigEndian.AppendUint32(p, baseAllocationID)
	for _, s := range segs {
		var st uint32
		if s.hole {
			st = stateHole | stateZero
		}
		p = binary.BigEndian.AppendUint32(p, uint32(s.len))
		p = binary.BigEndian.AppendUint32(p, st)
	}
	t.chunk(q, replyFlagDone, replyBlockStatus, p)
}

// fail answers a request with an error: an NBD_REPLY_TYPE_ERROR chunk with
// a message when structured replies are on ("The server SHOULD prefer
// sending errors via a structured reply"), a simple reply otherwise.
func (t *transmission) fail(q request, code uint32, msg string) {
	if !t.structured {
		t.simple(q, code, nil)
		return
	}
	msg = truncateMsg(msg)
	p := binary.BigEndian.AppendUint32(nil, code)
	p = binary.BigEndian.AppendUint16(p, uint16(len(msg)))
	p = append(p, msg...)
	t.chunk(q, replyFlagDone, replyError, p)
}

// ok answers a request without data successfully.
func (t *transmission) ok(q request) {
	if t.structured {
		t.none(q)
		return
	}
	t.simple(q, 0, nil)
}

func (t *transmission) none(q request) bool {
	return t.chunk(q, replyFlagDone, replyNone, nil)
}

func (t *transmission) holeChunk(q request, s segment, last bool) bool {
	p := binary.BigEndian.AppendUint64(nil, uint64(s.off))
	p = binary.BigEndian.AppendUint32(p, uint32(s.len))
	return t.chunk(q, doneIf(last), replyOffsetHole, p)
}

func (t *transmission) dataChunk(q request, off int64, data [][]byte, last bool) bool {
	return t.chunk(q, doneIf(last), replyOffsetData, binary.BigEndian.AppendUint64(nil, uint64(off)), data...)
}

func doneIf(last bool) uint16 {
	if last {
		return replyFlagDone
	}
	return 0
}

// simple sends a simple reply ("Simple reply message").
func (t *transmission) simple(q request, code uint32, data [][]byte) bool {
	var hdr [16]byte
	binary.BigEndian.PutUint32(hdr[0:], simpleMagic)
	binary.BigEndian.PutUint32(hdr[4:], code)
	binary.BigEndian.PutUint64(hdr[8:], q.cookie)
	return t.send(append(net.Buffers{hdr[:]}, data...))
}

// chunk sends a structured reply chunk ("Structured reply chunk message")
// whose payload is head then data.
func (t *transmission) chunk(q request, flags, typ uint16, head []byte, data ...[]byte) bool {
	size := len(head)
	for _, d := range data {
		size += len(d)
	}
	var hdr [20]byte
	binary.BigEndian.PutUint32(hdr[0:], structuredMagic)
	binary.BigEndian.PutUint16(hdr[4:], flags)
	binary.BigEndian.PutUint16(hdr[6:], typ)
	binary.BigEndian.PutUint64(hdr[8:], q.cookie)
	binary.BigEndian.PutUint32(hdr[16:], uint32(size))
	return t.send(append(net.Buffers{hdr[:], head}, data...))
}

// send writes one message whole: on a plain socket in one writev, so that
// data lent by the source goes to the kernel without being copied here
// first; through TLS gathered into records and flushed. After a failed
// write the connection is closed, which ends the reading loop.
func (t *transmission) send(parts net.Buffers) bool {
	t.wmu.Lock()
	defer t.wmu.Unlock()
	if t.broken {
		return false
	}
	var err error
	if t.w == nil {
		_, err = parts.WriteTo(t.conn)
	} else {
		for _, p := range parts {
			if _, err = t.w.Write(p); err != nil {
				break
			}
		}
		if err == nil {
			err = t.w.Flush()
		}
	}
	if err != nil {
		t.broken = true
		t.conn.Close()
		return false
	}
	return true
}

// truncateMsg keeps an error message within the protocol's string limit.
func truncateMsg(s string) string {
	if len(s) > maxErrorMessageSize {
		return s[:maxErrorMessageSize]
	}
	return s
}

package nbd

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/xva-tools/xva/disk"
)

// client is a hand-written NBD client for what real clients never send.
type client struct {
	conn net.Conn
}

// dialHello connects to an address spec and does the fixed newstyle
// greeting with NBD_FLAG_C_FIXED_NEWSTYLE|NBD_FLAG_C_NO_ZEROES.
func dialHello(t testing.TB, spec string) *client {
	t.Helper()
	network, addr, _ := strings.Cut(spec, ":")
	conn, err := net.Dial(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	var hello [18]byte
	if _, err := io.ReadFull(conn, hello[:]); err != nil {
		t.Fatal(err)
	}
	if binary.BigEndian.Uint64(hello[0:]) != nbdMagic || binary.BigEndian.Uint64(hello[8:]) != optMagic ||
		binary.BigEndian.Uint16(hello[16:]) != flagFixedNewstyle|flagNoZeroes {
		t.Fatalf("greeting %x", hello)
	}
	conn.Write(binary.BigEndian.AppendUint32(nil, flagFixedNewstyle|flagNoZeroes))
	return &client{conn}
}

func (c *client) sendOption(opt uint32, length uint32, data []byte) {
	p := binary.BigEndian.AppendUint64(nil, optMagic)
	p = binary.BigEndian.AppendUint32(p, opt)
	p = binary.BigEndian.AppendUint32(p, length)
	c.conn.Write(append(p, data...))
}

// reply reads one option reply: its type and data (type 0 on an error).
func (c *client) reply() (uint32, []byte) {
	var h [20]byte
	if _, err := io.ReadFull(c.conn, h[:]); err != nil {
		return 0, nil
	}
	data := make([]byte, binary.BigEndian.Uint32(h[16:]))
	io.ReadFull(c.conn, data)
	return binary.BigEndian.Uint32(h[12:]), data
}

// option sends an option and returns its final reply.
func (c *client) option(opt uint32, data []byte) (uint32, []byte) {
	c.sendOption(opt, uint32(len(data)), data)
	for {
		typ, d := c.reply()
		if typ != repServer && typ != repInfo && typ != repMetaContext {
			return typ, d
		}
	}
}

func nameData(name string, tail ...byte) []byte {
	p := binary.BigEndian.AppendUint32(nil, uint32(len(name)))
	return append(append(p, name...), tail...)
}

// goExport negotiates structured replies and base:allocation if asked,
// then NBD_OPT_GO.
func (c *client) goExport(t testing.TB, name string, structured, meta bool) {
	t.Helper()
	if structured {
		if typ, _ := c.option(optStructuredReply, nil); typ != repAck {
			t.Fatalf("NBD_OPT_STRUCTURED_REPLY: %#x", typ)
		}
	}
	if meta {
		q := binary.BigEndian.AppendUint32(nil, 1)
		q = binary.BigEndian.AppendUint32(q, uint32(len(baseAllocation)))
		q = append(q, baseAllocation...)
		c.sendOption(optSetMetaContext, uint32(len(nameData(name, q...))), nameData(name, q...))
		typ, d := c.reply()
		if typ != repMetaContext || binary.BigEndian.Uint32(d) != baseAllocationID || string(d[4:]) != baseAllocation {
			t.Fatalf("NBD_OPT_SET_META_CONTEXT: %#x %q", typ, d)
		}
		if typ, _ := c.reply(); typ != repAck {
			t.Fatalf("NBD_OPT_SET_META_CONTEXT: final %#x", typ)
		}
	}
	if typ, d := c.option(optGo, nameData(name, 0, 0)); typ != repAck {
		t.Fatalf("NBD_OPT_GO %s: %#x %s", name, typ, d)
	}
}

func (c *client) request(flags, typ uint16, cookie, off uint64, n uint32) {
	p := binary.BigEndian.AppendUint32(nil, requestMagic)
	p = binary.BigEndian.AppendUint16(p, flags)
	p = binary.BigEndian.AppendUint16(p, typ)
	p = binary.BigEndian.AppendUint64(p, cookie)
	p = binary.BigEndian.AppendUint64(p, off)
	p = binary.BigEndian.AppendUint32(p, n)
	c.conn.Write(p)
}

// chunk is a structured reply chunk.
type chunk struct {
	flags, typ uint16
	cookie     uint64
	data       []byte
}

func (c *client) chunk(t testing.TB) chunk {
	t.Helper()
	var h [20]byte
	if _, err := io.ReadFull(c.conn, h[:]); err != nil {
		t.Fatalf("reading a reply: %v", err)
	}
	if binary.BigEndian.Uint32(h[0:]) != structuredMagic {
		t.Fatalf("not a structured reply: %x", h)
	}
	data := make([]byte, binary.BigEndian.Uint32(h[16:]))
	if _, err := io.ReadFull(c.conn, data); err != nil {
		t.Fatal(err)
	}
	return chunk{binary.BigEndian.Uint16(h[4:]), binary.BigEndian.Uint16(h[6:]), binary.BigEndian.Uint64(h[8:]), data}
}

// chunks reads the chunks of one reply, to the one marked done.
func (c *client) chunks(t testing.TB) []chunk {
	t.Helper()
	var out []chunk
	for {
		ch := c.chunk(t)
		out = append(out, ch)
		if ch.flags&replyFlagDone != 0 {
			return out
		}
	}
}

func errorOf(ch chunk) uint32 {
	if ch.typ&(1<<15) == 0 || len(ch.data) < 4 {
		return 0
	}
	return binary.BigEndian.Uint32(ch.data)
}

// read reads a range with structured replies and reassembles it.
func (c *client) read(t testing.TB, flags uint16, off uint64, n uint32) []byte {
	t.Helper()
	c.request(flags, cmdRead, 7, off, n)
	out := make([]byte, n)
	for _, ch := range c.chunks(t) {
		switch ch.typ {
		case replyOffsetData:
			at := binary.BigEndian.Uint64(ch.data) - off
			copy(out[at:], ch.data[8:])
		case replyOffsetHole, replyNone:
		default:
			t.Fatalf("chunk type %#x error %d", ch.typ, errorOf(ch))
		}
	}
	return out
}

// simple reads a simple reply's header: its error and cookie.
func (c *client) simple(t testing.TB) (uint32, uint64) {
	t.Helper()
	var h [16]byte
	if _, err := io.ReadFull(c.conn, h[:]); err != nil {
		t.Fatalf("reading a reply: %v", err)
	}
	if binary.BigEndian.Uint32(h[0:]) != simpleMagic {
		t.Fatalf("not a simple reply: %x", h)
	}
	return binary.BigEndian.Uint32(h[4:]), binary.BigEndian.Uint64(h[8:])
}

func expectEOF(t testing.TB, c *client) {
	t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	// A reset is a close too: the server closed with the client's bytes
	// unread.
	if n, err := io.Copy(io.Discard, c.conn); (err != nil && !errors.Is(err, syscall.ECONNRESET)) || n != 0 {
		t.Errorf("the server did not close the connection: %d bytes, %v", n, err)
	}
}

func TestOptionTooLong(t *testing.T) {
	addr := serve(t, &Server{Exports: testExports()}, unixSpec(t))
	c := dialHello(t, addr)
	c.sendOption(optGo, 1<<30, nil)
	if typ, _ := c.reply(); typ != repErrTooBig {
		t.Errorf("reply %#x, want NBD_REP_ERR_TOO_BIG", typ)
	}
	expectEOF(t, c)
}

func TestUnknownOptionAndFlags(t *testing.T) {
	addr := serve(t, &Server{Exports: testExports()}, unixSpec(t))
	c := dialHello(t, addr)
	if typ, _ := c.option(99, []byte("abc")); typ != repErrUnsup {
		t.Errorf("unknown option: %#x, want NBD_REP_ERR_UNSUP", typ)
	}
	if typ, _ := c.option(optStartTLS, nil); typ != repErrUnsup {
		t.Errorf("STARTTLS without TLS: %#x, want NBD_REP_ERR_UNSUP", typ)
	}
	// Still in step: NBD_OPT_LIST, then malformed GOs, an unknown name.
	c.sendOption(optList, 0, nil)
	var names []string
	for {
		typ, d := c.reply()
		if typ != repServer {
			if typ != repAck {
				t.Fatalf("NBD_OPT_LIST ended with %#x", typ)
			}
			break
		}
		n := binary.BigEndian.Uint32(d)
		names = append(names, string(d[4:4+n])+"|"+string(d[4+n:]))
	}
	if got := strings.Join(names, ","); got != "xvda|first disk,xvdb|,xvdc|odd size" {
		t.Errorf("NBD_OPT_LIST: %s", got)
	}
	for _, bad := range [][]byte{{0, 0}, nameData("xvda"), nameData("xvda", 0, 2, 0, 1), {0, 0, 0, 9, 0, 0}} {
		if typ, _ := c.option(optGo, bad); typ != repErrInvalid {
			t.Errorf("NBD_OPT_GO %x: %#x, want NBD_REP_ERR_INVALID", bad, typ)
		}
	}
	if typ, _ := c.option(optInfo, nameData("nope", 0, 0)); typ != repErrUnknown {
		t.Errorf("NBD_OPT_INFO of an unknown export: %#x, want NBD_REP_ERR_UNKNOWN", typ)
	}
	// Meta contexts need structured replies first.
	if typ, _ := c.option(optSetMetaContext, nameData("xvda", 0, 0, 0, 0)); typ != repErrInvalid {
		t.Errorf("SET_META_CONTEXT before STRUCTURED_REPLY: %#x", typ)
	}
	c.option(optStructuredReply, nil)
	// LIST_META_CONTEXT with no query lists base:allocation.
	c.sendOption(optListMetaContext, 8+4, nameData("xvda", 0, 0, 0, 0))
	if typ, d := c.reply(); typ != repMetaContext || string(d[4:]) != baseAllocation {
		t.Errorf("LIST_META_CONTEXT: %#x %q", typ, d)
	}
	if typ, _ := c.reply(); typ != repAck {
		t.Errorf("LIST_META_CONTEXT: final %#x", typ)
	}
	// INFO with name, description and block size.
	info := nameData("xvdc", 0, 3, 0, 1, 0, 2, 0, 3)
	c.sendOption(optInfo, uint32(len(info)), info)
	infos := map[uint16][]byte{}
	for {
		typ, d := c.reply()
		if typ != repInfo {
			if typ != repAck {
				t.Fatalf("NBD_OPT_INFO ended with %#x", typ)
			}
			break
		}
		infos[binary.BigEndian.Uint16(d)] = d[2:]
	}
	if e := infos[infoExport]; len(e) != 10 || binary.BigEndian.Uint64(e) != mib+7 ||
		binary.BigEndian.Uint16(e[8:]) != flagHasFlags|flagReadOnly|flagCanMultiConn|flagSendDF {
		t.Errorf("NBD_INFO_EXPORT %x", e)
	}
	if string(infos[infoName]) != "xvdc" || string(infos[infoDescription]) != "odd size" {
		t.Errorf("NBD_INFO_NAME %q, NBD_INFO_DESCRIPTION %q", infos[infoName], infos[infoDescription])
	}
	if b := infos[infoBlockSize]; len(b) != 12 || binary.BigEndian.Uint32(b) != 1 ||
		binary.BigEndian.Uint32(b[4:]) != 4096 || binary.BigEndian.Uint32(b[8:]) != 32<<20 {
		t.Errorf("NBD_INFO_BLOCK_SIZE %x", b)
	}
	if typ, _ := c.option(optAbort, nil); typ != repAck {
		t.Errorf("NBD_OPT_ABORT: %#x", typ)
	}
	expectEOF(t, c)

	// Unknown client flags: the connection is dropped.
	network, a, _ := strings.Cut(addr, ":")
	conn, err := net.Dial(network, a)
	if err != nil {
		t.Fatal(err)
	}
	io.ReadFull(conn, make([]byte, 18))
	conn.Write([]byte{0, 0, 0, 4})
	expectEOF(t, &client{conn})
	conn.Close()
}

// TestExportName: the old way to end the handshake, with and without the
// 124 zeroes; an unknown name drops the connection.
func TestExportName(t *testing.T) {
	addr := serve(t, &Server{Exports: testExports()}, unixSpec(t))
	c := dialHello(t, addr)
	c.sendOption(optExportName, 4, []byte("xvdc"))
	var info [10]byte
	io.ReadFull(c.conn, info[:])
	if binary.BigEndian.Uint64(info[:]) != mib+7 || binary.BigEndian.Uint16(info[8:]) != flagHasFlags|flagReadOnly|flagCanMultiConn {
		t.Errorf("export info %x", info)
	}
	c.request(0, cmdRead, 1, 0, 16)
	if e, cookie := c.simple(t); e != 0 || cookie != 1 {
		t.Errorf("read: error %d cookie %d", e, cookie)
	}

	network, a, _ := strings.Cut(addr, ":")
	conn, _ := net.Dial(network, a)
	defer conn.Close()
	io.ReadFull(conn, make([]byte, 18))
	conn.Write([]byte{0, 0, 0, 1}) // fixed newstyle, zeroes wanted
	c2 := &client{conn}
	c2.sendOption(optExportName, 4, []byte("xvdb"))
	if n, _ := io.ReadFull(conn, make([]byte, 134)); n != 134 {
		t.Errorf("%d bytes after NBD_OPT_EXPORT_NAME, want 134", n)
	}
	c3 := dialHello(t, addr)
	c3.sendOption(optExportName, 4, []byte("nope"))
	expectEOF(t, c3)
}

// TestCommands: reads past the end, too long, with DF, block status with
// and without REQ_ONE, writes refused in step, unknown commands.
func TestCommands(t *testing.T) {
	bothWays(t, testCommands)
}

func testCommands(t *testing.T, exports []Export) {
	a := memOf(exports[0].Source)
	size := uint64(a.Size())
	addr := serve(t, &Server{Exports: exports}, unixSpec(t))

	c := dialHello(t, addr)
	c.goExport(t, "xvda", true, true)

	// A read over data and holes, fragmented: hole chunks for holes.
	off, n := uint64(mib-4096), uint32(mib)
	var holes int
	c.request(0, cmdRead, 2, off, n)
	got := make([]byte, n)
	for _, ch := range c.chunks(t) {
		switch ch.typ {
		case replyOffsetData:
			copy(got[binary.BigEndian.Uint64(ch.data)-off:], ch.data[8:])
		case replyOffsetHole:
			holes++
		default:
			t.Fatalf("chunk %#x", ch.typ)
		}
	}
	if !bytes.Equal(got, a.data[off:off+uint64(n)]) || holes != 1 {
		t.Errorf("fragmented read: bytes equal %v, %d hole chunks", bytes.Equal(got, a.data[off:off+uint64(n)]), holes)
	}
	// The same with DF: one data chunk, zeroes included.
	c.request(cmdFlagDF, cmdRead, 3, off, n)
	chs := c.chunks(t)
	if len(chs) != 1 || chs[0].typ != replyOffsetData || !bytes.Equal(chs[0].data[8:], a.data[off:off+uint64(n)]) {
		t.Errorf("DF read: %d chunks, first type %#x", len(chs), chs[0].typ)
	}
	// A hole only, with DF: one hole chunk.
	c.request(cmdFlagDF, cmdRead, 4, 2*mib+4096, 4096)
	if chs := c.chunks(t); len(chs) != 1 || chs[0].typ != replyOffsetHole {
		t.Errorf("DF read of a hole: %+v", chs)
	}

	for _, r := range []struct {
		what       string
		flags, typ uint16
		off        uint64
		n          uint32
		want       uint32
	}{
		{"read past the end", 0, cmdRead, size - 10, 20, errInval},
		{"read at an offset past the end", 0, cmdRead, size + 1, 0, errInval},
		{"read at a huge offset", 0, cmdRead, 1<<64 - 1, 2, errInval},
		{"read over the maximum payload", 0, cmdRead, 0, 32<<20 + 1, errInval},
		{"read with REQ_ONE", cmdFlagReqOne, cmdRead, 0, 1, errInval},
		{"block status past the end", 0, cmdBlockStatus, size, 1, errInval},
		{"trim", 0, cmdTrim, 0, 4096, errPerm},
		{"write zeroes", 0, cmdWriteZeroes, 0, 4096, errPerm},
		{"cache", 0, 5, 0, 4096, errInval},
		{"unknown command", 0, 42, 0, 0, errInval},
	} {
		c.request(r.flags, r.typ, 9, r.off, r.n)
		chs := c.chunks(t)
		if len(chs) != 1 || errorOf(chs[0]) != r.want || chs[0].cookie != 9 {
			t.Errorf("%s: %+v, want error %d", r.what, chs, r.want)
		}
	}
	// A write: its payload is skipped, then EPERM; the next request is
	// read in step.
	c.request(0, cmdWrite, 10, 0, 5000)
	c.conn.Write(bytes.Repeat([]byte{0x42}, 5000))
	if chs := c.chunks(t); errorOf(chs[0]) != errPerm {
		t.Errorf("write: %+v", chs)
	}
	if got := c.read(t, 0, 0, 4096); !bytes.Equal(got, a.data[:4096]) {
		t.Error("read after a refused write: bytes differ")
	}

	// Block status: every extent, then REQ_ONE.
	status := func(flags uint16, off uint64, n uint32) []segment {
		t.Helper()
		c.request(flags, cmdBlockStatus, 11, off, n)
		chs := c.chunks(t)
		if len(chs) != 1 || chs[0].typ != replyBlockStatus || binary.BigEndian.Uint32(chs[0].data) != baseAllocationID {
			t.Fatalf("block status: %+v", chs)
		}
		var out []segment
		p := off
		for d := chs[0].data[4:]; len(d) >= 8; d = d[8:] {
			l, st := binary.BigEndian.Uint32(d), binary.BigEndian.Uint32(d[4:])
			out = append(out, segment{int64(p), int64(l), st == stateHole|stateZero})
			p += uint64(l)
		}
		return out
	}
	want := segments(a.extents, 0, a.Size())
	if got := status(0, 0, uint32(size)); !equalSegs(got, want) {
		t.Errorf("block status: %v, want %v", got, want)
	}
	if got := status(cmdFlagReqOne, 0, uint32(size)); !equalSegs(got, want[:1]) {
		t.Errorf("block status REQ_ONE: %v, want %v", got, want[:1])
	}
	if got := status(cmdFlagReqOne, mib+100, 4096); !equalSegs(got, []segment{{mib + 100, 4096, true}}) {
		t.Errorf("block status REQ_ONE in a hole: %v", got)
	}
	if got := status(0, 2*mib-100, 200); !equalSegs(got, []segment{{2*mib - 100, 200, false}}) {
		t.Errorf("block status within data: %v", got)
	}

	// Without structured replies: simple replies, and no block status.
	c2 := dialHello(t, addr)
	c2.goExport(t, "xvdc", false, false)
	c2.request(0, cmdRead, 20, mib, 7)
	if e, cookie := c2.simple(t); e != 0 || cookie != 20 {
		t.Fatalf("simple read: error %d cookie %d", e, cookie)
	}
	tail := make([]byte, 7)
	io.ReadFull(c2.conn, tail)
	if !bytes.Equal(tail, memOf(exports[2].Source).data[mib:]) {
		t.Error("simple read of the last bytes differs")
	}
	c2.request(0, cmdRead, 21, mib, 8)
	if e, _ := c2.simple(t); e != errInval {
		t.Errorf("simple read past the end: error %d", e)
	}
	c2.request(cmdFlagDF, cmdRead, 22, 0, 8)
	if e, _ := c2.simple(t); e != errInval {
		t.Errorf("DF without structured replies: error %d", e)
	}
	c2.request(0, cmdBlockStatus, 23, 0, 8)
	if e, _ := c2.simple(t); e != errInval {
		t.Errorf("block status without a context: error %d", e)
	}
}

func equalSegs(a, b []segment) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestDisconnectInFlight: NBD_CMD_DISC after requests still being served;
// every one is answered before the server closes; several replies are in
// flight at once and may come out of order.
func TestDisconnectInFlight(t *testing.T) {
	src := newMem(mib, disk.Extent{Off: 0, Len: mib})
	src.gate = make(chan struct{})
	addr := serve(t, &Server{Exports: []Export{{Name: "d", Source: src}}, MaxInFlight: 4}, unixSpec(t))
	c := dialHello(t, addr)
	c.goExport(t, "d", true, false)
	const n = 10
	for i := range n {
		c.request(0, cmdRead, uint64(100+i), uint64(i)*4096, 4096)
	}
	c.request(0, cmdDisc, 0, 0, 0)
	time.Sleep(50 * time.Millisecond)
	close(src.gate)
	seen := map[uint64]bool{}
	for range n {
		ch := c.chunks(t)
		last := ch[len(ch)-1]
		i := last.cookie - 100
		if last.typ != replyOffsetData || !bytes.Equal(last.data[8:], src.data[i*4096:(i+1)*4096]) {
			t.Errorf("reply to %d: %+v", last.cookie, last.typ)
		}
		seen[last.cookie] = true
	}
	if len(seen) != n {
		t.Errorf("%d distinct replies, want %d", len(seen), n)
	}
	expectEOF(t, c)
}

// TestShutdown: cancelling Serve's context closes open connections and
// returns nil.
func TestShutdown(t *testing.T) {
	l, addr, err := Listen(unixSpec(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- (&Server{Exports: testExports()}).Serve(ctx, l) }()
	c := dialHello(t, addr)
	c.goExport(t, "xvda", true, false)
	c2 := dialHello(t, addr) // still haggling
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return")
	}
	expectEOF(t, c)
	expectEOF(t, c2)
}

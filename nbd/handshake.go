package nbd

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
)

// errHangUp ends a handshake with a hard disconnect and nothing to log.
var errHangUp = errors.New("nbd: client ended the handshake")

// handshake is the option haggling of one connection ("Fixed newstyle
// negotiation").
type handshake struct {
	s       *Server
	conn    net.Conn // the socket, or the TLS connection over it after STARTTLS
	exports map[string]*export
	order   []*export

	noZeroes   bool
	tlsDone    bool
	structured bool
	metaSet    bool   // NBD_OPT_SET_META_CONTEXT selected base:allocation...
	metaExport string // ...for this export
}

// run does the handshake. It returns the transmission phase to run, or nil
// and an error when the session ends during the handshake.
func (h *handshake) run(ctx context.Context) (*transmission, error) {
	// "Newstyle negotiation": NBDMAGIC, IHAVEOPT, the handshake flags.
	var hello [18]byte
	binary.BigEndian.PutUint64(hello[0:], nbdMagic)
	binary.BigEndian.PutUint64(hello[8:], optMagic)
	binary.BigEndian.PutUint16(hello[16:], flagFixedNewstyle|flagNoZeroes)
	if _, err := h.conn.Write(hello[:]); err != nil {
		return nil, err
	}
	var cf [4]byte
	if _, err := io.ReadFull(h.conn, cf[:]); err != nil {
		return nil, err
	}
	// "Client flags": the server MUST drop the connection on a flag it
	// does not know. A client without NBD_FLAG_C_FIXED_NEWSTYLE is served
	// fixed newstyle all the same (the server MAY), but never TLS ("The
	// server MUST operate in NOTLS mode unless...": it then gets
	// NBD_REP_ERR_TLS_REQD and nothing else).
	flags := binary.BigEndian.Uint32(cf[:])
	if flags&^(flagFixedNewstyle|flagNoZeroes) != 0 {
		return nil, fmt.Errorf("nbd: unknown client flags %#x", flags)
	}
	h.noZeroes = flags&flagNoZeroes != 0

	buf := make([]byte, 0, 512)
	for {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		var hdr [16]byte
		if _, err := io.ReadFull(h.conn, hdr[:]); err != nil {
			return nil, err
		}
		if binary.BigEndian.Uint64(hdr[0:]) != optMagic {
			return nil, errors.New("nbd: bad option magic")
		}
		opt := binary.BigEndian.Uint32(hdr[8:])
		n := binary.BigEndian.Uint32(hdr[12:])
		if n > maxOptionLen {
			// "Termination of the session during option haggling": a
			// server MAY hard-disconnect a client whose behaviour is a
			// denial of service; say why first.
			h.reply(opt, repErrTooBig, []byte("option data too long"))
			return nil, fmt.Errorf("nbd: option %d of %d bytes", opt, n)
		}
		if cap(buf) < int(n) {
			buf = make([]byte, n)
		}
		data := buf[:n]
		if _, err := io.ReadFull(h.conn, data); err != nil {
			return nil, err
		}
		t, err := h.option(ctx, opt, data)
		if t != nil || err != nil {
			return t, err
		}
	}
}

// option answers one option; it returns a transmission phase when the
// option ends the handshake.
func (h *handshake) option(ctx context.Context, opt uint32, data []byte) (*transmission, error) {
	if h.s.TLSConfig != nil && !h.tlsDone {
		// "FORCEDTLS mode".
		switch opt {
		case optStartTLS:
			if len(data) != 0 {
				return nil, h.reply(opt, repErrInvalid, []byte("STARTTLS takes no data"))
			}
			if err := h.reply(opt, repAck, nil); err != nil {
				return nil, err
			}
			tc := tls.Server(h.conn, h.s.TLSConfig)
			if err := tc.HandshakeContext(ctx); err != nil {
				return nil, fmt.Errorf("nbd: TLS handshake: %w", err)
			}
			// "NBD_OPT_STARTTLS": no negotiation state survives it.
			h.conn, h.tlsDone = tc, true
			h.structured, h.metaSet, h.metaExport = false, false, ""
			return nil, nil
		case optAbort:
			h.reply(opt, repAck, nil)
			return nil, errHangUp
		case optExportName:
			// It cannot be refused with an error: hang up.
			return nil, errors.New("nbd: NBD_OPT_EXPORT_NAME before TLS")
		}
		return nil, h.reply(opt, repErrTLSReqd, []byte("TLS is required: use NBD_OPT_STARTTLS"))
	}

	switch opt {
	case optExportName:
		// "NBD_OPT_EXPORT_NAME": no error reply is possible; an unknown
		// name ends the session.
		e := h.lookup(string(data))
		if e == nil {
			return nil, fmt.Errorf("nbd: NBD_OPT_EXPORT_NAME of unknown export %q", data)
		}
		t := h.transmission(e)
		msg := make([]byte, 10, 134)
		binary.BigEndian.PutUint64(msg[0:], uint64(e.Source.Size()))
		binary.BigEndian.PutUint16(msg[8:], t.flags)
		if !h.noZeroes {
			msg = msg[:134]
		}
		if _, err := h.conn.Write(msg); err != nil {
			return nil, err
		}
		return t, nil

	case optAbort:
		// "NBD_OPT_ABORT": the server MUST reply with NBD_REP_ACK (data,
		// if any, ignored).
		h.reply(opt, repAck, nil)
		return nil, errHangUp

	case optList:
		if len(data) != 0 {
			return nil, h.reply(opt, repErrInvalid, []byte("NBD_OPT_LIST takes no data"))
		}
		// "NBD_REP_SERVER": the name's length, the name, then a string for
		// display: the description.
		for _, e := range h.order {
			p := binary.BigEndian.AppendUint32(nil, uint32(len(e.Name)))
			p = append(p, e.Name...)
			p = append(p, e.Description...)
			if err := h.reply(opt, repServer, p); err != nil {
				return nil, err
			}
		}
		return nil, h.reply(opt, repAck, nil)

	case optStartTLS:
		if h.tlsDone {
			return nil, h.reply(opt, repErrInvalid, []byte("TLS is already running"))
		}
		// "NOTLS mode": NBD_REP_ERR_UNSUP.
		return nil, h.reply(opt, repErrUnsup, []byte("TLS is not configured"))

	case optInfo, optGo:
		return h.infoGo(opt, data)

	case optStructuredReply:
		if len(data) != 0 {
			return nil, h.reply(opt, repErrInvalid, []byte("NBD_OPT_STRUCTURED_REPLY takes no data"))
		}
		h.structured = true
		return nil, h.reply(opt, repAck, nil)

	case optListMetaContext, optSetMetaContext:
		return nil, h.metaContext(opt, data)
	}
	return nil, h.reply(opt, repErrUnsup, fmt.Appendf(nil, "option %d is not supported", opt))
}

// lookup finds an export; the empty name ("default export") is the export
// named "" if there is one, else the only export if there is one.
func (h *handshake) lookup(name string) *export {
	if e, ok := h.exports[name]; ok {
		return e
	}
	if name == "" && len(h.order) == 1 {
		return h.order[0]
	}
	return nil
}

// flags are the transmission flags ("Transmission flags"): read-only,
// served without a cache of the server's, so multi-connection safe;
// NBD_FLAG_SEND_DF only with structured replies, as it MUST be.
func (h *handshake) transmission(e *export) *transmission {
	f := uint16(flagHasFlags | flagReadOnly | flagCanMultiConn)
	if h.structured {
		f |= flagSendDF
	}
	return &transmission{
		s: h.s, mem: h.s.memBudget(), conn: h.conn, e: e, flags: f,
		structured: h.structured,
		meta:       h.structured && h.metaSet && h.lookup(h.metaExport) == e,
	}
}

// infoGo answers NBD_OPT_INFO and NBD_OPT_GO ("NBD_OPT_INFO (6) and
// NBD_OPT_GO (7)").
func (h *handshake) infoGo(opt uint32, data []byte) (*transmission, error) {
	// 32-bit name length (no larger than the data length - 6), the name,
	// a 16-bit count of information requests, 16 bits each.
	if len(data) < 6 {
		return nil, h.reply(opt, repErrInvalid, []byte("option data too short"))
	}
	nameLen := binary.BigEndian.Uint32(data)
	if uint64(nameLen) > uint64(len(data)-6) {
		return nil, h.reply(opt, repErrInvalid, []byte("export name longer than the option"))
	}
	name := string(data[4 : 4+nameLen])
	rest := data[4+nameLen:]
	count := int(binary.BigEndian.Uint16(rest))
	if len(rest) != 2+2*count {
		return nil, h.reply(opt, repErrInvalid, []byte("information request count does not match the option length"))
	}
	var wantName, wantDesc, wantBlock bool
	for i := range count {
		switch binary.BigEndian.Uint16(rest[2+2*i:]) {
		case infoName:
			wantName = true
		case infoDescription:
			wantDesc = true
		case infoBlockSize:
			wantBlock = true
		}
	}
	e := h.lookup(name)
	if e == nil {
		return nil, h.reply(opt, repErrUnknown, fmt.Appendf(nil, "no export named %q", truncate(name)))
	}
	t := h.transmission(e)
	// NBD_INFO_EXPORT always: size and transmission flags.
	p := binary.BigEndian.AppendUint16(nil, infoExport)
	p = binary.BigEndian.AppendUint64(p, uint64(e.Source.Size()))
	p = binary.BigEndian.AppendUint16(p, t.flags)
	if err := h.reply(opt, repInfo, p); err != nil {
		return nil, err
	}
	if wantName {
		p := append(binary.BigEndian.AppendUint16(nil, infoName), e.Name...)
		if err := h.reply(opt, repInfo, p); err != nil {
			return nil, err
		}
	}
	if wantDesc {
		p := append(binary.BigEndian.AppendUint16(nil, infoDescription), e.Description...)
		if err := h.reply(opt, repInfo, p); err != nil {
			return nil, err
		}
	}
	if wantBlock {
		// "Size constraints": the defaults.
		p := binary.BigEndian.AppendUint16(nil, infoBlockSize)
		p = binary.BigEndian.AppendUint32(p, minBlock)
		p = binary.BigEndian.AppendUint32(p, preferred)
		p = binary.BigEndian.AppendUint32(p, maxPayload)
		if err := h.reply(opt, repInfo, p); err != nil {
			return nil, err
		}
	}
	if err := h.reply(opt, repAck, nil); err != nil {
		return nil, err
	}
	if opt == optGo {
		return t, nil
	}
	return nil, nil
}

// metaContext answers NBD_OPT_LIST_META_CONTEXT and
// NBD_OPT_SET_META_CONTEXT ("Metadata querying", "The base: metadata
// namespace"): base:allocation is the only context.
func (h *handshake) metaContext(opt uint32, data []byte) error {
	if opt == optSetMetaContext {
		// "Issuing this command replaces all previously-set metadata
		// contexts (including when this command fails)".
		h.metaSet, h.metaExport = false, ""
	}
	if !h.structured {
		return h.reply(opt, repErrInvalid, []byte("negotiate structured replies first"))
	}
	// Export name (32-bit length), a 32-bit count of queries, each a
	// 32-bit length and a string; reading past the option is invalid.
	bad := func() error { return h.reply(opt, repErrInvalid, []byte("malformed metadata context request")) }
	str := func(p []byte) (string, []byte, bool) {
		if len(p) < 4 {
			return "", nil, false
		}
		n := binary.BigEndian.Uint32(p)
		if uint64(n) > uint64(len(p)-4) {
			return "", nil, false
		}
		return string(p[4 : 4+n]), p[4+n:], true
	}
	name, rest, ok := str(data)
	if !ok || len(rest) < 4 {
		return bad()
	}
	count := binary.BigEndian.Uint32(rest)
	rest = rest[4:]
	queries := make([]string, 0, min(count, 64))
	for range count {
		var q string
		if q, rest, ok = str(rest); !ok {
			return bad()
		}
		queries = append(queries, q)
	}
	if len(rest) != 0 {
		return bad()
	}
	e := h.lookup(name)
	if e == nil {
		return h.reply(opt, repErrUnknown, fmt.Appendf(nil, "no export named %q", truncate(name)))
	}
	match := false
	for _, q := range queries {
		// "base:" is a wildcard for listing only; unknown leaves and
		// namespaces are ignored.
		if q == baseAllocation || (q == "base:" && opt == optListMetaContext) {
			match = true
		}
	}
	if len(queries) == 0 && opt == optListMetaContext {
		match = true // zero queries: every context there is
	}
	if match {
		id := uint32(0) // "reserved and SHOULD be set to zero" when listing
		if opt == optSetMetaContext {
			id = baseAllocationID
			h.metaSet, h.metaExport = true, name
		}
		p := append(binary.BigEndian.AppendUint32(nil, id), baseAllocation...)
		if err := h.reply(opt, repMetaContext, p); err != nil {
			return err
		}
	}
	return h.reply(opt, repAck, nil)
}

// reply sends an option reply ("Fixed newstyle negotiation").
func (h *handshake) reply(opt, typ uint32, data []byte) error {
	msg := make([]byte, 20, 20+len(data))
	binary.BigEndian.PutUint64(msg[0:], replMagic)
	binary.BigEndian.PutUint32(msg[8:], opt)
	binary.BigEndian.PutUint32(msg[12:], typ)
	binary.BigEndian.PutUint32(msg[16:], uint32(len(data)))
	_, err := h.conn.Write(append(msg, data...))
	return err
}

// truncate keeps a client's string short enough to echo in a message.
func truncate(s string) string {
	if len(s) > 256 {
		return s[:256] + "..."
	}
	return s
}

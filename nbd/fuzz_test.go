package nbd

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/xva-tools/xva/disk"
)

// fuzzSeed is a client's side of a session: greeting flags, options, then
// requests.
func fuzzSeed(structured bool, cmds ...[]byte) []byte {
	p := binary.BigEndian.AppendUint32(nil, flagFixedNewstyle|flagNoZeroes)
	opt := func(o uint32, data []byte) {
		p = binary.BigEndian.AppendUint64(p, optMagic)
		p = binary.BigEndian.AppendUint32(p, o)
		p = binary.BigEndian.AppendUint32(p, uint32(len(data)))
		p = append(p, data...)
	}
	opt(optList, nil)
	if structured {
		opt(optStructuredReply, nil)
		q := binary.BigEndian.AppendUint32(nameData("a"), 1)
		q = binary.BigEndian.AppendUint32(q, uint32(len(baseAllocation)))
		opt(optSetMetaContext, append(q, baseAllocation...))
	}
	opt(optGo, nameData("a", 0, 1, 0, 3))
	for _, c := range cmds {
		p = append(p, c...)
	}
	return p
}

func fuzzReq(flags, typ uint16, off uint64, n uint32) []byte {
	p := binary.BigEndian.AppendUint32(nil, requestMagic)
	p = binary.BigEndian.AppendUint16(p, flags)
	p = binary.BigEndian.AppendUint16(p, typ)
	p = binary.BigEndian.AppendUint64(p, 1)
	p = binary.BigEndian.AppendUint64(p, off)
	return binary.BigEndian.AppendUint32(p, n)
}

// FuzzHandshake feeds arbitrary bytes to a connection as a client's
// greeting, options and requests. The server must not panic, must not
// allocate more than a bound however large the lengths the input claims,
// and must end the connection once the input is over.
func FuzzHandshake(f *testing.F) {
	f.Add([]byte{})
	f.Add(fuzzSeed(false))
	f.Add(fuzzSeed(true, fuzzReq(0, cmdRead, 0, 4096), fuzzReq(cmdFlagDF, cmdRead, 4000, 8192),
		fuzzReq(cmdFlagReqOne, cmdBlockStatus, 0, 1<<20), fuzzReq(0, cmdBlockStatus, 100, 100000),
		fuzzReq(0, cmdWrite, 0, 3), []byte{1, 2, 3}, fuzzReq(0, cmdTrim, 0, 1), fuzzReq(0, cmdDisc, 0, 0)))
	f.Add(fuzzSeed(false, fuzzReq(0, cmdRead, 1<<20-1, 1), fuzzReq(0, cmdWrite, 0, 1<<31)))
	exportName := binary.BigEndian.AppendUint32(nil, flagFixedNewstyle)
	exportName = binary.BigEndian.AppendUint64(exportName, optMagic)
	exportName = binary.BigEndian.AppendUint32(exportName, optExportName)
	exportName = binary.BigEndian.AppendUint32(exportName, 1)
	f.Add(append(append(exportName, 'a'), fuzzReq(0, cmdRead, 0, 512)...))

	src := newMem(1<<20, disk.Extent{Off: 0, Len: 4096}, disk.Extent{Off: 64 << 10, Len: 100000})
	srv := &Server{Exports: []Export{{Name: "a", Source: src}, {Name: "b", Source: newMem(0)}}}
	exports := map[string]*export{}
	var order []*export
	for _, e := range srv.Exports {
		x := &export{Export: e}
		exports[e.Name], order = x, append(order, x)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		server, client := net.Pipe()
		done := make(chan struct{})
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		go func() {
			defer close(done)
			srv.serveConn(context.Background(), server, exports, order)
			server.Close()
		}()
		go io.Copy(io.Discard, client)
		client.Write(in)
		client.Close()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("the server did not end the connection after the input")
		}
		runtime.ReadMemStats(&after)
		// A read is answered from at most its length (here at most the
		// 1 MiB export) plus small buffers; a claimed length is never
		// allocated on the claim alone.
		reqs := uint64(len(in)/28 + 1)
		if got, bound := after.TotalAlloc-before.TotalAlloc, 4<<20+reqs*(1<<20+256<<10); got > bound {
			t.Errorf("%d bytes allocated for %d bytes of input (bound %d)", got, len(in), bound)
		}
	})
}

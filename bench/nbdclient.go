package main

import (
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"slices"
	"time"

	"github.com/xva-tools/xva/fixtures"
)

// NBD protocol numbers (doc/proto.md of NetworkBlockDevice/nbd: "Fixed
// newstyle negotiation", "Option types", "Simple reply message"): just
// what a client of simple replies needs.
const (
	nbdMagic        = 0x4e42444d41474943 // "NBDMAGIC"
	nbdOptMagic     = 0x49484156454f5054 // "IHAVEOPT"
	nbdRepMagic     = 0x3e889045565a9
	nbdRequestMagic = 0x25609513
	nbdReplyMagic   = 0x67446698
	nbdOptGo        = 7
	nbdRepAck       = 1
	nbdCmdRead      = 0
	nbdFixedNoZero  = 3 // NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES
)

// nbdClient is a minimal NBD client: one export, simple replies, one
// request at a time, for timing reads.
type nbdClient struct {
	c    net.Conn
	size int64
}

func dialNBD(socket, export string) (*nbdClient, error) {
	c, err := net.Dial("unix", socket)
	if err != nil {
		return nil, err
	}
	n := &nbdClient{c: c}
	if err := n.handshake(export); err != nil {
		c.Close()
		return nil, err
	}
	return n, nil
}

func (n *nbdClient) handshake(export string) error {
	var hello [18]byte
	if _, err := io.ReadFull(n.c, hello[:]); err != nil {
		return err
	}
	if binary.BigEndian.Uint64(hello[:]) != nbdMagic || binary.BigEndian.Uint64(hello[8:]) != nbdOptMagic {
		return fmt.Errorf("nbd: not a newstyle server")
	}
	msg := binary.BigEndian.AppendUint32(nil, nbdFixedNoZero)
	data := binary.BigEndian.AppendUint32(nil, uint32(len(export)))
	data = append(data, export...)
	data = binary.BigEndian.AppendUint16(data, 0) // no information requests
	msg = binary.BigEndian.AppendUint64(msg, nbdOptMagic)
	msg = binary.BigEndian.AppendUint32(msg, nbdOptGo)
	msg = binary.BigEndian.AppendUint32(msg, uint32(len(data)))
	msg = append(msg, data...)
	if _, err := n.c.Write(msg); err != nil {
		return err
	}
	for {
		var h [20]byte
		if _, err := io.ReadFull(n.c, h[:]); err != nil {
			return err
		}
		typ, length := binary.BigEndian.Uint32(h[12:]), binary.BigEndian.Uint32(h[16:])
		if binary.BigEndian.Uint64(h[:]) != nbdRepMagic || length > 1<<16 {
			return fmt.Errorf("nbd: bad option reply")
		}
		body := make([]byte, length)
		if _, err := io.ReadFull(n.c, body); err != nil {
			return err
		}
		switch {
		case typ == nbdRepAck:
			return nil
		case typ&(1<<31) != 0:
			return fmt.Errorf("nbd: export %q refused (reply %#x)", export, typ)
		case typ == 3 && len(body) >= 10 && binary.BigEndian.Uint16(body) == 0: // NBD_REP_INFO, NBD_INFO_EXPORT
			n.size = int64(binary.BigEndian.Uint64(body[2:]))
		}
	}
}

// read reads length bytes at off and returns how long the request took.
func (n *nbdClient) read(buf []byte, off int64) (time.Duration, error) {
	start := time.Now()
	req := binary.BigEndian.AppendUint32(nil, nbdRequestMagic)
	req = binary.BigEndian.AppendUint16(req, 0)
	req = binary.BigEndian.AppendUint16(req, nbdCmdRead)
	req = binary.BigEndian.AppendUint64(req, 1)
	req = binary.BigEndian.AppendUint64(req, uint64(off))
	req = binary.BigEndian.AppendUint32(req, uint32(len(buf)))
	if _, err := n.c.Write(req); err != nil {
		return 0, err
	}
	var rep [16]byte
	if _, err := io.ReadFull(n.c, rep[:]); err != nil {
		return 0, err
	}
	if binary.BigEndian.Uint32(rep[:]) != nbdReplyMagic || binary.BigEndian.Uint32(rep[4:]) != 0 {
		return 0, fmt.Errorf("nbd: read at %d failed (error %d)", off, binary.BigEndian.Uint32(rep[4:]))
	}
	if _, err := io.ReadFull(n.c, buf); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

// randomReads times count reads of 4 KiB at random aligned offsets inside
// the disk's data (a read of a hole costs nothing) and returns the median
// and 99th percentile.
func (n *nbdClient) randomReads(count int, data []fixtures.Region) (median, p99 time.Duration, err error) {
	rng := rand.New(rand.NewPCG(7, 11))
	buf := make([]byte, 4096)
	var lat []time.Duration
	for range count {
		r := data[rng.IntN(len(data))]
		off := min((r.Off+rng.Int64N(r.Len))/4096*4096, n.size-4096)
		d, err := n.read(buf, off)
		if err != nil {
			return 0, 0, err
		}
		lat = append(lat, d)
	}
	slices.Sort(lat)
	return lat[len(lat)/2], lat[len(lat)*99/100], nil
}

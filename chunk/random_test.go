package chunk

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"testing"
)

// flaky fails its first read, then reads r.
type flaky struct {
	r      io.ReaderAt
	failed bool
}

func (f *flaky) ReadAt(p []byte, off int64) (int, error) {
	if !f.failed {
		f.failed = true
		return 0, errors.New("input/output error")
	}
	return f.r.ReadAt(p, off)
}

// A chunk read at random gives its pieces, each checked; a failed read or
// a cancellation while verifying is not kept (the next Verify tries
// again), an integrity failure is.
func TestChunkIndexAtRandom(t *testing.T) {
	data := testDisk(5<<20+1234, 3)
	var f memFile
	if _, err := WriteGzipChunk(context.Background(), &f, sliceFiller{data, true}, 0, int64(len(data)), GzipOptions{Level: 1}); err != nil {
		t.Fatal(err)
	}
	// Version 2 (what the writer writes): each piece is checked on its own.
	v2 := bytes.NewReader(f.b)
	x2, err := ReadChunkIndex(v2, int64(len(f.b)))
	if err != nil {
		t.Fatal(err)
	}
	for i := range x2.Pieces() {
		p, err := x2.Piece(v2, i)
		if err != nil {
			t.Fatalf("piece %d without Verify: %v", i, err)
		}
		off := int64(i) * x2.PieceSize()
		if !bytes.Equal(p, data[off:off+int64(len(p))]) {
			t.Fatalf("piece %d differs", i)
		}
	}
	hdr := len(gzipHeader(&pieceIndex{pieceSize: PieceSize, length: int64(len(data)), entries: make([]uint32, x2.Pieces())}))
	damaged := bytes.Clone(f.b)
	damaged[int(x2.at[2])+10] ^= 0xff
	d2 := bytes.NewReader(damaged)
	if _, err := x2.Piece(d2, 2); err == nil {
		t.Fatal("a damaged piece was served")
	}
	if _, err := x2.Piece(d2, 3); err != nil {
		t.Fatalf("the piece after a damaged one: %v", err)
	}

	// Version 1 (before per-piece CRCs): the chunk is checked whole first.
	v1 := append(v1Header(x2), f.b[hdr:]...)
	r := bytes.NewReader(v1)
	x, err := ReadChunkIndex(r, int64(len(v1)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := x.Piece(r, 0); err == nil {
		t.Fatal("a version 1 piece served before Verify")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := x.Verify(ctx, r, 2); err == nil {
		t.Fatal("Verify with a cancelled context passed")
	}
	if err := x.Verify(context.Background(), &flaky{r: r}, 1); err == nil {
		t.Fatal("Verify passed a failed read")
	}
	if err := x.Verify(context.Background(), r, 2); err != nil {
		t.Fatalf("Verify after a failed read: %v", err)
	}
	for i := range x.Pieces() {
		p, err := x.Piece(r, i)
		if err != nil {
			t.Fatal(err)
		}
		off := int64(i) * x.PieceSize()
		if !bytes.Equal(p, data[off:off+int64(len(p))]) {
			t.Fatalf("piece %d differs", i)
		}
	}

	bad := bytes.Clone(v1)
	bad[len(bad)-6] ^= 0xff // the trailer's CRC-32
	y, err := ReadChunkIndex(bytes.NewReader(bad), int64(len(bad)))
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := y.Verify(context.Background(), bytes.NewReader(bad), 2); !errors.Is(err, ErrChecksum) {
			t.Fatalf("a bad CRC-32: %v", err)
		}
	}
	if _, err := y.Piece(bytes.NewReader(bad), 0); err == nil {
		t.Fatal("a piece of a chunk that failed Verify was served")
	}
}

// v1Header is the gzip header of a version 1 index (no per-piece CRC-32s)
// with x's pieces, as xva wrote before version 2.
func v1Header(x *ChunkIndex) []byte {
	payload := []byte{1, 0, 0, 0}
	payload = binary.LittleEndian.AppendUint32(payload, uint32(x.pieceSize))
	payload = binary.LittleEndian.AppendUint64(payload, uint64(x.length))
	payload = binary.LittleEndian.AppendUint32(payload, uint32(len(x.entries)))
	for _, e := range x.entries {
		payload = binary.LittleEndian.AppendUint32(payload, e)
	}
	payload = binary.LittleEndian.AppendUint32(payload, crc32.ChecksumIEEE(payload))
	h := []byte{0x1f, 0x8b, 8, 0x04, 0, 0, 0, 0, 0, 0xff}
	h = binary.LittleEndian.AppendUint16(h, uint16(4+len(payload)))
	h = append(h, indexID1, indexID2)
	h = binary.LittleEndian.AppendUint16(h, uint16(len(payload)))
	return append(h, payload...)
}

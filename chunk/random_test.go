package chunk

import (
	"bytes"
	"context"
	"errors"
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
	r := bytes.NewReader(f.b)
	x, err := ReadChunkIndex(r, int64(len(f.b)))
	if err != nil {
		t.Fatal(err)
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

	bad := bytes.Clone(f.b)
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

package disk

import (
	"bytes"
	"context"
	"errors"
	"iter"
	"math/rand/v2"
	"testing"
)

// memSource is a byte slice with an explicit extent list.
type memSource struct {
	b       []byte
	extents []Extent
}

func (m *memSource) Size() int64  { return int64(len(m.b)) }
func (m *memSource) Close() error { return nil }
func (m *memSource) ReadAt(p []byte, off int64) (int, error) {
	return bytes.NewReader(m.b).ReadAt(p, off)
}
func (m *memSource) Extents(context.Context) iter.Seq2[Extent, error] {
	return func(yield func(Extent, error) bool) {
		for _, e := range m.extents {
			if !yield(e, nil) {
				return
			}
		}
	}
}

// memSink records writes into a buffer and checks their order.
type memSink struct {
	t    *testing.T
	b    []byte
	last int64
}

func (m *memSink) Size() int64 { return int64(len(m.b)) }
func (m *memSink) WriteAt(p []byte, off int64) (int, error) {
	if off < m.last {
		m.t.Fatalf("write at %d after a write ending at %d", off, m.last)
	}
	m.last = off + int64(len(p))
	return copy(m.b[off:], p), nil
}
func (m *memSink) Commit() error { return nil }
func (m *memSink) Abort() error  { return nil }

func randomDisk(size int, extents []Extent) *memSource {
	b := make([]byte, size)
	r := rand.New(rand.NewPCG(1, 2))
	for _, e := range extents {
		for i := e.Off; i < e.End(); i++ {
			b[i] = byte(r.Uint32())
		}
	}
	return &memSource{b: b, extents: extents}
}

func TestIsZero(t *testing.T) {
	b := make([]byte, 3<<20+17)
	if !IsZero(b) || !IsZero(nil) {
		t.Fatal("zero buffer reported non-zero")
	}
	for _, i := range []int{0, 1, 1 << 20, 3<<20 + 16} {
		b[i] = 1
		if IsZero(b) {
			t.Fatalf("byte %d set, IsZero still true", i)
		}
		b[i] = 0
	}
}

func TestDataRuns(t *testing.T) {
	b := make([]byte, 5*ZeroBlock)
	b[ZeroBlock+5] = 1   // block 1
	b[4*ZeroBlock-1] = 1 // block 3
	var runs []Extent
	_ = DataRuns(b, 0, func(p []byte, off int64) error {
		runs = append(runs, Extent{off, int64(len(p))})
		return nil
	})
	want := []Extent{{ZeroBlock, ZeroBlock}, {3 * ZeroBlock, ZeroBlock}}
	if len(runs) != len(want) || runs[0] != want[0] || runs[1] != want[1] {
		t.Fatalf("runs %v, want %v", runs, want)
	}
	// Unaligned start: the partial first block is kept as data.
	runs = nil
	_ = DataRuns(make([]byte, 2*ZeroBlock), 100, func(p []byte, off int64) error {
		runs = append(runs, Extent{off, int64(len(p))})
		return nil
	})
	if len(runs) != 2 || runs[0] != (Extent{100, ZeroBlock - 100}) || runs[1] != (Extent{2 * ZeroBlock, 100}) {
		t.Fatalf("unaligned runs %v", runs)
	}
}

func TestReaderVisitsOnlyExtents(t *testing.T) {
	extents := []Extent{{10, 5}, {PieceSize - 3, 10}, {3 * PieceSize, 2*PieceSize + 7}}
	src := randomDisk(6*PieceSize, extents)
	r := NewReader(context.Background(), src)
	defer r.Close()
	sink := &memSink{t: t, b: make([]byte, src.Size())}
	n, err := Copy(context.Background(), sink, r, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n != 5+10+2*PieceSize+7 {
		t.Fatalf("copied %d data bytes", n)
	}
	if !bytes.Equal(sink.b, src.b) {
		t.Fatal("copy differs from source")
	}
}

func TestGather(t *testing.T) {
	extents := []Extent{{100, 50}, {5000, 20000}}
	src := randomDisk(40000, extents)
	r := NewReader(context.Background(), src)
	defer r.Close()
	g := NewGather(r)
	unit := 3000
	buf := make([]byte, unit)
	for off := 0; off < len(src.b); off += unit {
		end := min(off+unit, len(src.b))
		buf = buf[:end-off]
		for i := range buf {
			buf[i] = 0xAA // must be overwritten or reported as hole
		}
		data, err := g.Fill(buf, int64(off))
		if err != nil {
			t.Fatal(err)
		}
		overlaps := false
		for _, e := range extents {
			if e.Off < int64(end) && e.End() > int64(off) {
				overlaps = true
			}
		}
		if data != overlaps {
			t.Fatalf("unit at %d: data=%v, overlaps an extent=%v", off, data, overlaps)
		}
		if data && !bytes.Equal(buf, src.b[off:end]) {
			t.Fatalf("unit at %d differs", off)
		}
	}
}

func TestCopyRefusesSmallTarget(t *testing.T) {
	src := randomDisk(1000, []Extent{{0, 1000}})
	r := NewReader(context.Background(), src)
	defer r.Close()
	if _, err := Copy(context.Background(), &memSink{t: t, b: make([]byte, 999)}, r, nil); err == nil {
		t.Fatal("copy into a smaller sink succeeded")
	}
}

func TestZeroSource(t *testing.T) {
	z := Zero(10)
	b := []byte{1, 2, 3, 4}
	if n, err := z.ReadAt(b, 8); n != 2 || err == nil || b[0] != 0 || b[1] != 0 {
		t.Fatalf("ReadAt past end: n=%d err=%v b=%v", n, err, b)
	}
	for range Extents(context.Background(), z) {
		t.Fatal("zero source has an extent")
	}
}

func TestPipe(t *testing.T) {
	src := randomDisk(5*PieceSize+3, []Extent{{0, 100}, {PieceSize, 3 * PieceSize}, {5 * PieceSize, 3}})
	p := NewPipe(src.Size())
	go func() {
		r := NewReader(context.Background(), src)
		defer r.Close()
		for pc, err := range Pieces(r) {
			if err != nil {
				p.CloseWrite(err)
				return
			}
			if _, err := p.WriteAt(pc.Data, pc.Off); err != nil {
				p.CloseWrite(err)
				return
			}
		}
		p.CloseWrite(nil)
	}()
	sink := &memSink{t: t, b: make([]byte, src.Size())}
	if _, err := Copy(context.Background(), sink, p, nil); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(sink.b, src.b) {
		t.Fatal("data through the pipe differ")
	}
}

func TestPipeReaderStops(t *testing.T) {
	p := NewPipe(100)
	errc := make(chan error)
	go func() {
		_, err := p.WriteAt([]byte{1}, 0)
		if err == nil {
			_, err = p.WriteAt([]byte{2}, 1)
		}
		errc <- err
	}()
	if _, err := p.Next(); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("encoder failed")
	p.CloseRead(boom)
	if err := <-errc; !errors.Is(err, boom) {
		t.Fatalf("producer got %v", err)
	}
}

package disk

import (
	"bytes"
	"context"
	"io"
	"testing"
)

// Section reads only its size; Grow reads zeros past its source and keeps
// the source's extents.
func TestSectionAndGrow(t *testing.T) {
	data := bytes.Repeat([]byte("abcdefgh"), 1024)
	s := Section(bytes.NewReader(data), 5000)
	buf := make([]byte, 100)
	if n, err := s.ReadAt(buf, 4950); n != 50 || err != io.EOF || !bytes.Equal(buf[:50], data[4950:5000]) {
		t.Fatalf("section end: %d %v", n, err)
	}
	g := Grow(s, 6000)
	for i := range buf {
		buf[i] = 1
	}
	n, err := g.ReadAt(buf, 4960)
	if n != 100 || err != nil || !bytes.Equal(buf[:40], data[4960:5000]) || !IsZero(buf[40:]) {
		t.Fatalf("grown across the end: %d %v", n, err)
	}
	if n, err := g.ReadAt(buf, 5950); n != 50 || err != io.EOF || !IsZero(buf[:50]) {
		t.Fatalf("grown end: %d %v", n, err)
	}
	var ext []Extent
	for e, err := range Extents(context.Background(), g) {
		if err != nil {
			t.Fatal(err)
		}
		ext = append(ext, e)
	}
	if len(ext) != 1 || ext[0] != (Extent{0, 5000}) {
		t.Fatalf("grown extents %v, want the source's", ext)
	}
	if Grow(s, 10) != s {
		t.Error("Grow to a smaller size made a new source")
	}
}

// Clip reads only its first bytes, and its extents end there.
func TestClip(t *testing.T) {
	data := bytes.Repeat([]byte("abcdefgh"), 1024)
	c := Clip(Grow(Section(bytes.NewReader(data), 5000), 8000), 4000)
	buf := make([]byte, 100)
	if n, err := c.ReadAt(buf, 3950); n != 50 || err != io.EOF || !bytes.Equal(buf[:50], data[3950:4000]) {
		t.Fatalf("clipped end: %d %v", n, err)
	}
	var ext []Extent
	for e, err := range Extents(context.Background(), c) {
		if err != nil {
			t.Fatal(err)
		}
		ext = append(ext, e)
	}
	if c.Size() != 4000 || len(ext) != 1 || ext[0] != (Extent{0, 4000}) {
		t.Fatalf("size %d, extents %v", c.Size(), ext)
	}
}

// fileAt is a WriterAt over a growing byte slice.
type fileAt struct{ b []byte }

func (f *fileAt) WriteAt(p []byte, off int64) (int, error) {
	if end := int(off) + len(p); end > len(f.b) {
		f.b = append(f.b, make([]byte, end-len(f.b))...)
	}
	return copy(f.b[off:], p), nil
}

// WriteUnits allocates only the units that hold data, each where the
// caller places it, and puts each byte at its offset in its unit.
func TestWriteUnits(t *testing.T) {
	const unit = 8192
	p := make([]byte, 5*unit)
	copy(p[100:], "first")           // unit 0
	copy(p[3*unit+unit-2:], "cross") // units 3 and 4
	var f fileAt
	placed := map[int64]int64{}
	where := func(u int64) (int64, error) {
		if pos, ok := placed[u]; ok {
			return pos, nil
		}
		pos := int64(len(placed)) * unit
		placed[u] = pos
		return pos, nil
	}
	if err := WriteUnits(&f, p, 0, unit, where); err != nil {
		t.Fatal(err)
	}
	if len(placed) != 3 || placed[0] != 0 || placed[3] != unit || placed[4] != 2*unit {
		t.Fatalf("units placed %v, want 0, 3 and 4 in that order", placed)
	}
	if string(f.b[100:105]) != "first" || string(f.b[2*unit-2:2*unit]) != "cr" || string(f.b[2*unit:2*unit+3]) != "oss" {
		t.Fatalf("bytes misplaced")
	}
}

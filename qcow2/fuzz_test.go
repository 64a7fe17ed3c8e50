package qcow2

import (
	"bytes"
	"context"
	"testing"

	"github.com/xva-tools/xva/disk"
	"github.com/xva-tools/xva/internal/fuzzutil"
)

// memMedium is an in-memory Medium.
type memMedium []byte

func (m memMedium) WriteAt(p []byte, off int64) (int, error) { return copy(m[off:], p), nil }
func (m memMedium) Sync() error                              { return nil }

// FuzzOpen checks the qcow2 reader on any file: opening allocates in
// proportion to the file, extents lie inside the disk in order, reads
// outside them are zero, and a small disk written again with our writer
// reads back the same.
func FuzzOpen(f *testing.F) {
	data := bytes.Repeat([]byte("fuzz"), 1024)
	good := small(f, data)
	f.Add(good)
	f.Add(withCompressed(bytes.Clone(good), firstL2(f, good), bytes.Repeat([]byte{7}, 512)))
	f.Add(small(f, nil))
	f.Fuzz(func(t *testing.T, in []byte) {
		var img *Image
		var err error
		// The header, its extensions and the L1 table are read, all of
		// which must be in the file.
		fuzzutil.Bounded(t, 1<<20+8*uint64(len(in)), func() { img, err = OpenOn(bytes.NewReader(in), int64(len(in)), "fuzz.qcow2") })
		if err != nil {
			return
		}
		if _, err := img.Info(context.Background()); err != nil {
			return // a bad L2 table is found when read
		}
		size := img.Size()
		var ext []disk.Extent
		var pos int64
		for e, err := range img.Extents(context.Background()) {
			if err != nil {
				return
			}
			if e.Off < pos || e.Len <= 0 || e.End() > size {
				t.Fatalf("extent %+v after %d in a %d-byte disk", e, pos, size)
			}
			pos = e.End()
			ext = append(ext, e)
		}
		if size > 4<<20 || size == 0 {
			return
		}
		b := make([]byte, size)
		if _, err := img.ReadAt(b, 0); err != nil {
			return // a bad entry or compressed cluster is found when read
		}
		pos = 0
		for _, e := range ext {
			if !disk.IsZero(b[pos:e.Off]) {
				t.Fatalf("data in [%d, %d), outside the extents", pos, e.Off)
			}
			pos = e.End()
		}
		if !disk.IsZero(b[pos:]) {
			t.Fatalf("data after the last extent at %d", pos)
		}
		checkRewrite(t, b)
	})
}

// checkRewrite writes data as a qcow2 on a medium and reads it back.
func checkRewrite(t *testing.T, data []byte) {
	size := int64(len(data))
	s, err := newSink(size, []Option{WithClusterSize(4096)})
	if err != nil {
		t.Fatal(err)
	}
	m := make(memMedium, s.maxFile())
	w, err := CreateOn(m, size, int64(len(m)), WithClusterSize(4096))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.WriteAt(data, 0); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	back, err := OpenOn(bytes.NewReader(m), int64(len(m)), "rewritten.qcow2")
	if err != nil {
		t.Fatalf("our own image does not open: %v", err)
	}
	again := make([]byte, back.Size())
	if _, err := back.ReadAt(again, 0); err != nil || !bytes.Equal(again[:size], data) || !disk.IsZero(again[size:]) {
		t.Fatalf("the rewritten image reads differently (%v)", err)
	}
}

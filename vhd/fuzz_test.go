package vhd

import (
	"bytes"
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"

	"github.com/xva-tools/xva/internal/fuzzutil"
)

// memMedium is an in-memory Medium.
type memMedium []byte

func (m memMedium) WriteAt(p []byte, off int64) (int, error) { return copy(m[off:], p), nil }
func (m memMedium) Sync() error                              { return nil }

// fixChecksums gives the footer at the end of a file (and its copy at 0)
// and the dynamic header it points at valid checksums, so that the fuzzer
// can explore the fields behind them.
func fixChecksums(b []byte) {
	if len(b) < footerSize {
		return
	}
	f := b[len(b)-footerSize:]
	binary.BigEndian.PutUint32(f[64:], checksum(f, 64))
	if binary.BigEndian.Uint32(f[60:]) != TypeFixed && len(b) >= 2*footerSize {
		copy(b, f)
	}
	off := binary.BigEndian.Uint64(f[16:])
	if off < uint64(len(b)) && off+headerSize <= uint64(len(b)) {
		h := b[off : off+headerSize]
		binary.BigEndian.PutUint32(h[36:], checksum(h, 36))
	}
}

// FuzzOpen checks the VHD reader on any file: extents lie inside the disk
// in order, reads outside them are zero, and a small disk written again
// with our writer reads back the same.
func FuzzOpen(f *testing.F) {
	for _, fixed := range []bool{false, true} {
		f.Add(seedVHD(f, fixed), false)
	}
	f.Add(smallBlockVHD(), false)
	f.Fuzz(func(t *testing.T, in []byte, fix bool) {
		if fix {
			fixChecksums(in)
		}
		var img *Image
		var err error
		// The BAT and a bitmap are read whole; both must be in the file.
		fuzzutil.Bounded(t, 1<<20+8*uint64(len(in)), func() { img, err = OpenOn(bytes.NewReader(in), int64(len(in)), "fuzz.vhd") })
		if err != nil {
			return
		}
		if _, err := img.Info(context.Background()); err != nil {
			t.Fatalf("Info of an opened image: %v", err)
		}
		size := img.Size()
		var pos int64
		for e, err := range img.Extents(context.Background()) {
			if err != nil {
				t.Fatal(err)
			}
			if e.Off < pos || e.Len <= 0 || e.End() > size {
				t.Fatalf("extent %+v after %d in a %d-byte disk", e, pos, size)
			}
			pos = e.End()
		}
		if size > 4<<20 {
			return
		}
		data := make([]byte, size)
		if _, err := img.ReadAt(data, 0); err != nil {
			return // a bad bitmap or block is found when read
		}
		checkRewrite(t, data)
	})
}

// checkRewrite writes data as a dynamic VHD on a medium and reads it back.
func checkRewrite(t *testing.T, data []byte) {
	size := int64(len(data))
	m := make(memMedium, 64<<10+pad(size, BlockSize)/BlockSize*(BlockSize+4096)+2*footerSize+BlockSize)
	s, err := CreateOn(m, size, int64(len(m)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.WriteAt(data, 0); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(); err != nil {
		t.Fatal(err)
	}
	back, err := OpenOn(bytes.NewReader(m), int64(len(m)), "rewritten.vhd")
	if err != nil {
		t.Fatalf("our own VHD does not open: %v", err)
	}
	again := make([]byte, size)
	if _, err := back.ReadAt(again, 0); err != nil || !bytes.Equal(again, data) {
		t.Fatalf("rewritten VHD reads differently (%v)", err)
	}
}

// seedVHD is a small VHD from our writer with some data in it.
func seedVHD(f *testing.F, fixed bool) []byte {
	path := filepath.Join(f.TempDir(), "seed.vhd")
	s, err := create(path, 8<<10, fixed)
	if err != nil {
		f.Fatal(err)
	}
	if fixed {
		s.WriteAt([]byte("boot sector"), 0)
	}
	if err := s.Commit(); err != nil {
		f.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		f.Fatal(err)
	}
	return b
}

// smallBlockVHD is a dynamic VHD with 4 KiB blocks, one allocated and half
// present in its bitmap: small enough for the fuzzer to mutate every part.
func smallBlockVHD() []byte {
	ft := Footer{Version: vhdVersion, DataOffset: footerSize, CurrSize: 8192, Type: TypeDynamic, Creator: tapCreator}
	h := Header{DataOffset: noOffset, TableOffset: 1536, Version: vhdVersion, MaxEntries: 2, BlockSize: 4096}
	b := make([]byte, 2048+512+4096)
	copy(b, ft.marshal())
	copy(b[512:], h.marshal())
	binary.BigEndian.PutUint32(b[1536:], 4)
	binary.BigEndian.PutUint32(b[1540:], unused)
	b[2048] = 0xf0
	copy(b[2560:], bytes.Repeat([]byte("data"), 1024))
	return append(b, ft.marshal()...)
}

// The hand-made seed must be a valid VHD, or the fuzzer starts from
// nothing: bits 0–3 of its bitmap make the first 2 KiB present.
func TestSmallBlockSeed(t *testing.T) {
	b := smallBlockVHD()
	img, err := OpenOn(bytes.NewReader(b), int64(len(b)), "seed.vhd")
	if err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 8192)
	if _, err := img.ReadAt(got, 0); err != nil {
		t.Fatal(err)
	}
	want := append(bytes.Repeat([]byte("data"), 512), make([]byte, 8192-2048)...)
	if !bytes.Equal(got, want) {
		t.Fatal("seed reads wrong")
	}
}

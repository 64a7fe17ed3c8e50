package zstdseek

import (
	"bytes"
	"io"
	"runtime"
	"testing"
)

// FuzzOpen: Open never panics and allocates in proportion to the file;
// when it succeeds, reading every byte either fails or gives exactly
// Size() bytes, and what reading allocates is bounded by the table's sizes.
func FuzzOpen(f *testing.F) {
	for _, n := range []int{0, 1, 1000, 5000} {
		z := compress(f, mixed(n, uint64(n)), 1024, 2)
		f.Add(z)
		f.Add(z[:len(z)/2])
		f.Add(z[len(z)/2:])
	}
	f.Add(table(nil, 0, 0))
	f.Add(table([][2]uint32{{9, 100}}, 0, 1))
	f.Add(table([][2]uint32{{9, 100}}, checksumFlag, 1))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 1<<20 {
			return
		}
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		before := ms.TotalAlloc
		x, err := Open(bytes.NewReader(data), int64(len(data)))
		runtime.ReadMemStats(&ms)
		if a := ms.TotalAlloc - before; a > 64<<10+64*uint64(len(data)) {
			t.Fatalf("Open of %d bytes allocated %d", len(data), a)
		}
		if err != nil {
			return
		}
		defer x.Close()
		if x.Size() > int64(len(data))*maxExpansion {
			t.Fatalf("Size %d from %d bytes", x.Size(), len(data))
		}
		before = ms.TotalAlloc
		buf := make([]byte, 64<<10)
		var off int64
		for {
			n, err := x.ReadAt(buf, off)
			off += int64(n)
			if err == io.EOF && off == x.Size() {
				break
			}
			if err != nil {
				return // a damaged frame: the read fails, which is allowed
			}
			if n != len(buf) {
				t.Fatalf("ReadAt at %d: %d bytes and no error", off-int64(n), n)
			}
		}
		if off != x.Size() {
			t.Fatalf("read %d bytes, Size %d", off, x.Size())
		}
		runtime.ReadMemStats(&ms)
		// Each frame: its compressed and decompressed bytes, and a decoder.
		if a := ms.TotalAlloc - before; a > 4*uint64(x.Size()+int64(len(data)))+uint64(x.Frames())<<20+16<<20 {
			t.Fatalf("reading %d bytes in %d frames allocated %d", x.Size(), x.Frames(), a)
		}
	})
}

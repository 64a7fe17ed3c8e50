package raw

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkSinkWrite writes 64 MiB through the sparse sink: zero blocks are
// scanned and skipped, data written; Commit's fsync is included.
func BenchmarkSinkWrite(b *testing.B) {
	data := make([]byte, 64<<20)
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < len(data); i += 8 << 20 { // half data, half zeros
		for j := i; j < i+4<<20; j++ {
			data[j] = byte(r.Uint32())
		}
	}
	dir := b.TempDir()
	b.SetBytes(int64(len(data)))
	for i := range b.N {
		path := filepath.Join(dir, "out.raw")
		s, err := Create(path, int64(len(data)))
		if err != nil {
			b.Fatal(err)
		}
		for off := 0; off < len(data); off += 1 << 20 {
			if _, err := s.WriteAt(data[off:off+1<<20], int64(off)); err != nil {
				b.Fatal(err)
			}
		}
		if err := s.Commit(); err != nil {
			b.Fatal(err)
		}
		os.Remove(path)
		_ = i
	}
}

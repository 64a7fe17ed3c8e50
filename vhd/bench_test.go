package vhd

import (
	"os"
	"path/filepath"
	"testing"
)

var benchImage = image(64<<20, 5)

// BenchmarkWriteDynamic writes a 64 MiB disk (a third zeros) as a dynamic
// VHD, fsync included.
func BenchmarkWriteDynamic(b *testing.B) {
	dir := b.TempDir()
	b.SetBytes(int64(len(benchImage)))
	for range b.N {
		p := filepath.Join(dir, "d.vhd")
		writeVHD(b, p, benchImage, false)
		os.Remove(p)
	}
}

// BenchmarkReadDynamic reads it back through the BAT and bitmaps.
func BenchmarkReadDynamic(b *testing.B) {
	p := filepath.Join(b.TempDir(), "d.vhd")
	writeVHD(b, p, benchImage, false)
	img, err := Open(p)
	if err != nil {
		b.Fatal(err)
	}
	defer img.Close()
	buf := make([]byte, 1<<20)
	b.SetBytes(int64(len(benchImage)))
	b.ResetTimer()
	for range b.N {
		for off := int64(0); off < img.Size(); off += int64(len(buf)) {
			if _, err := img.ReadAt(buf, off); err != nil {
				b.Fatal(err)
			}
		}
	}
}

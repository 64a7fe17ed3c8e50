package zstdran

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/xva-tools/xva/internal/testutil"
)

// benchFiles are 32 MiB of text-like, of mixed data (text, zeros,
// random, repeats) and of a disk image (random runs and holes)
// compressed by zstd -3 from a pipe (a 2 MiB window, as an export).
var benchFiles = sync.OnceValue(func() map[string][2][]byte {
	m := map[string][2][]byte{}
	for name, data := range map[string][]byte{"text": textData(32<<20, 32), "mixed": mixedData(32<<20, 32), "disk": testutil.Image(32<<20, 32, 256<<10)} {
		cmd := exec.Command("zstd", "-3", "-c")
		cmd.Stdin = bytes.NewReader(data)
		z, _ := cmd.Output()
		m[name] = [2][]byte{data, z}
	}
	return m
})

// each runs fn on each kind of data, with the compressed file also on
// disk, so zstd -dc reads it as Build does.
func each(b *testing.B, fn func(b *testing.B, z []byte, path string)) {
	testutil.NeedTools(b, "zstd")
	for _, kind := range []string{"text", "mixed", "disk"} {
		b.Run(kind, func(b *testing.B) {
			f := benchFiles()[kind]
			data, z := f[0], f[1]
			path := filepath.Join(b.TempDir(), "bench.zst")
			if err := os.WriteFile(path, z, 0o600); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(data)))
			fn(b, z, path)
		})
	}
}

// BenchmarkBuild: index building, in uncompressed bytes per second.
func BenchmarkBuild(b *testing.B) {
	each(b, func(b *testing.B, z []byte, path string) {
		f, err := os.Open(path)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		for b.Loop() {
			x, err := Build(context.Background(), f, int64(len(z)), 4<<20, nil)
			if err != nil {
				b.Fatal(err)
			}
			m, _ := x.MarshalBinary()
			b.ReportMetric(100*float64(len(m))/float64(len(z)), "index%")
		}
	})
}

// BenchmarkZstdDC is zstd -dc of the same file, for comparison.
func BenchmarkZstdDC(b *testing.B) {
	each(b, func(b *testing.B, _ []byte, path string) {
		for b.Loop() {
			if err := exec.Command("sh", "-c", "zstd -dc "+path+" >/dev/null").Run(); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkKlauspost is klauspost's decoder on the same file.
func BenchmarkKlauspost(b *testing.B) {
	each(b, func(b *testing.B, z []byte, _ string) {
		for b.Loop() {
			r, err := zstd.NewReader(bytes.NewReader(z), zstd.WithDecoderConcurrency(1))
			if err != nil {
				b.Fatal(err)
			}
			if _, err := io.Copy(io.Discard, r); err != nil {
				b.Fatal(err)
			}
			r.Close()
		}
	})
}

// BenchmarkReadAt4K: random 4 KiB reads with span 4 MiB (points every
// 16 MiB: 8 windows of 2 MiB).
func BenchmarkReadAt4K(b *testing.B) {
	each(b, func(b *testing.B, z []byte, _ string) {
		x := build(b, z, 4<<20)
		r := bytes.NewReader(z)
		p := make([]byte, 4096)
		b.SetBytes(4096)
		off := int64(0)
		for b.Loop() {
			off = (off + 7919*4096) % (x.Size() - 4096)
			if _, err := x.ReadAt(r, p, off); err != nil {
				b.Fatal(err)
			}
		}
	})
}

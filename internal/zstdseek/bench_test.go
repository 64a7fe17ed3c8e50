package zstdseek

import (
	"bytes"
	"fmt"
	"runtime"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// BenchmarkWriter compares the seekable writer with the single-frame
// writer xva uses today (compress.go) on text-like data: throughput, and the
// compression ratio (uncompressed/compressed) each reports as "ratio".
func BenchmarkWriter(b *testing.B) {
	in := text(64 << 20)
	jobs := runtime.GOMAXPROCS(0)
	var out bytes.Buffer
	out.Grow(len(in))
	run := func(b *testing.B, newW func() (interface {
		Write([]byte) (int, error)
		Close() error
	}, error)) {
		b.SetBytes(int64(len(in)))
		for b.Loop() {
			out.Reset()
			w, err := newW()
			if err != nil {
				b.Fatal(err)
			}
			for p := in; len(p) > 0; p = p[min(len(p), 1<<20):] {
				if _, err := w.Write(p[:min(len(p), 1<<20)]); err != nil {
					b.Fatal(err)
				}
			}
			if err := w.Close(); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(len(in))/float64(out.Len()), "ratio")
	}
	b.Run(fmt.Sprintf("single-frame/jobs=%d", jobs), func(b *testing.B) {
		run(b, func() (interface {
			Write([]byte) (int, error)
			Close() error
		}, error) {
			return zstd.NewWriter(&out, zstd.WithEncoderConcurrency(jobs), zstd.WithEncoderLevel(zstd.SpeedDefault))
		})
	})
	for _, fs := range []int64{4 << 20, 16 << 20} {
		b.Run(fmt.Sprintf("seekable-%dMiB/jobs=%d", fs>>20, jobs), func(b *testing.B) {
			run(b, func() (interface {
				Write([]byte) (int, error)
				Close() error
			}, error) {
				return NewWriter(&out, fs, jobs, zstd.SpeedDefault)
			})
		})
	}
}

// BenchmarkReadAt4K: random 4 KiB reads through a file of 4 MiB frames,
// most of them missing the cache.
func BenchmarkReadAt4K(b *testing.B) {
	in := text(64 << 20)
	z := compress(b, in, 4<<20, 0)
	x, err := Open(bytes.NewReader(z), int64(len(z)))
	if err != nil {
		b.Fatal(err)
	}
	p := make([]byte, 4096)
	off := int64(0)
	b.SetBytes(4096)
	for b.Loop() {
		off = (off + 9_999_991) % (x.Size() - 4096)
		if _, err := x.ReadAt(p, off); err != nil {
			b.Fatal(err)
		}
	}
}

package zran

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/xva-tools/xva/internal/testutil"
)

// benchFiles are 32 MiB of text-like and of mixed data (text, zeros,
// random) compressed by gzip -6.
var benchFiles = sync.OnceValue(func() map[string][2][]byte {
	m := map[string][2][]byte{}
	for name, data := range map[string][]byte{"text": textData(32<<20, 32), "mixed": mixedData(32<<20, 32)} {
		cmd := exec.Command("gzip", "-6", "-c")
		cmd.Stdin = bytes.NewReader(data)
		gz, _ := cmd.Output()
		m[name] = [2][]byte{data, gz}
	}
	return m
})

// each runs fn on each kind of data, with the compressed file also on
// disk, so gzip -dc reads it as Build does.
func each(b *testing.B, fn func(b *testing.B, gz []byte, path string)) {
	testutil.NeedTools(b, "gzip")
	for _, kind := range []string{"text", "mixed"} {
		b.Run(kind, func(b *testing.B) {
			gz, path := benchGz(b, kind)
			fn(b, gz, path)
		})
	}
}

func benchGz(b *testing.B, kind string) ([]byte, string) {
	f := benchFiles()[kind]
	data, gz := f[0], f[1]
	path := filepath.Join(b.TempDir(), "bench.gz")
	if err := os.WriteFile(path, gz, 0o600); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	return gz, path
}

// BenchmarkBuild: index building, in uncompressed bytes per second.
func BenchmarkBuild(b *testing.B) { each(b, benchBuild) }

func benchBuild(b *testing.B, gz []byte, path string) {
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	for b.Loop() {
		if _, err := Build(context.Background(), f, int64(len(gz)), 8<<20, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGzipDC is gzip -dc of the same file, for comparison.
func BenchmarkGzipDC(b *testing.B) {
	each(b, func(b *testing.B, _ []byte, path string) {
		for b.Loop() {
			if err := exec.Command("sh", "-c", "gzip -dc "+path+" >/dev/null").Run(); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkStdGzip is compress/gzip of the same file, for comparison.
func BenchmarkStdGzip(b *testing.B) {
	each(b, func(b *testing.B, gz []byte, _ string) {
		for b.Loop() {
			r, err := gzip.NewReader(bytes.NewReader(gz))
			if err != nil {
				b.Fatal(err)
			}
			if _, err := io.Copy(io.Discard, r); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkReadAt4K: random 4 KiB reads with span 4 MiB.
func BenchmarkReadAt4K(b *testing.B) { each(b, benchReadAt) }

func benchReadAt(b *testing.B, gz []byte, _ string) {
	x := build(b, gz, 4<<20)
	r := bytes.NewReader(gz)
	p := make([]byte, 4096)
	b.SetBytes(4096)
	off := int64(0)
	for b.Loop() {
		off = (off + 7919*4096) % (x.Size() - 4096)
		if _, err := x.ReadAt(r, p, off); err != nil {
			b.Fatal(err)
		}
	}
}

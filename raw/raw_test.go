package raw

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/xva-tools/xva/disk"
	"github.com/xva-tools/xva/internal/fsutil"
)

func allocated(t *testing.T, path string) int64 {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fsutil.DiskUsage(st)
}

func writeSparse(t *testing.T, path string, size int64, data map[int64][]byte) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	for off, b := range data {
		if _, err := f.WriteAt(b, off); err != nil {
			t.Fatal(err)
		}
	}
}

func TestExtentsSkipHoles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "d.raw")
	size := int64(64 << 20)
	writeSparse(t, path, size, map[int64][]byte{
		8 << 20:  bytes.Repeat([]byte{1}, 1<<20),
		40 << 20: bytes.Repeat([]byte{2}, 4096),
	})
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var total int64
	for e, err := range f.Extents(context.Background()) {
		if err != nil {
			t.Fatal(err)
		}
		total += e.Len
	}
	if total == size {
		t.Skip("filesystem reports no holes")
	}
	if total < 1<<20+4096 || total > 4<<20 {
		t.Fatalf("extents cover %d bytes; data is %d", total, 1<<20+4096)
	}
}

func TestSinkIsSparseAndExact(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "in.raw")
	size := int64(256 << 20)
	writeSparse(t, src, size, map[int64][]byte{
		0:         bytes.Repeat([]byte("boot"), 1024),
		100 << 20: bytes.Repeat([]byte{0xAB}, 3<<20),
		// Written zeros must become a hole on the way out.
		200 << 20:   make([]byte, 8<<20),
		size - 1000: bytes.Repeat([]byte{7}, 1000),
	})
	in, err := Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out := filepath.Join(dir, "out.raw")
	sink, err := Create(out, in.Size())
	if err != nil {
		t.Fatal(err)
	}
	r := disk.NewReader(context.Background(), in)
	defer r.Close()
	if _, err := disk.Copy(context.Background(), sink, r, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("output visible before Commit")
	}
	if err := sink.Commit(); err != nil {
		t.Fatal(err)
	}
	a, _ := os.ReadFile(src)
	b, _ := os.ReadFile(out)
	if sha256.Sum256(a) != sha256.Sum256(b) {
		t.Fatal("output differs from input")
	}
	if got := allocated(t, out); got > 5<<20 {
		t.Fatalf("output occupies %d bytes on disk, data is about 3 MiB", got)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Fatalf("directory holds %d entries, want in.raw and out.raw only", len(entries))
	}
}

func TestSinkAbortLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	sink, err := Create(filepath.Join(dir, "x.raw"), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sink.WriteAt([]byte{1}, 10); err != nil {
		t.Fatal(err)
	}
	if _, err := sink.WriteAt([]byte{1, 2}, 1<<20-1); err == nil {
		t.Fatal("write past the end succeeded")
	}
	if err := sink.Abort(); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("abort left %v", entries)
	}
}

func TestCreateRefusesExisting(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.raw")
	os.WriteFile(path, []byte("keep"), 0o644)
	if _, err := Create(path, 10); err == nil {
		t.Fatal("Create over an existing file succeeded")
	}
	if b, _ := os.ReadFile(path); string(b) != "keep" {
		t.Fatal("existing file was changed")
	}
}

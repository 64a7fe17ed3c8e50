package xva_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xva-tools/xva"
	"github.com/xva-tools/xva/chunk"
	"github.com/xva-tools/xva/fixtures"
	"github.com/xva-tools/xva/internal/tarx"
)

// memberOffsets maps each member of a tar file to its data offset and size.
func memberOffsets(t *testing.T, path string) map[string][2]int64 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tarx.NewReader(f)
	m := map[string][2]int64{}
	for {
		h, err := tr.Next()
		if err != nil {
			return m
		}
		m[h.Name] = [2]int64{h.DataOffset, h.Size}
	}
}

// expectCorrupt unpacks in and checks the failure: an integrity error that
// names member, and nothing left in the output's directory.
func expectCorrupt(t *testing.T, in, member string) {
	t.Helper()
	parent := t.TempDir()
	out := filepath.Join(parent, "out")
	_, err := xva.Unpack(context.Background(), in, out)
	if err == nil {
		t.Fatalf("unpacking %s succeeded", in)
	}
	if !xva.IsCorrupt(err) {
		t.Fatalf("error is not an integrity failure: %v", err)
	}
	if !strings.Contains(err.Error(), member) {
		t.Fatalf("error does not name %s: %v", member, err)
	}
	if entries, _ := os.ReadDir(parent); len(entries) != 0 {
		t.Fatalf("failed unpack left %v behind", entries)
	}
}

func packBoth(t *testing.T, disks ...fixtures.Disk) (file, dir string) {
	t.Helper()
	vmdir, _ := makeVM(t, disks...)
	file = filepath.Join(t.TempDir(), "a.xva")
	dir = filepath.Join(t.TempDir(), "a")
	for _, out := range []string{file, dir} {
		if _, err := xva.PackDir(ctx, vmdir, out, xva.WithDirectory(out == dir)); err != nil {
			t.Fatal(err)
		}
	}
	return file, dir
}

func TestTruncatedChunk(t *testing.T) {
	file, dir := packBoth(t, fixtures.Disk{Size: 6 << 20, Seed: 1, Data: 0.8})
	const m = "sda/chunk-000000000.gz"
	off := memberOffsets(t, file)[m]
	// Cut the tar in the middle of the chunk, and at its very end.
	for _, cut := range []int64{off[0] + off[1]/2, off[0] + off[1] - 1} {
		if err := os.Truncate(file, cut); err != nil {
			t.Fatal(err)
		}
		expectCorrupt(t, file, m)
	}
	path := filepath.Join(dir, m)
	st, _ := os.Stat(path)
	os.Truncate(path, st.Size()/2)
	expectCorrupt(t, dir, m)
}

func TestFlippedByteInChunk(t *testing.T) {
	file, dir := packBoth(t, fixtures.Disk{Size: 6 << 20, Seed: 2, Data: 0.8})
	const m = "sda/chunk-000000000.gz"
	off := memberOffsets(t, file)[m]
	flip(t, file, off[0]+off[1]/2)
	expectCorrupt(t, file, m)
	st, _ := os.Stat(filepath.Join(dir, m))
	flip(t, filepath.Join(dir, m), st.Size()/2)
	expectCorrupt(t, dir, m)
	// The CRC-32 and ISIZE in the gzip trailer are covered too.
	_, dir2 := packBoth(t, fixtures.Disk{Size: 3 << 20, Seed: 3, Data: 0.8})
	st, _ = os.Stat(filepath.Join(dir2, m))
	flip(t, filepath.Join(dir2, m), st.Size()-6)
	expectCorrupt(t, dir2, m)
}

func flip(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := []byte{0}
	f.ReadAt(b, off)
	b[0] ^= 0x55
	f.WriteAt(b, off)
}

// sparseFiller is a chunk.Filler of a disk that is all hole.
type sparseFiller struct{}

func (sparseFiller) Fill([]byte, int64) (bool, error) { return false, nil }

func TestChunkLongerThan1e9(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: writes and inflates a chunk of 1e9+1 bytes; make test runs it")
	}
	_, dir := packBoth(t, fixtures.Disk{Size: 2 * chunk.ChunkSize, Seed: 4, Data: 0.0001, MaxRegion: 1 << 20})
	// Replace the first chunk with a valid gzip of 1e9+1 bytes.
	const m = "sda/chunk-000000000.gz"
	f, err := os.Create(filepath.Join(dir, m))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := chunk.WriteGzipChunk(ctx, f, sparseFiller{}, 0, chunk.ChunkSize+1, chunk.GzipOptions{Level: 1}); err != nil {
		t.Fatal(err)
	}
	f.Close()
	expectCorrupt(t, dir, m)
}

func TestMissingChunk(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: packs three disks of 2e9 bytes (over 10 s); make test runs it")
	}
	size := int64(2*chunk.ChunkSize + 1000)
	_, dir := packBoth(t, fixtures.Disk{Size: size, Seed: 5, Data: 0.0001, MaxRegion: 1 << 20})
	os.Remove(filepath.Join(dir, "sda/chunk-000000001.gz"))
	expectCorrupt(t, dir, "sda/chunk-000000001.gz")

	_, dir = packBoth(t, fixtures.Disk{Size: size, Seed: 5, Data: 0.0001, MaxRegion: 1 << 20})
	os.Remove(filepath.Join(dir, "sda/chunk-000000002.gz"))
	expectCorrupt(t, dir, "sda/chunk-000000002.gz")

	_, dir = packBoth(t, fixtures.Disk{Size: size, Seed: 5, Data: 0.0001, MaxRegion: 1 << 20})
	os.Remove(filepath.Join(dir, "sda/chunk-000000000.gz"))
	expectCorrupt(t, dir, "sda/chunk-000000000.gz")

	// A whole disk missing.
	_, dir = packBoth(t, fixtures.Disk{Size: 1000, Seed: 6}, fixtures.Disk{Size: 1000, Seed: 7})
	os.RemoveAll(filepath.Join(dir, "sdb"))
	expectCorrupt(t, dir, "disk sdb")
}

func TestSourceOutsideArchive(t *testing.T) {
	_, dir := packBoth(t, fixtures.Disk{Size: 1000, Seed: 8})
	for _, source := range []string{"file://../sda", "file:///etc", "file://sda/../../x", "file://"} {
		doc, _ := os.ReadFile(filepath.Join(dir, "ova.xml"))
		bad := strings.Replace(string(doc), `source="file://sda"`, `source="`+source+`"`, 1)
		os.WriteFile(filepath.Join(dir, "ova.xml"), []byte(bad), 0o644)
		expectCorrupt(t, dir, "ova.xml")
		os.WriteFile(filepath.Join(dir, "ova.xml"), doc, 0o644)
	}
}

func TestUnexpectedMembers(t *testing.T) {
	_, dir := packBoth(t, fixtures.Disk{Size: 1000, Seed: 9})
	os.WriteFile(filepath.Join(dir, "stray.txt"), []byte("x"), 0o644)
	expectCorrupt(t, dir, "stray.txt")
	os.Remove(filepath.Join(dir, "stray.txt"))
	os.Rename(filepath.Join(dir, "sda/chunk-000000000.gz"), filepath.Join(dir, "sda/chunk-000000005.gz"))
	expectCorrupt(t, dir, "sda/chunk-000000000.gz")
}

// withStdin makes path the process's standard input for the test.
func withStdin(t *testing.T, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	old := os.Stdin
	os.Stdin = f
	t.Cleanup(func() { os.Stdin = old; f.Close() })
}

func TestStreamRoundTripAndCorruption(t *testing.T) {
	vmdir, sums := makeVM(t, fixtures.Disk{Size: 7<<20 + 5, Seed: 12, Data: 0.7}, fixtures.Disk{Size: 0, Seed: 13})
	file := filepath.Join(t.TempDir(), "a.xva")
	if _, err := xva.PackDir(ctx, vmdir, file); err != nil {
		t.Fatal(err)
	}
	withStdin(t, file)
	out := filepath.Join(t.TempDir(), "out")
	if _, err := xva.Unpack(ctx, "-", out); err != nil {
		t.Fatal(err)
	}
	checkUnpacked(t, out, sums)

	const m = "sda/chunk-000000000.gz"
	off := memberOffsets(t, file)[m]
	flip(t, file, off[0]+off[1]/3)
	withStdin(t, file)
	expectCorrupt(t, "-", m)
	os.Truncate(file, off[0]+off[1]/2)
	withStdin(t, file)
	expectCorrupt(t, "-", m)
}

// Converting must check each chunk to its end: the encoder has every byte
// before the decoder reaches the CRC-32 of the last chunk, and a converter
// that stopped there would launder a corrupt chunk into a freshly hashed
// archive.
func TestConvertChecksTheLastChunksTrailer(t *testing.T) {
	file, _ := packBoth(t, fixtures.Disk{Size: 3 << 20, Seed: 14, Data: 0.8})
	const m = "sda/chunk-000000000.gz"
	off := memberOffsets(t, file)[m]
	flip(t, file, off[0]+off[1]-6) // in the CRC-32
	for _, f := range []xva.Generation{xva.XAPI, xva.Legacy} {
		out := filepath.Join(t.TempDir(), "out.xva")
		_, err := xva.Convert(ctx, file, out, xva.WithFormat(f))
		if !xva.IsCorrupt(err) || !strings.Contains(err.Error(), m) {
			t.Fatalf("convert to %v: %v", f, err)
		}
	}
	var sink strings.Builder
	if _, err := xva.StreamXapi(ctx, file, &sink); !xva.IsCorrupt(err) {
		t.Fatalf("stream: %v", err)
	}
}

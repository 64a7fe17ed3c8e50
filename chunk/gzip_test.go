package chunk

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"errors"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"os/exec"
	"testing"

	"github.com/klauspost/compress/flate"

	"github.com/xva-tools/xva/internal/testutil"
)

// memFile is an in-memory ChunkFile.
type memFile struct{ b []byte }

func (m *memFile) Write(p []byte) (int, error) { m.b = append(m.b, p...); return len(p), nil }
func (m *memFile) WriteAt(p []byte, off int64) (int, error) {
	if int(off)+len(p) > len(m.b) {
		return 0, io.ErrShortWrite
	}
	return copy(m.b[off:], p), nil
}

// sliceFiller serves a byte slice; with holes set, all-zero ranges are
// reported as holes, as a sparse source would.
type sliceFiller struct {
	b     []byte
	holes bool
}

func (s sliceFiller) Fill(buf []byte, off int64) (bool, error) {
	seg := s.b[off : off+int64(len(buf))]
	if s.holes && isZero(seg) {
		return false, nil
	}
	copy(buf, seg)
	return true, nil
}

func isZero(b []byte) bool { return bytes.Count(b, []byte{0}) == len(b) }

// testDisk is size bytes of mixed content: text, random, zeros.
func testDisk(size int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 7))
	b := make([]byte, size)
	words := []string{"kernel ", "xen ", "vbd ", "block\n", "lorem ", "0x7f3a ", "ipsum "}
	for off := 0; off < size; {
		n := min(size-off, 1+r.IntN(3*PieceSize))
		switch r.IntN(4) {
		case 0: // zeros
		case 1:
			for i := off; i < off+n; i++ {
				b[i] = byte(r.Uint32())
			}
		default:
			var t []byte
			for len(t) < n {
				t = append(t, words[r.IntN(len(words))]...)
			}
			copy(b[off:off+n], t)
		}
		off += n
	}
	return b
}

func encode(t testing.TB, b []byte, holes bool, o GzipOptions) []byte {
	t.Helper()
	var f memFile
	n, err := WriteGzipChunk(context.Background(), &f, sliceFiller{b, holes}, 0, int64(len(b)), o)
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(len(f.b)) {
		t.Fatalf("reported %d compressed bytes, wrote %d", n, len(f.b))
	}
	return f.b
}

func decode(gz []byte, want int64, o GzipOptions) ([]byte, error) {
	out := make([]byte, want)
	last := int64(-1)
	_, err := ReadGzipChunk(context.Background(), bytes.NewReader(gz), want, func(off int64, p []byte) error {
		if off < last {
			return errors.New("emit out of order")
		}
		last = off + int64(len(p))
		copy(out[off:], p)
		return nil
	}, o)
	return out, err
}

func TestZeroPiece(t *testing.T) {
	if !bytes.HasSuffix(zeroPiece, []byte{0, 0, 0xff, 0xff}) {
		t.Fatal("zeroPiece does not end with a sync flush")
	}
	got, err := io.ReadAll(flate.NewReader(bytes.NewReader(zeroPiece)))
	if err != io.ErrUnexpectedEOF {
		t.Fatalf("zeroPiece ends with %v, want a non-final stream (unexpected EOF)", err)
	}
	if len(got) != PieceSize || !isZero(got) {
		t.Fatalf("zeroPiece inflates to %d bytes, zero=%v", len(got), isZero(got))
	}
	if crc32.ChecksumIEEE(got) != zeroPieceCRC {
		t.Fatal("zeroPieceCRC is wrong")
	}
}

func TestCRCCombine(t *testing.T) {
	b := testDisk(3*PieceSize+12345, 1)
	for _, cut := range []int{0, 1, 100, PieceSize, PieceSize + 7, len(b)} {
		a, c := b[:cut], b[cut:]
		got := crcCombine(crc32.ChecksumIEEE(a), crc32.ChecksumIEEE(c), int64(len(c)))
		if got != crc32.ChecksumIEEE(b) {
			t.Fatalf("combine at %d: %08x, want %08x", cut, got, crc32.ChecksumIEEE(b))
		}
	}
}

func TestRoundTrip(t *testing.T) {
	sizes := []int{0, 1, 511, 512, PieceSize - 1, PieceSize, PieceSize + 1, 5*PieceSize + 4097}
	for _, size := range sizes {
		for _, holes := range []bool{false, true} {
			b := testDisk(size, uint64(size))
			gz := encode(t, b, holes, GzipOptions{Level: DefaultLevel})
			// The standard library is the oracle for "valid gzip".
			zr, err := gzip.NewReader(bytes.NewReader(gz))
			if err != nil {
				t.Fatalf("size %d: stdlib gzip: %v", size, err)
			}
			std, err := io.ReadAll(zr)
			if err != nil || !bytes.Equal(std, b) {
				t.Fatalf("size %d: stdlib gzip read %d bytes, err %v", size, len(std), err)
			}
			got, err := decode(gz, int64(size), GzipOptions{})
			if err != nil || !bytes.Equal(got, b) {
				t.Fatalf("size %d holes %v: decode err %v, equal %v", size, holes, err, bytes.Equal(got, b))
			}
		}
	}
}

func TestOutputIndependentOfJobsAndHoles(t *testing.T) {
	b := testDisk(7*PieceSize+3, 9)
	ref := encode(t, b, false, GzipOptions{Level: 6, Jobs: 1})
	for _, jobs := range []int{2, 5, 16} {
		for _, holes := range []bool{false, true} {
			if got := encode(t, b, holes, GzipOptions{Level: 6, Jobs: jobs}); !bytes.Equal(got, ref) {
				t.Fatalf("jobs=%d holes=%v changed the output", jobs, holes)
			}
		}
	}
	if got := encode(t, b, false, GzipOptions{Level: 1}); bytes.Equal(got, ref) {
		t.Fatal("level 1 and level 6 gave identical output")
	}
}

func TestAllZeroChunkIsTiny(t *testing.T) {
	size := 64 * PieceSize
	gz := encode(t, make([]byte, size), true, GzipOptions{Level: 6})
	if len(gz) > size/500 {
		t.Fatalf("64 MiB of zeros compressed to %d bytes", len(gz))
	}
	got, err := decode(gz, int64(size), GzipOptions{})
	if err != nil || !isZero(got) {
		t.Fatalf("decode: %v", err)
	}
}

func TestRealGzipAgrees(t *testing.T) {
	testutil.NeedTools(t, "gzip")
	b := testDisk(4*PieceSize+777, 3)
	gz := encode(t, b, true, GzipOptions{Level: 6})
	cmd := exec.Command("gzip", "-dc")
	cmd.Stdin = bytes.NewReader(gz)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("gzip -dc: %v", err)
	}
	if sha256.Sum256(out) != sha256.Sum256(b) {
		t.Fatal("gzip -dc output differs from the input")
	}
}

// foreignGzip is what gzip or any other tool writes: no piece index.
func foreignGzip(b []byte, members int) []byte {
	var buf bytes.Buffer
	step := (len(b) + members - 1) / max(members, 1)
	for i := 0; i < members; i++ {
		zw := gzip.NewWriter(&buf)
		zw.Write(b[min(i*step, len(b)):min((i+1)*step, len(b))])
		zw.Close()
	}
	return buf.Bytes()
}

func TestForeignGzip(t *testing.T) {
	b := testDisk(3*PieceSize+100, 4)
	for _, members := range []int{1, 3} {
		got, err := decode(foreignGzip(b, members), int64(len(b)), GzipOptions{})
		if err != nil || !bytes.Equal(got, b) {
			t.Fatalf("%d members: %v", members, err)
		}
	}
	if _, err := decode(foreignGzip(b, 1), int64(len(b))-1, GzipOptions{}); !errors.Is(err, ErrTooLong) {
		t.Fatalf("foreign chunk longer than expected: %v", err)
	}
	if _, err := decode(foreignGzip(b, 1), int64(len(b))+1, GzipOptions{}); !errors.Is(err, ErrTooShort) {
		t.Fatalf("foreign chunk shorter than expected: %v", err)
	}
}

func TestLengthMismatch(t *testing.T) {
	b := testDisk(2*PieceSize+5, 5)
	gz := encode(t, b, false, GzipOptions{Level: 6})
	if _, err := decode(gz, int64(len(b))-1, GzipOptions{}); !errors.Is(err, ErrTooLong) {
		t.Fatalf("want-1: %v", err)
	}
	if _, err := decode(gz, int64(len(b))+1, GzipOptions{}); !errors.Is(err, ErrTooShort) {
		t.Fatalf("want+1: %v", err)
	}
}

func TestCorruptionIsDetected(t *testing.T) {
	b := testDisk(3*PieceSize+999, 6)
	b[PieceSize+10] = 1 // make sure there is a data piece after a zero one
	for _, src := range []struct {
		name string
		gz   []byte
	}{
		{"indexed", encode(t, b, true, GzipOptions{Level: 6})},
		{"foreign", foreignGzip(b, 1)},
	} {
		gz := src.gz
		// Every truncation is an error.
		for _, cut := range []int{0, 1, 9, 10, 40, len(gz) / 2, len(gz) - 9, len(gz) - 8, len(gz) - 1} {
			if _, err := decode(gz[:cut], int64(len(b)), GzipOptions{}); err == nil {
				t.Errorf("%s: truncated to %d bytes: accepted", src.name, cut)
			}
		}
		// A flipped byte anywhere either is caught or leaves the data intact
		// (bytes the format does not cover: the index, which has its own
		// CRC and then is ignored, and header fields like MTIME and OS).
		r := rand.New(rand.NewPCG(1, 1))
		for range 300 {
			i := r.IntN(len(gz))
			bad := bytes.Clone(gz)
			bad[i] ^= byte(1 + r.IntN(255))
			got, err := decode(bad, int64(len(b)), GzipOptions{})
			if err == nil && !bytes.Equal(got, b) {
				t.Fatalf("%s: flipped byte %d of %d: wrong data accepted", src.name, i, len(gz))
			}
		}
		// Trailing garbage.
		if _, err := decode(append(bytes.Clone(gz), 0x42), int64(len(b)), GzipOptions{}); err == nil {
			t.Errorf("%s: trailing byte accepted", src.name)
		}
	}
}

func TestChecksumErrors(t *testing.T) {
	b := testDisk(2*PieceSize, 8)
	gz := encode(t, b, false, GzipOptions{Level: 6})
	crcAt := len(gz) - 8
	bad := bytes.Clone(gz)
	bad[crcAt] ^= 1
	if _, err := decode(bad, int64(len(b)), GzipOptions{}); !errors.Is(err, ErrChecksum) {
		t.Fatalf("flipped CRC: %v", err)
	}
	bad = bytes.Clone(gz)
	bad[len(gz)-1] ^= 1
	if _, err := decode(bad, int64(len(b)), GzipOptions{}); !errors.Is(err, ErrLength) {
		t.Fatalf("flipped ISIZE: %v", err)
	}
}

func TestBombStops(t *testing.T) {
	// 64 MiB of zeros claimed to be a 1 MiB chunk: reading stops early.
	gz := foreignGzip(make([]byte, 64<<20), 1)
	if _, err := decode(gz, PieceSize, GzipOptions{}); !errors.Is(err, ErrTooLong) {
		t.Fatalf("bomb: %v", err)
	}
}

func TestNotGzip(t *testing.T) {
	for _, in := range [][]byte{nil, []byte("x"), []byte("hello, world")} {
		if _, err := decode(in, 10, GzipOptions{}); !errors.Is(err, ErrNotGzip) {
			t.Errorf("%q: %v", in, err)
		}
	}
}

func TestAnyLength(t *testing.T) {
	b := testDisk(2*PieceSize+77, 10)
	for _, gz := range [][]byte{encode(t, b, false, GzipOptions{Level: 6}), foreignGzip(b, 2)} {
		n, err := ReadGzipChunk(context.Background(), bytes.NewReader(gz), -1, func(int64, []byte) error { return nil }, GzipOptions{})
		if err != nil || n != int64(len(b)) {
			t.Fatalf("any length: %d bytes, %v", n, err)
		}
		bad := bytes.Clone(gz)
		bad[len(bad)-7] ^= 1 // CRC-32
		if _, err := ReadGzipChunk(context.Background(), bytes.NewReader(bad), -1, func(int64, []byte) error { return nil }, GzipOptions{}); !errors.Is(err, ErrChecksum) {
			t.Fatalf("any length, bad CRC: %v", err)
		}
	}
}

// A chunk checked with Discard is judged exactly as one decoded: the same
// length for an intact chunk, an error for every damage the decoder finds,
// and no data handed out.
func TestDiscardChecksAlike(t *testing.T) {
	b := testDisk(3*PieceSize+999, 9)
	b[PieceSize+10] = 1
	gz := encode(t, b, true, GzipOptions{Level: 6})
	check := func(gz []byte) (int64, error) {
		return ReadGzipChunk(context.Background(), bytes.NewReader(gz), int64(len(b)), func(int64, []byte) error {
			return errors.New("data handed out")
		}, GzipOptions{Discard: true, Jobs: 3})
	}
	if n, err := check(gz); err != nil || n != int64(len(b)) {
		t.Fatalf("intact: %d, %v", n, err)
	}
	r := rand.New(rand.NewPCG(2, 2))
	for range 300 {
		i := r.IntN(len(gz))
		bad := bytes.Clone(gz)
		bad[i] ^= byte(1 + r.IntN(255))
		_, derr := decode(bad, int64(len(b)), GzipOptions{})
		if _, err := check(bad); (err == nil) != (derr == nil) {
			t.Fatalf("flipped byte %d: checked %v, decoded %v", i, err, derr)
		}
	}
}

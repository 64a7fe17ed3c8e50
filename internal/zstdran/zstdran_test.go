package zstdran

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/xva-tools/xva/internal/testutil"
)

// textData is text-like data: words from a vocabulary with numbers
// among them.
func textData(n int, seed uint64) []byte {
	rng := rand.New(rand.NewPCG(seed, 1))
	words := make([]string, 4000)
	for i := range words {
		w := make([]byte, 2+rng.IntN(9))
		for j := range w {
			w[j] = byte('a' + rng.IntN(26))
		}
		words[i] = string(w)
	}
	var b bytes.Buffer
	b.Grow(n + 64)
	for b.Len() < n {
		switch rng.IntN(20) {
		case 0:
			fmt.Fprintf(&b, "%d", rng.Uint32())
		case 1:
			b.WriteString(".\n")
		default:
			b.WriteString(words[int(rng.ExpFloat64()*60)%len(words)])
		}
		b.WriteByte(' ')
	}
	return b.Bytes()[:n]
}

// mixedData has runs of text, zeros, random bytes and repeats of
// earlier output far back, so the encoders make raw, RLE and
// compressed blocks, every literals and table mode, and long matches.
func mixedData(n int, seed uint64) []byte {
	rng := rand.New(rand.NewPCG(seed, 2))
	b := make([]byte, 0, n)
	for len(b) < n {
		run := min(1+rng.IntN(300<<10), n-len(b))
		switch rng.IntN(4) {
		case 0:
			b = append(b, textData(run, rng.Uint64())...)
		case 1:
			b = append(b, make([]byte, run)...)
		case 2:
			r := make([]byte, run)
			for i := range r {
				r[i] = byte(rng.Uint32())
			}
			b = append(b, r...)
		default:
			from := rng.IntN(len(b) + 1)
			b = append(b, b[from:min(len(b), from+run)]...)
		}
	}
	return b[:n]
}

var mixed8 = sync.OnceValue(func() []byte { return mixedData(8<<20, 8) })

// zstdCLI runs the zstd program over in (standard input, so that the
// content size is unknown as in an export stream) and returns its
// output.
func zstdCLI(t testing.TB, in []byte, args ...string) []byte {
	t.Helper()
	testutil.NeedTools(t, "zstd")
	cmd := exec.Command("zstd", append([]string{"-q", "-c"}, args...)...)
	cmd.Stdin = bytes.NewReader(in)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("zstd %v: %v: %s", args, err, errb.String())
	}
	return out.Bytes()
}

// zstdFile runs the zstd program on a file, so that it knows the size.
func zstdFile(t testing.TB, in []byte, args ...string) []byte {
	t.Helper()
	testutil.NeedTools(t, "zstd")
	dir := t.TempDir()
	src := filepath.Join(dir, "in")
	if err := os.WriteFile(src, in, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("zstd", append([]string{"-q", "-f"}, append(args, src, "-o", src+".zst")...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("zstd %v: %v: %s", args, err, out)
	}
	b, err := os.ReadFile(src + ".zst")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// kpStream compresses with klauspost's streaming encoder.
func kpStream(t testing.TB, in []byte, opts ...zstd.EOption) []byte {
	t.Helper()
	var b bytes.Buffer
	w, err := zstd.NewWriter(&b, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(in); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func kpAll(t testing.TB, in []byte, opts ...zstd.EOption) []byte {
	t.Helper()
	w, err := zstd.NewWriter(nil, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return w.EncodeAll(in, nil)
}

// buildGap builds an index with points every gap bytes of output,
// whatever the window: many points, and points closer than a window.
func buildGap(t testing.TB, z []byte, gap int64) (*Index, error) {
	t.Helper()
	b := &builder{ctx: context.Background(), x: &Index{csize: int64(len(z)), span: MinSpan}, gap: gap}
	return b.build(bytes.NewReader(z))
}

func build(t testing.TB, z []byte, span int64) *Index {
	t.Helper()
	x, err := Build(context.Background(), bytes.NewReader(z), int64(len(z)), span, nil)
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	return x
}

// checkIndex checks the size, that every point's window holds the
// output before it or zeros, that a restart from every point decodes
// its span as the whole decode did, and reads at random.
func checkIndex(t *testing.T, x *Index, z, data []byte, seed uint64) {
	t.Helper()
	if x.Size() != int64(len(data)) {
		t.Fatalf("Size %d, want %d", x.Size(), len(data))
	}
	r := bytes.NewReader(z)
	for k, p := range x.points {
		if !p.mid {
			continue
		}
		w, err := x.window(k)
		if err != nil {
			t.Fatal(err)
		}
		before := data[p.out-int64(len(w)) : p.out]
		for i := range w {
			if w[i] != 0 && w[i] != before[i] {
				t.Fatalf("point %d (at %d): window byte %d is %#x, not %#x", k, p.out, i, w[i], before[i])
			}
		}
	}
	for k, p := range x.points {
		checkRead(t, x, r, data, p.out, int(x.spanEnd(k)-p.out))
	}
	rng := rand.New(rand.NewPCG(seed, 3))
	for range 30 {
		off := rng.Int64N(int64(len(data)) + 1)
		checkRead(t, x, r, data, off, rng.IntN(256<<10))
	}
	for _, p := range x.points {
		checkRead(t, x, r, data, max(p.out-1, 0), 2)
	}
	checkRead(t, x, r, data, 0, len(data))
	checkRead(t, x, r, data, int64(len(data)), 10)
}

// checkRead reads n bytes at off and compares them with data.
func checkRead(t *testing.T, x *Index, r *bytes.Reader, data []byte, off int64, n int) {
	t.Helper()
	p := make([]byte, n)
	got, err := x.ReadAt(r, p, off)
	want := data[min(off, int64(len(data))):min(off+int64(n), int64(len(data)))]
	if got != len(want) || !bytes.Equal(p[:got], want) {
		t.Fatalf("ReadAt(%d bytes at %d): %d bytes, %v; want %d bytes", n, off, got, err, len(want))
	}
	if (err == nil) != (got == n) {
		t.Fatalf("ReadAt(%d bytes at %d): %d bytes with error %v", n, off, got, err)
	}
}

// skippable is a skippable frame holding n bytes.
func skippable(n int) []byte {
	b := binary.LittleEndian.AppendUint32(nil, skipMagic+3)
	b = binary.LittleEndian.AppendUint32(b, uint32(n))
	return append(b, bytes.Repeat([]byte{0xa5}, n)...)
}

func TestPrograms(t *testing.T) {
	t.Parallel()
	data := mixed8()
	text := textData(6<<20, 5)
	disk := testutil.Image(6<<20, 7, 64<<10)
	cases := []struct {
		name string
		data []byte
		z    func(testing.TB, []byte) []byte
	}{
		{"zstd-1", data, func(t testing.TB, d []byte) []byte { return zstdCLI(t, d, "-1") }},
		{"zstd-3", data, func(t testing.TB, d []byte) []byte { return zstdCLI(t, d, "-3") }},
		{"zstd-3-text", text, func(t testing.TB, d []byte) []byte { return zstdCLI(t, d, "-3") }},
		{"zstd-3-disk", disk, func(t testing.TB, d []byte) []byte { return zstdCLI(t, d, "-3") }},
		{"zstd-19", data[:3<<20], func(t testing.TB, d []byte) []byte { return zstdCLI(t, d, "-19") }},
		{"zstd-19-text", text[:2<<20], func(t testing.TB, d []byte) []byte { return zstdCLI(t, d, "-19") }},
		{"zstd-fast", data, func(t testing.TB, d []byte) []byte { return zstdCLI(t, d, "--fast=5") }},
		{"zstd-long27-file", data, func(t testing.TB, d []byte) []byte { return zstdFile(t, d, "--long=27") }},
		{"zstd-long26", data, func(t testing.TB, d []byte) []byte { return zstdCLI(t, d, "--long=26") }},
		{"zstd-no-check", data, func(t testing.TB, d []byte) []byte { return zstdCLI(t, d, "--no-check") }},
		{"zstd-T2", data, func(t testing.TB, d []byte) []byte { return zstdCLI(t, d, "-T2", "-5") }},
		{"zstd-file", data, func(t testing.TB, d []byte) []byte { return zstdFile(t, d, "-3") }},
		{"zstd-empty", nil, func(t testing.TB, d []byte) []byte { return zstdCLI(t, d, "-3") }},
		{"zstd-tiny", []byte("hello\n"), func(t testing.TB, d []byte) []byte { return zstdCLI(t, d, "-3") }},
		{"frames", data, func(t testing.TB, d []byte) []byte {
			// Frames as zstd writes them for concatenated files, with a
			// skippable frame between two of them.
			a, b, c := d[:3<<20], d[3<<20:5<<20], d[5<<20:]
			z := zstdCLI(t, a, "-3")
			z = append(z, skippable(100)...)
			z = append(z, zstdCLI(t, b, "-1", "--no-check")...)
			return append(z, zstdCLI(t, c, "-9")...)
		}},
		{"klauspost-fastest", data, func(t testing.TB, d []byte) []byte {
			return kpStream(t, d, zstd.WithEncoderLevel(zstd.SpeedFastest))
		}},
		{"klauspost-default", data, func(t testing.TB, d []byte) []byte { return kpStream(t, d) }},
		{"klauspost-better", data, func(t testing.TB, d []byte) []byte {
			return kpStream(t, d, zstd.WithEncoderLevel(zstd.SpeedBetterCompression), zstd.WithEncoderCRC(false))
		}},
		{"klauspost-best", data[:3<<20], func(t testing.TB, d []byte) []byte {
			return kpStream(t, d, zstd.WithEncoderLevel(zstd.SpeedBestCompression))
		}},
		{"klauspost-small-window", data, func(t testing.TB, d []byte) []byte {
			return kpStream(t, d, zstd.WithWindowSize(1<<16))
		}},
		{"klauspost-all", data[:4<<20], func(t testing.TB, d []byte) []byte { return kpAll(t, d) }},
		{"klauspost-concurrent", data, func(t testing.TB, d []byte) []byte {
			return kpStream(t, d, zstd.WithEncoderConcurrency(2))
		}},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			z := c.z(t, c.data)
			x := build(t, z, MinSpan)
			// Whole, compared by hash with the input.
			got := make([]byte, x.Size())
			if _, err := x.ReadAt(bytes.NewReader(z), got, 0); err != nil && len(got) > 0 {
				t.Fatal(err)
			}
			if sha256.Sum256(got) != sha256.Sum256(c.data) {
				t.Fatalf("the decoded %d bytes differ from the %d of the input", len(got), len(c.data))
			}
			checkIndex(t, x, z, c.data, uint64(i))
			// Points closer than a window, at every 64 KiB.
			y, err := buildGap(t, z, 64<<10)
			if err != nil {
				t.Fatal(err)
			}
			checkIndex(t, y, z, c.data, uint64(i))
			m, err := x.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%d bytes to %d: %d points, index %d bytes", len(c.data), len(z), x.Points(), len(m))
		})
	}
}

// TestLargeWindow: a window over MaxWindow is refused with ErrWindow.
func TestLargeWindow(t *testing.T) {
	t.Parallel()
	z := zstdCLI(t, textData(1<<20, 3), "--long=27")
	_, err := Build(context.Background(), bytes.NewReader(z), int64(len(z)), MinSpan, nil)
	if !errors.Is(err, ErrWindow) {
		t.Fatalf("Build: %v, want ErrWindow", err)
	}
}

// TestDictionary: a frame that names a dictionary is refused.
func TestDictionary(t *testing.T) {
	t.Parallel()
	// Magic, a descriptor with a 1-byte dictionary ID, a window, the ID.
	z := binary.LittleEndian.AppendUint32(nil, frameMagic)
	z = append(z, 0x01, 0x58, 7, 1, 0, 0)
	_, err := Build(context.Background(), bytes.NewReader(z), int64(len(z)), MinSpan, nil)
	if !errors.Is(err, ErrDictionary) {
		t.Fatalf("Build: %v, want ErrDictionary", err)
	}
}

// TestCorrupt: a changed byte makes Build fail or decode the right
// bytes (a changed window size can be harmless), and a read through an
// index built before the change fails or returns the right bytes, never
// wrong ones.
func TestCorrupt(t *testing.T) {
	t.Parallel()
	data := mixed8()[:3<<20]
	for _, args := range [][]string{{"-3"}, {"-3", "--no-check"}} {
		z := zstdCLI(t, data, args...)
		x, err := buildGap(t, z, 256<<10)
		if err != nil {
			t.Fatal(err)
		}
		rng := rand.New(rand.NewPCG(1, uint64(len(args))))
		failed := 0
		for i := range 40 {
			bad := bytes.Clone(z)
			at := rng.IntN(len(bad))
			if i < 4 {
				at = i * 7 // the frame header
			}
			bad[at] ^= byte(1 + rng.IntN(255))
			if y, err := Build(context.Background(), bytes.NewReader(bad), int64(len(bad)), MinSpan, nil); err == nil {
				got := make([]byte, y.Size())
				if _, err := y.ReadAt(bytes.NewReader(bad), got, 0); err == nil && !bytes.Equal(got, data) && args[len(args)-1] != "--no-check" {
					t.Fatalf("%v: byte %d changed: Build succeeds, and the data differ", args, at)
				}
			}
			for k := range x.points {
				p := make([]byte, x.spanEnd(k)-x.points[k].out)
				n, err := x.ReadAt(bytes.NewReader(bad), p, x.points[k].out)
				if err != nil {
					failed++
					if n != 0 || !bytes.Equal(p, make([]byte, len(p))) {
						t.Fatalf("%v: a failed read returned data", args)
					}
					continue
				}
				if !bytes.Equal(p, data[x.points[k].out:x.spanEnd(k)]) {
					t.Fatalf("%v: byte %d changed: span %d read without error, and wrong", args, at, k)
				}
			}
		}
		if failed == 0 {
			t.Fatalf("%v: no read failed", args)
		}
	}
}

func TestMarshal(t *testing.T) {
	t.Parallel()
	data := mixed8()
	z := zstdCLI(t, data, "-3")
	x := build(t, z, MinSpan)
	b, err := x.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var y Index
	if err := y.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	c, err := y.MarshalBinary()
	if err != nil || !bytes.Equal(b, c) {
		t.Fatalf("round trip: %v", err)
	}
	checkIndex(t, &y, z, data, 1)
	for _, at := range []int{0, len(magic), headerLen - 1, headerLen + 3, len(b) / 2, len(b) - 1} {
		bad := bytes.Clone(b)
		bad[at] ^= 0x10
		if err := y.UnmarshalBinary(bad); err == nil {
			t.Errorf("a change at byte %d is accepted", at)
		}
	}
	if err := y.UnmarshalBinary(b[:len(b)-1]); err == nil {
		t.Error("a cut index is accepted")
	}
}

// TestCancel: Build stops when its context is cancelled.
func TestCancel(t *testing.T) {
	t.Parallel()
	z := zstdCLI(t, mixed8(), "-1")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Build(ctx, bytes.NewReader(z), int64(len(z)), MinSpan, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("Build: %v", err)
	}
}

// TestTruncated: a stream cut short is an error, whichever the cut.
func TestTruncated(t *testing.T) {
	t.Parallel()
	z := zstdCLI(t, mixed8()[:1<<20], "-3")
	for _, n := range []int{1, 4, 5, 9, 100, len(z) / 2, len(z) - 5, len(z) - 1} {
		if _, err := Build(context.Background(), bytes.NewReader(z[:n]), int64(n), MinSpan, nil); err == nil {
			t.Errorf("cut to %d of %d bytes: no error", n, len(z))
		}
	}
	if _, err := Build(context.Background(), bytes.NewReader(append(bytes.Clone(z), 0)), int64(len(z)+1), MinSpan, nil); err == nil {
		t.Error("a byte after the frame: no error")
	}
}

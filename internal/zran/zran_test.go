package zran

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/xva-tools/xva/internal/testutil"
)

// textData is text-like data: words from a vocabulary with numbers
// among them, which gzip compresses about 3 times.
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

// mixedData has runs of text, zeros and random bytes, so the encoders
// make stored, fixed and dynamic blocks and long matches.
func mixedData(n int, seed uint64) []byte {
	rng := rand.New(rand.NewPCG(seed, 2))
	b := make([]byte, 0, n)
	for len(b) < n {
		run := min(1+rng.IntN(300<<10), n-len(b))
		switch rng.IntN(3) {
		case 0:
			b = append(b, textData(run, rng.Uint64())...)
		case 1:
			b = append(b, make([]byte, run)...)
		default:
			r := make([]byte, run)
			for i := range r {
				r[i] = byte(rng.Uint32())
			}
			b = append(b, r...)
		}
	}
	return b
}

// run pipes in through a command and returns its output.
func run(t testing.TB, in []byte, name string, args ...string) []byte {
	t.Helper()
	testutil.NeedTools(t, name)
	cmd := exec.Command(name, args...)
	cmd.Stdin = bytes.NewReader(in)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %v: %v: %s", name, args, err, errb.String())
	}
	return out.Bytes()
}

// goGzip compresses with compress/gzip at level, with a name, a
// comment and an extra field, to exercise the header flags.
func goGzip(t testing.TB, data []byte, level int) []byte {
	var b bytes.Buffer
	w, err := gzip.NewWriterLevel(&b, level)
	if err != nil {
		t.Fatal(err)
	}
	w.Name, w.Comment, w.Extra = "disk.img", "a comment", []byte("xx\x04\x00abcd")
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func build(t testing.TB, gz []byte, span int64) *Index {
	t.Helper()
	x, err := Build(context.Background(), bytes.NewReader(gz), int64(len(gz)), span, nil)
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	return x
}

// checkIndex checks the size, every point's window against the output
// before it (from the start of its member: starts lists the members'
// output offsets), and reads at random offsets and lengths.
func checkIndex(t *testing.T, x *Index, gz, data []byte, starts []int64, seed uint64) {
	t.Helper()
	if x.Size() != int64(len(data)) {
		t.Fatalf("Size %d, want %d", x.Size(), len(data))
	}
	for k, p := range x.points {
		w, err := x.window(k)
		if err != nil {
			t.Fatal(err)
		}
		from := max(p.out-windowSize, 0)
		for _, s := range starts {
			if s <= p.out {
				from = max(from, s)
			}
		}
		if !bytes.Equal(w, data[from:p.out]) {
			t.Fatalf("point %d (at %d): window of %d bytes is not the %d bytes before it", k, p.out, len(w), p.out-from)
		}
	}
	rng := rand.New(rand.NewPCG(seed, 3))
	r := bytes.NewReader(gz)
	for i := range 60 {
		off := rng.Int64N(int64(len(data)) + 1)
		n := rng.IntN(64 << 10)
		if i%10 == 0 {
			n = rng.IntN(3 * int(x.span))
		}
		checkRead(t, x, r, data, off, n)
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

// mixed8 is an 8 MiB sample shared by the tests.
var mixed8 = sync.OnceValue(func() []byte { return mixedData(8<<20, 8) })

func TestPeers(t *testing.T) {
	t.Parallel()
	data := mixed8()
	random := mixedData(2<<20, 9)[:0]
	rng := rand.New(rand.NewPCG(4, 4))
	for range 2 << 20 {
		random = append(random, byte(rng.Uint32()))
	}
	cases := []struct {
		name string
		data []byte
		gz   func(testing.TB, []byte) []byte
		span int64
	}{
		{"gzip-1", data, func(t testing.TB, d []byte) []byte { return run(t, d, "gzip", "-1", "-c") }, 1 << 20},
		{"gzip-6", data, func(t testing.TB, d []byte) []byte { return run(t, d, "gzip", "-6", "-c") }, 512 << 10},
		{"gzip-9", data, func(t testing.TB, d []byte) []byte { return run(t, d, "gzip", "-9", "-c") }, 4 << 20},
		{"pigz", data, func(t testing.TB, d []byte) []byte { return run(t, d, "pigz", "-p", "4", "-c") }, 1 << 20},
		{"pigz-i", data, func(t testing.TB, d []byte) []byte { return run(t, d, "pigz", "-i", "-b", "32", "-c") }, 64 << 10},
		{"gzip-random", random, func(t testing.TB, d []byte) []byte { return run(t, d, "gzip", "-c") }, 256 << 10},
		{"gzip-empty", nil, func(t testing.TB, d []byte) []byte { return run(t, d, "gzip", "-c") }, MinSpan},
		{"gzip-tiny", []byte("hello\n"), func(t testing.TB, d []byte) []byte { return run(t, d, "gzip", "-c") }, MinSpan},
		{"go-huffman", data, func(t testing.TB, d []byte) []byte { return goGzip(t, d, gzip.HuffmanOnly) }, 1 << 20},
		{"go-0", data[:3<<20], func(t testing.TB, d []byte) []byte { return goGzip(t, d, gzip.NoCompression) }, 1 << 20},
		{"go-1", data, func(t testing.TB, d []byte) []byte { return goGzip(t, d, 1) }, 1 << 20},
		{"go-6", data, func(t testing.TB, d []byte) []byte { return goGzip(t, d, 6) }, 2 << 20},
		{"go-9", data, func(t testing.TB, d []byte) []byte { return goGzip(t, d, 9) }, 1 << 20},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			gz := c.gz(t, c.data)
			x := build(t, gz, c.span)
			t.Logf("%d bytes, %d compressed, %d points", len(c.data), len(gz), x.Points())
			checkIndex(t, x, gz, c.data, []int64{0}, uint64(i))
		})
	}
}

// TestGzipDC checks the test's idea of the content against gzip -dc,
// with the file named (FNAME set) as gzip writes it from a file.
func TestGzipDC(t *testing.T) {
	t.Parallel()
	testutil.NeedTools(t, "gzip")
	data := textData(3<<20, 5)
	path := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	gz, err := exec.Command("gzip", "-c", path).Output()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(run(t, gz, "gzip", "-dc"), data) {
		t.Fatal("gzip -dc differs from the input")
	}
	checkIndex(t, build(t, gz, 256<<10), gz, data, []int64{0}, 5)
}

// TestMultiMember: cat a.gz b.gz ..., with an empty member and tiny
// members among them; a span may cross members.
func TestMultiMember(t *testing.T) {
	t.Parallel()
	parts := [][]byte{textData(1<<20, 1), nil, []byte("x"), mixedData(3<<20, 2), textData(100, 3), textData(700<<10, 4)}
	var gz, data []byte
	var starts []int64
	for i, p := range parts {
		starts = append(starts, int64(len(data)))
		data = append(data, p...)
		if i%2 == 0 {
			gz = append(gz, run(t, p, "gzip", "-c")...)
		} else {
			gz = append(gz, goGzip(t, p, 6)...)
		}
	}
	for _, span := range []int64{MinSpan, 300 << 10, 2 << 20} {
		checkIndex(t, build(t, gz, span), gz, data, starts, uint64(span))
	}
	// Zero bytes after the last member are padding, as for gzip -d.
	padded := append(bytes.Clone(gz), make([]byte, 1000)...)
	checkIndex(t, build(t, padded, 1<<20), padded, data, starts, 7)
	garbage := append(bytes.Clone(gz), 0, 0, 'x')
	if _, err := Build(context.Background(), bytes.NewReader(garbage), int64(len(garbage)), 1<<20, nil); err == nil || !strings.Contains(err.Error(), "garbage") {
		t.Fatalf("trailing garbage: %v", err)
	}
}

func TestNotGzip(t *testing.T) {
	t.Parallel()
	for _, in := range []string{"", "x", "\x1f\x8b", "\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03", "plain text, not gzip"} {
		if _, err := Build(context.Background(), strings.NewReader(in), int64(len(in)), 1<<20, nil); err == nil {
			t.Errorf("Build(%q) succeeds", in)
		}
	}
	if _, err := Build(context.Background(), strings.NewReader("x"), 1, 100, nil); err == nil {
		t.Error("a span under the minimum is accepted")
	}
}

func TestCancel(t *testing.T) {
	t.Parallel()
	gz := goGzip(t, mixed8(), 1)
	ctx, cancel := context.WithCancel(context.Background())
	var seen int64
	_, err := Build(ctx, bytes.NewReader(gz), int64(len(gz)), 1<<20, func(n int64) {
		if seen += n; seen > 1<<20 {
			cancel()
		}
	})
	if err != context.Canceled {
		t.Fatalf("Build after cancel: %v", err)
	}
}

// TestDamage: a flipped byte fails Build; with an index of the good
// file, it fails the reads of its span and no other.
func TestDamage(t *testing.T) {
	t.Parallel()
	data := mixed8()
	gz := run(t, data, "gzip", "-6", "-c")
	x := build(t, gz, 1<<20)
	if x.Points() < 4 {
		t.Fatalf("%d points", x.Points())
	}
	k := 2
	at := (x.points[k].bit/8 + x.points[k+1].bit/8) / 2
	bad := bytes.Clone(gz)
	bad[at] ^= 0x55
	_, err := Build(context.Background(), bytes.NewReader(bad), int64(len(bad)), 1<<20, nil)
	if err == nil || !strings.Contains(err.Error(), "byte") {
		t.Fatalf("Build of a damaged file: %v", err)
	}
	t.Logf("Build: %v", err)
	r := bytes.NewReader(bad)
	p := make([]byte, 4096)
	n, err := x.ReadAt(r, p, x.points[k].out+100)
	if err == nil || n != 0 || !bytes.Equal(p, make([]byte, len(p))) {
		t.Fatalf("ReadAt in the damaged span: %d bytes, %v", n, err)
	}
	want := fmt.Sprintf("span at uncompressed byte %d (compressed byte %d)", x.points[k].out, x.points[k].bit/8)
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("ReadAt error %q does not name the span (%s)", err, want)
	}
	t.Logf("ReadAt: %v", err)
	// A range that runs into the damaged span fails too.
	if _, err := x.ReadAt(r, make([]byte, 100), x.points[k].out-50); err == nil {
		t.Fatal("a read across into the damaged span succeeds")
	}
	for _, j := range []int{0, k - 1, k + 1, x.Points() - 1} {
		checkRead(t, x, r, data, x.points[j].out+10, 5000)
	}
}

func TestMarshal(t *testing.T) {
	t.Parallel()
	data := mixed8()
	gz := goGzip(t, data, 6)
	x := build(t, gz, 1<<20)
	b, err := x.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var y Index
	if err := y.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	b2, _ := y.MarshalBinary()
	if !bytes.Equal(b, b2) {
		t.Fatal("the index does not re-marshal equal")
	}
	checkIndex(t, &y, gz, data, []int64{0}, 11)
	for _, n := range []int{0, 10, headerLen, headerLen + 10, len(b) / 2, len(b) - 5, len(b) - 1} {
		if err := new(Index).UnmarshalBinary(b[:n]); err == nil {
			t.Errorf("index cut to %d of %d bytes accepted", n, len(b))
		}
	}
	for _, at := range []int{0, 9, 20, headerLen + 3, len(b) / 2, len(b) - 2} {
		c := bytes.Clone(b)
		c[at] ^= 1
		if err := new(Index).UnmarshalBinary(c); err == nil {
			t.Errorf("index altered at byte %d accepted", at)
		}
	}
	// Alterations that pass the CRC are caught by the checks.
	for _, edit := range []func(*Index){
		func(z *Index) { z.points[1].out = z.points[0].out },
		func(z *Index) { z.points[2].bit = z.points[1].bit - 1 },
		func(z *Index) { z.points[1].wlen = 100 },
		func(z *Index) { z.points[1].win = z.points[1].win[:5] },
		func(z *Index) { z.points[0].out = 5 },
		func(z *Index) { z.span = 1 },
		func(z *Index) { z.csize = 10 },
		func(z *Index) { z.size = 100 },
	} {
		z := *x
		z.points = append([]point(nil), x.points...)
		edit(&z)
		c, err := z.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		if err := new(Index).UnmarshalBinary(c); err == nil {
			t.Errorf("an index edited to %+v accepted", z.points[:2])
		}
	}
}

// TestIndexSize: a 64 MiB file of text-like data with span 8 MiB has
// an index under 1% of the compressed file.
func TestIndexSize(t *testing.T) {
	t.Parallel()
	data := textData(64<<20, 64)
	gz := run(t, data, "gzip", "-6", "-c")
	x := build(t, gz, 8<<20)
	b, err := x.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	pct := 100 * float64(len(b)) / float64(len(gz))
	t.Logf("64 MiB text: %d bytes compressed (%.2fx), %d points, index %d bytes = %.3f%%", len(gz), float64(len(data))/float64(len(gz)), x.Points(), len(b), pct)
	if pct >= 1 {
		t.Fatalf("index is %.3f%% of the file", pct)
	}
	checkIndex(t, x, gz, data, []int64{0}, 64)
}

// TestPointCap: a file that inflates hugely (zeros) cannot make more
// points than its size allows; a larger span then does.
func TestPointCap(t *testing.T) {
	t.Parallel()
	zeros := make([]byte, 16<<20)
	var b bytes.Buffer
	w, _ := gzip.NewWriterLevel(&b, 9)
	for k := 0; k < len(zeros); k += MinSpan {
		w.Write(zeros[k : k+MinSpan])
		w.Flush() // a block boundary every 32 KiB
	}
	w.Close()
	gz := b.Bytes()
	_, err := Build(context.Background(), bytes.NewReader(gz), int64(len(gz)), MinSpan, nil)
	if err == nil || !strings.Contains(err.Error(), "restart points") {
		t.Fatalf("%d bytes inflating to %d with span %d: %v", len(gz), len(zeros), MinSpan, err)
	}
	t.Log(err)
	x := build(t, gz, 4<<20)
	checkIndex(t, x, gz, zeros, []int64{0}, 1)
	if _, err := x.ReadAt(bytes.NewReader(gz), make([]byte, 1), -1); err == nil {
		t.Fatal("a negative offset is accepted")
	}
}

// TestConcurrentReads: an Index serves reads from several goroutines.
func TestConcurrentReads(t *testing.T) {
	t.Parallel()
	data := textData(2<<20, 9)
	gz := goGzip(t, data, 6)
	x := build(t, gz, 256<<10)
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for g := range 4 {
		wg.Go(func() {
			p := make([]byte, 10000)
			for i := range 20 {
				off := int64((g*7919 + i*104729) % (len(data) - len(p)))
				if _, err := x.ReadAt(bytes.NewReader(gz), p, off); err != nil || !bytes.Equal(p, data[off:off+int64(len(p))]) {
					errs <- fmt.Errorf("read at %d: %v", off, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

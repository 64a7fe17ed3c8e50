package zstdseek

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/xva-tools/xva/internal/testutil"
)

// mixed returns n bytes of text-like data, random bytes and zeros, in runs.
func mixed(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	words := strings.Fields("the disk of a virtual machine holds blocks of files, logs and zeros; xapi exports it as a tar of chunks " +
		"each verified by its checksum, and the archive is compressed whole with zstd or gzip 0123456789 VDI VBD SR")
	b := make([]byte, 0, n)
	for len(b) < n {
		run := min(n-len(b), 1+r.IntN(512<<10))
		switch r.IntN(4) {
		case 0, 1:
			for k := len(b) + run; len(b) < k; {
				b = append(b, words[r.IntN(len(words))]...)
				b = append(b, ' ')
			}
			b = b[:min(len(b), n)]
		case 2:
			for range run {
				b = append(b, byte(r.Uint32()))
			}
		case 3:
			b = append(b, make([]byte, run)...)
		}
	}
	return b[:n]
}

// text returns n bytes of text-like data.
func text(n int) []byte {
	r := rand.New(rand.NewPCG(7, 7))
	words := strings.Fields("Lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt ut labore et dolore " +
		"magna aliqua Ut enim ad minim veniam quis nostrud exercitation ullamco laboris nisi aliquip ex ea commodo consequat " +
		"2026-11-30T07:12:16Z INFO xapi: VDI.export started uuid= sr= size= bytes ERROR retry WARN")
	var b bytes.Buffer
	for b.Len() < n {
		b.WriteString(words[r.IntN(len(words))])
		if r.IntN(12) == 0 {
			fmt.Fprintf(&b, " %d\n", r.IntN(1<<20))
		} else {
			b.WriteByte(' ')
		}
	}
	return b.Bytes()[:n]
}

func compress(t testing.TB, in []byte, frameSize int64, jobs int) []byte {
	t.Helper()
	var out bytes.Buffer
	w, err := NewWriter(&out, frameSize, jobs, zstd.SpeedDefault)
	if err != nil {
		t.Fatal(err)
	}
	// Odd-sized writes, so frames are cut across them.
	for p := in; len(p) > 0; {
		k := min(len(p), 100_003)
		if _, err := w.Write(p[:k]); err != nil {
			t.Fatal(err)
		}
		p = p[k:]
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func zstdCLI(t *testing.T, stdin []byte, args ...string) []byte {
	t.Helper()
	cmd := exec.Command("zstd", args...)
	cmd.Stdin = bytes.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("zstd %v: %v: %s", args, err, stderr.Bytes())
	}
	return out
}

func checkRandom(t *testing.T, x *Reader, in []byte, reads int, seed uint64) {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 2))
	size := int64(len(in))
	for range reads {
		off := r.Int64N(size + 2)
		n := r.IntN(3 << 20)
		if r.IntN(2) == 0 {
			n = r.IntN(5000)
		}
		p := make([]byte, n)
		k, err := x.ReadAt(p, off)
		want := in[min(off, size):min(off+int64(n), size)]
		if k != len(want) || !bytes.Equal(p[:k], want) {
			t.Fatalf("ReadAt(%d bytes at %d) = %d bytes, want %d; content differs: %v", n, off, k, len(want), !bytes.Equal(p[:k], want))
		}
		if off+int64(n) > size && n > 0 {
			if err != io.EOF {
				t.Fatalf("ReadAt(%d bytes at %d) past the end of %d: err %v, want io.EOF", n, off, size, err)
			}
		} else if err != nil {
			t.Fatalf("ReadAt(%d bytes at %d): %v", n, off, err)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	testutil.NeedTools(t, "zstd")
	const fs = 64 << 10
	cases := []struct {
		name      string
		in        []byte
		frameSize int64
	}{
		{"empty", nil, fs},
		{"1", []byte{'x'}, fs},
		{"frameSize-1", mixed(fs-1, 1), fs},
		{"frameSize", mixed(fs, 2), fs},
		{"frameSize+1", mixed(fs+1, 3), fs},
		{"20MiB", mixed(20<<20, 4), 1 << 20},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			z := compress(t, c.in, c.frameSize, 1)
			if z4 := compress(t, c.in, c.frameSize, 4); !bytes.Equal(z, z4) {
				t.Fatalf("output differs between 1 and 4 jobs (%d and %d bytes)", len(z), len(z4))
			}
			if got := zstdCLI(t, z, "-d", "-c", "-q"); !bytes.Equal(got, c.in) {
				t.Fatalf("zstd -d gives %d bytes, want the %d written", len(got), len(c.in))
			}
			d, err := zstd.NewReader(bytes.NewReader(z))
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(d)
			d.Close()
			if err != nil || !bytes.Equal(got, c.in) {
				t.Fatalf("klauspost's streaming decoder: %d bytes, %v; want the %d written", len(got), err, len(c.in))
			}

			x, err := Open(bytes.NewReader(z), int64(len(z)))
			if err != nil {
				t.Fatal(err)
			}
			defer x.Close()
			if x.Size() != int64(len(c.in)) {
				t.Fatalf("Size %d, want %d", x.Size(), len(c.in))
			}
			wantFrames := (len(c.in) + int(c.frameSize) - 1) / int(c.frameSize)
			if x.Frames() != wantFrames {
				t.Fatalf("Frames %d, want %d", x.Frames(), wantFrames)
			}
			var csum int64
			for i := range x.Frames() {
				cs, ds := x.FrameSizes(i)
				want := min(c.frameSize, int64(len(c.in))-int64(i)*c.frameSize)
				if ds != want {
					t.Fatalf("frame %d: %d bytes decompressed, want %d", i, ds, want)
				}
				csum += cs
			}
			tableLen := int64(headerSize + 12*x.Frames() + footerSize)
			if csum+tableLen != int64(len(z)) {
				t.Fatalf("frames %d + table %d bytes != file %d", csum, tableLen, len(z))
			}
			if len(c.in) > 0 {
				checkRandom(t, x, c.in, 200, uint64(len(c.in)))
				all := make([]byte, len(c.in))
				if n, err := x.ReadAt(all, 0); n != len(all) || err != nil || !bytes.Equal(all, c.in) {
					t.Fatalf("ReadAt of everything: %d, %v", n, err)
				}
			}
			if n, err := x.ReadAt(make([]byte, 1), int64(len(c.in))); n != 0 || err != io.EOF {
				t.Fatalf("ReadAt at the end: %d, %v; want 0, io.EOF", n, err)
			}

			// zstd -lv counts the frames and the skippable one.
			file := filepath.Join(t.TempDir(), "x.zst")
			if err := os.WriteFile(file, z, 0o644); err != nil {
				t.Fatal(err)
			}
			out := string(zstdCLI(t, nil, "-lv", file))
			if m := regexp.MustCompile(`# Zstandard Frames: (\d+)`).FindStringSubmatch(out); m != nil {
				if n, _ := strconv.Atoi(m[1]); n != x.Frames() {
					t.Errorf("zstd -lv says %d frames, the table %d", n, x.Frames())
				}
			} else {
				t.Logf("zstd -lv printed no frame count: %s", out)
			}
			if m := regexp.MustCompile(`# Skippable Frames: (\d+)`).FindStringSubmatch(out); m != nil && m[1] != "1" {
				t.Errorf("zstd -lv says %s skippable frames, want 1 (the seek table)", m[1])
			}
		})
	}
}

// TestXXH64 checks the digest against published values and against the
// content checksum klauspost's encoder ends a frame with.
func TestXXH64(t *testing.T) {
	for s, want := range map[string]uint64{
		"":    0xEF46DB3751D8E999,
		"a":   0xD24EC4F1A98C6E5B,
		"abc": 0x44BC2CF5AD770999,
	} {
		if got := xxh64([]byte(s)); got != want {
			t.Errorf("xxh64(%q) = %#x, want %#x", s, got, want)
		}
	}
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderCRC(true), zstd.WithEncoderConcurrency(1))
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	in := mixed(1<<20, 9)
	for n := 1; n < 200; n++ { // (klauspost writes an empty frame without a checksum)
		b := in[n*37 : n*37+n*n]
		f := enc.EncodeAll(b, nil)
		if got, want := uint32(xxh64(b)), binary.LittleEndian.Uint32(f[len(f)-4:]); got != want {
			t.Fatalf("xxh64 of %d bytes: %08x, the zstd frame's checksum %08x", len(b), got, want)
		}
	}
}

func TestNotSeekable(t *testing.T) {
	testutil.NeedTools(t, "zstd")
	plain := zstdCLI(t, mixed(300<<10, 5), "-c", "-q")
	for name, b := range map[string][]byte{"zstd CLI": plain, "empty": nil, "short": {0xb1, 0xea, 0x92}, "text": []byte("hello, world\n")} {
		if _, err := Open(bytes.NewReader(b), int64(len(b))); !errors.Is(err, ErrNotSeekable) {
			t.Errorf("%s: Open: %v, want ErrNotSeekable", name, err)
		}
	}
}

// table builds a seek table frame for entries of (compressed, decompressed).
func table(entries [][2]uint32, desc byte, count uint32) []byte {
	var t []byte
	t = binary.LittleEndian.AppendUint32(t, skippableMagic)
	es := 8
	if desc&checksumFlag != 0 {
		es = 12
	}
	t = binary.LittleEndian.AppendUint32(t, uint32(len(entries)*es+footerSize))
	for _, e := range entries {
		t = binary.LittleEndian.AppendUint32(t, e[0])
		t = binary.LittleEndian.AppendUint32(t, e[1])
		if es == 12 {
			t = binary.LittleEndian.AppendUint32(t, 0)
		}
	}
	t = binary.LittleEndian.AppendUint32(t, count)
	t = append(t, desc)
	return binary.LittleEndian.AppendUint32(t, seekableMagic)
}

func TestMalformed(t *testing.T) {
	in := mixed(200<<10, 6)
	good := compress(t, in, 64<<10, 2)
	x, err := Open(bytes.NewReader(good), int64(len(good)))
	if err != nil {
		t.Fatal(err)
	}
	tableAt := len(good) - (headerSize + 12*x.Frames() + footerSize)
	data := good[:tableAt]
	var entries [][2]uint32
	for i := range x.Frames() {
		cs, ds := x.FrameSizes(i)
		entries = append(entries, [2]uint32{uint32(cs), uint32(ds)})
	}
	with := func(f func(e [][2]uint32)) []byte {
		e := append([][2]uint32(nil), entries...)
		f(e)
		return append(append([]byte(nil), data...), table(e, 0, uint32(len(e)))...)
	}
	// Without checksums the original entries are a good table.
	if _, err := Open(bytes.NewReader(with(func([][2]uint32) {})), int64(len(good))-4*int64(x.Frames())); err != nil {
		t.Fatalf("the table without checksums: %v", err)
	}
	setCount := func(b []byte, n uint32) []byte {
		b = append([]byte(nil), b...)
		binary.LittleEndian.PutUint32(b[len(b)-footerSize:], n)
		return b
	}
	cases := []struct {
		name string
		b    []byte
		want string
	}{
		{"sizes do not add up", with(func(e [][2]uint32) { e[1][0] += 10 }), "compressed bytes"},
		{"sizes short", with(func(e [][2]uint32) { e[1][0] -= 10 }), "precede the table"},
		{"huge frame count", setCount(good, 0xffffffff), "frames"},
		{"frame count larger than the file", setCount(good, maxFrames), "needs"},
		{"frame count off by one", setCount(good, uint32(x.Frames()+1)), "skippable magic"},
		{"truncated", append(append([]byte(nil), good[:100]...), good[len(good)-40:]...), ""},
		{"reserved bits", func() []byte {
			b := append([]byte(nil), good...)
			b[len(b)-5] |= 0x04
			return b
		}(), "reserved bits"},
		{"frame size field", func() []byte {
			b := append([]byte(nil), good...)
			b[tableAt+4]++
			return b
		}(), "frame says it is"},
		{"impossible expansion", with(func(e [][2]uint32) { e[0][1] = e[0][0]*maxExpansion + 1 }), "cannot decompress"},
		{"tiny frame", with(func(e [][2]uint32) { e[0][0], e[1][0] = 3, e[1][0]+e[0][0]-3 }), "shorter than any zstd frame"},
	}
	for _, c := range cases {
		_, err := Open(bytes.NewReader(c.b), int64(len(c.b)))
		if err == nil || errors.Is(err, ErrNotSeekable) {
			t.Errorf("%s: Open: %v, want an error", c.name, err)
			continue
		}
		if !errors.Is(err, ErrCorrupt) && !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("%s: Open: %v does not wrap ErrCorrupt", c.name, err)
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Open: %v, want it to say %q", c.name, err, c.want)
		}
		t.Logf("%s: %v", c.name, err)
	}
	// A file that shrank after Open: reading a frame is io.ErrUnexpectedEOF.
	x, err = Open(bytes.NewReader(good), int64(len(good)))
	if err != nil {
		t.Fatal(err)
	}
	x.r = bytes.NewReader(good[:100])
	if _, err := x.ReadAt(make([]byte, 10), 0); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("ReadAt of a truncated file: %v, want io.ErrUnexpectedEOF", err)
	}
}

func TestCorruptFrame(t *testing.T) {
	const fs = 64 << 10
	in := mixed(5*fs, 8)
	good := compress(t, in, fs, 2)
	x, _ := Open(bytes.NewReader(good), int64(len(good)))
	cs0, _ := x.FrameSizes(0)
	cs1, _ := x.FrameSizes(1)
	for _, at := range []int64{cs0 + cs1/2, cs0 + cs1 - 2, cs0 + 5} {
		bad := append([]byte(nil), good...)
		bad[at] ^= 0x40
		x, err := Open(bytes.NewReader(bad), int64(len(bad)))
		if err != nil {
			t.Fatal(err)
		}
		p := make([]byte, 100)
		if _, err := x.ReadAt(p, fs+1000); !errors.Is(err, ErrCorrupt) {
			t.Errorf("byte %d flipped: ReadAt of frame 1: %v, want ErrCorrupt", at, err)
		} else {
			t.Logf("byte %d flipped: %v", at, err)
		}
		if n, err := x.ReadAt(p, 3*fs); n != len(p) || err != nil || !bytes.Equal(p, in[3*fs:3*fs+100]) {
			t.Errorf("byte %d flipped: ReadAt of frame 3: %d, %v", at, n, err)
		}
	}
	// The table's checksum alone: a frame that decodes well but whose
	// checksum in the table is wrong.
	bad := append([]byte(nil), good...)
	bad[len(bad)-footerSize-12*x.Frames()+12*2+8] ^= 1
	x, err := Open(bytes.NewReader(bad), int64(len(bad)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := x.ReadAt(make([]byte, 1), 2*fs); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "checksum") {
		t.Errorf("table checksum changed: %v", err)
	}
}

// TestConcurrent reads from many goroutines; run with -race. Each frame is
// decoded once while it stays in the cache.
func TestConcurrent(t *testing.T) {
	const fs = 256 << 10
	in := mixed(3*fs, 10)
	z := compress(t, in, fs, 4)
	cr := &countingReader{r: bytes.NewReader(z)}
	x, err := Open(cr, int64(len(z)))
	if err != nil {
		t.Fatal(err)
	}
	cr.mu.Lock()
	cr.n = 0
	cr.mu.Unlock()
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(g), 3))
			for range 50 {
				off := r.Int64N(int64(len(in)))
				p := make([]byte, r.IntN(100_000))
				n, err := x.ReadAt(p, off)
				if !bytes.Equal(p[:n], in[off:off+int64(n)]) || (err != nil && err != io.EOF) {
					t.Errorf("ReadAt(%d at %d): %d, %v", len(p), off, n, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if cr.n != x.Frames() {
		t.Errorf("%d frames read from the file for %d frames: a frame was decoded twice", cr.n, x.Frames())
	}
}

type countingReader struct {
	r  io.ReaderAt
	mu sync.Mutex
	n  int
}

func (c *countingReader) ReadAt(p []byte, off int64) (int, error) {
	c.mu.Lock()
	c.n++
	c.mu.Unlock()
	return c.r.ReadAt(p, off)
}

func TestWriterArgs(t *testing.T) {
	for _, fs := range []int64{0, -1, MaxFrameSize + 1} {
		if _, err := NewWriter(io.Discard, fs, 1, zstd.SpeedDefault); err == nil {
			t.Errorf("frame size %d accepted", fs)
		}
	}
	if _, err := NewWriter(io.Discard, 1<<20, 1, zstd.EncoderLevel(99)); err == nil {
		t.Error("level 99 accepted")
	}
	// A failing writer: the error reaches Write or Close.
	w, err := NewWriter(failWriter{}, 1024, 2, zstd.SpeedFastest)
	if err != nil {
		t.Fatal(err)
	}
	var werr error
	for range 100 {
		if _, werr = w.Write(make([]byte, 1000)); werr != nil {
			break
		}
	}
	if cerr := w.Close(); werr == nil && cerr == nil {
		t.Error("a failing destination went unnoticed")
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

// A table that lists a frame holding data as empty is refused: ReadAt
// would leave the frame out while every sequential reader decodes it (a
// review found the disk served at random could then differ from the one
// unpacked).
func TestEmptyEntryMustBeEmpty(t *testing.T) {
	in := mixed(200<<10, 7)
	good := compress(t, in, 64<<10, 2)
	x, err := Open(bytes.NewReader(good), int64(len(good)))
	if err != nil {
		t.Fatal(err)
	}
	tableAt := len(good) - (headerSize + 12*x.Frames() + footerSize)
	var entries [][2]uint32
	for i := range x.Frames() {
		cs, ds := x.FrameSizes(i)
		entries = append(entries, [2]uint32{uint32(cs), uint32(ds)})
	}
	// Frame 0's bytes counted into frame 1's: the sizes still add up.
	entries[1][1] += entries[0][1]
	entries[0][1] = 0
	lie := append(append([]byte(nil), good[:tableAt]...), table(entries, 0, uint32(len(entries)))...)
	if _, err := Open(bytes.NewReader(lie), int64(len(lie))); err == nil || !errors.Is(err, ErrCorrupt) {
		t.Fatalf("a data frame listed as empty: %v", err)
	}
}

package qcow2

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/flate"

	"github.com/xva-tools/xva/disk"
	"github.com/xva-tools/xva/internal/testutil"
)

// image is test data: bytes with zero stretches of up to maxRun.
func image(size int64, seed uint64, maxRun int64) []byte {
	b := make([]byte, size)
	r := rand.New(rand.NewPCG(seed, 1))
	for off := int64(0); off < size; {
		n := min(size-off, 1+r.Int64N(maxRun))
		if r.IntN(3) > 0 {
			for i := off; i < off+n; i++ {
				b[i] = byte(r.Uint32() % 7) // compressible
			}
		}
		off += n
	}
	return b
}

// memSource serves a byte slice as a disk.
type memSource []byte

func (m memSource) Size() int64  { return int64(len(m)) }
func (m memSource) Close() error { return nil }
func (m memSource) ReadAt(p []byte, off int64) (int, error) {
	return bytes.NewReader(m).ReadAt(p, off)
}

func writeQcow2(t testing.TB, path string, data []byte, opts ...Option) {
	t.Helper()
	s, err := Create(path, int64(len(data)), opts...)
	if err != nil {
		t.Fatal(err)
	}
	r := disk.NewReader(context.Background(), memSource(data))
	defer r.Close()
	if _, err := disk.Copy(context.Background(), s, r, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(); err != nil {
		t.Fatal(err)
	}
}

// readAll reads the image at path through Open, checking that nothing
// outside its extents is non-zero.
func readAll(t testing.TB, path string) []byte {
	t.Helper()
	img, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	b := make([]byte, img.Size())
	if _, err := img.ReadAt(b, 0); err != nil && len(b) > 0 {
		t.Fatal(err)
	}
	var pos int64
	for e, err := range img.Extents(context.Background()) {
		if err != nil {
			t.Fatal(err)
		}
		if e.Off < pos || e.Len <= 0 || e.End() > img.Size() {
			t.Fatalf("%s: extent %+v after %d in a %d-byte disk", path, e, pos, img.Size())
		}
		if !disk.IsZero(b[pos:e.Off]) {
			t.Fatalf("%s: data in [%d, %d), outside the extents", path, pos, e.Off)
		}
		pos = e.End()
	}
	if !disk.IsZero(b[pos:]) {
		t.Fatalf("%s: data after the last extent at %d", path, pos)
	}
	return b
}

func sum(b []byte) string { h := sha256.Sum256(b); return hex.EncodeToString(h[:]) }

func qemuImg(t testing.TB, args ...string) string {
	t.Helper()
	out, err := exec.Command("qemu-img", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("qemu-img %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// checkQemu holds an image we wrote to qemu-img: check finds no errors
// and no leaks, info the exact size, and compare the same bytes as raw.
func checkQemu(t testing.TB, path, raw string, size int64) {
	t.Helper()
	out := qemuImg(t, "check", "--output=json", path)
	var c struct {
		CheckErrors int `json:"check-errors"`
	}
	if err := json.Unmarshal([]byte(out), &c); err != nil || strings.Contains(out, "\"leaks\"") || strings.Contains(out, "\"corruptions\"") || c.CheckErrors != 0 {
		t.Fatalf("qemu-img check %s: %v\n%s", path, err, out)
	}
	var info struct {
		Format      string `json:"format"`
		VirtualSize int64  `json:"virtual-size"`
	}
	if err := json.Unmarshal([]byte(qemuImg(t, "info", "--output=json", path)), &info); err != nil {
		t.Fatal(err)
	}
	if info.Format != "qcow2" || info.VirtualSize != size {
		t.Fatalf("qemu-img info %s: %+v, want qcow2 of %d bytes", path, info, size)
	}
	qemuImg(t, "compare", "-f", "raw", "-F", "qcow2", raw, path)
}

// TestWriteQemuChecks writes disks of sizes on and off cluster and MiB
// boundaries, with several cluster sizes (512-byte clusters cover 32 KiB
// per L2 table, so small disks cross many), and holds each to qemu-img.
func TestWriteQemuChecks(t *testing.T) {
	testutil.NeedTools(t, "qemu-img")
	dir := t.TempDir()
	for _, c := range []struct {
		cs   int64
		size int64
		full bool
	}{
		{0, 0, false}, {0, 512, true}, {0, 64 << 10, true}, {0, 64<<10 + 512, false}, {0, 1 << 20, false},
		{0, 5<<20 + 4096, false}, {0, 3<<20 + 1000, true}, {512, 200 << 10, false}, {512, 1<<20 + 512, true},
		{4096, 3<<20 - 512, false}, {2 << 20, 5<<20 + 512, false}, {2 << 20, 0, false},
	} {
		name := fmt.Sprintf("cs%d-size%d-full%v", c.cs, c.size, c.full)
		t.Run(name, func(t *testing.T) {
			var data []byte
			if c.full {
				data = bytes.Repeat([]byte{0x5a}, int(c.size))
			} else {
				data = image(c.size, uint64(c.size), 256<<10)
			}
			var opts []Option
			if c.cs != 0 {
				opts = append(opts, WithClusterSize(c.cs))
			}
			p := filepath.Join(dir, name+".qcow2")
			writeQcow2(t, p, data, opts...)
			vsize := (c.size + 511) &^ 511
			raw := filepath.Join(dir, name+".raw")
			os.WriteFile(raw, append(bytes.Clone(data), make([]byte, vsize-c.size)...), 0o644)
			checkQemu(t, p, raw, vsize)
			if got := readAll(t, p); !bytes.Equal(got[:c.size], data) {
				t.Fatal("our reader reads our image differently")
			}
		})
	}
}

// TestSparse2TiB: a 2 TiB disk holding a few MiB stays a few MiB.
func TestSparse2TiB(t *testing.T) {
	testutil.NeedTools(t, "qemu-img")
	dir := t.TempDir()
	const size = 2 << 40
	p := filepath.Join(dir, "big.qcow2")
	s, err := Create(p, size)
	if err != nil {
		t.Fatal(err)
	}
	chunk := bytes.Repeat([]byte("2 TiB!"), 1<<18)[:1<<20]
	raw := filepath.Join(dir, "big.raw")
	rf, _ := os.Create(raw)
	rf.Truncate(size)
	for _, off := range []int64{0, 1 << 40, size - 3<<20} {
		if _, err := s.WriteAt(chunk, off); err != nil {
			t.Fatal(err)
		}
		rf.WriteAt(chunk, off)
	}
	rf.Close()
	if err := s.Commit(); err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(p)
	if st.Size() > 8<<20 {
		t.Fatalf("the image is %d bytes", st.Size())
	}
	checkQemu(t, p, raw, size)
	img, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	var n int64
	for e, err := range img.Extents(context.Background()) {
		if err != nil {
			t.Fatal(err)
		}
		n += e.Len
	}
	if n != 3<<20 {
		t.Fatalf("extents cover %d bytes", n)
	}
	got := make([]byte, 1<<20)
	if _, err := img.ReadAt(got, 1<<40); err != nil || !bytes.Equal(got, chunk) {
		t.Fatalf("read at 1 TiB: %v", err)
	}
}

// TestReadQemuImages reads what qemu-img writes, as qemu-img reads it.
func TestReadQemuImages(t *testing.T) {
	testutil.NeedTools(t, "qemu-img")
	dir := t.TempDir()
	const size = 7<<20 + 64<<10 + 512
	data := image(size, 7, 512<<10)
	raw := filepath.Join(dir, "src.raw")
	os.WriteFile(raw, data, 0o644)
	other := bytes.Clone(data)
	copy(other[1<<20:], bytes.Repeat([]byte{9}, 300<<10)) // changed
	clear(other[3<<20 : 4<<20])                           // zeroed: zero clusters above the base
	copy(other[size-4096:], bytes.Repeat([]byte{1}, 4096))
	os.WriteFile(filepath.Join(dir, "other.raw"), other, 0o644)
	for _, c := range []struct {
		name string
		args []string
	}{
		{"plain", []string{"convert", "-O", "qcow2", raw}},
		{"v2", []string{"convert", "-O", "qcow2", "-o", "compat=0.10", raw}},
		{"small-clusters", []string{"convert", "-O", "qcow2", "-o", "cluster_size=4096", raw}},
		{"zlib", []string{"convert", "-c", "-O", "qcow2", raw}},
		{"zlib-v2", []string{"convert", "-c", "-O", "qcow2", "-o", "compat=0.10", raw}},
		{"zstd", []string{"convert", "-c", "-O", "qcow2", "-o", "compression_type=zstd", raw}},
		{"zstd-plain", []string{"convert", "-O", "qcow2", "-o", "compression_type=zstd", raw}},
		{"zstd-512", []string{"convert", "-c", "-O", "qcow2", "-o", "compression_type=zstd,cluster_size=512", raw}},
		{"empty", []string{"create", "-f", "qcow2"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(dir, c.name+".qcow2")
			args := append(c.args, p)
			if c.name == "empty" {
				args = append(args, "10M")
			}
			qemuImg(t, args...)
			want := compareWithQemu(t, dir, p)
			readParallel(t, p, want, strings.Contains(c.args[1], "-c"))
		})
	}
	// A backing chain: base ← mid (relative name) ← top, top holding zero
	// clusters over the base's data.
	base := filepath.Join(dir, "base.qcow2")
	qemuImg(t, "convert", "-O", "qcow2", raw, base)
	os.Mkdir(filepath.Join(dir, "sub"), 0o755)
	mid := filepath.Join(dir, "sub", "mid.qcow2")
	qemuImg(t, "create", "-f", "qcow2", "-b", "../base.qcow2", "-F", "qcow2", mid)
	top := filepath.Join(dir, "sub", "top.qcow2")
	qemuImg(t, "convert", "-O", "qcow2", "-B", "mid.qcow2", "-F", "qcow2", filepath.Join(dir, "other.raw"), top)
	got := compareWithQemu(t, dir, top)
	if !bytes.Equal(got, other) {
		t.Fatal("the chain does not read as the data converted into it")
	}
	img, err := Open(top)
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	info, err := img.Info(context.Background())
	if err != nil || len(info.Backing) != 2 || info.Backing[1] != filepath.Join(dir, "base.qcow2") {
		t.Fatalf("info %+v, %v", info, err)
	}
	// A raw backing file, and a child larger than its backing file.
	qemuImg(t, "create", "-f", "qcow2", "-b", "src.raw", "-F", "raw", filepath.Join(dir, "over-raw.qcow2"), "16M")
	got = compareWithQemu(t, dir, filepath.Join(dir, "over-raw.qcow2"))
	if !bytes.Equal(got[:size], data) || !disk.IsZero(got[size:]) {
		t.Fatal("a raw backing file reads wrong")
	}
}

// compareWithQemu reads the image with qemu-img convert -O raw and with
// Open and fails unless both give the same bytes.
func compareWithQemu(t *testing.T, dir, p string) []byte {
	t.Helper()
	out := filepath.Join(dir, "qemu-out.raw")
	os.Remove(out)
	qemuImg(t, "convert", "-O", "raw", p, out)
	want, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	got := readAll(t, p)
	if sum(got) != sum(want) {
		t.Fatalf("%s: we read %d bytes (%s), qemu-img %d (%s)", p, len(got), sum(got)[:12], len(want), sum(want)[:12])
	}
	return got
}

// small writes a small qcow2 with 512-byte clusters and returns its bytes.
func small(t testing.TB, data []byte) []byte {
	t.Helper()
	p := filepath.Join(t.TempDir(), "small.qcow2")
	writeQcow2(t, p, data, WithClusterSize(512))
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func openBytes(b []byte) (*Image, error) {
	return OpenOn(bytes.NewReader(b), int64(len(b)), "hostile.qcow2")
}

// l2Of finds the L2 table of a small image and the offset of its first
// data cluster.
func firstL2(t testing.TB, b []byte) int64 {
	h := parseHeader(b)
	return int64(binary.BigEndian.Uint64(b[h.L1Offset:]) & offsetMask)
}

// TestHostile: images crafted to be wrong are refused with ErrCorrupt or
// ErrUnsupported, naming what is wrong, at open or at read; none panics.
func TestHostile(t *testing.T) {
	data := bytes.Repeat([]byte("hostile!"), 512) // 4 KiB: 8 clusters of 512
	good := small(t, data)
	if img, err := openBytes(good); err != nil {
		t.Fatal(err)
	} else if got := make([]byte, len(data)); func() error { _, err := img.ReadAt(got, 0); return err }() != nil || !bytes.Equal(got, data) {
		t.Fatal("the good image reads wrong")
	}
	be := binary.BigEndian
	h := parseHeader(good)
	l2 := firstL2(t, good)
	for _, c := range []struct {
		name  string
		patch func(b []byte) []byte
		want  error
		msg   string
	}{
		{"magic", func(b []byte) []byte { b[0] = 'X'; return b }, ErrCorrupt, "magic"},
		{"version 1", func(b []byte) []byte { be.PutUint32(b[4:], 1); return b }, ErrUnsupported, "version 1"},
		{"version 4", func(b []byte) []byte { be.PutUint32(b[4:], 4); return b }, ErrUnsupported, "version 4"},
		{"cluster bits", func(b []byte) []byte { be.PutUint32(b[20:], 30); return b }, ErrCorrupt, "cluster_bits"},
		{"encrypted", func(b []byte) []byte { be.PutUint32(b[32:], 2); return b }, ErrUnsupported, "encrypted"},
		{"unknown incompatible", func(b []byte) []byte { be.PutUint64(b[72:], 1<<40); return b }, ErrUnsupported, "unknown incompatible"},
		{"data file", func(b []byte) []byte { be.PutUint64(b[72:], incDataFile); return b }, ErrUnsupported, "external data file"},
		{"extended L2", func(b []byte) []byte { be.PutUint64(b[72:], incExtendedL2); return b }, ErrUnsupported, "extended L2"},
		{"marked corrupt", func(b []byte) []byte { be.PutUint64(b[72:], incCorrupt); return b }, ErrCorrupt, "marked the image corrupt"},
		{"compression bit", func(b []byte) []byte { be.PutUint64(b[72:], incCompression); return b }, ErrCorrupt, "compression type"},
		{"header length", func(b []byte) []byte { be.PutUint32(b[100:], 4096); return b }, ErrCorrupt, "header_length"},
		{"refcount order", func(b []byte) []byte { be.PutUint32(b[96:], 7); return b }, ErrCorrupt, "refcount_order"},
		{"refcount table size", func(b []byte) []byte { be.PutUint32(b[56:], 1<<31); return b }, ErrCorrupt, "refcount table"},
		{"L1 too small", func(b []byte) []byte { be.PutUint64(b[24:], 1<<40); return b }, ErrCorrupt, "L1 table has"},
		{"L1 huge", func(b []byte) []byte { be.PutUint32(b[36:], 1<<30); return b }, ErrCorrupt, "L1 table has"},
		{"L1 past EOF", func(b []byte) []byte { be.PutUint32(b[36:], 1<<20); be.PutUint64(b[24:], 512); return b }, ErrCorrupt, "past the end"},
		{"L1 in header", func(b []byte) []byte { be.PutUint64(b[40:], 0); return b }, ErrCorrupt, "L1 table offset"},
		{"L1 entry past EOF", func(b []byte) []byte { be.PutUint64(b[h.L1Offset:], uint64(len(b)+512)|copiedFlag); return b }, ErrCorrupt, "past the end"},
		{"L1 shared L2", func(b []byte) []byte {
			be.PutUint64(b[24:], 64<<10)
			be.PutUint32(b[36:], 2)
			copy(b[h.L1Offset+8:], b[h.L1Offset:h.L1Offset+8])
			return b
		}, ErrCorrupt, "share the L2 table"},
		{"L1 reserved", func(b []byte) []byte { b[h.L1Offset+7] |= 1; return b }, ErrCorrupt, "reserved"},
		{"L2 entry past EOF", func(b []byte) []byte { be.PutUint64(b[l2:], uint64(len(b)+1024)|copiedFlag); return b }, ErrCorrupt, "past the end"},
		{"L2 reserved", func(b []byte) []byte { b[l2+7] |= 2; return b }, ErrCorrupt, "reserved"},
		{"compressed into header", func(b []byte) []byte { be.PutUint64(b[l2:], compressedFlag|100); return b }, ErrCorrupt, "header"},
		{"compressed past EOF", func(b []byte) []byte { be.PutUint64(b[l2:], compressedFlag|uint64(len(b)+10)); return b }, ErrCorrupt, "past the end"},
		{"compressed inflating past", func(b []byte) []byte { return inflatingPast(b, l2) }, ErrCorrupt, "inflates past"},
		{"compressed short", func(b []byte) []byte { return inflatingShort(b, l2) }, ErrCorrupt, "inflates to"},
		{"backing name too long", func(b []byte) []byte { be.PutUint64(b[8:], 128); be.PutUint32(b[16:], 2000); return b }, ErrCorrupt, "backing file name"},
		{"extension overrun", func(b []byte) []byte { be.PutUint32(b[112:], 0x12345678); be.PutUint32(b[116:], 4000); return b }, ErrCorrupt, "header extension"},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := c.patch(bytes.Clone(good))
			img, err := openBytes(b)
			if err == nil {
				got := make([]byte, img.Size())
				_, err = img.ReadAt(got, 0)
			}
			if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("got %v, want %v naming %q", err, c.want, c.msg)
			}
		})
	}
}

// withCompressed appends a raw deflate stream of plain to b and points
// the first L2 entry at it as a compressed cluster.
func withCompressed(b []byte, l2 int64, plain []byte) []byte {
	var z bytes.Buffer
	w, _ := flate.NewWriter(&z, flate.BestCompression)
	w.Write(plain)
	w.Close()
	coff := int64(len(b))
	b = append(b, z.Bytes()...)
	b = append(b, make([]byte, 512-len(b)%512)...)
	bits := uint(parseHeader(b).ClusterBits)
	x := 62 - (bits - 8)
	nsect := (coff+int64(z.Len())-1)/512 - coff/512
	binary.BigEndian.PutUint64(b[l2:], compressedFlag|uint64(nsect)<<x|uint64(coff))
	return b
}

func inflatingPast(b []byte, l2 int64) []byte { return withCompressed(b, l2, make([]byte, 600)) }

func inflatingShort(b []byte, l2 int64) []byte { return withCompressed(b, l2, make([]byte, 100)) }

// A compressed cluster of the right size reads back; an unaligned L2
// entry in an image of 4 KiB clusters is refused.
func TestCompressedAndUnaligned(t *testing.T) {
	good := small(t, bytes.Repeat([]byte("hostile!"), 512))
	b := withCompressed(bytes.Clone(good), firstL2(t, good), bytes.Repeat([]byte{7}, 512))
	img, err := openBytes(b)
	if err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 1024)
	if _, err := img.ReadAt(got, 0); err != nil || !bytes.Equal(got[:512], bytes.Repeat([]byte{7}, 512)) || !bytes.Equal(got[512:], bytes.Repeat([]byte("hostile!"), 64)) {
		t.Fatalf("compressed cluster reads %q (%v)", got[:16], err)
	}
	p := filepath.Join(t.TempDir(), "4k.qcow2")
	writeQcow2(t, p, bytes.Repeat([]byte("x"), 8192), WithClusterSize(4096))
	b, _ = os.ReadFile(p)
	l2 := firstL2(t, b)
	binary.BigEndian.PutUint64(b[l2:], binary.BigEndian.Uint64(b[l2:])+512)
	img, err = openBytes(b)
	if err == nil {
		_, err = img.ReadAt(got, 0)
	}
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "not a cluster boundary") {
		t.Fatalf("unaligned L2 entry: %v", err)
	}
}

// TestWriteCompressed: compressed output, zlib and zstd, byte-packed,
// incompressible clusters stored as they are, through qemu-img.
func TestWriteCompressed(t *testing.T) {
	testutil.NeedTools(t, "qemu-img")
	dir := t.TempDir()
	for _, kind := range []string{"zlib", "zstd"} {
		for _, c := range []struct {
			cs, size int64
			fill     string
		}{
			{0, 9<<20 + 512, "mixed"}, {512, 1<<20 + 4096, "mixed"}, {512, 600 << 10, "same"},
			{4096, 3<<20 - 512, "random"}, {2 << 20, 5<<20 + 512, "mixed"}, {0, 0, "same"},
		} {
			name := fmt.Sprintf("%s-cs%d-size%d-%s", kind, c.cs, c.size, c.fill)
			t.Run(name, func(t *testing.T) {
				var data []byte
				switch c.fill {
				case "same":
					data = bytes.Repeat([]byte{0x5a}, int(c.size))
				case "random":
					data = make([]byte, c.size)
					r := rand.New(rand.NewPCG(uint64(c.size), 2))
					for i := range data {
						data[i] = byte(r.Uint32())
					}
					clear(data[c.size/3 : c.size/2])
				default:
					data = image(c.size, uint64(c.size), 256<<10)
					r := rand.New(rand.NewPCG(3, 3))
					for i := c.size / 2; i < min(c.size, c.size/2+300<<10); i++ {
						data[i] = byte(r.Uint32()) // incompressible
					}
				}
				opts := []Option{WithCompression(kind, 3)}
				if c.cs != 0 {
					opts = append(opts, WithClusterSize(c.cs))
				}
				p := filepath.Join(dir, name+".qcow2")
				writeQcow2(t, p, data, opts...)
				vsize := (c.size + 511) &^ 511
				raw := filepath.Join(dir, name+".raw")
				os.WriteFile(raw, append(bytes.Clone(data), make([]byte, vsize-c.size)...), 0o644)
				checkQemu(t, p, raw, vsize)
				if got := readAll(t, p); !bytes.Equal(got[:c.size], data) {
					t.Fatal("our reader reads our image differently")
				}
				if out := qemuImg(t, "check", p); c.fill != "random" && c.size > 0 && strings.Contains(out, " 0.00% compressed") {
					t.Fatalf("nothing compressed:\n%s", out)
				}
				info := qemuImg(t, "info", p)
				if kind == "zstd" && !strings.Contains(info, "compression type: zstd") {
					t.Fatalf("qemu-img info:\n%s", info)
				}
				if st, _ := os.Stat(p); c.fill == "same" && c.size > 0 && st.Size() > c.size/4 {
					t.Fatalf("%d bytes of one value make a %d-byte image", c.size, st.Size())
				}
			})
		}
	}
}

// The writer refuses what it cannot do, and Abort leaves nothing.
func TestSinkErrors(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "a.qcow2")
	for _, opt := range []Option{WithClusterSize(1000), WithClusterSize(256), WithClusterSize(4 << 20), WithCompression("lz4", 0)} {
		if _, err := Create(p, 1<<20, opt); err == nil {
			t.Error("a bad option accepted")
		}
	}
	if _, err := Create(p, 1<<50, WithClusterSize(512)); err == nil || !strings.Contains(err.Error(), "L1 table") {
		t.Errorf("a disk too large for its clusters: %v", err)
	}
	for _, kind := range []string{"", "zstd"} {
		s, err := Create(p, 1<<20, WithCompression(kind, 2))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.WriteAt(bytes.Repeat([]byte{1}, 256<<10), 256<<10); err != nil {
			t.Fatal(err)
		}
		if _, err := s.WriteAt([]byte{1}, 4096); err == nil {
			t.Error("a write going back accepted")
		}
		if _, err := s.WriteAt([]byte{1, 2}, 1<<20-1); err == nil {
			t.Error("a write past the end accepted")
		}
		if err := s.Abort(); err != nil {
			t.Fatal(err)
		}
		if ents, _ := os.ReadDir(dir); len(ents) != 0 {
			t.Fatalf("Abort left %v", ents)
		}
	}
	os.WriteFile(p, nil, 0o644)
	if _, err := Create(p, 1<<20); err == nil {
		t.Error("an existing file overwritten")
	}
	m := make(memMedium, 1<<20)
	if _, err := CreateOn(m, 1<<20, int64(len(m))); !errors.Is(err, ErrTooSmall) {
		t.Errorf("a medium as large as the disk: %v", err)
	}
}

func qemuIO(t *testing.T, path string, cmds ...string) {
	t.Helper()
	args := []string{"-f", "qcow2"}
	for _, c := range cmds {
		args = append(args, "-c", c)
	}
	if out, err := exec.Command("qemu-io", append(args, path)...).CombinedOutput(); err != nil {
		t.Fatalf("qemu-io %v: %v\n%s", cmds, err, out)
	}
}

// Images qemu-img makes of sizes on and off cluster and MiB boundaries,
// a 2 TiB one holding a MiB, and zero clusters over a backing file read
// as qemu-img reads them.
func TestReadQemuSizesAndZeroClusters(t *testing.T) {
	testutil.NeedTools(t, "qemu-img", "qemu-io")
	dir := t.TempDir()
	for _, size := range []int64{0, 512, 1 << 20, 5<<20 + 1536, 64<<10 - 512} {
		raw := filepath.Join(dir, fmt.Sprintf("%d.raw", size))
		os.WriteFile(raw, image(size, uint64(size)+9, 128<<10), 0o644)
		for _, opts := range [][]string{{"-O", "qcow2"}, {"-c", "-O", "qcow2", "-o", "compression_type=zstd"}, {"-O", "qcow2", "-o", "cluster_size=2M"}} {
			p := filepath.Join(dir, fmt.Sprintf("%d-%d.qcow2", size, len(opts)))
			qemuImg(t, append(append([]string{"convert"}, opts...), raw, p)...)
			compareWithQemu(t, dir, p)
		}
	}
	// 2 TiB, a MiB of it written.
	big := filepath.Join(dir, "big.qcow2")
	qemuImg(t, "create", "-q", "-f", "qcow2", big, "2T")
	qemuIO(t, big, "write -P 0x5a 1T 1M", "write -z 1G 64k")
	img, err := Open(big)
	if err != nil {
		t.Fatal(err)
	}
	var ext []disk.Extent
	for e, err := range img.Extents(context.Background()) {
		if err != nil {
			t.Fatal(err)
		}
		ext = append(ext, e)
	}
	got := make([]byte, 2<<20)
	if _, err := img.ReadAt(got, 1<<40-512<<10); err != nil {
		t.Fatal(err)
	}
	img.Close()
	want := append(make([]byte, 512<<10), bytes.Repeat([]byte{0x5a}, 1<<20)...)
	if len(ext) != 1 || ext[0] != (disk.Extent{Off: 1 << 40, Len: 1 << 20}) || !bytes.Equal(got[:len(want)], want) || !disk.IsZero(got[len(want):]) {
		t.Fatalf("extents %v; data right: %v", ext, bytes.Equal(got[:len(want)], want))
	}
	// Zero clusters (the zero flag) over a backing file's data, and
	// data written over it.
	base := filepath.Join(dir, "base.qcow2")
	src := filepath.Join(dir, "5244416.raw")
	qemuImg(t, "convert", "-O", "qcow2", src, base)
	top := filepath.Join(dir, "top.qcow2")
	qemuImg(t, "create", "-q", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", top)
	qemuIO(t, top, "write -z 64k 192k", "write -P 7 1M 4k", "write -z 4M 64k")
	got = compareWithQemu(t, dir, top)
	if !disk.IsZero(got[64<<10:256<<10]) || got[1<<20] != 7 {
		t.Fatal("zero clusters or data over the backing file read wrong")
	}
}

// readParallel reads the image at p through disk.NewReaderJobs, which
// reads an image that says it is Parallel (one with compressed clusters)
// on four goroutines at once, and fails unless it says so exactly when
// compressed and the pieces put together are want.
func readParallel(t *testing.T, p string, want []byte, compressed bool) {
	t.Helper()
	img, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	if img.ParallelReads() != compressed {
		t.Fatalf("%s: ParallelReads %v, compressed %v", p, img.ParallelReads(), compressed)
	}
	got := make([]byte, img.Size())
	r := disk.NewReaderJobs(context.Background(), img, 4)
	defer r.Close()
	for {
		pc, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		copy(got[pc.Off:], pc.Data)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s read on four goroutines differs from qemu-img's bytes", p)
	}
}

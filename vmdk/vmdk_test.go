package vmdk

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
	"iter"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/zlib"
	"github.com/xva-tools/xva/disk"
	"github.com/xva-tools/xva/internal/fsutil"
	"github.com/xva-tools/xva/internal/testutil"
)

// image is test data: bytes with some zero stretches.
func image(size int64, seed uint64) []byte { return testutil.Image(size, seed, 300<<10) }

// full is data with no zero 4 KiB block: every grain allocated.
func full(size int64) []byte {
	b := make([]byte, size)
	for i := range b {
		b[i] = byte(i/7 + 1)
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

// kinds are our two writers.
var kinds = []struct {
	name       string
	createType string
	create     func(path string, size int64) (disk.Sink, error)
}{
	{"sparse", "monolithicSparse", func(p string, n int64) (disk.Sink, error) { return Create(p, n) }},
	{"stream", "streamOptimized", func(p string, n int64) (disk.Sink, error) { return CreateStream(p, n, 3) }},
}

func write(t testing.TB, path string, src disk.Source, create func(string, int64) (disk.Sink, error)) {
	t.Helper()
	s, err := create(path, src.Size())
	if err != nil {
		t.Fatal(err)
	}
	r := disk.NewReader(context.Background(), src)
	defer r.Close()
	if _, err := disk.Copy(context.Background(), s, r, nil); err != nil {
		s.Abort()
		t.Fatal(err)
	}
	if err := s.Commit(); err != nil {
		t.Fatal(err)
	}
}

func readAll(t testing.TB, path string) []byte {
	t.Helper()
	img, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	b := make([]byte, img.Size())
	if _, err := img.ReadAt(b, 0); err != nil && img.Size() > 0 {
		t.Fatal(err)
	}
	checkExtents(t, img, b)
	return b
}

// checkExtents: extents are in order inside the disk, and every byte
// outside them is zero.
func checkExtents(t testing.TB, img *Image, data []byte) {
	t.Helper()
	var pos int64
	for e, err := range img.Extents(context.Background()) {
		if err != nil {
			t.Fatal(err)
		}
		if e.Off < pos || e.Len <= 0 || e.End() > img.Size() {
			t.Fatalf("extent %+v after %d in a %d-byte disk", e, pos, img.Size())
		}
		if !disk.IsZero(data[pos:e.Off]) {
			t.Fatalf("data between %d and %d, outside the extents", pos, e.Off)
		}
		pos = e.End()
	}
	if !disk.IsZero(data[pos:]) {
		t.Fatalf("data after the last extent at %d", pos)
	}
}

func sum(b []byte) string { h := sha256.Sum256(b); return hex.EncodeToString(h[:]) }

func haveQemu(t testing.TB) bool {
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Log("qemu-img not installed: skipping its checks")
		return false
	}
	return true
}

func qemu(t testing.TB, args ...string) []byte {
	t.Helper()
	out, err := exec.Command("qemu-img", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("qemu-img %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

type qemuInfo struct {
	VirtualSize int64  `json:"virtual-size"`
	Format      string `json:"format"`
	Specific    struct {
		Data struct {
			CreateType string `json:"create-type"`
		} `json:"data"`
	} `json:"format-specific"`
}

func infoOf(t testing.TB, path string) qemuInfo {
	var i qemuInfo
	if err := json.Unmarshal(qemu(t, "info", "--output=json", path), &i); err != nil {
		t.Fatal(err)
	}
	return i
}

func pad(n, to int64) int64 { return (n + to - 1) / to * to }

// checkWithQemu holds an image we wrote of the disk data to qemu-img:
// check finds no errors, info gives the exact (sector-padded) size, the
// format and subformat, and compare finds the same bytes as data.
func checkWithQemu(t *testing.T, path, createType string, data []byte) {
	t.Helper()
	padded := append(bytes.Clone(data), make([]byte, pad(int64(len(data)), SectorSize)-int64(len(data)))...)
	if len(padded) == 0 {
		return // qemu opens no sparse VMDK of capacity 0, not even its own
	}
	qemu(t, "check", path)
	i := infoOf(t, path)
	if i.VirtualSize != int64(len(padded)) || i.Format != "vmdk" || i.Specific.Data.CreateType != createType {
		t.Fatalf("qemu-img info: %+v; want %d bytes of vmdk %s", i, len(padded), createType)
	}
	raw := filepath.Join(t.TempDir(), "want.raw")
	if err := os.WriteFile(raw, padded, 0o644); err != nil {
		t.Fatal(err)
	}
	qemu(t, "compare", "-f", "vmdk", "-F", "raw", path, raw)
}

// Our images, of sizes around the grain, the grain table (32 MiB) and
// 1 MiB, sector-exact or not, empty and fully allocated, read back the
// same and pass qemu-img check, info and compare.
func TestWriteRead(t *testing.T) {
	q := haveQemu(t)
	sizes := []int64{0, 1, 512, 1000, GrainSize - 512, GrainSize, GrainSize + 512, 1 << 20, 1<<20 + 4096 + 7,
		32 << 20, 32<<20 + GrainSize, 3*(32<<20) + 12345}
	for _, k := range kinds {
		for i, size := range sizes {
			for _, fill := range []string{"mixed", "full", "zero"} {
				var data []byte
				switch fill {
				case "mixed":
					data = image(size, uint64(i))
				case "full":
					data = full(size)
				default:
					data = make([]byte, size)
				}
				t.Run(fmt.Sprintf("%s/%d/%s", k.name, size, fill), func(t *testing.T) {
					path := filepath.Join(t.TempDir(), "d.vmdk")
					write(t, path, memSource(data), k.create)
					img, err := Open(path)
					if err != nil {
						t.Fatal(err)
					}
					if img.Size() != pad(size, SectorSize) || img.CreateType() != k.createType {
						t.Fatalf("size %d, type %s", img.Size(), img.CreateType())
					}
					img.Close()
					got := readAll(t, path)
					if !bytes.Equal(got[:size], data) || !disk.IsZero(got[size:]) {
						t.Fatal("reads back differently")
					}
					if q {
						checkWithQemu(t, path, k.createType, data)
					}
				})
			}
		}
	}
}

// Zero grains are never allocated: a disk with data in one grain holds one
// grain.
func TestUnallocated(t *testing.T) {
	data := make([]byte, 10<<20)
	copy(data[5<<20+100:], "hello")
	for _, k := range kinds {
		path := filepath.Join(t.TempDir(), "d.vmdk")
		write(t, path, memSource(data), k.create)
		img, err := Open(path)
		if err != nil {
			t.Fatal(err)
		}
		info, err := img.Info(context.Background())
		img.Close()
		if err != nil {
			t.Fatal(err)
		}
		if info.Allocated != 1 || info.AllocatedBytes != GrainSize || info.GrainSize != GrainSize || info.Grains != 160 {
			t.Errorf("%s: %+v", k.name, info)
		}
	}
}

// A 2 TiB disk holding a few MiB: small on disk, quick, and qemu reads it
// the same.
func TestLargeSparse(t *testing.T) {
	const size = MaxSize
	chunks := map[int64][]byte{0: full(1 << 20), 700 << 30: image(3<<20, 7), size - 1<<20: full(1 << 20)}
	src := &sparseMem{size: size, chunks: chunks}
	q := haveQemu(t)
	for _, k := range kinds {
		path := filepath.Join(t.TempDir(), "big.vmdk")
		write(t, path, src, k.create)
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if used := fsutil.DiskUsage(st); used > 32<<20 {
			t.Errorf("%s: %d bytes on disk for 5 MiB of data", k.name, used)
		}
		img, err := Open(path)
		if err != nil {
			t.Fatal(err)
		}
		for off, want := range chunks {
			got := make([]byte, len(want))
			if _, err := img.ReadAt(got, off); err != nil || !bytes.Equal(got, want) {
				t.Fatalf("%s: at %d: %v", k.name, off, err)
			}
		}
		img.Close()
		if q {
			qemu(t, "check", path)
			if i := infoOf(t, path); i.VirtualSize != size {
				t.Fatalf("%s: qemu-img info %+v", k.name, i)
			}
			for off, want := range chunks {
				got := qemuRead(t, path, off, len(want))
				if !bytes.Equal(got, want) {
					t.Fatalf("%s: qemu reads other bytes at %d", k.name, off)
				}
			}
		}
	}
}

// qemuRead reads n bytes at off as qemu reads them: qemu's raw driver,
// which takes an offset and a size, over its vmdk driver.
func qemuRead(t testing.TB, path string, off int64, n int) []byte {
	out := filepath.Join(t.TempDir(), "part.raw")
	spec := fmt.Sprintf(`json:{"driver":"raw","offset":%d,"size":%d,"file":{"driver":"vmdk","file":{"driver":"file","filename":%q}}}`, off, n, path)
	qemu(t, "convert", "-O", "raw", spec, out)
	b, err := os.ReadFile(out)
	if err != nil || len(b) != n {
		t.Fatalf("qemu-img convert of %d bytes at %d: %d bytes, %v", n, off, len(b), err)
	}
	return b
}

// sparseMem is a large disk holding a few chunks of data.
type sparseMem struct {
	size   int64
	chunks map[int64][]byte
}

func (m *sparseMem) Size() int64  { return m.size }
func (m *sparseMem) Close() error { return nil }
func (m *sparseMem) ReadAt(p []byte, off int64) (int, error) {
	clear(p)
	for at, c := range m.chunks {
		if at < off+int64(len(p)) && off < at+int64(len(c)) {
			lo := max(at, off)
			hi := min(at+int64(len(c)), off+int64(len(p)))
			copy(p[lo-off:hi-off], c[lo-at:hi-at])
		}
	}
	n := min(int64(len(p)), m.size-off)
	if n < int64(len(p)) {
		return int(n), io.EOF
	}
	return len(p), nil
}
func (m *sparseMem) Extents(context.Context) iter.Seq2[disk.Extent, error] {
	return func(yield func(disk.Extent, error) bool) {
		offs := make([]int64, 0, len(m.chunks))
		for at := range m.chunks {
			offs = append(offs, at)
		}
		for i := range offs {
			for j := i + 1; j < len(offs); j++ {
				if offs[j] < offs[i] {
					offs[i], offs[j] = offs[j], offs[i]
				}
			}
		}
		for _, at := range offs {
			if !yield(disk.Extent{Off: at, Len: int64(len(m.chunks[at]))}, nil) {
				return
			}
		}
	}
}

// Images qemu-img writes, in every subformat, read as qemu-img reads them.
func TestReadQemuImages(t *testing.T) {
	if !haveQemu(t) {
		t.Skip("no qemu-img")
	}
	dir := t.TempDir()
	// A disk larger than 2 GiB, so that the split subformats have several
	// extents, with data on both sides of the split and in a partial grain
	// table at the end.
	size := int64(2<<30 + 5<<20 + 3*512)
	src := filepath.Join(dir, "src.raw")
	f, err := os.Create(src)
	if err != nil {
		t.Fatal(err)
	}
	f.Truncate(size)
	for i, off := range []int64{0, 1 << 20, 2<<30 - 100<<10, 2<<30 + 1<<20, size - 70<<10} {
		f.WriteAt(image(min(300<<10, size-off), uint64(i)), off)
	}
	f.Close()
	for _, sub := range []string{"monolithicSparse", "streamOptimized", "monolithicFlat", "twoGbMaxExtentSparse", "twoGbMaxExtentFlat"} {
		t.Run(sub, func(t *testing.T) {
			d := t.TempDir()
			path := filepath.Join(d, "q.vmdk")
			qemu(t, "convert", "-f", "raw", "-O", "vmdk", "-o", "subformat="+sub, src, path)
			img, err := Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer img.Close()
			if img.Size() != size || img.CreateType() != sub {
				t.Fatalf("size %d, type %s", img.Size(), img.CreateType())
			}
			sameAsQemu(t, img, path)
		})
	}
}

// qemu-img's own empty images (which qemu cannot open) read as empty disks.
func TestReadQemuEmpty(t *testing.T) {
	if !haveQemu(t) {
		t.Skip("no qemu-img")
	}
	for _, sub := range []string{"monolithicSparse", "streamOptimized"} {
		path := filepath.Join(t.TempDir(), "e.vmdk")
		qemu(t, "create", "-q", "-f", "vmdk", "-o", "subformat="+sub, path, "0")
		img, err := Open(path)
		if err != nil {
			t.Fatal(err)
		}
		if img.Size() != 0 {
			t.Errorf("%s: size %d", sub, img.Size())
		}
		img.Close()
	}
}

func TestDetect(t *testing.T) {
	dir := t.TempDir()
	for _, k := range kinds {
		path := filepath.Join(dir, k.name+".img")
		write(t, path, memSource(image(1<<20, 1)), k.create)
		if !IsVMDK(path) {
			t.Errorf("%s not detected", k.name)
		}
	}
	for name, text := range map[string]string{
		"desc": "# Disk DescriptorFile\nversion=1\n", "crlf": "\r\n# x\r\nversion=3\r\n",
	} {
		if !Detect(strings.NewReader(text), int64(len(text))) {
			t.Errorf("%s not detected", name)
		}
	}
	for name, text := range map[string]string{
		"raw": string(make([]byte, 4096)), "text": "hello\nversion=1\n", "noeol": "version=1", "v4": "version=4\n",
	} {
		if Detect(strings.NewReader(text), int64(len(text))) {
			t.Errorf("%s detected", name)
		}
	}
}

// hostile writes b as a sparse VMDK and opens and reads it.
func openBytes(t *testing.T, b []byte) error {
	t.Helper()
	path := filepath.Join(t.TempDir(), "h.vmdk")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	img, err := Open(path)
	if err != nil {
		return err
	}
	defer img.Close()
	_, err = img.ReadAt(make([]byte, img.Size()), 0)
	return err
}

func ours(t *testing.T, stream bool, data []byte) []byte {
	path := filepath.Join(t.TempDir(), "o.vmdk")
	write(t, path, memSource(data), kinds[map[bool]int{false: 0, true: 1}[stream]].create)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Hostile images: each is refused with ErrCorrupt (or ErrUnsupported) and
// a message saying where.
func TestHostile(t *testing.T) {
	data := make([]byte, 1<<20)
	copy(data, bytes.Repeat([]byte("A"), GrainSize)) // compresses to a few bytes
	copy(data[512<<10:], "more")
	sparse := ours(t, false, data)
	stream := ours(t, true, data)
	h, _ := parseHeader(sparse)
	le := binary.LittleEndian
	gt := int64(le.Uint32(sparse[h.GDOffset*SectorSize:])) * SectorSize // the first grain table
	// The stream's first grain is at overHead; its table is after the grains.
	sh, _ := parseHeader(stream)
	grain0 := int64(sh.OverHead) * SectorSize

	inflate := func(n int) []byte {
		var buf bytes.Buffer
		zw := zlib.NewWriter(&buf)
		zw.Write(bytes.Repeat([]byte("A"), n))
		zw.Close()
		return buf.Bytes()
	}
	cases := []struct {
		name string
		b    []byte
		edit func(b []byte) []byte
		want string
	}{
		{"gte past EOF", sparse, func(b []byte) []byte { le.PutUint32(b[gt:], 1<<30); return b }, "past the end of the file"},
		{"gte at header", sparse, func(b []byte) []byte { le.PutUint32(b[gt:], 1); return b }, "inside the header"},
		{"gte at sector 0", sparse, func(b []byte) []byte {
			le.PutUint32(b[gt:], 0)
			le.PutUint32(b[gt+4*8:], 0)
			le.PutUint32(b[gt+4:], 0)
			return b
		}, ""},
		{"gd past EOF", sparse, func(b []byte) []byte { le.PutUint32(b[h.GDOffset*SectorSize:], 1<<30); return b }, "past the end of the file"},
		{"gd at header", sparse, func(b []byte) []byte {
			le.PutUint32(b[h.GDOffset*SectorSize:], 1) // the table over the descriptor
			return b
		}, ""},
		{"truncated", sparse, func(b []byte) []byte { return b[:len(b)-GrainSize-100] }, "past the end of the file"},
		{"grain size", sparse, func(b []byte) []byte { le.PutUint64(b[20:], 3); return b }, "grain size"},
		{"capacity", sparse, func(b []byte) []byte { le.PutUint64(b[12:], 1<<50); return b }, "capacity"},
		{"stream inflates past grain", stream, func(b []byte) []byte {
			z := inflate(GrainSize + 1)
			le.PutUint32(b[grain0+8:], uint32(len(z)))
			copy(b[grain0+markerSize:], z)
			return b
		}, "inflates past its grain"},
		{"stream inflates short", stream, func(b []byte) []byte {
			z := inflate(100)
			le.PutUint32(b[grain0+8:], uint32(len(z)))
			copy(b[grain0+markerSize:], z)
			return b
		}, "inflates to only 100 bytes"},
		{"stream marker lba", stream, func(b []byte) []byte { le.PutUint64(b[grain0:], 128); return b }, "marked for sector 128"},
		{"stream marker size", stream, func(b []byte) []byte { le.PutUint32(b[grain0+8:], 1<<30); return b }, "compressed bytes"},
		{"stream truncated", stream, func(b []byte) []byte { return b[:len(b)-512] }, "marker"},
		{"stream footer differs", stream, func(b []byte) []byte { le.PutUint64(b[len(b)-1024+12:], 8); return b }, "footer disagrees"},
		{"stream bad zlib", stream, func(b []byte) []byte { b[grain0+markerSize+5] ^= 0xff; return b }, "compressed grain"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := openBytes(t, c.edit(bytes.Clone(c.b)))
			if c.want == "" {
				return // must not panic; may be valid
			}
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want ErrCorrupt with %q", err, c.want)
			}
		})
	}
}

// Descriptors naming files outside their directory, or otherwise broken,
// are refused before any file is opened.
func TestHostileDescriptor(t *testing.T) {
	dir := t.TempDir()
	sub := filepath.Join(dir, "vm")
	os.Mkdir(sub, 0o755)
	os.WriteFile(filepath.Join(sub, "ok-flat.vmdk"), make([]byte, 4096), 0o644)
	os.Symlink("/etc/passwd", filepath.Join(sub, "link-flat.vmdk"))
	os.WriteFile(filepath.Join(dir, "outside-flat.vmdk"), make([]byte, 4096), 0o644)
	head := "# Disk DescriptorFile\nversion=1\nCID=12345678\nparentCID=ffffffff\ncreateType=\"monolithicFlat\"\n"
	for name, c := range map[string]struct{ lines, want string }{
		"ok":         {`RW 8 FLAT "ok-flat.vmdk" 0`, ""},
		"dotdot":     {`RW 8 FLAT "../../etc/passwd" 0`, "reaches out"},
		"dotdot2":    {`RW 8 FLAT "../outside-flat.vmdk" 0`, "reaches out"},
		"backslash":  {`RW 8 FLAT "..\outside-flat.vmdk" 0`, "reaches out"},
		"absolute":   {`RW 8 FLAT "/etc/passwd" 0`, "absolute"},
		"drive":      {`RW 8 FLAT "C:\x.vmdk" 0`, "absolute"},
		"symlink":    {`RW 8 FLAT "link-flat.vmdk" 0`, "escapes"},
		"too long":   {`RW 9 FLAT "ok-flat.vmdk" 0`, "the descriptor reads"},
		"offset":     {`RW 8 FLAT "ok-flat.vmdk" 1`, "the descriptor reads"},
		"missing":    {`RW 8 FLAT "nope-flat.vmdk" 0`, "no such file"},
		"zero size":  {`RW 0 FLAT "ok-flat.vmdk" 0`, "extent size"},
		"access":     {`XX 8 FLAT "ok-flat.vmdk" 0`, "extent access"},
		"type":       {`RW 8 VMFSSPARSE "ok-flat.vmdk"`, "unsupported"},
		"no extents": {``, "no extents"},
		"unquoted":   {`RW 8 FLAT ok-flat.vmdk 0`, "neither key=value nor an extent"},
		"parent":     {"parentFileNameHint=\"base.vmdk\"\n" + `RW 8 FLAT "ok-flat.vmdk" 0`, "parent"},
		"twice":      {"createType=\"x\"\n" + `RW 8 FLAT "ok-flat.vmdk" 0`, "twice"},
		"control":    {"ddb.x = \"\x01\"\n" + `RW 8 FLAT "ok-flat.vmdk" 0`, "control"},
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(sub, "d.vmdk")
			os.WriteFile(path, []byte(head+c.lines+"\n"), 0o644)
			img, err := Open(path)
			if c.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				img.Close()
				return
			}
			if err == nil {
				img.Close()
				t.Fatalf("opened; want an error with %q", c.want)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want %q", err, c.want)
			}
		})
	}
}

// The stream writer's output does not depend on the number of workers.
func TestStreamJobs(t *testing.T) {
	data := image(5<<20+512, 3)
	var sums []string
	for _, jobs := range []int{1, 4} {
		path := filepath.Join(t.TempDir(), "s.vmdk")
		write(t, path, memSource(data), func(p string, n int64) (disk.Sink, error) { return CreateStream(p, n, jobs) })
		b, _ := os.ReadFile(path)
		// The CID differs: compare from the first grain on.
		sums = append(sums, sum(b[GrainSize:]))
	}
	if sums[0] != sums[1] {
		t.Error("the stream depends on the number of workers")
	}
}

// Abort leaves nothing, and writes out of order are refused.
func TestAbortAndOrder(t *testing.T) {
	for _, k := range kinds {
		dir := t.TempDir()
		path := filepath.Join(dir, "a.vmdk")
		s, err := k.create(path, 4<<20)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.WriteAt([]byte("x"), 2<<20); err != nil {
			t.Fatal(err)
		}
		if _, err := s.WriteAt([]byte("y"), 1<<20); err == nil {
			t.Errorf("%s: a write going back accepted", k.name)
		}
		if _, err := s.WriteAt([]byte("y"), 4<<20); err == nil {
			t.Errorf("%s: a write past the end accepted", k.name)
		}
		s.Abort()
		if ents, _ := os.ReadDir(dir); len(ents) != 0 {
			t.Errorf("%s: abort left %v", k.name, ents)
		}
	}
	if _, err := Create(filepath.Join(t.TempDir(), "x.vmdk"), MaxSize+1); err == nil {
		t.Error("a disk over 2 TiB accepted")
	}
}

// sameAsQemu compares what img reads with what qemu-img converts the
// image at path to, over the union of both sides' data extents (our
// extents, and the data of qemu's sparse raw output): outside it both are
// zero.
func sameAsQemu(t *testing.T, img *Image, path string) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "qemu.raw")
	qemu(t, "convert", "-O", "raw", path, out)
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var ranges []disk.Extent
	for e, err := range img.Extents(context.Background()) {
		if err != nil {
			t.Fatal(err)
		}
		ranges = append(ranges, e)
	}
	for e, err := range fsutil.DataExtents(context.Background(), f, 0, img.Size()) {
		if err != nil {
			t.Fatal(err)
		}
		ranges = append(ranges, e)
	}
	a, b := make([]byte, 4<<20), make([]byte, 4<<20)
	for _, e := range ranges {
		for off := e.Off; off < e.End(); off += int64(len(a)) {
			n := min(int64(len(a)), e.End()-off)
			if _, err := img.ReadAt(a[:n], off); err != nil {
				t.Fatal(err)
			}
			if _, err := f.ReadAt(b[:n], off); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(a[:n], b[:n]) {
				t.Fatalf("at %d: reads other bytes than qemu-img", off)
			}
		}
	}
	if st, _ := f.Stat(); st.Size() != img.Size() {
		t.Fatalf("qemu-img reads %d bytes, we %d", st.Size(), img.Size())
	}
}

// A streamOptimized file can be read front to back, as ESXi's and
// VirtualBox's importers read it: from overHead, grain markers with
// increasing sectors, each record padded to a sector, a grain table marker
// and table after each table's grains (listing exactly those grains), then
// the directory marker and directory, the footer marker and footer, and
// the end-of-stream marker as the last sector.
func TestStreamWalk(t *testing.T) {
	data := image(70<<20+512*3, 11) // three grain tables, the last partial
	b := ours(t, true, data)
	le := binary.LittleEndian
	h, err := parseHeader(b)
	if err != nil || h.Version != 3 || h.GDOffset != gdAtEnd || h.Flags != flagNL|flagCompressed|flagMarkers {
		t.Fatalf("header %+v, %v", h, err)
	}
	pos := int64(h.OverHead) * SectorSize
	lastLBA := int64(-1)
	table := map[int64]uint32{} // grain → sector, since the last table
	var tables []int64
	var gdAt int64
	for {
		if pos+SectorSize > int64(len(b)) || pos%SectorSize != 0 {
			t.Fatalf("walked to %d in a %d-byte file", pos, len(b))
		}
		val, size, typ := int64(le.Uint64(b[pos:])), le.Uint32(b[pos+8:]), le.Uint32(b[pos+12:])
		if size > 0 {
			if val <= lastLBA || val%grainSector != 0 {
				t.Fatalf("grain marker for sector %d after %d", val, lastLBA)
			}
			lastLBA = val
			table[val/grainSector] = uint32(pos / SectorSize)
			pos += pad(markerSize+int64(size), SectorSize)
			continue
		}
		pos += SectorSize
		switch typ {
		case markerGT:
			if val != 4 || len(table) == 0 {
				t.Fatalf("grain table marker of %d sectors after %d grains", val, len(table))
			}
			for g, sector := range table {
				if got := le.Uint32(b[pos+4*(g%gtEntries):]); got != sector {
					t.Fatalf("table entry of grain %d: %d, the grain is at %d", g, got, sector)
				}
			}
			tables = append(tables, pos/SectorSize)
			table = map[int64]uint32{}
		case markerGD:
			gdAt = pos / SectorSize
		case markerFooter:
			if f, err := parseHeader(b[pos:]); err != nil || f.GDOffset != uint64(gdAt) {
				t.Fatalf("footer %+v (%v), directory at %d", f, err, gdAt)
			}
		case markerEOS:
			if val != 0 || pos != int64(len(b)) {
				t.Fatalf("end-of-stream marker at %d of %d", pos-SectorSize, len(b))
			}
			for i, at := range tables {
				if got := le.Uint32(b[gdAt*SectorSize+4*int64(i):]); int64(got) != at {
					t.Fatalf("directory entry %d: %d, the table is at %d", i, got, at)
				}
			}
			if len(tables) != 3 {
				t.Fatalf("%d grain tables", len(tables))
			}
			return
		default:
			t.Fatalf("marker type %d at %d", typ, pos-SectorSize)
		}
		pos += val * SectorSize
	}
}

// A sparse file whose embedded descriptor names a parent (a snapshot's
// delta) is refused: read alone it would be the wrong disk.
func TestChildRefused(t *testing.T) {
	b := ours(t, false, image(1<<20, 5))
	at := bytes.Index(b, []byte("parentCID=ffffffff"))
	for _, edit := range []string{"parentCID=12345678", "parentFileNameHint=\"x\"\n"} {
		c := bytes.Clone(b)
		copy(c[at:], edit)
		if err := openBytes(t, c); !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "parent") {
			t.Errorf("%s: %v", edit, err)
		}
	}
}

// NewStreamWriter writes into any writer the image CreateStream writes into
// a file: the same bytes from the first grain on (the CID differs), and
// Written is its size.
func TestStreamWriter(t *testing.T) {
	data := image(3<<20+512, 5)
	path := filepath.Join(t.TempDir(), "s.vmdk")
	write(t, path, memSource(data), func(p string, n int64) (disk.Sink, error) { return CreateStream(p, n, 2) })
	want, _ := os.ReadFile(path)
	var buf bytes.Buffer
	s, err := NewStreamWriter(&buf, "s.vmdk", int64(len(data)), 2)
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
	if s.Written() != int64(buf.Len()) || buf.Len() != len(want) {
		t.Fatalf("Written %d, wrote %d bytes, the file has %d", s.Written(), buf.Len(), len(want))
	}
	if sum(buf.Bytes()[GrainSize:]) != sum(want[GrainSize:]) {
		t.Error("the writer's image differs from the file's")
	}
}

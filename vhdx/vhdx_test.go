package vhdx

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/xva-tools/xva/disk"
	"github.com/xva-tools/xva/internal/testutil"
)

// image is test data: bytes with some zero stretches.
func image(size int64, seed uint64) []byte { return testutil.Image(size, seed, 3<<20) }

// full is n bytes of data without a zero run.
func full(n int64, seed uint64) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(seed, 2))
	for i := range b {
		b[i] = byte(r.Uint32()) | 1
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

func write(t testing.TB, path string, src disk.Source, o Options) {
	t.Helper()
	s, err := CreateWith(path, src.Size(), o)
	if err != nil {
		t.Fatal(err)
	}
	r := disk.NewReader(context.Background(), src)
	defer r.Close()
	if _, err := disk.Copy(context.Background(), s, r, nil); err != nil {
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
	return readThroughExtents(t, img)
}

// readThroughExtents reads img as a disk.Reader does: only its extents.
func readThroughExtents(t testing.TB, img *Image) []byte {
	t.Helper()
	b := make([]byte, img.Size())
	for e, err := range img.Extents(context.Background()) {
		if err != nil {
			t.Fatal(err)
		}
		if _, err := img.ReadAt(b[e.Off:e.End()], e.Off); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

func sum(b []byte) string { h := sha256.Sum256(b); return hex.EncodeToString(h[:]) }

func needQemu(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Skip("qemu-img not installed")
	}
}

// qemuCheck runs qemu-img check, which must find no errors.
func qemuCheck(t testing.TB, path string) {
	t.Helper()
	if out, err := exec.Command("qemu-img", "check", "-f", "vhdx", path).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img check %s: %v\n%s", path, err, out)
	}
}

// qemuInfo is qemu-img info's format and virtual size.
func qemuInfo(t testing.TB, path string) (string, int64) {
	t.Helper()
	out, err := exec.Command("qemu-img", "info", "--output=json", path).Output()
	if err != nil {
		t.Fatalf("qemu-img info: %v", err)
	}
	var v struct {
		Format      string `json:"format"`
		VirtualSize int64  `json:"virtual-size"`
	}
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatal(err)
	}
	return v.Format, v.VirtualSize
}

// qemuCompare runs qemu-img compare of the VHDX against a raw file.
func qemuCompare(t testing.TB, path, raw string) {
	t.Helper()
	if out, err := exec.Command("qemu-img", "compare", "-f", "vhdx", "-F", "raw", path, raw).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img compare: %v\n%s", err, out)
	}
}

func qemuRaw(t testing.TB, path string) []byte {
	t.Helper()
	out := filepath.Join(t.TempDir(), "qemu.raw")
	if b, err := exec.Command("qemu-img", "convert", "-f", "vhdx", "-O", "raw", path, out).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img convert: %v\n%s", err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sparseSource is a disk of size bytes holding data at the given offsets,
// zeros elsewhere, with those pieces as its extents.
type sparseSource struct {
	size int64
	at   map[int64][]byte
}

func (s sparseSource) Size() int64  { return s.size }
func (s sparseSource) Close() error { return nil }
func (s sparseSource) Extents(context.Context) iter.Seq2[disk.Extent, error] {
	return func(yield func(disk.Extent, error) bool) {
		var ext []disk.Extent
		for o, d := range s.at {
			ext = append(ext, disk.Extent{Off: o, Len: int64(len(d))})
		}
		slices.SortFunc(ext, func(a, b disk.Extent) int { return int(min(max(a.Off-b.Off, -1), 1)) })
		for _, e := range ext {
			if !yield(e, nil) {
				return
			}
		}
	}
}

func (s sparseSource) ReadAt(p []byte, off int64) (int, error) {
	clear(p)
	for o, d := range s.at {
		lo, hi := max(o, off), min(o+int64(len(d)), off+int64(len(p)))
		if lo < hi {
			copy(p[lo-off:hi-off], d[lo-o:hi-o])
		}
	}
	return len(p), nil
}

// Every image we write passes qemu-img check, has the exact virtual size
// qemu-img reports, compares equal to its source and reads back the same
// with our reader.
func TestOurImagesAreReadByQemu(t *testing.T) {
	needQemu(t)
	sizes := []int64{0, 512, 1 << 20, 3<<20 + 512, 32 << 20, 32<<20 + 4096, 70<<20 + 1536}
	if testing.Short() {
		sizes = []int64{0, 3<<20 + 512, 32<<20 + 4096}
	}
	dir := t.TempDir()
	for i, size := range sizes {
		data := image(size, uint64(i))
		raw := filepath.Join(dir, fmt.Sprintf("%d.raw", size))
		if err := os.WriteFile(raw, data, 0o644); err != nil {
			t.Fatal(err)
		}
		for _, o := range []Options{{}, {Fixed: true}, {BlockSize: 1 << 20}} {
			t.Run(fmt.Sprintf("%d/%+v", size, o), func(t *testing.T) {
				path := filepath.Join(t.TempDir(), "a.vhdx")
				write(t, path, memSource(data), o)
				qemuCheck(t, path)
				if f, s := qemuInfo(t, path); f != "vhdx" || s != size {
					t.Fatalf("qemu-img info: %s, %d bytes; want vhdx, %d", f, s, size)
				}
				qemuCompare(t, path, raw)
				if sum(readAll(t, path)) != sum(data) {
					t.Fatal("we read back other bytes")
				}
			})
		}
	}
}

// A size that is not a whole number of sectors is padded with zeros: the
// image says the next multiple of 512.
func TestOddSizeIsPadded(t *testing.T) {
	data := image(1<<20+100, 7)
	path := filepath.Join(t.TempDir(), "odd.vhdx")
	write(t, path, memSource(data), Options{})
	img, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	if img.Size() != 1<<20+512 {
		t.Fatalf("size %d, want %d", img.Size(), 1<<20+512)
	}
	got := readThroughExtents(t, img)
	if !bytes.Equal(got[:len(data)], data) || !bytes.Equal(got[len(data):], make([]byte, 412)) {
		t.Fatal("padded image reads wrong")
	}
}

func TestTooLargeAndBadBlockSize(t *testing.T) {
	dir := t.TempDir()
	if _, err := Create(filepath.Join(dir, "big.vhdx"), MaxSize+1); err == nil {
		t.Fatal("a disk over 64 TiB was accepted")
	}
	for _, bs := range []int64{512 << 10, 3 << 20, 512 << 20} {
		if _, err := CreateWith(filepath.Join(dir, "bs.vhdx"), 1<<30, Options{BlockSize: bs}); err == nil {
			t.Fatalf("block size %d accepted", bs)
		}
	}
}

// A 2 TiB disk holding a few MiB makes a small file whose blocks are all
// but a few unallocated, and the reader lists only those as extents.
func TestSparse2TiB(t *testing.T) {
	needQemu(t)
	size := int64(2 << 40)
	src := sparseSource{size: size, at: map[int64][]byte{
		0:                full(1<<20, 1),
		5<<30 + 12345:    full(3<<20, 2),   // inside one block, past the first chunk
		4<<30 - 1<<20:    full(2<<20, 3),   // across the 4 GiB chunk boundary
		size - 3<<20 - 7: full(3<<20+7, 4), // the very end
	}}
	path := filepath.Join(t.TempDir(), "big.vhdx")
	write(t, path, src, Options{})
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	// 4 MiB of headers, log, BAT and metadata, and 5 blocks of 32 MiB.
	if want := int64(4<<20 + 5*BlockSize); st.Size() != want {
		t.Fatalf("file is %d bytes, want %d", st.Size(), want)
	}
	qemuCheck(t, path)
	if f, s := qemuInfo(t, path); f != "vhdx" || s != size {
		t.Fatalf("qemu-img info: %s, %d", f, s)
	}
	img, err := Open(path)
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
		got := make([]byte, e.Len)
		want := make([]byte, e.Len)
		if _, err := img.ReadAt(got, e.Off); err != nil {
			t.Fatal(err)
		}
		src.ReadAt(want, e.Off)
		if !bytes.Equal(got, want) {
			t.Fatalf("extent %+v reads wrong", e)
		}
	}
	if n > 5*BlockSize {
		t.Fatalf("extents cover %d bytes", n)
	}
	// qemu-img compare would read all 2 TiB (qemu's VHDX driver reports no
	// holes): compare 1 MiB windows around each piece, and one far from
	// all, read through qemu's raw driver with an offset (qemu-img dd
	// cannot skip that far).
	windows := []int64{0, 4<<30 - 1<<20, 4 << 30, 5 << 30, 5<<30 + 3<<20, 1 << 40, size - 4<<20, size - 1<<20}
	for _, w := range windows {
		out := filepath.Join(t.TempDir(), "w.raw")
		opts := fmt.Sprintf("driver=raw,offset=%d,size=%d,file.driver=vhdx,file.file.filename=%s", w, 1<<20, path)
		if b, err := exec.Command("qemu-img", "convert", "--image-opts", opts, "-O", "raw", out).CombinedOutput(); err != nil {
			t.Fatalf("qemu-img convert: %v\n%s", err, b)
		}
		got, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		want := make([]byte, 1<<20)
		src.ReadAt(want, w)
		if !bytes.Equal(got, want) {
			t.Fatalf("qemu-img reads other bytes at %d", w)
		}
	}
}

// An all-zero disk allocates no block; a full one allocates every block.
func TestEmptyAndFull(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.vhdx")
	write(t, empty, disk.Zero(100<<20), Options{})
	full := filepath.Join(dir, "full.vhdx")
	data := bytes.Repeat([]byte{0xA5}, 65<<20)
	write(t, full, memSource(data), Options{})
	for path, alloc := range map[string]int{empty: 0, full: 3} {
		img, err := Open(path)
		if err != nil {
			t.Fatal(err)
		}
		i, _ := img.Info(context.Background())
		img.Close()
		if i.Allocated != alloc || i.Type != "dynamic" || i.BlockSize != BlockSize {
			t.Fatalf("%s: %+v", path, i)
		}
	}
	if st, _ := os.Stat(empty); st.Size() != 4<<20 {
		t.Fatalf("empty image is %d bytes", st.Size())
	}
	if sum(readAll(t, full)) != sum(data) {
		t.Fatal("full image reads wrong")
	}
	if _, err := exec.LookPath("qemu-img"); err == nil {
		qemuCheck(t, empty)
		qemuCheck(t, full)
		raw := filepath.Join(dir, "full.raw")
		os.WriteFile(raw, data, 0o644)
		qemuCompare(t, full, raw)
	}
}

// Images qemu-img writes, dynamic and fixed, read to the bytes qemu-img
// reads.
func TestWeReadQemuImages(t *testing.T) {
	needQemu(t)
	for i, size := range []int64{0, 10 << 20, 9<<20 + 512, 40 << 20} {
		data := image(size, uint64(10+i))
		raw := filepath.Join(t.TempDir(), "src.raw")
		os.WriteFile(raw, data, 0o644)
		for _, opts := range []string{"subformat=dynamic", "subformat=fixed", "subformat=dynamic,block_size=1M", "subformat=fixed,block_state_zero=off"} {
			t.Run(fmt.Sprintf("%d/%s", size, opts), func(t *testing.T) {
				path := filepath.Join(t.TempDir(), "q.vhdx")
				if b, err := exec.Command("qemu-img", "convert", "-f", "raw", "-O", "vhdx", "-o", opts, raw, path).CombinedOutput(); err != nil {
					t.Fatalf("qemu-img convert: %v\n%s", err, b)
				}
				img, err := Open(path)
				if err != nil {
					t.Fatal(err)
				}
				defer img.Close()
				if _, s := qemuInfo(t, path); img.Size() != s {
					t.Fatalf("we read size %d, qemu-img %d", img.Size(), s)
				}
				got := readThroughExtents(t, img)
				if sum(got) != sum(qemuRaw(t, path)) || sum(got) != sum(data) {
					t.Fatal("our bytes differ from qemu-img's")
				}
				if i, _ := img.Info(context.Background()); !strings.HasPrefix(i.Creator, "QEMU") {
					t.Fatalf("creator %q", i.Creator)
				}
			})
		}
	}
}

// diffImage writes a differencing VHDX at path whose parent is parentPath
// (named relative to it), with data written over the parent at the given
// offsets, sector-granular: blocks it touches are partially present, with
// the sector bitmap saying which sectors are its own. qemu cannot make
// differencing VHDX images (nor read them), so the test crafts them.
func diffImage(t *testing.T, path, parentPath string, size int64, linkage GUID, data map[int64][]byte) {
	t.Helper()
	loc := marshalLocator([][2]string{
		{"parent_linkage", "{" + linkage.String() + "}"},
		{"relative_path", `.\` + filepath.Base(parentPath)},
		{"absolute_win32_path", `C:\vms\` + filepath.Base(parentPath)},
	})
	l, err := newLayout(size, Options{BlockSize: 1 << 20}, loc)
	if err != nil {
		t.Fatal(err)
	}
	// Every block touched gets a 1 MiB slot; each chunk touched its bitmap.
	blockAt := map[int64]int64{}
	bitmapAt := map[int64]int64{}
	pos := l.dataOff
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	bitmaps := map[int64][]byte{}
	for off, d := range data {
		if off%SectorSize != 0 || len(d)%SectorSize != 0 {
			t.Fatal("diffImage takes whole sectors")
		}
		for s := off / SectorSize; s < (off+int64(len(d)))/SectorSize; s++ {
			b := s * SectorSize / l.blockSize
			if _, ok := blockAt[b]; !ok {
				blockAt[b], pos = pos, pos+l.blockSize
			}
			c := b / l.ratio
			if bitmaps[c] == nil {
				bitmaps[c] = make([]byte, bitmapSize)
			}
			inChunk := s % (1 << 23)
			bitmaps[c][inChunk/8] |= 1 << (inChunk % 8)
			in := s*SectorSize - off
			f.WriteAt(d[in:in+SectorSize], blockAt[b]+s*SectorSize%l.blockSize)
		}
	}
	for c, bm := range bitmaps {
		bitmapAt[c], pos = pos, pos+bitmapSize
		f.WriteAt(bm, bitmapAt[c])
	}
	f.Truncate(pos)
	f.WriteAt(l.head(), 0)
	bat := make([]byte, l.batLen)
	for b, off := range blockAt {
		binary.LittleEndian.PutUint64(bat[8*payloadIndex(b, l.ratio):], uint64(off)|statePartial)
	}
	for c, off := range bitmapAt {
		binary.LittleEndian.PutUint64(bat[8*bitmapIndex(c, l.ratio):], uint64(off)|stateFull)
	}
	f.WriteAt(bat, l.batOff)
	f.WriteAt(l.metadata(), l.metaOff)
}

func dataWriteGUID(t *testing.T, path string) GUID {
	img, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	return img.Header.DataWrite
}

// A chain of two differencing disks over a dynamic one reads as the
// layers over each other, sector by sector, across the 4 GiB chunk edge.
func TestDifferencingChain(t *testing.T) {
	dir := t.TempDir()
	size := int64(4<<30 + 8<<20)
	base := filepath.Join(dir, "base.vhdx")
	src := sparseSource{size: size, at: map[int64][]byte{0: image(3<<20, 1), 4<<30 - 1<<20: image(3<<20, 2)}}
	write(t, base, src, Options{})

	mid := filepath.Join(dir, "mid.vhdx")
	midData := map[int64][]byte{512: bytes.Repeat([]byte{1}, 1024), 4<<30 - 512: bytes.Repeat([]byte{2}, 2048)}
	diffImage(t, mid, base, size, dataWriteGUID(t, base), midData)
	top := filepath.Join(dir, "top.vhdx")
	topData := map[int64][]byte{1024: bytes.Repeat([]byte{3}, 512), 6 << 20: bytes.Repeat([]byte{4}, 4096)}
	diffImage(t, top, mid, size, dataWriteGUID(t, mid), topData)

	want := make([]byte, 16<<20)
	check := func(path string, layers ...map[int64][]byte) {
		t.Helper()
		img, err := Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer img.Close()
		for _, at := range []int64{0, 4<<30 - 8<<20} {
			src.ReadAt(want, at)
			for _, l := range layers {
				for o, d := range l {
					if lo, hi := max(o, at), min(o+int64(len(d)), at+int64(len(want))); lo < hi {
						copy(want[lo-at:hi-at], d[lo-o:hi-o])
					}
				}
			}
			got := make([]byte, len(want))
			if _, err := img.ReadAt(got, at); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("%s at %d reads wrong", path, at)
			}
		}
		var covered int64
		for e, err := range img.Extents(context.Background()) {
			if err != nil {
				t.Fatal(err)
			}
			covered += e.Len
		}
		if covered == 0 || covered > 256<<20 {
			t.Fatalf("%s: extents cover %d bytes", path, covered)
		}
	}
	check(mid, midData)
	check(top, midData, topData)
	img, err := Open(top)
	if err != nil {
		t.Fatal(err)
	}
	i, _ := img.Info(context.Background())
	img.Close()
	if i.Type != "differencing" || i.Parent != mid || i.ParentUUID != dataWriteGUID(t, mid).String() {
		t.Fatalf("info %+v", i)
	}
	// OpenOn cannot look for a parent.
	b, _ := os.ReadFile(top)
	if _, err := OpenOn(bytes.NewReader(b), int64(len(b)), "top.vhdx"); err == nil {
		t.Fatal("OpenOn opened a differencing disk")
	}
	// A parent with another DataWriteGuid is refused, and a missing one.
	other := filepath.Join(dir, "other")
	os.Mkdir(other, 0o755)
	write(t, filepath.Join(other, "base.vhdx"), src, Options{})
	diffImage(t, filepath.Join(other, "child.vhdx"), base, size, dataWriteGUID(t, base), midData)
	if _, err := Open(filepath.Join(other, "child.vhdx")); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("a parent with another DataWriteGuid: %v", err)
	}
	lone := filepath.Join(t.TempDir(), "lone.vhdx")
	diffImage(t, lone, base, size, dataWriteGUID(t, base), midData)
	if _, err := Open(lone); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("a missing parent: %v", err)
	}
}

// A disk that is its own parent is refused by the depth limit, not looped.
func TestParentLoop(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "self.vhdx")
	diffImage(t, p, p, 1<<20, GUID{}, nil)
	// Make the linkage match our own DataWriteGuid.
	b, _ := os.ReadFile(p)
	h, _ := parseHeader(b[header2Off : header2Off+headerSize])
	diffImage(t, p, p, 1<<20, h.DataWrite, nil)
	// diffImage draws a new DataWriteGuid: rewrite both headers with h's.
	f, _ := os.OpenFile(p, os.O_RDWR, 0)
	for i, off := range []int64{header1Off, header2Off} {
		hh := *h
		hh.Sequence = uint64(i + 1)
		f.WriteAt(hh.marshal(), off)
	}
	f.Close()
	_, err := Open(p)
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "chain longer") {
		t.Fatalf("a self-parented disk: %v", err)
	}
}

// Differencing disks with one thing wrong are refused: a partially present
// block without a sector bitmap, a bad bitmap state, a locator string
// outside the locator, a parent_linkage that is not a GUID.
func TestHostileDifferencing(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(dir, "base.vhdx")
	write(t, base, memSource(image(4<<20, 5)), Options{BlockSize: 1 << 20})
	child := filepath.Join(dir, "child.vhdx")
	diffImage(t, child, base, 4<<20, dataWriteGUID(t, base), map[int64][]byte{4096: bytes.Repeat([]byte{9}, 512)})
	good, err := os.ReadFile(child)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(child); err != nil {
		t.Fatal(err)
	}
	l, _ := newLayout(4<<20, Options{BlockSize: 1 << 20}, []byte{})
	bitmapSlot := l.batOff + 8*bitmapIndex(0, l.ratio)
	locator := l.metaOff + metaTableLen + 40 // after the five items
	le := binary.LittleEndian
	for name, mutate := range map[string]func(b []byte){
		"no sector bitmap":    func(b []byte) { le.PutUint64(b[bitmapSlot:], 0) },
		"bitmap state zero":   func(b []byte) { le.PutUint64(b[bitmapSlot:], le.Uint64(b[bitmapSlot:])&^7|stateZero) },
		"bitmap past the end": func(b []byte) { le.PutUint64(b[bitmapSlot:], 1<<40|stateFull) },
		"locator key outside": func(b []byte) { le.PutUint32(b[locator+20:], 1<<20) },
		"locator type":        func(b []byte) { b[locator] ^= 1 },
		"locator count":       func(b []byte) { le.PutUint16(b[locator+18:], 5000) },
		"linkage not a GUID":  func(b []byte) { le.PutUint16(b[locator+20+10:], 6) }, // value length: 3 characters
	} {
		t.Run(name, func(t *testing.T) {
			b := bytes.Clone(good)
			mutate(b)
			p := filepath.Join(dir, "bad.vhdx")
			os.WriteFile(p, b, 0o644)
			_, err := Open(p)
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("opened, or another error: %v", err)
			}
			t.Log(err)
		})
	}
}

// Logical sectors of 4096 bytes are read: the metadata says so, the chunk
// ratio follows, and a virtual size must be a whole number of them.
func TestLogicalSector4096(t *testing.T) {
	data := image(5<<20, 9)
	path := filepath.Join(t.TempDir(), "4k.vhdx")
	write(t, path, memSource(data), Options{BlockSize: 1 << 20})
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	logical := fuzzMeta + metaTableLen + 32 // the fourth item, after 8+8+16 bytes
	binary.LittleEndian.PutUint32(b[logical:], 4096)
	img, err := OpenOn(bytes.NewReader(b), int64(len(b)), "4k.vhdx")
	if err != nil {
		t.Fatal(err)
	}
	if i, _ := img.Info(context.Background()); i.LogicalSector != 4096 || img.ratio != 32768 {
		t.Fatalf("%+v, chunk ratio %d", i, img.ratio)
	}
	if !bytes.Equal(readThroughExtents(t, img), data) {
		t.Fatal("reads wrong")
	}
	binary.LittleEndian.PutUint64(b[fuzzMeta+metaTableLen+8:], 5<<20+512) // not whole 4 KiB sectors
	if _, err := OpenOn(bytes.NewReader(b), int64(len(b)), "4k.vhdx"); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("a size of 512-byte sectors with 4 KiB logical sectors: %v", err)
	}
}

package vhd

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf16"

	"github.com/xva-tools/xva/disk"
	"github.com/xva-tools/xva/internal/testutil"
)

// image is test data: bytes with some zero stretches.
func image(size int64, seed uint64) []byte { return testutil.Image(size, seed, 3<<20) }

// memSource serves a byte slice as a disk.
type memSource []byte

func (m memSource) Size() int64  { return int64(len(m)) }
func (m memSource) Close() error { return nil }
func (m memSource) ReadAt(p []byte, off int64) (int, error) {
	return bytes.NewReader(m).ReadAt(p, off)
}

func writeVHD(t testing.TB, path string, data []byte, fixed bool) {
	t.Helper()
	s, err := create(path, int64(len(data)), fixed)
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

func readAll(t testing.TB, path string) []byte {
	t.Helper()
	img, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	b := make([]byte, img.Size())
	if _, err := img.ReadAt(b, 0); err != nil {
		t.Fatal(err)
	}
	return b
}

func sum(b []byte) string { h := sha256.Sum256(b); return hex.EncodeToString(h[:]) }

func have(t testing.TB, tools ...string) bool {
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Logf("%s not installed: skipping that check", tool)
			return false
		}
	}
	return true
}

func qemuSize(t testing.TB, path string) int64 {
	t.Helper()
	out, err := exec.Command("qemu-img", "info", "-f", "vpc", "--output=json", path).Output()
	if err != nil {
		t.Fatalf("qemu-img info: %v", err)
	}
	var info struct {
		VirtualSize int64 `json:"virtual-size"`
	}
	json.Unmarshal(out, &info)
	return info.VirtualSize
}

func qemuRaw(t testing.TB, path string) []byte {
	t.Helper()
	out := filepath.Join(t.TempDir(), "qemu.raw")
	if b, err := exec.Command("qemu-img", "convert", "-f", "vpc", "-O", "raw", path, out).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img convert: %v\n%s", err, b)
	}
	b, _ := os.ReadFile(out)
	return b
}

// libvhdi reads the image with libvhdi's Python bindings (the library
// vhdimount uses, without needing FUSE): its media size and SHA-256.
func libvhdi(t testing.TB, path string, parents ...string) (int64, string) {
	t.Helper()
	py := `
import hashlib, sys, pyvhdi
files = []
for p in sys.argv[1:]:
    f = pyvhdi.file(); f.open(p); files.append(f)
for child, parent in zip(files, files[1:]):
    child.set_parent(parent)
f = files[0]
h = hashlib.sha256(); left = f.get_media_size()
while left:
    b = f.read_buffer(min(left, 1 << 20)); h.update(b); left -= len(b)
print(f.get_media_size(), h.hexdigest())
`
	out, err := exec.Command("/usr/bin/python3", append([]string{"-c", py, path}, parents...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("libvhdi: %v\n%s", err, out)
	}
	var n int64
	var h string
	fmt.Sscan(string(out), &n, &h)
	return n, h
}

func haveLibvhdi(t testing.TB) bool {
	if err := exec.Command("/usr/bin/python3", "-c", "import pyvhdi").Run(); err != nil {
		t.Log("python3-libvhdi not installed: skipping the libvhdi checks")
		return false
	}
	return true
}

func vhdiinfoSize(t testing.TB, path string) int64 {
	t.Helper()
	out, err := exec.Command("vhdiinfo", path).Output()
	if err != nil {
		t.Fatalf("vhdiinfo: %v", err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "Media size" {
			// "Media size:   100 MiB (104857600 bytes)"
			if i := strings.LastIndex(v, "("); i >= 0 {
				n, _ := strconv.ParseInt(strings.Fields(v[i+1:])[0], 10, 64)
				return n
			}
		}
	}
	t.Fatalf("vhdiinfo printed no media size:\n%s", out)
	return 0
}

// Sizes that are not multiples of 2 MiB and not CHS-exact (100 MiB rounds
// to 104865792 under CHS), plus one that is both.
var sizes = []int64{512, 100 << 20, 10<<20 + 512, 3<<20 + 4096, 4 << 20, 7*BlockSize + 1536}

func TestOurImagesAreReadByEveryone(t *testing.T) {
	qemu, vhdi, lib := have(t, "qemu-img"), have(t, "vhdiinfo"), haveLibvhdi(t)
	for _, size := range sizes {
		for _, fixed := range []bool{false, true} {
			name := fmt.Sprintf("%d-%s", size, map[bool]string{false: "dynamic", true: "fixed"}[fixed])
			t.Run(name, func(t *testing.T) {
				data := image(size, uint64(size))
				path := filepath.Join(t.TempDir(), "d.vhd")
				writeVHD(t, path, data, fixed)
				if got := readAll(t, path); !bytes.Equal(got, data) {
					t.Fatal("our reader differs")
				}
				if qemu {
					if s := qemuSize(t, path); s != size {
						t.Fatalf("qemu-img says virtual size %d, want %d", s, size)
					}
					if sum(qemuRaw(t, path)) != sum(data) {
						t.Fatal("qemu-img convert gives other bytes")
					}
				}
				if vhdi {
					if s := vhdiinfoSize(t, path); s != size {
						t.Fatalf("vhdiinfo says media size %d, want %d", s, size)
					}
				}
				if lib {
					if n, h := libvhdi(t, path); n != size || h != sum(data) {
						t.Fatalf("libvhdi reads %d bytes, hash match %v", n, h == sum(data))
					}
				}
			})
		}
	}
}

func TestOddSizeIsPadded(t *testing.T) {
	data := image(1000, 9)
	path := filepath.Join(t.TempDir(), "d.vhd")
	writeVHD(t, path, data, false)
	got := readAll(t, path)
	if len(got) != 1024 || !bytes.Equal(got[:1000], data) || !bytes.Equal(got[1000:], make([]byte, 24)) {
		t.Fatalf("a 1000-byte disk reads back as %d bytes", len(got))
	}
}

func TestTooLarge(t *testing.T) {
	if _, err := Create(filepath.Join(t.TempDir(), "x.vhd"), MaxSize+512); err == nil || !strings.Contains(err.Error(), "2040 GiB") {
		t.Fatalf("a disk over 2040 GiB: %v", err)
	}
}

func TestDynamicLayout(t *testing.T) {
	data := make([]byte, 6*BlockSize)
	data[2*BlockSize+5] = 1 // one block of six holds data
	path := filepath.Join(t.TempDir(), "d.vhd")
	writeVHD(t, path, data, false)
	b, _ := os.ReadFile(path)
	if !bytes.Equal(b[:512], b[len(b)-512:]) {
		t.Fatal("the footers at the start and the end differ")
	}
	img, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	info, _ := img.Info(context.Background())
	if info.Allocated != 1 || info.Blocks != 6 || info.Creator != "tap" {
		t.Fatalf("info %+v", info)
	}
	e := img.bat[2]
	if (int64(e)*SectorSize+SectorSize)%4096 != 0 {
		t.Fatalf("block data at %d is not 4 KiB-aligned", int64(e)*SectorSize+SectorSize)
	}
	// The batmap tapdisk checks: its header after the BAT, checksum valid.
	hdr := b[img.Header.TableOffset+uint64(pad(4*6, 512)):]
	if string(hdr[:8]) != "tdbatmap" || binary.BigEndian.Uint32(hdr[24:]) != 0xFFFFFFFF {
		t.Fatalf("batmap header %q", hdr[:28])
	}
	var ext []disk.Extent
	for x, err := range img.Extents(context.Background()) {
		if err != nil {
			t.Fatal(err)
		}
		ext = append(ext, x)
	}
	if len(ext) != 1 || ext[0] != (disk.Extent{Off: 2 * BlockSize, Len: BlockSize}) {
		t.Fatalf("extents %v", ext)
	}
}

func TestSparseDiskMakesASmallVHD(t *testing.T) {
	size := int64(4 << 30)
	s, err := Create(filepath.Join(t.TempDir(), "big.vhd"), size)
	if err != nil {
		t.Fatal(err)
	}
	// 100 MiB of data in 2 MiB runs spread over the disk, as a filesystem
	// lays files out.
	run := image(BlockSize, 3)
	for i := int64(0); i < 50; i++ {
		if _, err := s.WriteAt(run, i*40*BlockSize); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Commit(); err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(s.final)
	if st.Size() < 100<<20 || st.Size() > 105<<20 {
		t.Fatalf("a 4 GiB disk with 100 MiB of data makes a %.1f MiB VHD", float64(st.Size())/(1<<20))
	}
}

func qemuMakes(t *testing.T, data []byte, opts string) string {
	t.Helper()
	dir := t.TempDir()
	raw := filepath.Join(dir, "in.raw")
	os.WriteFile(raw, data, 0o644)
	out := filepath.Join(dir, "q.vhd")
	if b, err := exec.Command("qemu-img", "convert", "-f", "raw", "-O", "vpc", "-o", opts, raw, out).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img convert -o %s: %v\n%s", opts, err, b)
	}
	return out
}

func TestWeReadQemuImages(t *testing.T) {
	if !have(t, "qemu-img") {
		t.Skip("qemu-img not installed")
	}
	for _, size := range []int64{100 << 20, 10<<20 + 512} {
		data := image(size, uint64(size)+1)
		for _, opts := range []string{"subformat=dynamic", "subformat=fixed", "subformat=dynamic,force_size=on", "subformat=fixed,force_size=on"} {
			t.Run(fmt.Sprintf("%d-%s", size, opts), func(t *testing.T) {
				path := qemuMakes(t, data, opts)
				img, err := Open(path)
				if err != nil {
					t.Fatal(err)
				}
				defer img.Close()
				if want := qemuSize(t, path); img.Size() != want {
					t.Fatalf("we read size %d, qemu-img %d", img.Size(), want)
				}
				got := readAll(t, path)
				if sum(got) != sum(qemuRaw(t, path)) {
					t.Fatal("our bytes differ from qemu-img's")
				}
				if !bytes.Equal(got[:size], data) {
					t.Fatal("the image does not hold the original data")
				}
			})
		}
	}
}

// writeDiff builds a differencing VHD over parent by hand (no tool here
// makes one): the sectors in data are stored in the child, with bitmap bits
// set only for them, so the rest of each block reads from the parent. Its
// parent is found through a W2ru (relative) locator.
func writeDiff(t *testing.T, path, parentPath string, size int64, data map[int64][]byte, parentUUID [16]byte) {
	t.Helper()
	entries := (size + BlockSize - 1) / BlockSize
	bat := make([]uint32, entries)
	for i := range bat {
		bat[i] = unused
	}
	loc := []byte{}
	for _, r := range utf16.Encode([]rune(`.\` + filepath.Base(parentPath))) {
		loc = binary.LittleEndian.AppendUint16(loc, r)
	}
	locOff := int64(tableOffset) + pad(4*entries, 512)
	pos := locOff + 512
	type blk struct {
		bm, data []byte
	}
	blocks := map[int64]*blk{}
	for off, b := range data {
		if off%SectorSize != 0 || len(b)%SectorSize != 0 {
			t.Fatal("test data must be whole sectors")
		}
		for i := int64(0); i < int64(len(b)); i += SectorSize {
			o := off + i
			k := o / BlockSize
			if blocks[k] == nil {
				blocks[k] = &blk{bm: make([]byte, 512), data: make([]byte, BlockSize)}
			}
			s := (o % BlockSize) / SectorSize
			blocks[k].bm[s>>3] |= 0x80 >> (s & 7)
			copy(blocks[k].data[o%BlockSize:], b[i:i+SectorSize])
		}
	}
	f := &Footer{Features: 2, Version: vhdVersion, DataOffset: footerSize, Creator: tapCreator, CreatorVer: tapCreatorVer,
		OrigSize: uint64(size), CurrSize: uint64(size), Type: TypeDiff}
	f.Cylinders, f.Heads, f.SPT = geometry(uint64(size))
	f.UUID[0] = byte(len(path))
	var out bytes.Buffer
	var body []byte
	for k := int64(0); k < entries; k++ {
		if b := blocks[k]; b != nil {
			bat[k] = uint32((pos + int64(len(body))) / SectorSize)
			body = append(append(body, b.bm...), b.data...)
		}
	}
	h := Header{DataOffset: noOffset, TableOffset: tableOffset, Version: vhdVersion, MaxEntries: uint32(entries),
		BlockSize: BlockSize, ParentUUID: parentUUID, ParentName: filepath.Base(parentPath)}
	h.Locators[0] = Locator{Code: codeW2ru, Space: 1, Length: uint32(len(loc)), Offset: uint64(locOff)}
	out.Write(f.marshal())
	out.Write(h.marshal())
	batb := bytes.Repeat([]byte{0xFF}, int(pad(4*entries, 512)))
	for i, e := range bat {
		binary.BigEndian.PutUint32(batb[4*i:], e)
	}
	out.Write(batb)
	locb := make([]byte, 512)
	copy(locb, loc)
	out.Write(locb)
	out.Write(body)
	out.Write(f.marshal())
	if err := os.WriteFile(path, out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// chain builds base → l1 → l2 where each level changes the given ranges,
// and returns the level-2 path, every path, and the bytes the chain holds.
func chain(t *testing.T, l1, l2 [][2]int64) (string, []string, []byte) {
	t.Helper()
	dir := t.TempDir()
	size := int64(5*BlockSize + 1024)
	want := image(size, 77)
	basePath := filepath.Join(dir, "base.vhd")
	writeVHD(t, basePath, want, false)
	paths := []string{basePath}
	parent := basePath
	for level, ranges := range [][][2]int64{l1, l2} {
		img, err := Open(parent)
		if err != nil {
			t.Fatal(err)
		}
		uuid := img.Footer.UUID
		img.Close()
		data := map[int64][]byte{}
		for i, r := range ranges {
			b := bytes.Repeat([]byte{byte(10*level + i + 1)}, int(r[1]))
			if i == 2 {
				b = make([]byte, r[1]) // zeros that mask the parent's data
			}
			data[r[0]] = b
			copy(want[r[0]:], b)
		}
		p := filepath.Join(dir, fmt.Sprintf("l%d.vhd", level+1))
		writeDiff(t, p, parent, size, data, uuid)
		paths = append(paths, p)
		parent = p
	}
	return parent, paths, want
}

func readThroughExtents(t *testing.T, path string, size int64) []byte {
	t.Helper()
	img, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	r := disk.NewReader(context.Background(), img)
	defer r.Close()
	out := make([]byte, size)
	for p, err := range disk.Pieces(r) {
		if err != nil {
			t.Fatal(err)
		}
		copy(out[p.Off:], p.Data)
	}
	return out
}

func TestDifferencingChain(t *testing.T) {
	// Whole 4 KiB pages: in a block the base has, in one where it may not,
	// zeros masking base data, and overlapping levels.
	top, paths, want := chain(t,
		[][2]int64{{4096, 8192}, {3*BlockSize + 4096, 4096}, {4 * BlockSize, 8192}},
		[][2]int64{{8192, 4096}, {5*BlockSize + 1024 - 512, 512}})
	if got := readAll(t, top); !bytes.Equal(got, want) {
		t.Fatal("the two-level chain reads wrong")
	}
	if got := readThroughExtents(t, top, int64(len(want))); !bytes.Equal(got, want) {
		t.Fatal("the chain's extents miss data")
	}
	img, err := Open(top)
	if err != nil {
		t.Fatal(err)
	}
	info, _ := img.Info(context.Background())
	img.Close()
	if info.Type != "differencing" || info.Parent != paths[1] {
		t.Fatalf("info %+v", info)
	}
	// libvhdi, which honours bitmaps too, agrees.
	if haveLibvhdi(t) {
		if n, h := libvhdi(t, paths[2], paths[1], paths[0]); n != int64(len(want)) || h != sum(want) {
			t.Fatalf("libvhdi reads the chain as %d bytes, hash match %v", n, h == sum(want))
		}
	}
	// A parent with another UUID is refused.
	bad := filepath.Join(filepath.Dir(top), "bad.vhd")
	writeDiff(t, bad, paths[0], int64(len(want)), map[int64][]byte{0: make([]byte, 512)}, [16]byte{9, 9, 9})
	if _, err := Open(bad); err == nil || !strings.Contains(err.Error(), "UUID") {
		t.Fatalf("wrong parent UUID: %v", err)
	}
}

// TestSectorGranularBitmaps changes single sectors. The VHD specification
// and tapdisk read each sector whose bit is clear from the parent; libvhdi
// reads a 4 KiB page partly present in the child whole from the child, so
// it is no oracle here and the expected bytes are computed instead.
func TestSectorGranularBitmaps(t *testing.T) {
	top, _, want := chain(t,
		[][2]int64{{512, 1024}, {3*BlockSize + 4096 + 512, 512}, {4*BlockSize + 1536, 2048}},
		[][2]int64{{1024, 512}, {7 * 512, 512}})
	if got := readAll(t, top); !bytes.Equal(got, want) {
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("the chain reads wrong at byte %d", i)
			}
		}
	}
}

func TestCorruptImages(t *testing.T) {
	data := image(5*BlockSize, 11)
	dir := t.TempDir()
	good := filepath.Join(dir, "good.vhd")
	writeVHD(t, good, data, false)
	fixedGood := filepath.Join(dir, "fixed.vhd")
	writeVHD(t, fixedGood, data[:3<<20], true)
	b, _ := os.ReadFile(good)
	img, _ := Open(good)
	bat := int64(img.Header.TableOffset)
	img.Close()
	cases := map[string]func() []byte{
		"footer checksum": func() []byte { c := bytes.Clone(b); c[len(c)-512+40] ^= 1; return c },
		"footer mismatch": func() []byte {
			c := bytes.Clone(b)
			f, _, _ := parseFooter(c[:512])
			f.Timestamp++
			copy(c, f.marshal())
			return c
		},
		"BAT entry past end of file": func() []byte {
			c := bytes.Clone(b)
			binary.BigEndian.PutUint32(c[bat:], uint32(len(c)/512))
			return c
		},
		"truncated": func() []byte { return b[:len(b)-3000] },
		"header checksum": func() []byte {
			c := bytes.Clone(b)
			c[512+28] ^= 1
			return c
		},
	}
	for name, mk := range cases {
		p := filepath.Join(dir, strings.ReplaceAll(name, " ", "-")+".vhd")
		os.WriteFile(p, mk(), 0o644)
		if _, err := Open(p); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %v, want a corrupt-image error", name, err)
		}
	}
	fb, _ := os.ReadFile(fixedGood)
	p := filepath.Join(dir, "fixed-truncated.vhd")
	os.WriteFile(p, append(bytes.Clone(fb[:4096]), fb[len(fb)-512:]...), 0o644)
	if _, err := Open(p); !errors.Is(err, ErrCorrupt) {
		t.Errorf("truncated fixed disk: %v", err)
	}
}

// fileMedium is a file used as a device.
type fileMedium struct{ *os.File }

func TestCreateOnAMedium(t *testing.T) {
	data := image(9<<20+512, 21)
	end := int64(16 << 20)
	path := filepath.Join(t.TempDir(), "lv")
	os.WriteFile(path, bytes.Repeat([]byte{0xEE}, int(end)), 0o644) // stale bytes
	f, _ := os.OpenFile(path, os.O_RDWR, 0)
	defer f.Close()
	s, err := CreateOn(fileMedium{f}, int64(len(data)), end)
	if err != nil {
		t.Fatal(err)
	}
	r := disk.NewReader(context.Background(), memSource(data))
	if _, err := disk.Copy(context.Background(), s, r, nil); err != nil {
		t.Fatal(err)
	}
	r.Close()
	if err := s.Commit(); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, path); !bytes.Equal(got, data) {
		t.Fatal("a VHD on a medium with stale bytes reads wrong")
	}
	if have(t, "qemu-img") && sum(qemuRaw(t, path)) != sum(data) {
		t.Fatal("qemu-img reads the VHD on the medium wrong")
	}
	if _, err := CreateOn(fileMedium{f}, 64<<20, end); err == nil {
		t.Fatal("a medium too small was accepted")
	}
}

// TestParentFIFO: a differencing disk whose locator names a FIFO is
// refused at once; opening the FIFO would wait for a writer forever.
func TestParentFIFO(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "parent.vhd")
	mkfifo(t, fifo)
	child := filepath.Join(dir, "child.vhd")
	writeDiff(t, child, fifo, 4*BlockSize, nil, [16]byte{1})
	done := make(chan error, 1)
	go func() {
		img, err := Open(child)
		if err == nil {
			img.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "named pipe") {
			t.Fatalf("%v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("opening a VHD whose parent is a FIFO hangs")
	}
	if IsVHD(fifo) {
		t.Fatal("a FIFO taken for a VHD")
	}
}

package lvm

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/xva-tools/xva/internal/fuzzutil"
	"github.com/xva-tools/xva/internal/testutil"
)

func TestParseRealMetadata(t *testing.T) {
	text, err := os.ReadFile("testdata/vg-two-segments.txt")
	if err != nil {
		t.Fatal(err)
	}
	vg, err := ParseMetadata(string(text))
	if err != nil {
		t.Fatal(err)
	}
	if vg.Name != "VG_XenStorage-test" || vg.Seqno != 4 || vg.ExtentSize != 4<<20 || len(vg.PVs) != 1 || vg.PVs[0].PEStart != 11<<20 {
		t.Fatalf("VG %+v", vg)
	}
	lv := vg.LV("LV-abc")
	pieces, err := vg.Map(lv)
	if err != nil {
		t.Fatal(err)
	}
	// lvs said /dev/loop0:0-2 then /dev/loop0:5-6.
	want := []Piece{{0, 11 << 20, 12 << 20, "pv0"}, {12 << 20, 11<<20 + 20<<20, 8 << 20, "pv0"}}
	if len(pieces) != 2 || pieces[0] != want[0] || pieces[1] != want[1] {
		t.Fatalf("pieces %+v, want %+v", pieces, want)
	}
	if vg.Size(lv) != 20<<20 {
		t.Fatalf("LV size %d", vg.Size(lv))
	}
}

func TestParseErrors(t *testing.T) {
	for name, text := range map[string]string{
		"unclosed":   "vg {\nseqno = 1\n",
		"two vgs":    "a {\n}\nb {\n}\n",
		"bad number": "vg {\nseqno = 12x\nextent_size = 8192\n}\n",
		"deep":       strings.Repeat("a {\n", 40) + strings.Repeat("}\n", 40),
		"no seqno":   "vg {\nextent_size = 8192\n}\n",
		"striped": `vg { seqno = 1 extent_size = 8192 physical_volumes { pv0 { id = "x" dev_size = 100000 pe_start = 2048 pe_count = 10 } }
logical_volumes { s { segment1 { start_extent = 0 extent_count = 2 type = "striped" stripe_count = 2 stripe_size = 128 stripes = ["pv0", 0, "pv0", 4] } } } }`,
	} {
		vg, err := ParseMetadata(text)
		if err == nil && name == "striped" {
			_, err = vg.Map(vg.LV("s"))
		}
		if err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// syntheticPV builds a PV image whose metadata text wraps around the end of
// its circular metadata area.
func syntheticPV(t *testing.T, text string, corruptText bool) []byte {
	t.Helper()
	img := makePV(text, 1<<20, 4096, 64<<10, 100)
	if corruptText {
		m := img[4096 : 4096+mdaHeaderSize]
		m[56] ^= 1
		binary.LittleEndian.PutUint32(m, crc(m[4:]))
	}
	return img
}

// makePV builds a PV image of size bytes with one metadata area at mdaOff,
// holding text so that its last tail bytes lie at the area's end and the
// rest wraps to the area's start.
func makePV(text string, size int, mdaOff, mdaSize, tail uint64) []byte {
	return MakePV(text, size, mdaOff, mdaSize, tail)
}

func TestWrappedMetadataAndChecksums(t *testing.T) {
	text, _ := os.ReadFile("testdata/vg-two-segments.txt")
	pv, err := ReadPV(bytes.NewReader(syntheticPV(t, string(text), false)), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if pv.VG.Name != "VG_XenStorage-test" || pv.UUID != "abcdefghijklmnopqrstuvwxyz012345" {
		t.Fatalf("PV %+v", pv)
	}
	if _, err := ReadPV(bytes.NewReader(syntheticPV(t, string(text), true)), 1<<20); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("bad text checksum: %v", err)
	}
	img := syntheticPV(t, string(text), false)
	img[512+40] ^= 1 // inside the label's checksummed bytes
	if _, err := ReadPV(bytes.NewReader(img), 1<<20); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("bad label checksum: %v", err)
	}
	if IsPV(bytes.NewReader(make([]byte, 4096))) {
		t.Fatal("zeros taken for a PV")
	}
}

// A real PV made by the LVM tools on a loop device.
type realPV struct {
	t    *testing.T
	dev  string
	vg   string
	file string
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	if name != "pvs" && name != "vgs" && name != "lvs" && name != "pvck" && name != "losetup" && name != "dd" && name != "qemu-img" && !hasDeviceMapper() {
		args = append([]string{"--driverloaded", "n"}, args...)
	}
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "LVM_SUPPRESS_FD_WARNINGS=1")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return string(out)
}

func newRealPV(t *testing.T, size int64) *realPV {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("LVM on loop devices needs root")
	}
	testutil.NeedTools(t, "pvcreate", "losetup")
	file := filepath.Join(t.TempDir(), "pv.img")
	f, _ := os.Create(file)
	// Stale bytes everywhere, as on a reused disk.
	f.Write(bytes.Repeat([]byte{0xEE}, int(size)))
	f.Close()
	p := &realPV{t: t, file: file, vg: fmt.Sprintf("VG_XenStorage-xvatest%d", rand.Uint32())}
	p.dev = testutil.Loop(t, file) // detached after the cleanup below
	t.Cleanup(func() {
		exec.Command("vgremove", "--driverloaded", "n", "-ff", p.vg).Run()
		exec.Command("pvremove", "--driverloaded", "n", "-ff", "-y", p.dev).Run()
	})
	run(t, "pvcreate", "-ff", "-y", "--metadatasize", "10M", p.dev)
	run(t, "vgcreate", "--metadatasize", "10M", p.vg, p.dev)
	return p
}

// lvsMap is what lvs reports: per LV, its segments as (start PE, PV range).
func (p *realPV) lvsMap() map[string][]string {
	var out struct {
		Report []struct {
			LV []struct {
				Name   string `json:"lv_name"`
				Start  string `json:"seg_start_pe"`
				Ranges string `json:"seg_pe_ranges"`
			} `json:"lv"`
		} `json:"report"`
	}
	if err := json.Unmarshal([]byte(run(p.t, "lvs", "--reportformat", "json", "-o", "lv_name,seg_start_pe,seg_pe_ranges", p.vg)), &out); err != nil {
		p.t.Fatal(err)
	}
	m := map[string][]string{}
	for _, l := range out.Report[0].LV {
		m[l.Name] = append(m[l.Name], l.Start+" "+l.Ranges)
	}
	return m
}

func (p *realPV) peStart() int64 {
	out := strings.TrimSpace(run(p.t, "pvs", "--noheadings", "--units", "b", "--nosuffix", "-o", "pe_start", p.dev))
	n, _ := strconv.ParseInt(out, 10, 64)
	return n
}

func TestAgainstTheLVMTools(t *testing.T) {
	p := newRealPV(t, 96<<20)
	run(t, "lvcreate", "-n", "LV-one", "-L", "12M", p.vg, "--yes")
	run(t, "lvcreate", "-n", "other", "-L", "8M", p.vg, "--yes")
	run(t, "lvextend", "-L", "+8M", p.vg+"/LV-one")
	run(t, "lvcreate", "-n", "VHD-two", "-L", "24M", p.vg, "--yes")

	pv, err := ReadPVFile(p.dev)
	if err != nil {
		t.Fatal(err)
	}
	// The metadata text is the one pvck dumps.
	dump := run(t, "pvck", "--dump", "metadata", p.dev)
	if i := strings.Index(dump, p.vg+" {"); i < 0 || !strings.Contains(dump[i:], strings.TrimSpace(pv.Metadata)) {
		t.Fatal("our metadata text is not the one pvck --dump metadata shows")
	}
	// Every LV maps as lvs says.
	lvs := p.lvsMap()
	for _, lv := range pv.VG.LVs {
		pieces, err := pv.VG.Map(lv)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, pc := range pieces {
			first := (pc.PVOff - pv.VG.PV(pc.PV).PEStart) / pv.VG.ExtentSize
			got = append(got, fmt.Sprintf("%d %s:%d-%d", pc.LVOff/pv.VG.ExtentSize, p.dev, first, first+pc.Len/pv.VG.ExtentSize-1))
		}
		if strings.Join(got, ",") != strings.Join(lvs[lv.Name], ",") {
			t.Fatalf("%s: we map %v, lvs says %v", lv.Name, got, lvs[lv.Name])
		}
	}
	if len(lvs["LV-one"]) != 2 {
		t.Fatalf("LV-one should have two segments: %v", lvs["LV-one"])
	}

	// Write a 19 MiB disk (holes and all) into the two-segment LV, offline.
	size := int64(19<<20 + 512)
	data := make([]byte, size)
	r := rand.New(rand.NewPCG(1, 1))
	for i := int64(0); i < size; i++ {
		if (i/(1<<20))%3 != 1 {
			data[i] = byte(r.Uint32())
		}
	}
	s, err := CreateSink(p.dev, p.vg, "LV-one", size, false)
	if err != nil {
		t.Fatal(err)
	}
	for off := int64(0); off < size; off += 1 << 20 {
		end := min(off+1<<20, size)
		if (off/(1<<20))%3 == 1 {
			continue // a hole: the stale 0xEE bytes must be zeroed
		}
		if _, err := s.WriteAt(data[off:end], off); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Commit(); err != nil {
		t.Fatal(err)
	}
	// Read it back with dd at the offsets lvs reports.
	var back []byte
	for _, seg := range lvs["LV-one"] {
		rng := seg[strings.LastIndex(seg, ":")+1:]
		a, b, _ := strings.Cut(rng, "-")
		first, _ := strconv.ParseInt(a, 10, 64)
		last, _ := strconv.ParseInt(b, 10, 64)
		out := filepath.Join(t.TempDir(), "seg")
		extent := pv.VG.ExtentSize
		run(t, "dd", "if="+p.dev, "of="+out, "bs=1M", "iflag=skip_bytes,count_bytes", "status=none",
			fmt.Sprintf("skip=%d", p.peStart()+first*extent), fmt.Sprintf("count=%d", (last-first+1)*extent))
		b2, _ := os.ReadFile(out)
		back = append(back, b2...)
	}
	if sha256.Sum256(back[:size]) != sha256.Sum256(data) {
		t.Fatal("dd at the offsets lvs reports does not read back the disk")
	}
	// The other LV between the two segments is untouched.
	v, err := OpenVolume(p.dev, p.vg, "other", false)
	if err != nil {
		t.Fatal(err)
	}
	o := make([]byte, v.Size())
	v.ReadAt(o, 0)
	v.Close()
	if !bytes.Equal(o, bytes.Repeat([]byte{0xEE}, len(o))) {
		t.Fatal("writing LV-one touched LV other")
	}
	// A disk larger than the LV is refused before anything is written.
	before, _ := os.ReadFile(p.file)
	if _, err := CreateSink(p.dev, p.vg, "other", 9<<20, false); !errors.Is(err, ErrTooSmall) {
		t.Fatalf("too small: %v", err)
	}
	after, _ := os.ReadFile(p.file)
	if !bytes.Equal(before, after) {
		t.Fatal("a refused write changed the PV")
	}
}

func TestVolumeReadsThroughSegments(t *testing.T) {
	p := newRealPV(t, 64<<20)
	run(t, "lvcreate", "-n", "a", "-L", "8M", p.vg, "--yes")
	run(t, "lvcreate", "-n", "b", "-L", "4M", p.vg, "--yes")
	run(t, "lvextend", "-L", "+4M", p.vg+"/a")
	v, err := OpenVolume(p.dev, p.vg, "a", true)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	msg := []byte("crosses the segment boundary")
	if _, err := v.WriteAt(msg, 8<<20-10); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(msg))
	if _, err := v.ReadAt(got, 8<<20-10); err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("read back %q, %v", got, err)
	}
}

// countNodes counts the sections, keys and list items of a tree, as the
// parser's budget does.
func countNodes(s *Section) int {
	n := len(s.Sections) + len(s.Keys)
	for _, v := range s.Keys {
		n += countItems(v)
	}
	for _, c := range s.Sections {
		n += countNodes(c)
	}
	return n
}

func countItems(v Value) int {
	list, _ := v.([]Value)
	n := len(list)
	for _, x := range list {
		n += countItems(x)
	}
	return n
}

// TestMetadataBombs: a checksum-valid area may hold 128 MiB of text; empty
// sections and list items cost memory per node, not per byte, so their
// number is bounded before they are allocated.
func TestMetadataBombs(t *testing.T) {
	over := maxNodes + 1
	for name, text := range map[string]string{
		"sections":       "vg {\n" + strings.Repeat("a{}", over) + "\n}\n",
		"list items":     "vg {\nx = [" + strings.Repeat("1,", over) + "]\n}\n",
		"nested lists":   "vg {\nx = [" + strings.Repeat("[],", over) + "]\n}\n",
		"keys":           "vg {\n" + strings.Repeat("k=1\n", over) + "}\n",
		"deep lists":     "vg {\nx = " + strings.Repeat("[", 40) + strings.Repeat("]", 40) + "\n}\n",
		"deep in a list": "vg {\nx = [" + strings.Repeat("[1,", 40) + strings.Repeat("]", 41) + "\n}\n",
	} {
		var err error
		// Refused long before the text is parsed in full: a few bytes of
		// memory per byte of input.
		fuzzutil.Bounded(t, 1<<20+128*uint64(len(text)), func() { _, err = parseText(text) })
		var te *TextError
		if !errors.As(err, &te) || !errors.Is(err, ErrCorrupt) {
			t.Fatalf("%s: %v", name, err)
		}
		if !strings.Contains(name, "deep") && (!strings.Contains(err.Error(), "more than 1048576") || te.Offset == 0) {
			t.Fatalf("%s: %v", name, err)
		}
	}
	// Just within the budget is accepted.
	root, err := parseText("vg {\n" + strings.Repeat("a{}", maxNodes-1) + "}\n")
	if err != nil || countNodes(root) != maxNodes {
		t.Fatalf("%d nodes: %v", countNodes(root), err)
	}
}

// TestMetadataBombOnPV: the refusal names the metadata area and where in
// the PV the text broke the budget.
func TestMetadataBombOnPV(t *testing.T) {
	text := "vg {\n" + strings.Repeat("a{}", maxNodes+1) + "\n}\n"
	img := makePV(text, 8<<20, 4096, 4<<20, uint64(len(text)+1))
	_, err := ReadPV(bytes.NewReader(img), int64(len(img)))
	var te *TextError
	if !errors.As(err, &te) || !strings.Contains(err.Error(), fmt.Sprintf("byte %d of the PV", 4096+4<<20-(len(text)+1)+te.Offset)) ||
		!strings.Contains(err.Error(), "metadata area at byte 4096") {
		t.Fatalf("%v", err)
	}
}

package lvm

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/xva-tools/xva/internal/fuzzutil"
)

// format writes a section tree back as metadata text.
func format(b *strings.Builder, s *Section) {
	keys := make([]string, 0, len(s.Keys))
	for k := range s.Keys {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		b.WriteString(k + " = ")
		formatValue(b, s.Keys[k])
		b.WriteString("\n")
	}
	for _, c := range s.Sections {
		b.WriteString(c.Name + " {\n")
		format(b, c)
		b.WriteString("}\n")
	}
}

func formatValue(b *strings.Builder, v Value) {
	switch v := v.(type) {
	case int64:
		fmt.Fprint(b, v)
	case string:
		b.WriteString(`"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(v) + `"`)
	case []Value:
		b.WriteString("[")
		for i, x := range v {
			if i > 0 {
				b.WriteString(", ")
			}
			formatValue(b, x)
		}
		b.WriteString("]")
	}
}

// FuzzParseMetadata checks the text parser and the VG model: allocation
// stays proportional to the text, an accepted tree holds at most maxNodes
// sections, keys and list items, the tree survives being written out and
// read again, and every LV that maps maps onto whole extents inside its
// PV's data area.
func FuzzParseMetadata(f *testing.F) {
	if b, err := os.ReadFile("testdata/vg-two-segments.txt"); err == nil {
		f.Add(string(b))
	}
	f.Add("vg {\nid = \"x\"\nseqno = 1\nextent_size = 8\nphysical_volumes {\npv0 {\nid = \"a\"\ndev_size = 100\npe_start = 8\npe_count = 10\n}\n}\n" +
		"logical_volumes {\nlv {\nsegment1 {\nstart_extent = 0\nextent_count = 2\ntype = \"striped\"\nstripe_count = 1\nstripes = [\"pv0\", 3]\n}\n}\n}\n}\n")
	f.Fuzz(func(t *testing.T, text string) {
		var root *Section
		var err error
		fuzzutil.Bounded(t, 1<<20+64*uint64(len(text)), func() { root, err = parseText(text) })
		if err != nil {
			return
		}
		if n := countNodes(root); n > maxNodes {
			t.Fatalf("accepted %d nodes, more than the %d allowed", n, maxNodes)
		}
		var b strings.Builder
		format(&b, root)
		again, err := parseText(b.String())
		if err != nil || !reflect.DeepEqual(root, again) {
			t.Fatalf("section tree changed when written out (%v):\n%s", err, b.String())
		}
		vg, err := ParseMetadata(text)
		if err != nil {
			return
		}
		for _, lv := range vg.LVs {
			checkMap(t, vg, lv)
		}
	})
}

// checkMap requires the pieces of a mapped LV to be contiguous and to lie
// inside their PVs.
func checkMap(t *testing.T, vg *VG, lv *LV) {
	pieces, err := vg.Map(lv)
	if err != nil {
		return
	}
	var next int64
	for _, p := range pieces {
		pv := vg.PV(p.PV)
		end := pv.PEStart + pv.PECount*vg.ExtentSize
		if p.LVOff != next || p.Len <= 0 || pv.PEStart < 0 || p.PVOff < pv.PEStart || p.PVOff+p.Len > end || p.PVOff+p.Len < p.PVOff {
			t.Fatalf("LV %s: piece %+v after %d; %s holds [%d, %d)", lv.Name, p, next, p.PV, pv.PEStart, end)
		}
		next += p.Len
	}
	if next != vg.Size(lv) {
		t.Fatalf("LV %s: pieces cover %d bytes of %d", lv.Name, next, vg.Size(lv))
	}
}

// fixPV gives the label, the metadata area headers and the metadata text
// of a PV image valid checksums, so that the fuzzer can explore the fields
// behind them.
func fixPV(img []byte) {
	le := binary.LittleEndian
	for s := 0; s < labelScan && (s+1)*sectorSize <= len(img); s++ {
		label := img[s*sectorSize : (s+1)*sectorSize]
		if string(label[:8]) != labelID {
			continue
		}
		le.PutUint32(label[16:], crc(label[20:]))
		pv, err := parsePVHeader(label, s)
		if err != nil {
			return
		}
		for _, a := range pv.MetadataAreas {
			if a.Offset > uint64(len(img)) || a.Size < mdaHeaderSize || a.Size > uint64(len(img))-a.Offset {
				continue
			}
			area := img[a.Offset : a.Offset+a.Size]
			m := area[:mdaHeaderSize]
			off, size := le.Uint64(m[40:]), le.Uint64(m[48:])
			if off >= mdaHeaderSize && off < a.Size && size <= a.Size-mdaHeaderSize {
				first := min(size, a.Size-off)
				text := append(bytes.Clone(area[off:off+first]), area[mdaHeaderSize:mdaHeaderSize+size-first]...)
				le.PutUint32(m[56:], crc(text))
			}
			le.PutUint32(m, crc(m[4:]))
		}
		return
	}
}

// FuzzReadPV checks the label and metadata area reader: whatever it
// accepts has a parsed VG, and LVs map inside their PVs.
func FuzzReadPV(f *testing.F) {
	if b, err := os.ReadFile("testdata/vg-two-segments.txt"); err == nil {
		f.Add(makePV(string(b), 8<<10, 2048, 4096, 300), false)
	}
	f.Add(makePV("vg {\nseqno = 1\nextent_size = 8\n}\n", 4<<10, 1024, 2048, 10), false)
	f.Fuzz(func(t *testing.T, img []byte, fix bool) {
		if fix {
			fixPV(img)
		}
		var pv *PV
		var err error
		// Metadata areas must lie in the device, so the text read is no
		// larger than the input.
		fuzzutil.Bounded(t, 1<<20+64*uint64(len(img)), func() { pv, err = ReadPV(bytes.NewReader(img), int64(len(img))) })
		if err != nil {
			return
		}
		if pv.VG == nil || pv.Metadata == "" {
			t.Fatalf("accepted PV without metadata: %+v", pv)
		}
		for _, lv := range pv.VG.LVs {
			checkMap(t, pv.VG, lv)
		}
	})
}

package xva_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/xva-tools/xva"
	"github.com/xva-tools/xva/chunk"
	"github.com/xva-tools/xva/fixtures"
	"github.com/xva-tools/xva/internal/tarx"
	"github.com/xva-tools/xva/internal/testutil"
	"github.com/xva-tools/xva/ova"
	"github.com/xva-tools/xva/verify"
)

// xapiVM is a VM with a partial last block, an exact one, and a tiny one.
// (xapi disks are whole sectors; odd sizes are padded, see
// TestOddSizeIsPaddedForXapi.)
var xapiVM = fixtures.VM{Name: "xapi vm", Memory: 1 << 30, VCPUs: 2, Disks: []fixtures.Disk{
	{Size: 6<<20 + 12288, Seed: 101, Data: 0.5, MaxRegion: 1 << 20},
	{Size: 3 << 20, Seed: 102, Data: 0.5, MaxRegion: 1 << 20},
	{Size: 1024, Seed: 103},
}}

func writeXapiDir(t *testing.T, vm fixtures.VM, ids []string) (string, map[string]string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "vm")
	sums, err := vm.WriteXapiDir(dir, ids)
	if err != nil {
		t.Fatal(err)
	}
	return dir, sums
}

func TestXapiRoundTripAllCompressions(t *testing.T) {
	// Ref:9 and Ref:10: lexicographic order is not numeric order.
	vmdir, sums := writeXapiDir(t, xapiVM, []string{"Ref:9", "Ref:10", "Ref:11"})
	for _, comp := range []string{"none", "gzip", "zstd"} {
		t.Run(comp, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "a.xva")
			if _, err := xva.PackDir(ctx, vmdir, out, xva.WithCompression(comp)); err != nil {
				t.Fatal(err)
			}
			info, err := xva.Info(ctx, out)
			if err != nil {
				t.Fatal(err)
			}
			if info.Generation != xva.XAPI || info.ExportVsn != 2 || info.Checksum != "xxhash" || info.Compression != comp {
				t.Fatalf("info %+v", info)
			}
			order := []string{info.Disks[0].ID, info.Disks[1].ID, info.Disks[2].ID}
			if strings.Join(order, " ") != "Ref:10 Ref:11 Ref:9" {
				t.Fatalf("disk order %v, want lexicographic", order)
			}
			un := filepath.Join(t.TempDir(), "un")
			if _, err := xva.Unpack(ctx, out, un); err != nil {
				t.Fatal(err)
			}
			checkUnpacked(t, un, sums)
			// The same from standard input.
			withStdin(t, out)
			fromStdin := filepath.Join(t.TempDir(), "stdin")
			if _, err := xva.Unpack(ctx, "-", fromStdin); err != nil {
				t.Fatal(err)
			}
			checkUnpacked(t, fromStdin, sums)
			// unpack then pack gives the same archive.
			again := filepath.Join(t.TempDir(), "b.xva")
			if _, err := xva.PackDir(ctx, un, again, xva.WithCompression(comp)); err != nil {
				t.Fatal(err)
			}
			a, _ := os.ReadFile(out)
			b, _ := os.ReadFile(again)
			if !bytes.Equal(a, b) {
				t.Fatal("pack of the unpacked VM differs from the original")
			}
		})
	}
}

func TestKeepAliveAndSHA1Archive(t *testing.T) {
	vm := fixtures.VM{Name: "ka", Memory: 1 << 28, Disks: []fixtures.Disk{
		{Size: 9<<20 + 512, Seed: 111, Data: 0.6, MaxRegion: 1 << 20},
		{Size: 0, Seed: 112},
		{Size: 2 << 20, Seed: 113, Data: 0.9},
	}}
	path := filepath.Join(t.TempDir(), "ka.xva")
	sums, err := vm.KeepAliveArchive(path)
	if err != nil {
		t.Fatal(err)
	}
	info, err := xva.Info(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if info.Checksum != "mixed" {
		t.Fatalf("checksum kind %q", info.Checksum)
	}
	un := filepath.Join(t.TempDir(), "un")
	if _, err := xva.Unpack(ctx, path, un); err != nil {
		t.Fatal(err)
	}
	checkUnpacked(t, un, sums)
}

func TestConvertBothWays(t *testing.T) {
	legacyDir, sums := makeVM(t, fixtures.Disk{Size: 5<<20 + 512, Seed: 121, Data: 0.4}, fixtures.Disk{Size: 1 << 20, Seed: 122})
	legacy := filepath.Join(t.TempDir(), "l.xva")
	if _, err := xva.PackDir(ctx, legacyDir, legacy); err != nil {
		t.Fatal(err)
	}
	// legacy → xapi → legacy
	x := filepath.Join(t.TempDir(), "x.xva.zst")
	if _, err := xva.Convert(ctx, legacy, x, xva.WithFormat(xva.XAPI), xva.WithCompression("zstd")); err != nil {
		t.Fatal(err)
	}
	back := filepath.Join(t.TempDir(), "back.xva")
	if _, err := xva.Convert(ctx, x, back, xva.WithFormat(xva.Legacy)); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{x, back} {
		un := filepath.Join(t.TempDir(), "un")
		if _, err := xva.Unpack(ctx, p, un); err != nil {
			t.Fatal(err)
		}
		checkUnpacked(t, un, sums)
		sameVM(t, legacy, p)
	}
	// xapi → legacy → xapi
	xdir, xsums := writeXapiDir(t, xapiVM, []string{"Ref:9", "Ref:10", "Ref:11"})
	x1 := filepath.Join(t.TempDir(), "x1.xva")
	if _, err := xva.PackDir(ctx, xdir, x1); err != nil {
		t.Fatal(err)
	}
	l := filepath.Join(t.TempDir(), "l/")
	if _, err := xva.Convert(ctx, x1, l, xva.WithFormat(xva.Legacy)); err != nil {
		t.Fatal(err)
	}
	x2 := filepath.Join(t.TempDir(), "x2.xva.gz")
	if _, err := xva.Convert(ctx, l, x2, xva.WithFormat(xva.XAPI), xva.WithCompression("gzip")); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{l, x2} {
		un := filepath.Join(t.TempDir(), "un")
		if _, err := xva.Unpack(ctx, p, un); err != nil {
			t.Fatal(err)
		}
		checkUnpacked(t, un, xsums)
		sameVM(t, x1, p)
	}
}

// sameVM checks two archives describe the same VM: name, memory, vcpus,
// boot mode and boot disk.
func sameVM(t *testing.T, a, b string) {
	t.Helper()
	ia, err := xva.Info(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	ib, err := xva.Info(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	boot := func(i *xva.InfoResult) string {
		for _, d := range i.Disks {
			if d.Bootable {
				return d.Device
			}
		}
		return ""
	}
	if ia.VM.Name != ib.VM.Name || ia.VM.Memory != ib.VM.Memory || ia.VM.VCPUs != ib.VM.VCPUs ||
		ia.VM.BootMode != ib.VM.BootMode || boot(ia) != boot(ib) || boot(ia) == "" || len(ia.Disks) != len(ib.Disks) {
		t.Fatalf("VMs differ:\n%+v %v\n%+v %v", ia.VM, ia.Disks, ib.VM, ib.Disks)
	}
}

func TestXapiArchiveAgreesWithRealTools(t *testing.T) {
	testutil.NeedTools(t, "tar", "xxhsum")
	vmdir, _ := writeXapiDir(t, xapiVM, nil)
	out := filepath.Join(t.TempDir(), "a.xva")
	if _, err := xva.PackDir(ctx, vmdir, out); err != nil {
		t.Fatal(err)
	}
	list, err := exec.Command("tar", "-tvf", out).Output()
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(list)), "\n")
	if !strings.HasSuffix(lines[0], " ova.xml") {
		t.Fatalf("first member: %s", lines[0])
	}
	for _, l := range lines {
		if !strings.HasPrefix(l, "-r-------- 0/0") || strings.Contains(l, "/ ") && strings.HasSuffix(l, "/") {
			t.Fatalf("tar -tvf shows %q; want mode 0400, uid/gid 0, no directories", l)
		}
	}
	// Every .xxhash member agrees with xxhsum -H1 of its block.
	x := t.TempDir()
	if out, err := exec.Command("tar", "-xf", out, "-C", x).CombinedOutput(); err != nil {
		t.Fatalf("tar -xf: %v\n%s", err, out)
	}
	n := 0
	for i, l := range lines {
		name := l[strings.LastIndex(l, " ")+1:]
		if !strings.HasSuffix(name, ".xxhash") {
			continue
		}
		block := strings.TrimSuffix(name, ".xxhash")
		prev := lines[i-1][strings.LastIndex(lines[i-1], " ")+1:]
		if prev != block {
			t.Fatalf("%s does not follow its block (after %s)", name, prev)
		}
		want, _ := os.ReadFile(filepath.Join(x, name))
		got, err := exec.Command("xxhsum", "-H1", filepath.Join(x, block)).Output()
		if err != nil {
			t.Fatal(err)
		}
		h := strings.Fields(string(got))[0]
		if strings.ToUpper(h) != string(want) || strings.ToUpper(string(want)) != string(want) {
			t.Fatalf("%s holds %q, xxhsum says %s", name, want, h)
		}
		n++
	}
	if n < 5 {
		t.Fatalf("only %d hashes checked", n)
	}
}

// rewriteMembers rebuilds an uncompressed xapi tar with edit applied to the
// member list.
func rewriteMembers(t *testing.T, path string, edit func([]memberData) []memberData) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var ms []memberData
	tr := tarx.NewReader(f)
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		var b bytes.Buffer
		b.ReadFrom(tr)
		ms = append(ms, memberData{h.Name, b.Bytes()})
	}
	ms = edit(ms)
	out := filepath.Join(t.TempDir(), "edited.xva")
	o, _ := os.Create(out)
	defer o.Close()
	tw := tarx.NewWriter(o)
	for _, m := range ms {
		tw.WriteHeader(m.name, int64(len(m.data)), 0)
		tw.Write(m.data)
	}
	tw.Close()
	return out
}

type memberData struct {
	name string
	data []byte
}

func find(ms []memberData, name string) int {
	for i, m := range ms {
		if m.name == name {
			return i
		}
	}
	return -1
}

func TestXapiFaults(t *testing.T) {
	vm := fixtures.VM{Name: "f", Memory: 1 << 28, Disks: []fixtures.Disk{{Size: 3<<20 + 100, Seed: 131, Data: 0.9, MaxRegion: 1 << 20}}}
	vmdir, _ := writeXapiDir(t, vm, []string{"Ref:7"})
	good := filepath.Join(t.TempDir(), "good.xva")
	if _, err := xva.PackDir(ctx, vmdir, good); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		edit   func([]memberData) []memberData
		member string
	}{
		{"flipped byte in a block", func(ms []memberData) []memberData {
			ms[find(ms, "Ref:7/00000001")].data[5] ^= 1
			return ms
		}, "Ref:7/00000001.xxhash"},
		{"wrong-case hash", func(ms []memberData) []memberData {
			i := find(ms, "Ref:7/00000002.xxhash")
			ms[i].data = bytes.ToLower(ms[i].data)
			return ms
		}, "Ref:7/00000002.xxhash"},
		{"checksum member not after its block", func(ms []memberData) []memberData {
			i := find(ms, "Ref:7/00000001.xxhash")
			ms[i], ms[i+1] = ms[i+1], ms[i]
			return ms
		}, "Ref:7/00000001"},
		{"missing last block", func(ms []memberData) []memberData {
			i := find(ms, "Ref:7/00000003")
			return append(ms[:i], ms[i+2:]...)
		}, "Ref:7/00000003"},
		{"block past the disk's size", func(ms []memberData) []memberData {
			i := find(ms, "Ref:7/00000003")
			ms[i].data = append(ms[i].data, make([]byte, 512)...)
			ms[i+1].data = []byte(chunk.HashText(chunk.XXHash, ms[i].data))
			return ms
		}, "Ref:7/00000003"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			expectCorrupt(t, rewriteMembers(t, good, c.edit), c.member)
		})
	}
}

func TestOddSizeIsPaddedForXapi(t *testing.T) {
	vmdir, _ := makeVM(t, fixtures.Disk{Size: 1000, Seed: 141, Data: 0.9, MaxRegion: 100})
	legacy := filepath.Join(t.TempDir(), "l.xva")
	if _, err := xva.PackDir(ctx, vmdir, legacy); err != nil {
		t.Fatal(err)
	}
	x := filepath.Join(t.TempDir(), "x.xva")
	if _, err := xva.Convert(ctx, legacy, x, xva.WithFormat(xva.XAPI)); err != nil {
		t.Fatal(err)
	}
	un := filepath.Join(t.TempDir(), "un")
	if _, err := xva.Unpack(ctx, x, un); err != nil {
		t.Fatal(err)
	}
	orig, _ := os.ReadFile(filepath.Join(vmdir, "sda.raw"))
	got, _ := os.ReadFile(filepath.Join(un, "sda.raw"))
	if len(got) != 1024 || !bytes.Equal(got[:1000], orig) || !bytes.Equal(got[1000:], make([]byte, 24)) {
		t.Fatalf("a 1000-byte disk through xapi is %d bytes", len(got))
	}
}

// xapi reads block names as integers that increase as text
// (stream_vdi.ml, recv_all_vdi): cloud-image-builder-xva writes 20 digits,
// and a single digit is as good on a disk of under ten blocks. Every
// command reads them.
func TestBlockNamesOfAnyWidth(t *testing.T) {
	vm := fixtures.VM{Name: "w", Memory: 1 << 28, Disks: []fixtures.Disk{{Size: 5<<20 + 4096, Seed: 151, Data: 0.7, MaxRegion: 1 << 20}}}
	vmdir, sums := writeXapiDir(t, vm, []string{"Ref:7"})
	good := filepath.Join(t.TempDir(), "good.xva")
	if _, err := xva.PackDir(ctx, vmdir, good); err != nil {
		t.Fatal(err)
	}
	for _, width := range []string{"%020d", "%d"} {
		t.Run(width, func(t *testing.T) {
			in := rewriteMembers(t, good, func(ms []memberData) []memberData {
				for i := range ms {
					prefix, rest, ok := strings.Cut(ms[i].name, "/")
					if !ok {
						continue
					}
					digits, ext, _ := strings.Cut(rest, ".")
					n, err := strconv.Atoi(digits)
					if err != nil {
						t.Fatal(err)
					}
					ms[i].name = prefix + "/" + fmt.Sprintf(width, n)
					if ext != "" {
						ms[i].name += "." + ext
					}
				}
				return ms
			})
			if r := verify.Archive(ctx, in, verify.Options{}); !r.OK {
				t.Fatalf("verify: %+v %s", r.Problems, r.Error)
			}
			if _, err := xva.Info(ctx, in); err != nil {
				t.Fatal(err)
			}
			un := filepath.Join(t.TempDir(), "un")
			if _, err := xva.Unpack(ctx, in, un); err != nil {
				t.Fatal(err)
			}
			checkUnpacked(t, un, sums)
			conv := filepath.Join(t.TempDir(), "c.xva")
			if _, err := xva.Convert(ctx, in, conv); err != nil {
				t.Fatal(err)
			}
			a, _ := os.ReadFile(good)
			b, _ := os.ReadFile(conv)
			if !bytes.Equal(a, b) {
				t.Fatal("converting renamed blocks does not give back our own names")
			}
		})
	}
}

// sectorMembers fails unless every data member of the xapi tar at path is
// whole 512-byte sectors (xapi reads the next tar header before it skips a
// block's padding) and returns the members' names.
func sectorMembers(t *testing.T, path string) []string {
	t.Helper()
	var names []string
	for name, at := range memberOffsets(t, path) {
		if name != "ova.xml" && !chunk.IsChecksumName(name) && at[1]%512 != 0 {
			t.Fatalf("%s is %d bytes, not whole sectors", name, at[1])
		}
		names = append(names, name)
	}
	return names
}

// A VM directory or an archive whose ova.xml says a size that is not whole
// sectors is padded by pack and convert, never written as it says.
func TestNonSectorSizesArePaddedEverywhere(t *testing.T) {
	vm := fixtures.VM{Name: "odd", Memory: 1 << 28, Disks: []fixtures.Disk{{Size: 1000, Seed: 161, Data: 0.9, MaxRegion: 100}}}
	vmdir, _ := writeXapiDir(t, vm, []string{"Ref:7"})
	doc, err := os.ReadFile(filepath.Join(vmdir, "ova.xml"))
	if err != nil {
		t.Fatal(err)
	}
	e, err := ova.ParseExport(doc)
	if err != nil {
		t.Fatal(err)
	}
	e.Object("Ref:7").Snapshot.Set("virtual_size", ova.NewInt(1000))
	if err := os.WriteFile(filepath.Join(vmdir, "ova.xml"), e.Marshal(), 0o644); err != nil {
		t.Fatal(err)
	}
	orig, _ := os.ReadFile(filepath.Join(vmdir, "sda.raw"))
	padded := append(orig, make([]byte, 24)...)
	check := func(archive string) {
		t.Helper()
		sectorMembers(t, archive)
		un := filepath.Join(t.TempDir(), "un")
		if _, err := xva.Unpack(ctx, archive, un); err != nil {
			t.Fatal(err)
		}
		if got, _ := os.ReadFile(filepath.Join(un, "sda.raw")); !bytes.Equal(got, padded) {
			t.Fatalf("%s: the disk is %d bytes, want the 1000 padded to 1024", archive, len(got))
		}
	}
	packed := filepath.Join(t.TempDir(), "p.xva")
	if _, err := xva.PackDir(ctx, vmdir, packed); err != nil {
		t.Fatal(err)
	}
	check(packed)

	// A foreign archive that carries the 1000-byte block as it is: convert
	// pads it.
	foreign := rewriteMembers(t, packed, func(ms []memberData) []memberData {
		ms[0].data = e.Marshal()
		i := find(ms, "Ref:7/00000000")
		ms[i].data = ms[i].data[:1000]
		ms[i+1].data = []byte(chunk.HashText(chunk.XXHash, ms[i].data))
		return ms
	})
	converted := filepath.Join(t.TempDir(), "c.xva")
	if _, err := xva.Convert(ctx, foreign, converted); err != nil {
		t.Fatal(err)
	}
	check(converted)
}

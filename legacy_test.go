package xva_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xva-tools/xva"
	"github.com/xva-tools/xva/chunk"
	"github.com/xva-tools/xva/fixtures"
	"github.com/xva-tools/xva/internal/fsutil"
	"github.com/xva-tools/xva/internal/testutil"
)

var ctx = context.Background()

// makeVM writes a VM directory of the given disks and returns it with the
// disks' hashes.
func makeVM(t testing.TB, disks ...fixtures.Disk) (string, map[string]string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "vm")
	sums, err := fixtures.VM{Name: "test vm", Memory: 256 << 20, VCPUs: 2, Disks: disks}.WriteDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return dir, sums
}

// checkUnpacked compares every disk in an unpacked directory with sums.
func checkUnpacked(t testing.TB, dir string, sums map[string]string) {
	t.Helper()
	for dev, want := range sums {
		got, err := fixtures.HashFile(filepath.Join(dir, dev+".raw"))
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Fatalf("%s differs after the round trip", dev)
		}
	}
}

func roundTrip(t testing.TB, vmdir string, sums map[string]string, output string, opts ...xva.Option) string {
	t.Helper()
	if _, err := xva.PackDir(ctx, vmdir, output, opts...); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "unpacked")
	if _, err := xva.Unpack(ctx, output, out); err != nil {
		t.Fatal(err)
	}
	checkUnpacked(t, out, sums)
	return out
}

func TestRoundTripSizes(t *testing.T) {
	sizes := []int64{0, 1, 511, 512, 4097, 1<<20 + 1, chunk.ChunkSize - 1, chunk.ChunkSize, chunk.ChunkSize + 1}
	for _, size := range sizes {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			if size >= chunk.ChunkSize-1 && testing.Short() {
				t.Skip("-short: disks around the 1e9-byte chunk size take seconds each; make test runs them")
			}
			// Big disks are mostly holes so the test stays quick.
			d := fixtures.Disk{Size: size, Seed: uint64(size), Data: 0.003, MaxRegion: 4 << 20}
			if size < 1<<20 {
				d.Data = 0.5
				d.MaxRegion = 300
			}
			vmdir, sums := makeVM(t, d)
			for _, form := range []string{"file.xva", "dir/"} {
				roundTrip(t, vmdir, sums, filepath.Join(t.TempDir(), form))
			}
		})
	}
}

func TestRoundTripSeveralDisksAndRepack(t *testing.T) {
	vmdir, sums := makeVM(t,
		fixtures.Disk{Size: 5<<20 + 3, Seed: 1},
		fixtures.Disk{Size: 0, Seed: 2},
		fixtures.Disk{Size: 3 << 20, Seed: 3, Data: 0.9},
	)
	first := filepath.Join(t.TempDir(), "a.xva")
	out := roundTrip(t, vmdir, sums, first)
	// unpack then pack gives the same archive, byte for byte.
	second := filepath.Join(t.TempDir(), "b.xva")
	if _, err := xva.PackDir(ctx, out, second); err != nil {
		t.Fatal(err)
	}
	a, _ := os.ReadFile(first)
	b, _ := os.ReadFile(second)
	if !bytes.Equal(a, b) {
		t.Fatal("pack of the unpacked VM differs from the original archive")
	}
	ovaA, _ := os.ReadFile(filepath.Join(vmdir, "ova.xml"))
	ovaB, _ := os.ReadFile(filepath.Join(out, "ova.xml"))
	if !bytes.Equal(ovaA, ovaB) {
		t.Fatal("unpacked ova.xml differs from the packed one")
	}
}

func TestOutputIsReproducible(t *testing.T) {
	vmdir, _ := makeVM(t, fixtures.Disk{Size: 9<<20 + 17, Seed: 5, Data: 0.6, MaxRegion: 1 << 20})
	var archives [][]byte
	for _, jobs := range []int{1, 3} {
		out := filepath.Join(t.TempDir(), "x.xva")
		if _, err := xva.PackDir(ctx, vmdir, out, xva.WithJobs(jobs)); err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(out)
		archives = append(archives, b)
	}
	if !bytes.Equal(archives[0], archives[1]) {
		t.Fatal("--jobs changed the archive bytes")
	}
}

func TestPackFromSpec(t *testing.T) {
	dir := t.TempDir()
	root := fixtures.Disk{Size: 2<<20 + 100, Seed: 11}
	data := fixtures.Disk{Size: 1 << 20, Seed: 12}
	sumA, _ := root.Write(filepath.Join(dir, "root.img"))
	sumB, _ := data.Write(filepath.Join(dir, "data.img"))
	out := filepath.Join(dir, "web.xva")
	spec := &xva.VMSpec{Name: "web", Memory: 512 << 20, VCPUs: 2, HVM: true,
		Disks: []xva.DiskSpec{{Device: "sda", Path: filepath.Join(dir, "root.img")}, {Device: "sdb", Path: filepath.Join(dir, "data.img")}}}
	if _, err := xva.Pack(ctx, spec, out); err != nil {
		t.Fatal(err)
	}
	info, err := xva.Info(ctx, out)
	if err != nil {
		t.Fatal(err)
	}
	if info.VM.Name != "web" || info.VM.Memory != 512<<20 || info.VM.VCPUs != 2 || info.VM.BootMode != "HVM" ||
		len(info.Disks) != 2 || !info.Disks[0].Bootable || info.Disks[1].Size != 1<<20 || info.Disks[0].Members != 1 {
		t.Fatalf("info: %+v", info)
	}
	un := filepath.Join(dir, "un")
	if _, err := xva.Unpack(ctx, out, un); err != nil {
		t.Fatal(err)
	}
	checkUnpacked(t, un, map[string]string{"sda": sumA, "sdb": sumB})
	// An existing output is not replaced unless asked.
	if _, err := xva.Pack(ctx, spec, out); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Fatalf("packing over an existing file: %v", err)
	}
	if _, err := xva.Pack(ctx, spec, out, xva.WithOverwrite(true)); err != nil {
		t.Fatal(err)
	}
}

func TestUnpackRefusesExistingTarget(t *testing.T) {
	vmdir, _ := makeVM(t, fixtures.Disk{Size: 1000, Seed: 1})
	out := filepath.Join(t.TempDir(), "a.xva")
	if _, err := xva.PackDir(ctx, vmdir, out); err != nil {
		t.Fatal(err)
	}
	target := t.TempDir()
	os.WriteFile(filepath.Join(target, "keep"), []byte("x"), 0o644)
	if _, err := xva.Unpack(ctx, out, target); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("unpack into a non-empty directory: %v", err)
	}
	// An empty directory is fine.
	empty := t.TempDir()
	if _, err := xva.Unpack(ctx, out, empty); err != nil {
		t.Fatal(err)
	}
}

// listTar runs tar -tf.
func listTar(t *testing.T, path string) []string {
	t.Helper()
	out, err := exec.Command("tar", "-tf", path).Output()
	if err != nil {
		t.Fatalf("tar -tf %s: %v", path, err)
	}
	return strings.Fields(string(out))
}

func TestRealToolsAgree(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: gunzips a disk of more than 1e9 bytes (tens of seconds); make test runs it")
	}
	testutil.NeedTools(t, "tar", "gzip")
	size := int64(chunk.ChunkSize + 5<<20)
	vmdir, sums := makeVM(t, fixtures.Disk{Size: size, Seed: 21, Data: 0.01, MaxRegion: 8 << 20}, fixtures.Disk{Size: 3333, Seed: 22})
	out := filepath.Join(t.TempDir(), "a.xva")
	if _, err := xva.PackDir(ctx, vmdir, out); err != nil {
		t.Fatal(err)
	}
	names := listTar(t, out)
	want := []string{"ova.xml", "sda/chunk-000000000.gz", "sda/chunk-000000001.gz", "sdb/chunk-000000000.gz"}
	if strings.Join(names, " ") != strings.Join(want, " ") {
		t.Fatalf("tar -tf lists %v, want %v", names, want)
	}
	x := filepath.Join(t.TempDir(), "x")
	os.Mkdir(x, 0o755)
	if out, err := exec.Command("tar", "-xf", out, "-C", x).CombinedOutput(); err != nil {
		t.Fatalf("tar -xf: %v\n%s", err, out)
	}
	for _, n := range names[1:] {
		if out, err := exec.Command("gzip", "-t", filepath.Join(x, n)).CombinedOutput(); err != nil {
			t.Fatalf("gzip -t %s: %v\n%s", n, err, out)
		}
	}
	// gunzip -c of the chunks, concatenated, is the disk.
	cat := exec.Command("sh", "-c", "gunzip -c sda/chunk-000000000.gz sda/chunk-000000001.gz | sha256sum")
	cat.Dir = x
	got, err := cat.Output()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(got), sums["sda"]) {
		t.Fatalf("gunzip -c of the chunks gives %s, want %s", got[:64], sums["sda"])
	}
	// The extracted tree is the directory form; it unpacks the same.
	un := filepath.Join(t.TempDir(), "un")
	if _, err := xva.Unpack(ctx, x, un); err != nil {
		t.Fatal(err)
	}
	checkUnpacked(t, un, sums)
}

// TestHandAssembledArchive builds a legacy archive the way third parties did:
// split -b 1000000000 -a 9 -d, gzip, a handwritten ova.xml, tar.
func TestHandAssembledArchive(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: splits and gzips a disk of more than 1e9 bytes (tens of seconds); make test runs it")
	}
	testutil.NeedTools(t, "tar", "gzip", "split")
	dir := t.TempDir()
	d := fixtures.Disk{Size: chunk.ChunkSize + 12345, Seed: 31, Data: 0.002, MaxRegion: 2 << 20}
	sum, err := d.Write(filepath.Join(dir, "disk.img"))
	if err != nil {
		t.Fatal(err)
	}
	os.Mkdir(filepath.Join(dir, "xvda"), 0o755)
	script := `split -b 1000000000 -a 9 -d disk.img xvda/chunk && gzip -1 xvda/chunk* && rm disk.img`
	if out, err := exec.Command("sh", "-c", "cd "+dir+" && "+script).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", script, err, out)
	}
	doc := fmt.Sprintf(`<?xml version="1.0" ?>
<appliance version="0.1">
  <vm name="vm">
    <label>hand made</label>
    <shortdesc>split and gzip</shortdesc>
    <config mem_set="268435456" vcpus="1"/>
    <hacks is_hvm="false" kernel_boot_cmdline="root=/dev/xvda1 ro"/>
    <vbd device="xvda" function="root" mode="w" vdi="vdi_xvda"/>
  </vm>
  <vdi name="vdi_xvda" size="%d" source="file://xvda" type="dir-gzipped-chunks" variety="system"/>
</appliance>`, d.Size)
	os.WriteFile(filepath.Join(dir, "ova.xml"), []byte(doc), 0o644)
	archive := filepath.Join(t.TempDir(), "hand.xva")
	// tar adds a directory entry for xvda/, which readers must skip.
	if out, err := exec.Command("tar", "-cf", archive, "-C", dir, "ova.xml", "xvda").CombinedOutput(); err != nil {
		t.Fatalf("tar: %v\n%s", err, out)
	}
	for _, in := range []string{archive, dir} {
		un := filepath.Join(t.TempDir(), "un")
		if _, err := xva.Unpack(ctx, in, un); err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		checkUnpacked(t, un, map[string]string{"xvda": sum})
	}
}

func TestUnpackedDisksAreSparse(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: packs and unpacks a 4 GiB disk (about 30 s); make test runs it")
	}
	size := int64(4 << 30)
	vmdir, sums := makeVM(t, fixtures.Disk{Size: size, Seed: 41, Data: 0.025, MaxRegion: 16 << 20})
	st := allocated(t, filepath.Join(vmdir, "sda.raw"))
	out := roundTrip(t, vmdir, sums, filepath.Join(t.TempDir(), "a.xva"))
	got := allocated(t, filepath.Join(out, "sda.raw"))
	t.Logf("source occupies %d MiB, unpacked %d MiB", st>>20, got>>20)
	if got > st+st/10 || got > 300<<20 {
		t.Fatalf("unpacked 4 GiB disk occupies %d bytes; its source %d", got, st)
	}
}

func allocated(t testing.TB, path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fsutil.DiskUsage(st)
}

package xva_test

import (
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/xva-tools/xva"
	"github.com/xva-tools/xva/fixtures"
	"github.com/xva-tools/xva/internal/testutil"
)

// A qcow2 written onto a device full of stale bytes is what qemu-img
// reads as the disk, and packs back to the same disk.
func TestQcow2OntoABlockDevice(t *testing.T) {
	testutil.NeedTools(t, "qemu-img")
	d := fixtures.Disk{Size: 20<<20 + 1024, Seed: 403, Data: 0.3, MaxRegion: 2 << 20}
	vmdir, sums := makeVM(t, d)
	archive := filepath.Join(t.TempDir(), "a.xva")
	if _, err := xva.PackDir(ctx, vmdir, archive); err != nil {
		t.Fatal(err)
	}
	dev, file := loopDevice(t, 32<<20)
	out := filepath.Join(t.TempDir(), "out")
	if _, err := xva.Unpack(ctx, archive, out, xva.WithDiskTarget("sda", dev), xva.WithDiskFormat("qcow2")); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"check", "-f", "qcow2", file},
		{"compare", "-f", "raw", "-F", "qcow2", filepath.Join(vmdir, "sda.raw"), file},
	} {
		if b, err := exec.Command("qemu-img", args...).CombinedOutput(); err != nil {
			t.Fatalf("qemu-img %v: %v\n%s", args, err, b)
		}
	}
	again := filepath.Join(t.TempDir(), "b.xva")
	if _, err := xva.Pack(ctx, &xva.VMSpec{Name: "x", Memory: 1 << 28, VCPUs: 1,
		Disks: []xva.DiskSpec{{Device: "sda", Path: dev}}}, again); err != nil {
		t.Fatal(err)
	}
	un := filepath.Join(t.TempDir(), "un")
	if _, err := xva.Unpack(ctx, again, un); err != nil {
		t.Fatal(err)
	}
	if got := readPrefix(t, filepath.Join(un, "sda.raw"), d.Size); hashOf(got) != sums["sda"] {
		t.Fatal("packing the device's qcow2 gave other bytes")
	}
}

package xva_test

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/xva-tools/xva"
	"github.com/xva-tools/xva/fixtures"
)

func TestUnpackToVHDAndBack(t *testing.T) {
	vm := fixtures.VM{Name: "v", Memory: 1 << 28, Disks: []fixtures.Disk{
		{Size: 9<<20 + 4096, Seed: 301, Data: 0.5, MaxRegion: 1 << 20},
		{Size: 3 << 20, Seed: 302, Data: 0.9},
	}}
	for _, gen := range []string{"legacy", "xapi"} {
		for _, format := range []string{"vhd", "vhd-fixed"} {
			t.Run(gen+"-"+format, func(t *testing.T) {
				vmdir := filepath.Join(t.TempDir(), "vm")
				var sums map[string]string
				var err error
				if gen == "legacy" {
					sums, err = vm.WriteDir(vmdir)
				} else {
					sums, err = vm.WriteXapiDir(vmdir, nil)
				}
				if err != nil {
					t.Fatal(err)
				}
				archive := filepath.Join(t.TempDir(), "a.xva")
				if _, err := xva.PackDir(ctx, vmdir, archive); err != nil {
					t.Fatal(err)
				}
				out := filepath.Join(t.TempDir(), "out")
				res, err := xva.Unpack(ctx, archive, out, xva.WithDiskFormat(format))
				if err != nil {
					t.Fatal(err)
				}
				for _, d := range res.Disks {
					if filepath.Ext(d.Path) != ".vhd" {
						t.Fatalf("%s is not a .vhd", d.Path)
					}
					if _, err := exec.LookPath("qemu-img"); err == nil {
						raw := filepath.Join(t.TempDir(), d.Device+".raw")
						if b, err := exec.Command("qemu-img", "convert", "-f", "vpc", "-O", "raw", d.Path, raw).CombinedOutput(); err != nil {
							t.Fatalf("qemu-img convert: %v\n%s", err, b)
						}
						if h, _ := fixtures.HashFile(raw); h != sums[d.Device] {
							t.Fatalf("qemu-img reads %s as other bytes", d.Path)
						}
					}
				}
				// A VM directory of VHDs packs back to the same archive.
				again := filepath.Join(t.TempDir(), "b.xva")
				if _, err := xva.PackDir(ctx, out, again); err != nil {
					t.Fatal(err)
				}
				a, _ := os.ReadFile(archive)
				b, _ := os.ReadFile(again)
				if !bytes.Equal(a, b) {
					t.Fatal("packing the VHDs gave another archive")
				}
			})
		}
	}
}

func TestCorruptVHDSource(t *testing.T) {
	dir := t.TempDir()
	vmdir, _ := makeVM(t, fixtures.Disk{Size: 4 << 20, Seed: 311, Data: 0.9})
	archive := filepath.Join(dir, "a.xva")
	if _, err := xva.PackDir(ctx, vmdir, archive); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	if _, err := xva.Unpack(ctx, archive, out, xva.WithDiskFormat("vhd")); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(out, "sda.vhd")
	b, _ := os.ReadFile(p)
	b[len(b)-512+50] ^= 1 // the footer's size field: its checksum no longer matches
	os.WriteFile(p, b, 0o644)
	_, err := xva.Pack(ctx, &xva.VMSpec{Name: "x", Memory: 1, VCPUs: 1, Disks: []xva.DiskSpec{{Device: "sda", Path: p}}}, filepath.Join(dir, "b.xva"))
	var ce *xva.CorruptError
	if !errors.As(err, &ce) || ce.Member != p {
		t.Fatalf("packing a corrupt VHD: %v", err)
	}
	if _, err := xva.InspectImage(ctx, p); !xva.IsCorrupt(err) {
		t.Fatalf("inspecting a corrupt VHD: %v", err)
	}
}

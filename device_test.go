package xva_test

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xva-tools/xva"
	"github.com/xva-tools/xva/fixtures"
	"github.com/xva-tools/xva/internal/testutil"
	"github.com/xva-tools/xva/lvm"
	"github.com/xva-tools/xva/raw"
)

// loopDevice backs a loop device with a file of size bytes of stale data
// (0xEE), as a reused disk holds. It needs root.
func loopDevice(t *testing.T, size int64) (dev, file string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("loop devices need root")
	}
	file = filepath.Join(t.TempDir(), "backing.img")
	if err := os.WriteFile(file, bytes.Repeat([]byte{0xEE}, int(size)), 0o644); err != nil {
		t.Fatal(err)
	}
	return testutil.Loop(t, file), file
}

func readPrefix(t *testing.T, path string, n int64) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, n)
	if _, err := f.ReadAt(b, 0); err != nil {
		t.Fatal(err)
	}
	return b
}

func hashOf(b []byte) string { return fmt.Sprintf("%x", sha256.Sum256(b)) }

func TestUnpackOntoABlockDevice(t *testing.T) {
	d := fixtures.Disk{Size: 40<<20 + 1000, Seed: 401, Data: 0.3, MaxRegion: 2 << 20}
	vmdir, sums := makeVM(t, d)
	archive := filepath.Join(t.TempDir(), "a.xva")
	if _, err := xva.PackDir(ctx, vmdir, archive); err != nil {
		t.Fatal(err)
	}
	dev, _ := loopDevice(t, 48<<20)
	out := filepath.Join(t.TempDir(), "out")
	res, err := xva.Unpack(ctx, archive, out, xva.WithDiskTarget("sda", dev))
	if err != nil {
		t.Fatal(err)
	}
	if res.Disks[0].Path != dev {
		t.Fatalf("disk went to %s", res.Disks[0].Path)
	}
	// The disk's holes, full of stale 0xEE before, read as zeros now.
	if got := readPrefix(t, dev, d.Size); hashOf(got) != sums["sda"] {
		t.Fatal("the device does not read back as the disk")
	}
	// Capture the device back: the same bytes, then the device's zeros.
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
		t.Fatal("capturing the device gave other bytes")
	}
}

func TestTooSmallDeviceIsRefusedUntouched(t *testing.T) {
	vmdir, _ := makeVM(t, fixtures.Disk{Size: 20 << 20, Seed: 402})
	archive := filepath.Join(t.TempDir(), "a.xva")
	if _, err := xva.PackDir(ctx, vmdir, archive); err != nil {
		t.Fatal(err)
	}
	dev, file := loopDevice(t, 16<<20)
	before, _ := os.ReadFile(file)
	out := filepath.Join(t.TempDir(), "out")
	_, err := xva.Unpack(ctx, archive, out, xva.WithDiskTarget("sda", dev))
	if !errors.Is(err, raw.ErrTooSmall) {
		t.Fatalf("unpack onto a 16 MiB device: %v", err)
	}
	after, _ := os.ReadFile(file)
	if !bytes.Equal(before, after) {
		t.Fatal("the refused unpack changed the device")
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Fatal("the refused unpack left its output directory")
	}
}

// pvWithVG makes a PV on a loop device with a VG, as an LVM SR has one.
func pvWithVG(t *testing.T, size int64) (dev, vg string) {
	t.Helper()
	testutil.NeedTools(t, "pvcreate")
	dev, _ = loopDevice(t, size)
	vg = fmt.Sprintf("VG_XenStorage-%08x", rand.Uint32())
	lvmRun(t, "pvcreate", "-ff", "-y", "--metadatasize", "10M", dev)
	lvmRun(t, "vgcreate", "--metadatasize", "10M", vg, dev)
	t.Cleanup(func() {
		exec.Command("vgremove", "--driverloaded", "n", "-ff", vg).Run()
		exec.Command("pvremove", "--driverloaded", "n", "-ff", "-y", dev).Run()
	})
	return dev, vg
}

func lvmRun(t *testing.T, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, append([]string{"--driverloaded", "n"}, args...)...)
	if name == "lvs" || name == "pvs" {
		cmd = exec.Command(name, args...)
	}
	cmd.Env = append(os.Environ(), "LVM_SUPPRESS_FD_WARNINGS=1")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %v: %v", name, args, err)
	}
	return string(out)
}

func readVolume(t *testing.T, pv, vg, lv string, n int64) []byte {
	t.Helper()
	vol, err := lvm.OpenVolume(pv, vg, lv, false)
	if err != nil {
		t.Fatal(err)
	}
	defer vol.Close()
	b := make([]byte, n)
	if _, err := vol.ReadAt(b, 0); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestLogicalVolumesOffline(t *testing.T) {
	d := fixtures.Disk{Size: 17<<20 + 512, Seed: 403, Data: 0.4, MaxRegion: 1 << 20}
	vmdir, sums := makeVM(t, d)
	archive := filepath.Join(t.TempDir(), "a.xva")
	if _, err := xva.PackDir(ctx, vmdir, archive); err != nil {
		t.Fatal(err)
	}
	pv, vg := pvWithVG(t, 128<<20)
	// A raw LV in two segments, with another volume between them.
	lvmRun(t, "lvcreate", "-n", "LV-raw", "-L", "12M", vg, "--yes")
	lvmRun(t, "lvcreate", "-n", "between", "-L", "4M", vg, "--yes")
	lvmRun(t, "lvextend", "-L", "+8M", vg+"/LV-raw")
	lvmRun(t, "lvcreate", "-n", "VHD-one", "-L", fmt.Sprintf("%db", lvm.VHDLVSize(d.Size)), vg, "--yes")

	target := "lvm:" + pv + ":" + vg + "/LV-raw"
	if _, err := xva.Unpack(ctx, archive, filepath.Join(t.TempDir(), "o1"), xva.WithDiskTarget("sda", target)); err != nil {
		t.Fatal(err)
	}
	if got := readVolume(t, pv, vg, "LV-raw", d.Size); hashOf(got) != sums["sda"] {
		t.Fatal("the LV does not read back as the disk")
	}
	if b := readVolume(t, pv, vg, "between", 4<<20); !bytes.Equal(b, bytes.Repeat([]byte{0xEE}, 4<<20)) {
		t.Fatal("writing LV-raw touched the volume between its segments")
	}

	// A VHD onto a volume, its footer at the volume's end.
	vhdTarget := "lvm:" + pv + ":" + vg + "/VHD-one"
	if _, err := xva.Unpack(ctx, archive, filepath.Join(t.TempDir(), "o2"),
		xva.WithDiskTarget("sda", vhdTarget), xva.WithDiskFormat("vhd")); err != nil {
		t.Fatal(err)
	}
	if _, err := exec.LookPath("qemu-img"); err == nil {
		p, _ := lvm.ReadPVFile(pv)
		pieces, _ := p.VG.Map(p.VG.LV("VHD-one"))
		if len(pieces) != 1 {
			t.Fatalf("VHD-one has %d segments", len(pieces))
		}
		opts := fmt.Sprintf("driver=vpc,file.driver=raw,file.offset=%d,file.size=%d,file.file.driver=host_device,file.file.filename=%s",
			pieces[0].PVOff, pieces[0].Len, pv)
		orig := "driver=raw,file.driver=file,file.filename=" + filepath.Join(vmdir, "sda.raw")
		if out, err := exec.Command("qemu-img", "compare", "--image-opts", opts, orig).CombinedOutput(); err != nil {
			t.Fatalf("qemu-img compare of the VHD in the LV with the disk: %v\n%s", err, out)
		}
	}

	// Capture both volumes: the raw one and the VHD one give the disk back.
	for _, lv := range []string{"LV-raw", "VHD-one"} {
		a := filepath.Join(t.TempDir(), lv+".xva")
		if _, err := xva.Pack(ctx, &xva.VMSpec{Name: lv, Memory: 1 << 28, VCPUs: 1,
			Disks: []xva.DiskSpec{{Device: "sda", Path: "lvm:" + pv + ":" + vg + "/" + lv}}}, a); err != nil {
			t.Fatal(err)
		}
		un := filepath.Join(t.TempDir(), "un")
		if _, err := xva.Unpack(ctx, a, un); err != nil {
			t.Fatal(err)
		}
		if got := readPrefix(t, filepath.Join(un, "sda.raw"), d.Size); hashOf(got) != sums["sda"] {
			t.Fatalf("capturing %s gave other bytes", lv)
		}
	}

	// The PV described from its metadata.
	info, err := xva.InspectPV(pv)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, l := range info.LVs {
		names = append(names, fmt.Sprintf("%s:%d:%v", l.Name, l.Segments, l.VHD))
	}
	if info.VG != vg || strings.Join(names, " ") != "LV-raw:2:false between:1:false VHD-one:1:true" {
		t.Fatalf("PV info %s %v", info.VG, names)
	}
}

func TestCreateLVBySRConventions(t *testing.T) {
	vm := fixtures.VM{Name: "sr", Memory: 1 << 28, Disks: []fixtures.Disk{{Size: 10<<20 + 4096, Seed: 404, Data: 0.5}}}
	vmdir := filepath.Join(t.TempDir(), "vm")
	sums, err := vm.WriteXapiDir(vmdir, nil)
	if err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(t.TempDir(), "a.xva")
	if _, err := xva.PackDir(ctx, vmdir, archive); err != nil {
		t.Fatal(err)
	}
	pv, vg := pvWithVG(t, 96<<20)
	res, err := xva.Unpack(ctx, archive, filepath.Join(t.TempDir(), "out"), xva.WithCreateLV(vg))
	if err != nil {
		t.Fatal(err)
	}
	// The volume is LV-<the VDI's uuid>, sized as SM sizes raw VDIs.
	e, _ := os.ReadFile(filepath.Join(vmdir, "ova.xml"))
	meta, _ := xva.ParseMetadata(e)
	uuid := meta.Export.Object(meta.Disks[0].VDI).Str("uuid")
	name := lvm.LVName(uuid, false)
	if !strings.HasSuffix(res.Disks[0].Path, vg+"/"+name) {
		t.Fatalf("disk went to %s, want the LV %s", res.Disks[0].Path, name)
	}
	lvs := lvmRun(t, "lvs", "--noheadings", "--units", "b", "--nosuffix", "-o", "lv_name,lv_size", vg)
	if !strings.Contains(lvs, name) || !strings.Contains(lvs, fmt.Sprint(lvm.RawLVSize(10<<20+4096))) {
		t.Fatalf("lvs shows %q", lvs)
	}
	if got := readVolume(t, pv, vg, name, 10<<20+4096); hashOf(got) != sums["sda"] {
		t.Fatal("the created volume does not hold the disk")
	}
}

package xva_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/xva-tools/xva"
	"github.com/xva-tools/xva/fixtures"
	"github.com/xva-tools/xva/ova"
	"github.com/xva-tools/xva/ovf"
)

// The VM's description survives XVA → OVA → XVA as far as both formats say
// it: name, description, vCPUs, memory, UEFI, disks in order, and each NIC
// with its MAC and network; what the OVF cannot say is listed, and going
// to a legacy archive lists the NICs and firmware it loses.
func TestOVFKeepsTheVM(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	vmdir := filepath.Join(dir, "vm")
	if err := os.Mkdir(vmdir, 0o755); err != nil {
		t.Fatal(err)
	}
	vm := ova.VM{Label: "db", Description: "the database", Memory: 3 << 30, VCPUs: 4, HVM: true,
		Firmware: ova.FirmwareUEFI, VIFs: []ova.VIF{
			{Device: "0", MAC: "aa:bb:cc:00:00:01", Network: "Pool-wide network"},
			{Device: "1", MAC: "aa:bb:cc:00:00:02", Network: "storage"},
		}}
	a := &ova.Appliance{}
	for i, size := range []int64{3 << 20, 1 << 20} {
		dev := fixtures.Device(i)
		d := fixtures.Disk{Size: size, Seed: uint64(30 + i), Data: 0.5, MaxRegion: 64 << 10}
		if _, err := d.Write(filepath.Join(vmdir, dev+".raw")); err != nil {
			t.Fatal(err)
		}
		function := "user"
		if i == 0 {
			function = "root"
		}
		vm.VBDs = append(vm.VBDs, ova.VBD{Device: dev, Function: function, VDI: "vdi_" + dev})
		a.VDIs = append(a.VDIs, ova.VDI{Name: "vdi_" + dev, Size: size, Source: "file://" + dev, Type: ova.TypeGzippedChunks, Variety: "user"})
	}
	a.VMs = []ova.VM{vm}
	e, err := ova.FromAppliance(a, "seed")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(vmdir, "ova.xml"), e.Marshal(), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := xva.PackDir(ctx, vmdir, filepath.Join(dir, "a.xva")); err != nil {
		t.Fatal(err)
	}
	res, err := xva.ConvertToOVF(ctx, filepath.Join(dir, "a.xva"), filepath.Join(dir, "a.ova"), xva.OVFOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Dropped) == 0 || !strings.Contains(strings.Join(res.Dropped, "\n"), "platform flags") {
		t.Errorf("not carried over: %q, want the platform flags named", res.Dropped)
	}

	// The envelope says it all, as govmomi-independent XML: read it with
	// the package's own parser from the OVA.
	pkg, err := ovf.OpenPackage(filepath.Join(dir, "a.ova"))
	if err != nil {
		t.Fatal(err)
	}
	doc, err := pkg.Descriptor()
	pkg.Close()
	if err != nil {
		t.Fatal(err)
	}
	d, err := ovf.Parse(doc)
	if err != nil {
		t.Fatal(err)
	}
	s := d.System
	if s.Name != "db" || s.Description != "the database" || s.VCPUs != 4 || s.Memory != 3<<30 || s.Firmware != "uefi" {
		t.Errorf("envelope says %+v", s)
	}
	var nics []string
	for _, n := range s.NICs {
		nics = append(nics, n.MAC+"@"+n.Network)
	}
	if want := []string{"aa:bb:cc:00:00:01@Pool-wide network", "aa:bb:cc:00:00:02@storage"}; !slices.Equal(nics, want) {
		t.Errorf("NICs %q, want %q", nics, want)
	}
	if len(s.Disks) != 2 || s.Disks[0].DiskID != "disk1" || d.Disks[0].Capacity != 3<<20 || d.Disks[1].Capacity != 1<<20 {
		t.Errorf("disks %+v of %+v", s.Disks, d.Disks)
	}

	// Back to an XVA: the same VM.
	if _, err := xva.Convert(ctx, filepath.Join(dir, "a.ova"), filepath.Join(dir, "b.xva")); err != nil {
		t.Fatal(err)
	}
	r, err := xva.OpenReader(filepath.Join(dir, "b.xva"))
	if err != nil {
		t.Fatal(err)
	}
	back := r.Metadata().VM
	r.Close()
	if back.Label != "db" || back.Description != "the database" || back.VCPUs != 4 || back.Memory != 3<<30 ||
		back.Firmware != ova.FirmwareUEFI || !back.HVM {
		t.Errorf("back: %+v", back)
	}
	if len(back.VIFs) != 2 || back.VIFs[0].MAC != "aa:bb:cc:00:00:01" || back.VIFs[1].Network != "storage" {
		t.Errorf("back: VIFs %+v", back.VIFs)
	}

	// A legacy archive says what it cannot carry.
	lres, err := xva.Convert(ctx, filepath.Join(dir, "a.ova"), filepath.Join(dir, "c.xva"), xva.WithFormat(xva.Legacy))
	if err != nil {
		t.Fatal(err)
	}
	notes := strings.Join(lres.Notes, "\n")
	if !strings.Contains(notes, "2 network interfaces") || !strings.Contains(notes, "UEFI firmware") {
		t.Errorf("legacy notes %q, want the NICs and firmware named", lres.Notes)
	}
	lres, err = xva.Convert(ctx, filepath.Join(dir, "a.xva"), filepath.Join(dir, "d.xva"), xva.WithFormat(xva.Legacy))
	if err != nil {
		t.Fatal(err)
	}
	if notes := strings.Join(lres.Notes, "\n"); !strings.Contains(notes, "2 network interfaces") {
		t.Errorf("xapi → legacy notes %q, want the NICs named", lres.Notes)
	}
}

package ovf

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// fieldDir is where OVF descriptors from the field are looked for: the
// workplace keeps third-party files out of this repository, in the shared
// samples beside it (or $XVA_OVF_FIELD_DIR).
func fieldDir() string {
	if d := os.Getenv("XVA_OVF_FIELD_DIR"); d != "" {
		return d
	}
	return filepath.Join("..", "..", "shared", "samples", "ovf")
}

// fieldDescriptor reads a field descriptor, or skips saying where it comes
// from and where to put it.
func fieldDescriptor(t *testing.T, name, origin string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(fieldDir(), name))
	if err != nil {
		t.Skipf("%s not found in %s (from %s): put it there, or set XVA_OVF_FIELD_DIR", name, fieldDir(), origin)
	}
	return b
}

// A VirtualBox 4.3 export, OVF 2.0 with VirtualBox's own sasd/epasd
// namespaces (ending in .xsd), a SATA disk as a StorageItem with a
// HostResource without the ovf: scheme, memory in MegaBytes, a USB
// controller and a sound card. The values are the file's: its Disk's
// ovf:capacity, the memory Item (512 MegaBytes), the CPU Item, the
// OperatingSystemSection's ovf:id, the EthernetPortItem on NAT.
func TestFieldVirtualBox20(t *testing.T) {
	b := fieldDescriptor(t, "cot-ubuntu.2.0.ovf", "glennmatthews/cot COT/tests/ubuntu.2.0.ovf at 31c3387f")
	d, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	s := d.System
	if d.Version != "2.0" || s.Name != "ubuntu" || s.VCPUs != 1 || s.Memory != 512<<20 || s.OSType != 94 || s.Firmware != "" {
		t.Errorf("version %q, system %+v", d.Version, s)
	}
	if len(d.Disks) != 1 || d.Disks[0].Capacity != 8589934592 || d.Disks[0].Format != FormatVMDKStream ||
		len(d.Files) != 1 || d.Files[0].Href != "ubuntu.2.0-disk1.vmdk" || d.Files[0].Size != -1 {
		t.Errorf("disks %+v, files %+v", d.Disks, d.Files)
	}
	if len(s.Disks) != 1 || s.Disks[0].DiskID != "vmdisk1" || s.Disks[0].Controller != "sata" {
		t.Errorf("disk refs %+v", s.Disks)
	}
	if len(s.NICs) != 1 || s.NICs[0].Network != "NAT" || s.NICs[0].Model != "E1000" || s.CDs != 1 {
		t.Errorf("NICs %+v, CDs %d", s.NICs, s.CDs)
	}
	for _, want := range []string{"USB", "sound"} {
		if !slices.ContainsFunc(d.Dropped, func(s string) bool { return strings.Contains(s, want) }) {
			t.Errorf("Dropped %q does not name the %s device", d.Dropped, want)
		}
	}
}

// A XenCenter export: UTF-16 with a BOM, xenovf attributes on the
// envelope, a disk as ResourceType 19 placed by "device=0" in its
// Connection, vCPUs whose Limit 100000 means unset, XenServer settings
// (platform, PV_bootloader), a StartupSection and a EulaSection.
func TestFieldXenCenter(t *testing.T) {
	b := fieldDescriptor(t, "xenadmin-sample_app.ovf", "xenserver/xenadmin XenAdminTests/TestResources/sample_app.ovf at bd36a85b")
	d, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	s := d.System
	if d.Version != "1.0" || s.Name != "Web server" || s.VCPUs != 1 || s.Memory != 64<<20 || s.Firmware != "" {
		t.Errorf("version %q, system %+v", d.Version, s)
	}
	if len(d.Disks) != 1 || d.Disks[0].Capacity != 10485760 || d.Disks[0].Format != FormatVHD ||
		len(d.Files) != 1 || d.Files[0].Size != 16777216 || !strings.HasSuffix(d.Files[0].Href, ".vhd") {
		t.Errorf("disks %+v, files %+v", d.Disks, d.Files)
	}
	if len(s.Disks) != 1 || s.Disks[0].Device != 0 {
		t.Errorf("disk refs %+v", s.Disks)
	}
	if s.Xen["PV_bootloader"] != "pygrub" || !strings.Contains(s.Xen["platform"], "viridian=true") {
		t.Errorf("XenServer settings %q", s.Xen)
	}
	if len(s.NICs) != 0 {
		t.Errorf("NICs %+v, want none", s.NICs)
	}
}

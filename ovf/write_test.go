package ovf

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// samples are descriptors as xva's writer builds them, covering every
// field; their Parse(Marshal(d)) equals filled(d).
func samples() map[string]*Descriptor {
	full := &Descriptor{
		Files: []File{
			{ID: "file1", Href: "disk1.vmdk", Size: 1234},
			{ID: "file2", Href: "dir/disk 2.vmdk.gz", Size: 99, Compression: "gzip"},
			{ID: "file3", Href: "disk3.vmdk", Size: -1, ChunkSize: 1 << 30},
		},
		Disks: []Disk{
			{ID: "vmdisk1", FileRef: "file1", Capacity: 10 << 30, PopulatedSize: 3 << 30, Format: FormatVMDKStream},
			{ID: "vmdisk2", FileRef: "file2", Capacity: 1 << 30, PopulatedSize: -1, Format: FormatVMDKStream},
			{ID: "vmdisk3", FileRef: "file3", Capacity: 5 << 30, PopulatedSize: 0, Format: FormatVMDKStream},
			{ID: "blank", Capacity: MaxCapacity, PopulatedSize: -1},
		},
		Networks: []Network{{Name: "VM Network", Description: "The <main> network & more"}, {Name: "backup"}},
		System: System{
			ID: "vm-1", Name: `web "front" <1>`, Description: "line one\nline two\ttabbed",
			OSType: 94, OSDescription: "Ubuntu Linux (64-bit)", VCPUs: 8, Memory: 16 << 30, Firmware: "uefi",
			SystemType: "vmx-14",
			Disks: []DiskRef{
				{DiskID: "vmdisk1", Controller: "scsi", Address: 0, Device: -1},
				{DiskID: "vmdisk2", Controller: "scsi", Address: 1, Device: -1},
				{DiskID: "vmdisk3", Controller: "sata", Address: 0, Device: -1},
				{DiskID: "blank", Controller: "nvme", Address: 3, Device: -1},
			},
			CDs: 3,
			NICs: []NIC{
				{Network: "VM Network", MAC: "00:50:56:aa:bb:cc", Model: "VMXNET3"},
				{Network: "backup", MAC: "0050569ABCDE", Model: "E1000e"},
			},
		},
	}
	// Twenty disks with no addresses: two SCSI controllers, units 0-6 and
	// 8-15 on the first.
	many := &Descriptor{System: System{ID: "many", Name: "many", OSType: -1, VCPUs: 1, Memory: 1 << 30}}
	for i := 0; i < 20; i++ {
		id := fmt.Sprintf("d%02d", i)
		many.Disks = append(many.Disks, Disk{ID: id, Capacity: int64(i) << 20, PopulatedSize: -1})
		many.System.Disks = append(many.System.Disks, DiskRef{DiskID: id, Address: -1, Device: -1})
	}
	// XenCenter's shape: device numbers, no controllers, Xen settings,
	// BIOS; memory not a whole MiB.
	xen := &Descriptor{
		Files: []File{{ID: "f1", Href: "a.vhd", Size: 10}, {ID: "f2", Href: "b.vhd", Size: 20}},
		Disks: []Disk{
			{ID: "d1", FileRef: "f1", Capacity: 8 << 30, PopulatedSize: -1, Format: FormatVHD},
			{ID: "d2", FileRef: "f2", Capacity: 1 << 30, PopulatedSize: -1, Format: FormatVHD},
		},
		System: System{
			ID: "xen", Name: "Xen VM", OSType: 1, VCPUs: 2, Memory: 1<<30 + 4096, Firmware: "bios",
			SystemType: "hvm-3.0-unknown",
			Disks: []DiskRef{
				{DiskID: "d1", Controller: "scsi", Address: 0, Device: 0},
				{DiskID: "d2", Controller: "scsi", Address: 3, Device: 3},
			},
			NICs: []NIC{{Network: "0b1c2d3e-uuid", MAC: "b6:2f:01:9a:cc:3e", Model: "E1000"}},
			Xen:  map[string]string{"HVM_boot_params": "order=dc;", "platform": "nx=true;acpi=1;", "": "empty name"},
		},
	}
	minimal := &Descriptor{System: System{ID: "m", Name: "m", OSType: -1}}
	return map[string]*Descriptor{"full": full, "many": many, "xen": xen, "minimal": minimal}
}

// filled is d as Parse reads Marshal's output: the defaults Marshal
// documents filled in, addresses it assigned taken from got.
func filled(d, got *Descriptor) *Descriptor {
	w := *d
	w.Version, w.Dropped = got.Version, nil
	s := &w.System
	if s.ID == "" {
		s.ID = "vm"
	}
	if s.Name == "" {
		s.Name = s.ID
	}
	if s.OSType < 0 {
		s.OSType = 1
	}
	if s.SystemType == "" {
		s.SystemType = DefaultSystemType
	}
	if len(s.Xen) == 0 {
		s.Xen = nil
	}
	if s.Firmware == "" {
		s.Firmware = xenFirmware(s.Xen)
	}
	s.Disks = append([]DiskRef(nil), s.Disks...)
	for i := range s.Disks {
		r := &s.Disks[i]
		if _, ok := buses[r.Controller]; !ok {
			r.Controller = "scsi"
		}
		if r.Address < 0 && i < len(got.System.Disks) {
			r.Address = got.System.Disks[i].Address
		}
	}
	s.NICs = append([]NIC(nil), s.NICs...)
	for i := range s.NICs {
		s.NICs[i].MAC = normalMAC(s.NICs[i].MAC)
		s.NICs[i].Model = firstOf(s.NICs[i].Model, "E1000")
	}
	return &w
}

// Round trip: Parse(Marshal(d)) is d with Marshal's defaults, in both
// versions, and Marshal of that is byte for byte the same document.
func TestMarshalRoundTrip(t *testing.T) {
	for name, d := range samples() {
		for _, v := range []string{"1.0", "2.0"} {
			out, err := d.Marshal(WriteOptions{Version: v})
			if err != nil {
				t.Fatalf("%s %s: %v", name, v, err)
			}
			got := mustParse(t, out)
			if got.Version != v || got.Dropped != nil {
				t.Errorf("%s %s: version %q, dropped %q", name, v, got.Version, got.Dropped)
			}
			checkDescriptor(t, got, filled(d, got))
			again, err := got.Marshal(WriteOptions{Version: v})
			if err != nil || !bytes.Equal(out, again) {
				t.Errorf("%s %s: not a fixed point (%v)\n%s\n%s", name, v, err, out, again)
			}
		}
	}
}

func TestMarshalLayout(t *testing.T) {
	s := samples()
	out, err := s["many"].Marshal(WriteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got := mustParse(t, out)
	var addrs []int
	for _, r := range got.System.Disks {
		addrs = append(addrs, r.Address)
	}
	want := []int{0, 1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4}
	if !reflect.DeepEqual(addrs, want) || strings.Count(string(out), "<rasd:ResourceType>6<") != 2 {
		t.Errorf("addresses %v, want %v on two SCSI controllers", addrs, want)
	}
	for _, frag := range []string{`ovf:version="1.0"`, `<rasd:AllocationUnits>byte * 2^20</rasd:AllocationUnits>`,
		`<rasd:VirtualQuantity>1024</rasd:VirtualQuantity>`, `<rasd:AllocationUnits>hertz * 10^6</rasd:AllocationUnits>`,
		`<vssd:VirtualSystemType>vmx-10</vssd:VirtualSystemType>`, `<ovf:OperatingSystemSection ovf:id="1">`} {
		if !strings.Contains(string(out), frag) {
			t.Errorf("output lacks %s", frag)
		}
	}
	if strings.Contains(string(out), "xmlns:vmw") || strings.Contains(string(out), "xmlns:sasd") {
		t.Error("unused prefixes declared")
	}

	full, _ := s["full"].Marshal(WriteOptions{Version: "2.0"})
	for _, frag := range []string{`ovf:version="2.0"`, `xmlns:sasd="` + nsSASD + `"`, `xmlns:epasd="` + nsEPASD + `"`,
		`<vmw:Config ovf:required="false" vmw:key="firmware" vmw:value="efi"/>` + "\n    </ovf:VirtualHardwareSection>",
		`ovf:chunkSize="1073741824"`, `ovf:compression="gzip"`, `ovf:populatedSize="0"`,
		`<ovf:Item ovf:required="false">`, `<rasd:Address>00:50:56:aa:bb:cc</rasd:Address>`,
		`<ovf:Name>web &#34;front&#34; &lt;1&gt;</ovf:Name>`} {
		if !strings.Contains(string(full), frag) {
			t.Errorf("2.0 output lacks %s", frag)
		}
	}
	if strings.Contains(string(full), ".xsd") {
		t.Error("2.0 namespaces must not end in .xsd")
	}
	again, _ := s["full"].Marshal(WriteOptions{Version: "2.0"})
	if !bytes.Equal(full, again) {
		t.Error("Marshal is not deterministic")
	}
}

func TestMarshalRefuses(t *testing.T) {
	for _, c := range []struct {
		name string
		edit func(d *Descriptor)
		opts WriteOptions
		want string
	}{
		{"version", func(d *Descriptor) {}, WriteOptions{Version: "1.1"}, `version "1.1"`},
		{"href", func(d *Descriptor) { d.Files[0].Href = "../x" }, WriteOptions{}, `href "../x"`},
		{"href form", func(d *Descriptor) { d.Files[0].Href = "./x" }, WriteOptions{}, `href "./x"`},
		{"file id", func(d *Descriptor) { d.Files[1].ID = "file1" }, WriteOptions{}, `two Files have ID "file1"`},
		{"bzip2", func(d *Descriptor) { d.Files[0].Compression = "bzip2" }, WriteOptions{}, `compression "bzip2"`},
		{"disk id", func(d *Descriptor) { d.Disks[1].ID = "vmdisk1" }, WriteOptions{}, `two Disks have ID "vmdisk1"`},
		{"capacity", func(d *Descriptor) { d.Disks[0].Capacity = MaxCapacity + 1 }, WriteOptions{}, "capacity 70368744177665"},
		{"fileRef", func(d *Descriptor) { d.Disks[0].FileRef = "nope" }, WriteOptions{}, `file "nope"`},
		{"disk ref", func(d *Descriptor) { d.System.Disks[0].DiskID = "nope" }, WriteOptions{}, `disk "nope" is not among`},
		{"controller", func(d *Descriptor) { d.System.Disks[0].Controller = "usb" }, WriteOptions{}, `controller "usb"`},
		{"firmware", func(d *Descriptor) { d.System.Firmware = "efi" }, WriteOptions{}, `firmware "efi"`},
		{"vcpus", func(d *Descriptor) { d.System.VCPUs = MaxVCPUs + 1 }, WriteOptions{}, "4097 vCPUs"},
		{"memory", func(d *Descriptor) { d.System.Memory = -1 }, WriteOptions{}, "memory of -1"},
		{"network", func(d *Descriptor) { d.Networks[0].Name = "" }, WriteOptions{}, "Network has no name"},
		{"text", func(d *Descriptor) { d.System.Name = "a\x01b" }, WriteOptions{}, "character XML cannot carry"},
		{"utf-8", func(d *Descriptor) { d.System.Description = "\xff" }, WriteOptions{}, "character XML cannot carry"},
		{"mac", func(d *Descriptor) { d.System.NICs[0].MAC = "00:50:56" }, WriteOptions{}, `network adapter 1: "00:50:56" is not a MAC`},
		{"size", func(d *Descriptor) { d.System.Description = strings.Repeat(`"`, MaxDescriptorSize/5) }, WriteOptions{}, "descriptor would be too large"},
	} {
		d := samples()["full"]
		c.edit(d)
		if _, err := d.Marshal(c.opts); err == nil || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "ovf: ") {
			t.Errorf("%s: Marshal error %v, want one holding %q", c.name, err, c.want)
		}
	}
}

// marshalAll is every sample in both versions, and the vendor documents
// of testdata as Marshal rewrites them.
func marshalAll(t *testing.T) map[string][]byte {
	out := map[string][]byte{}
	add := func(name string, d *Descriptor) {
		for _, v := range []string{"1.0", "2.0"} {
			b, err := d.Marshal(WriteOptions{Version: v})
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			out[name+"-"+v+".ovf"] = b
		}
	}
	for name, d := range samples() {
		add(name, d)
	}
	for _, f := range []string{"virtualbox-2.0.ovf", "vmware-efi-chunked.ovf"} {
		add(f, mustParse(t, readTestdata(t, f)))
	}
	add("xencenter.ovf", mustParse(t, xenCenterUTF16LE(t)))
	return out
}

func writeAll(t *testing.T, docs map[string][]byte) string {
	dir := t.TempDir()
	for name, b := range docs {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// What Marshal writes is well-formed XML to libxml2 too.
func TestMarshalXmllint(t *testing.T) {
	xmllint, err := exec.LookPath("xmllint")
	if err != nil {
		t.Skip("xmllint is not installed")
	}
	docs := marshalAll(t)
	dir := writeAll(t, docs)
	for name := range docs {
		if out, err := exec.Command(xmllint, "--noout", "--nonet", filepath.Join(dir, name)).CombinedOutput(); err != nil {
			t.Errorf("%s: %v\n%s", name, err, out)
		}
	}
}

// schemaDir is where the DMTF schemas are: $XVA_OVF_SCHEMAS, else
// ../shared/reference/ovf beside the repository.
func schemaDir(t *testing.T) string {
	if d := os.Getenv("XVA_OVF_SCHEMAS"); d != "" {
		return d
	}
	if d, err := filepath.Abs("../../shared/reference/ovf"); err == nil {
		if _, err := os.Stat(filepath.Join(d, "dsp8023_1.0.0.xsd")); err == nil {
			return d
		}
	}
	t.Skip("no OVF schemas: set XVA_OVF_SCHEMAS to a directory holding dsp8023_1.0.0.xsd, dsp8023_2.0.1.xsd, " +
		"the CIM_*.xsd they import (ResourceAllocation, VirtualSystem, StorageAllocation, EthernetPortAllocation " +
		"SettingData, BootConfigSetting, BootSourceSetting), common.xsd, xml.xsd, xmldsig-core-schema.xsd, " +
		"xenc-schema.xsd and xenc-schema-11.xsd, or put them in ../shared/reference/ovf beside the repository")
	return ""
}

// What Marshal writes validates against DSP8023 1.0.0 and 2.0.1.
// DSP8023 1.0.0 (as XenAdmin ships it) imports its namespaces without
// schemaLocation, so a small driver schema names the files.
func TestMarshalSchema(t *testing.T) {
	dir := schemaDir(t)
	xmllint, err := exec.LookPath("xmllint")
	if err != nil {
		t.Skip("xmllint is not installed")
	}
	docs := marshalAll(t)
	tmp := writeAll(t, docs)
	driver := filepath.Join(tmp, "ovf1-driver.xsd")
	var imports strings.Builder
	for _, i := range [][2]string{
		{"http://www.w3.org/XML/1998/namespace", "xml.xsd"},
		{"http://schemas.dmtf.org/wbem/wscim/1/common", "common.xsd"},
		{nsVSSD, "CIM_VirtualSystemSettingData.xsd"},
		{nsRASD, "CIM_ResourceAllocationSettingData.xsd"},
		{nsOVF1, "dsp8023_1.0.0.xsd"},
	} {
		fmt.Fprintf(&imports, "<xs:import namespace=%q schemaLocation=%q/>\n", i[0], filepath.Join(dir, i[1]))
	}
	err = os.WriteFile(driver, []byte(`<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" targetNamespace="urn:xva:driver">`+
		"\n"+imports.String()+`</xs:schema>`), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	for name := range docs {
		schema := driver
		if strings.HasSuffix(name, "-2.0.ovf") {
			schema = filepath.Join(dir, "dsp8023_2.0.1.xsd")
		}
		out, err := exec.Command(xmllint, "--noout", "--nonet", "--schema", schema, filepath.Join(tmp, name)).CombinedOutput()
		if err != nil {
			t.Errorf("%s does not validate against %s: %v\n%s", name, filepath.Base(schema), err, out)
		}
	}
}

package ovf

import (
	"bytes"
	"os"
	"reflect"
	"strings"
	"testing"
	"unicode/utf16"
)

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// xenCenterUTF16LE is testdata/xencenter.ovf (kept as UTF-8 text, its
// declaration saying utf-16) as XenCenter writes it: UTF-16LE with a BOM.
func xenCenterUTF16LE(t *testing.T) []byte {
	t.Helper()
	le := []byte{0xFF, 0xFE}
	for _, c := range utf16.Encode([]rune(string(readTestdata(t, "xencenter.ovf")))) {
		le = append(le, byte(c), byte(c>>8))
	}
	return le
}

func mustParse(t *testing.T, doc []byte) *Descriptor {
	t.Helper()
	d, err := Parse(doc)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func checkDescriptor(t *testing.T, got, want *Descriptor) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
}

const vmdkStream = FormatVMDKStream

// The VirtualBox 2.0 shape: default namespace envelope/2, ".xsd"
// namespaces for StorageItem/EthernetPortItem, "/disk/ID" host
// resources, SATA disks listed out of address order, memory in
// "MegaBytes", firmware in vbox:Machine, USB and sound dropped.
func TestParseVirtualBox20(t *testing.T) {
	got := mustParse(t, readTestdata(t, "virtualbox-2.0.ovf"))
	want := &Descriptor{
		Version: "2.0",
		Files: []File{
			{ID: "file1", Href: "debian12-disk001.vmdk", Size: -1},
			{ID: "file2", Href: "debian12-disk002.vmdk", Size: -1},
		},
		Disks: []Disk{
			{ID: "vmdisk1", FileRef: "file1", Capacity: 20 << 30, PopulatedSize: -1, Format: vmdkStream},
			{ID: "vmdisk2", FileRef: "file2", Capacity: 4 << 30, PopulatedSize: -1, Format: vmdkStream},
		},
		Networks: []Network{{Name: "NAT", Description: "Logical network used by this appliance."}},
		System: System{
			ID: "debian12", Name: "debian12", OSType: 96, OSDescription: "Debian_64",
			VCPUs: 2, Memory: 2 << 30, Firmware: "uefi", SystemType: "virtualbox-2.2",
			Disks: []DiskRef{
				{DiskID: "vmdisk1", Controller: "sata", Address: 0, Device: -1},
				{DiskID: "vmdisk2", Controller: "sata", Address: 1, Device: -1},
			},
			CDs:  1,
			NICs: []NIC{{Network: "NAT", MAC: "08:00:27:a1:b2:c3", Model: "E1000"}},
		},
		Dropped: []string{"a USB controller (ResourceType 23)", "a sound card (ResourceType 35)"},
	}
	checkDescriptor(t, got, want)
}

var xenCenterWant = &Descriptor{
	Version: "1.0",
	Files: []File{
		{ID: "a1c4e6f8-1111-4a2b-9c3d-000000000001", Href: "3f9d2c1e-aaaa-4bbb-8ccc-000000000001.vhd", Size: 2 << 30},
		{ID: "a1c4e6f8-1111-4a2b-9c3d-000000000002", Href: "3f9d2c1e-aaaa-4bbb-8ccc-000000000002.vhd", Size: 1 << 20}, // "./" dropped
	},
	Disks: []Disk{
		{ID: "a1c4e6f8-1111-4a2b-9c3d-000000000001", FileRef: "a1c4e6f8-1111-4a2b-9c3d-000000000001", Capacity: 32 << 30, PopulatedSize: -1, Format: FormatVHD},
		{ID: "a1c4e6f8-1111-4a2b-9c3d-000000000002", FileRef: "a1c4e6f8-1111-4a2b-9c3d-000000000002", Capacity: 10 << 30, PopulatedSize: -1, Format: FormatVHD},
	},
	System: System{
		ID: "5c2e8a40-7d1b-4f6e-a9c3-2b8d0e4f6a13", Name: "Build agent", Description: "CI build agent & cache",
		OSType: 94, OSDescription: "Ubuntu 22.04 (64-bit)", VCPUs: 4, Memory: 4 << 30, Firmware: "uefi",
		SystemType: "hvm-3.0-unknown",
		Disks: []DiskRef{ // listed device=1 first; device=N orders them
			{DiskID: "a1c4e6f8-1111-4a2b-9c3d-000000000001", Address: 0, Device: 0},
			{DiskID: "a1c4e6f8-1111-4a2b-9c3d-000000000002", Address: 1, Device: 1},
		},
		CDs:  1,
		NICs: []NIC{{Network: "e2a4c6d8-3b5d-4f7a-9c1e-3a5c7e9b1d3f", MAC: "b6:2f:01:9a:cc:3e"}},
		Xen: map[string]string{
			"HVM_boot_policy": "BIOS order",
			"HVM_boot_params": "order=dc;firmware=uefi;",
			"platform":        "device-model=qemu-upstream-uefi;secureboot=false;nx=true;acpi=1;apic=true;pae=true;viridian=false;",
		},
	},
	Dropped: []string{"a start-up order (StartupSection)"},
}

// The XenCenter shape, UTF-16LE with a BOM as XenCenter writes it, and
// the same document in UTF-16BE, in UTF-8 with a BOM and in UTF-16LE
// without one.
func TestParseXenCenterUTF16(t *testing.T) {
	le := xenCenterUTF16LE(t)
	checkDescriptor(t, mustParse(t, le), xenCenterWant)

	u := make([]uint16, (len(le)-2)/2)
	for i := range u {
		u[i] = uint16(le[2+2*i]) | uint16(le[3+2*i])<<8
	}
	text := string(utf16.Decode(u))
	be := []byte{0xFE, 0xFF}
	for _, c := range u {
		be = append(be, byte(c>>8), byte(c))
	}
	checkDescriptor(t, mustParse(t, be), xenCenterWant)
	checkDescriptor(t, mustParse(t, le[2:]), xenCenterWant)

	utf8 := strings.Replace(text, `encoding="utf-16"`, `encoding="UTF-8"`, 1)
	checkDescriptor(t, mustParse(t, append([]byte{0xEF, 0xBB, 0xBF}, utf8...)), xenCenterWant)

	// UTF-8 bytes that claim to be UTF-16 are refused: the declaration
	// must match what the bytes are.
	if _, err := Parse([]byte(text)); err == nil || !strings.Contains(err.Error(), "utf-16") {
		t.Errorf("UTF-8 bytes declared utf-16: %v", err)
	}
}

// The VMware shape: capacity in GiB units, a chunked and a gzip File,
// vmw:Config firmware=efi, a CD with an ISO, vmw:osType.
func TestParseVMware(t *testing.T) {
	got := mustParse(t, readTestdata(t, "vmware-efi-chunked.ovf"))
	want := &Descriptor{
		Version: "1.0",
		Files: []File{
			{ID: "file1", Href: "win2022-disk1.vmdk", Size: 32768, ChunkSize: 10240},
			{ID: "file2", Href: "win2022-disk2.vmdk.gz", Size: 4096, Compression: "gzip"},
			{ID: "file3", Href: "tools/windows.iso", Size: 100 << 20},
		},
		Disks: []Disk{
			{ID: "vmdisk1", FileRef: "file1", Capacity: 40 << 30, PopulatedSize: 12 << 30, Format: vmdkStream},
			{ID: "vmdisk2", FileRef: "file2", Capacity: 512 << 20, PopulatedSize: 0, Format: vmdkStream},
		},
		Networks: []Network{{Name: "VM Network", Description: "The VM Network network"}},
		System: System{
			ID: "win2022", Name: "Windows Server 2022", OSType: 1, OSDescription: "windows2019srvNext_64Guest",
			VCPUs: 4, Memory: 8 << 30, Firmware: "uefi", SystemType: "vmx-14 vmx-19",
			Disks: []DiskRef{
				{DiskID: "vmdisk1", Controller: "scsi", Address: 0, Device: -1},
				{DiskID: "vmdisk2", Controller: "scsi", Address: 1, Device: -1},
			},
			CDs:  1,
			NICs: []NIC{{Network: "VM Network", MAC: "00:50:56:8e:1a:2b", Model: "VmxNet3"}},
		},
		Dropped: []string{"a CD/DVD drive with media (file3)", "a graphics controller (ResourceType 24)"},
	}
	checkDescriptor(t, got, want)
}

// envelope wraps a VirtualSystem body and envelope sections in an OVF
// 1.0 document.
func envelope(sections, system string) []byte {
	return []byte(`<?xml version="1.0"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1"
 xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData">` +
		sections + `<VirtualSystem ovf:id="vm"><Info>x</Info>` + system + `</VirtualSystem></Envelope>`)
}

func item(rt string, children string) string {
	return `<Item><rasd:ResourceType>` + rt + `</rasd:ResourceType>` + children + `</Item>`
}

func hardware(items ...string) string {
	return `<VirtualHardwareSection><Info>h</Info>` + strings.Join(items, "") + `</VirtualHardwareSection>`
}

const oneDisk = `<References><File ovf:id="f" ovf:href="d.vmdk"/></References>` +
	`<DiskSection><Info>d</Info><Disk ovf:diskId="d1" ovf:fileRef="f" ovf:capacity="1"/></DiskSection>`

// Every refusal names the problem: the test holds a part of each message.
func TestParseRefuses(t *testing.T) {
	deep := strings.Repeat("<a>", 100) + strings.Repeat("</a>", 100)
	many := strings.Repeat("<a/>", maxElements+1)
	big := append(envelope("", ""), bytes.Repeat([]byte(" "), 5<<20)...)
	for _, c := range []struct {
		name string
		doc  []byte
		want string
	}{
		{"doctype", readTestdata(t, "hostile-doctype.ovf"), "DOCTYPE"},
		{"href ..", readTestdata(t, "hostile-href-dotdot.ovf"), `"disks/../../etc/shadow" leaves the package`},
		{"href http", readTestdata(t, "hostile-href-http.ovf"), "only files inside the package are supported"},
		{"capacity property", readTestdata(t, "hostile-capacity-property.ovf"), `"${disk.size}" is a property reference`},
		{"5 MiB", big, "more than the 4194304 allowed"},
		{"deep", envelope("", deep), "deeper than 64"},
		{"many elements", envelope("", many), "more than 100000 elements"},
		{"root", []byte(`<VirtualSystem/>`), "not <Envelope>"},
		{"not XML", []byte(`<Envelope><a></b></Envelope>`), "not well-formed"},
		{"latin-1", []byte(`<?xml version="1.0" encoding="ISO-8859-1"?><Envelope/>`), `encoding "ISO-8859-1"`},
		{"no system", []byte(`<Envelope><References/></Envelope>`), "no VirtualSystem"},
		{"empty collection", []byte(`<Envelope><VirtualSystemCollection ovf:id="c"/></Envelope>`), "holds no VirtualSystem"},
		{"system id", []byte(`<Envelope><VirtualSystem/></Envelope>`), "VirtualSystem has no ovf:id"},
		{"file: href", envelope(`<References><File ovf:id="f" ovf:href="file:///etc/passwd"/></References>`, ""), "only files inside the package"},
		{"absolute href", envelope(`<References><File ovf:id="f" ovf:href="/etc/passwd"/></References>`, ""), "is absolute"},
		{"backslash href", envelope(`<References><File ovf:id="f" ovf:href="..\x"/></References>`, ""), "backslash"},
		{"empty href", envelope(`<References><File ovf:id="f" ovf:href=""/></References>`, ""), "href is empty"},
		{"dot href", envelope(`<References><File ovf:id="f" ovf:href="./"/></References>`, ""), "names no file"},
		{"file id", envelope(`<References><File ovf:href="x"/></References>`, ""), "File has no ovf:id"},
		{"duplicate file", envelope(`<References><File ovf:id="f" ovf:href="x"/><File ovf:id="f" ovf:href="y"/></References>`, ""), `two References Files have ovf:id "f"`},
		{"bzip2", envelope(`<References><File ovf:id="f" ovf:href="x" ovf:compression="bzip2"/></References>`, ""), "bzip2 compression is not supported"},
		{"size", envelope(`<References><File ovf:id="f" ovf:href="x" ovf:size="-1"/></References>`, ""), `ovf:size "-1"`},
		{"duplicate disk", envelope(`<DiskSection><Info>d</Info><Disk ovf:diskId="d" ovf:capacity="1"/><Disk ovf:diskId="d" ovf:capacity="1"/></DiskSection>`, ""), `two Disks have ovf:diskId "d"`},
		{"fileRef", envelope(`<DiskSection><Info>d</Info><Disk ovf:diskId="d" ovf:fileRef="nope" ovf:capacity="1"/></DiskSection>`, ""), `ovf:fileRef "nope" names no References File`},
		{"capacity 64 TiB", envelope(`<DiskSection><Info>d</Info><Disk ovf:diskId="d" ovf:capacity="65" ovf:capacityAllocationUnits="byte * 2^40"/></DiskSection>`, ""), "more than the 70368744177664 bytes allowed"},
		{"capacity overflow", envelope(`<DiskSection><Info>d</Info><Disk ovf:diskId="d" ovf:capacity="99999999999999999999"/></DiskSection>`, ""), `ovf:capacity "99999999999999999999"`},
		{"capacity negative", envelope(`<DiskSection><Info>d</Info><Disk ovf:diskId="d" ovf:capacity="-5"/></DiskSection>`, ""), `ovf:capacity "-5" is not a non-negative integer`},
		{"capacity units", envelope(`<DiskSection><Info>d</Info><Disk ovf:diskId="d" ovf:capacity="1" ovf:capacityAllocationUnits="byte * 2^99"/></DiskSection>`, ""), `allocation units "byte * 2^99"`},
		{"no capacity", envelope(`<DiskSection><Info>d</Info><Disk ovf:diskId="d"/></DiskSection>`, ""), `no ovf:capacity`},
		{"unknown disk", envelope(oneDisk, hardware(item("17", `<rasd:HostResource>ovf:/disk/d2</rasd:HostResource>`))), `names disk "d2", which DiskSection does not hold`},
		{"disk names a file", envelope(oneDisk, hardware(item("17", `<rasd:HostResource>ovf:/file/f</rasd:HostResource>`))), "names a file, not a Disk"},
		{"vcpus", envelope("", hardware(item("3", `<rasd:VirtualQuantity>4097</rasd:VirtualQuantity>`))), "more than the 4096 allowed"},
		{"vcpus sum", envelope("", hardware(item("3", `<rasd:VirtualQuantity>4000</rasd:VirtualQuantity>`), item("3", `<rasd:VirtualQuantity>97</rasd:VirtualQuantity>`))), "4097 vCPUs"},
		{"vcpus missing", envelope("", hardware(item("3", ""))), `VirtualQuantity ""`},
		{"memory", envelope("", hardware(item("4", `<rasd:AllocationUnits>byte * 2^40</rasd:AllocationUnits><rasd:VirtualQuantity>17</rasd:VirtualQuantity>`))), "more than the 17592186044416 bytes allowed"},
		{"memory overflow", envelope("", hardware(item("4", `<rasd:VirtualQuantity>9223372036854775807</rasd:VirtualQuantity>`))), "memory of 9223372036854775807"},
		{"resource type", envelope("", hardware(item("x", ""))), `ResourceType "x" is not a number`},
		{"address", envelope(oneDisk, hardware(item("17", `<rasd:AddressOnParent>-1</rasd:AddressOnParent><rasd:HostResource>ovf:/disk/d1</rasd:HostResource>`))), `AddressOnParent "-1"`},
		{"os id", envelope("", `<OperatingSystemSection ovf:id="70000"><Info>o</Info></OperatingSystemSection>`), `ovf:id "70000"`},
		{"odd utf-16", []byte{0xFF, 0xFE, '<'}, "odd number of bytes"},
	} {
		t.Run(c.name, func(t *testing.T) {
			d, err := Parse(c.doc)
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "ovf: ") {
				t.Fatalf("Parse = %+v, %v; want an error holding %q", d, err, c.want)
			}
		})
	}
}

func TestCleanHref(t *testing.T) {
	for in, want := range map[string]string{
		"disk.vmdk": "disk.vmdk", "./disk.vmdk": "disk.vmdk", "a//b/./c": "a/b/c",
		"disk (1).vmdk": "disk (1).vmdk", "dir/x.vmdk.gz": "dir/x.vmdk.gz", "a/b:c": "a/b:c",
		"": "", "..": "", "a/../b": "", "/x": "", "http://h/x": "", "C:x": "", "file:x": "",
		"a\\b": "", "a\x00b": "", ".": "", "./": "",
	} {
		got, err := cleanHref(in)
		if got != want || (want == "") != (err != nil) {
			t.Errorf("cleanHref(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

func TestNormalMAC(t *testing.T) {
	for in, want := range map[string]string{
		"00:50:56:AA:BB:CC": "00:50:56:aa:bb:cc", "00-16-8B-DB-00-5E": "00:16:8b:db:00:5e",
		"0050569aBCde": "00:50:56:9a:bc:de", "": "", "00:50:56:aa:bb": "", "00:50-56:aa:bb:cc": "",
		"zz:50:56:aa:bb:cc": "", "0050569abcdef": "", "00.50.56.aa.bb.cc": "",
	} {
		if got := normalMAC(in); got != want {
			t.Errorf("normalMAC(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseVersion(t *testing.T) {
	for _, c := range []struct{ doc, want string }{
		{`<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1">`, "1.0"},
		{`<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/2" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/2">`, "2.0"},
		{`<ovf:Envelope xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1" ovf:version="1.1">`, "1.1"},
		{`<Envelope xmlns="http://www.vmware.com/schema/ovf/1/envelope" xmlns:ovf="http://www.vmware.com/schema/ovf/1/envelope">`, "0.9"},
		// XenCenter's xenovf:version is not the OVF version.
		{`<ovf:Envelope xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1" xmlns:x="http://schemas.citrix.com/ovf/envelope/1" x:version="3.0.0">`, "1.0"},
	} {
		end := "</Envelope>"
		if strings.HasPrefix(c.doc, "<ovf:") {
			end = "</ovf:Envelope>"
		}
		d := mustParse(t, []byte(c.doc+`<VirtualSystem ovf:id="v" xmlns="`+nsOVF1+`"/>`+end))
		if d.Version != c.want {
			t.Errorf("%s: version %q, want %q", c.doc, d.Version, c.want)
		}
	}
}

// The VMware 0.9 form names sections by xsi:type.
func TestParseOVF09Sections(t *testing.T) {
	doc := `<Envelope xmlns="http://www.vmware.com/schema/ovf/1/envelope" xmlns:ovf="http://www.vmware.com/schema/ovf/1/envelope" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
<References><File ovf:id="f" ovf:href="d.vmdk"/></References>
<Section xsi:type="ovf:DiskSection_Type"><Info>d</Info><Disk ovf:diskId="d1" ovf:fileRef="f" ovf:capacity="1" ovf:capacityAllocationUnits="GigaBytes"/></Section>
<Content xsi:type="ovf:VirtualSystem_Type" ovf:id="old"><Info>x</Info></Content></Envelope>`
	d := mustParse(t, []byte(doc))
	if d.Version != "0.9" || len(d.Disks) != 1 || d.Disks[0].Capacity != 1<<30 || d.System.ID != "old" {
		t.Errorf("got %+v", d)
	}
}

// Sections the model does not read are listed, required or known ones
// only; items of a non-default deployment option and min/max bounds are
// not read; properties are counted once.
func TestParseDropped(t *testing.T) {
	doc := envelope(`<DeploymentOptionSection><Info>c</Info>
<Configuration ovf:id="small"><Label>S</Label></Configuration>
<Configuration ovf:id="large" ovf:default="true"><Label>L</Label></Configuration></DeploymentOptionSection>
<FutureSection><Info>f</Info></FutureSection><vendor:Stuff xmlns:vendor="urn:v" ovf:required="false"/>`,
		`<ProductSection><Info>p</Info><Product>Appliance</Product><Property ovf:key="a"/><Property ovf:key="b"/></ProductSection>
<ProductSection><Info>p</Info><Property ovf:key="c"/></ProductSection>
<InstallSection ovf:required="false"><Info>i</Info></InstallSection>`+
			hardware(
				`<Item ovf:configuration="small">`+`<rasd:ResourceType>3</rasd:ResourceType><rasd:VirtualQuantity>1</rasd:VirtualQuantity></Item>`,
				`<Item ovf:configuration="large">`+`<rasd:ResourceType>3</rasd:ResourceType><rasd:VirtualQuantity>8</rasd:VirtualQuantity></Item>`,
				`<Item ovf:bound="max">`+`<rasd:ResourceType>4</rasd:ResourceType><rasd:VirtualQuantity>9999</rasd:VirtualQuantity></Item>`,
				item("4", `<rasd:VirtualQuantity>512</rasd:VirtualQuantity>`),
				item("14", ""), item("21", ""), item("21", ""), item("99", ""),
			))
	d := mustParse(t, doc)
	if d.System.VCPUs != 8 || d.System.Memory != 512<<20 || d.System.Description != "Appliance" {
		t.Errorf("system %+v", d.System)
	}
	want := []string{
		"deployment options",
		"a required section the model does not read: FutureSection",
		"an install step (InstallSection)",
		"a floppy drive (ResourceType 14)",
		"a serial port (ResourceType 21)",
		"a device of ResourceType 99",
		"ProductSection properties (3)",
	}
	if !reflect.DeepEqual(d.Dropped, want) {
		t.Errorf("Dropped\n got %q\nwant %q", d.Dropped, want)
	}
}

// Disks are ordered by controller in order of appearance, then address;
// a controller may come after its disks; items without HostResource are
// blank disks of VirtualQuantity x AllocationUnits.
func TestParseDiskOrder(t *testing.T) {
	disks := `<References><File ovf:id="f" ovf:href="d.vmdk"/></References><DiskSection><Info>d</Info>` +
		`<Disk ovf:diskId="a" ovf:fileRef="f" ovf:capacity="1"/><Disk ovf:diskId="b" ovf:capacity="1"/><Disk ovf:diskId="c" ovf:capacity="1"/></DiskSection>`
	d := mustParse(t, envelope(disks, hardware(
		item("17", `<rasd:AddressOnParent>1</rasd:AddressOnParent><rasd:HostResource>ovf:/disk/a</rasd:HostResource><rasd:Parent>9</rasd:Parent>`),
		item("17", `<rasd:AddressOnParent>0</rasd:AddressOnParent><rasd:HostResource>ovf:/disk/b</rasd:HostResource><rasd:Parent>9</rasd:Parent>`),
		item("17", `<rasd:AddressOnParent>5</rasd:AddressOnParent><rasd:HostResource>ovf:/disk/c</rasd:HostResource><rasd:Parent>8</rasd:Parent>`),
		item("17", `<rasd:AllocationUnits>byte * 2^30</rasd:AllocationUnits><rasd:InstanceID>a</rasd:InstanceID><rasd:Parent>7</rasd:Parent><rasd:VirtualQuantity>3</rasd:VirtualQuantity>`),
		item("20", `<rasd:InstanceID>7</rasd:InstanceID><rasd:ResourceSubType>vmware.nvme.controller</rasd:ResourceSubType>`),
		item("5", `<rasd:InstanceID>8</rasd:InstanceID>`),
		item("6", `<rasd:InstanceID>9</rasd:InstanceID>`),
	)))
	want := []DiskRef{
		{DiskID: "blank-a", Controller: "nvme", Address: -1, Device: -1},
		{DiskID: "c", Controller: "ide", Address: 5, Device: -1},
		{DiskID: "b", Controller: "scsi", Address: 0, Device: -1},
		{DiskID: "a", Controller: "scsi", Address: 1, Device: -1},
	}
	if !reflect.DeepEqual(d.System.Disks, want) {
		t.Errorf("disks\n got %+v\nwant %+v", d.System.Disks, want)
	}
	if n := len(d.Disks); n != 4 || d.Disks[3] != (Disk{ID: "blank-a", Capacity: 3 << 30, PopulatedSize: -1}) {
		t.Errorf("blank disk: %+v", d.Disks)
	}
}

func TestParseCollection(t *testing.T) {
	doc := `<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1">
<VirtualSystemCollection ovf:id="c"><Info>c</Info><StartupSection><Info>s</Info></StartupSection>
<VirtualSystemCollection ovf:id="inner"><Info>i</Info><VirtualSystem ovf:id="web"><Info>w</Info></VirtualSystem></VirtualSystemCollection>
<VirtualSystem ovf:id="db"><Info>d</Info></VirtualSystem><VirtualSystem ovf:id="cache"><Info>d</Info></VirtualSystem>
</VirtualSystemCollection></Envelope>`
	d := mustParse(t, []byte(doc))
	want := []string{"a start-up order (StartupSection)", "VirtualSystemCollection: only the first of 3 virtual systems (web) is read"}
	if d.System.ID != "web" || !reflect.DeepEqual(d.Dropped, want) {
		t.Errorf("got %q %q", d.System.ID, d.Dropped)
	}
}

func TestParseFirmware(t *testing.T) {
	vmw := func(v string) string {
		return `<vmw:Config xmlns:vmw="http://www.vmware.com/schema/ovf" ovf:required="false" vmw:key="firmware" vmw:value="` + v + `"/>`
	}
	xen := func(v string) string {
		return `<xenovf:VirtualSystemOtherConfigurationData xmlns:xenovf="http://schemas.citrix.com/ovf/envelope/1" Name="HVM_boot_params"><xenovf:Value>` + v + `</xenovf:Value></xenovf:VirtualSystemOtherConfigurationData>`
	}
	for _, c := range []struct{ body, want string }{
		{hardware(), ""},
		{hardware(vmw("efi")), "uefi"},
		{hardware(vmw("bios")), "bios"},
		{hardware(vmw("other")), ""},
		{hardware(xen("order=dc;firmware=uefi;")), "uefi"},
		{hardware(xen("order=dc;")), ""},
		{hardware(vmw("bios"), xen("firmware=uefi")), "bios"},
		{`<vbox:Machine xmlns:vbox="http://www.virtualbox.org/ovf/machine" ovf:required="false"><Hardware><Firmware type="EFI"/></Hardware></vbox:Machine>`, "uefi"},
		{`<vbox:Machine xmlns:vbox="http://www.virtualbox.org/ovf/machine" ovf:required="false"><Hardware><Firmware type="BIOS"/></Hardware></vbox:Machine>`, "bios"},
	} {
		if got := mustParse(t, envelope("", c.body)).System.Firmware; got != c.want {
			t.Errorf("%s: firmware %q, want %q", c.body, got, c.want)
		}
	}
}

func TestParseUnits(t *testing.T) {
	for in, want := range map[string]int64{
		"byte": 1, "bytes": 1, "byte * 2^30": 1 << 30, "byte*2^20": 1 << 20, " byte *  2 ^ 10 ": 1 << 10,
		"byte * 1024": 1024, "byte * 10^3 * 2^10": 1024000, "MegaBytes": 1 << 20, "MB": 1 << 20,
		"KB": 1 << 10, "KiloBytes": 1 << 10, "GB": 1 << 30, "GigaBytes": 1 << 30, "BYTE * 2^62": 1 << 62,
		"byte * 1^99999999999": 1,
	} {
		if got, err := ParseUnits(in); got != want || err != nil {
			t.Errorf("ParseUnits(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "hertz * 10^6", "byte * 2^63", "byte * 2^64", "byte * 0", "byte * 0^5",
		"byte * -2", "byte * 2^-1", "byte * x", "byte *", "bytes * 99999999999 * 99999999999", "byte^2"} {
		if got, err := ParseUnits(in); err == nil || !strings.HasPrefix(err.Error(), "ovf: ") {
			t.Errorf("ParseUnits(%q) = %d, %v; want an error", in, got, err)
		}
	}
}

package ova

import (
	"errors"
	"os"
	"strings"
	"testing"
)

func readSample(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("../../shared/samples/" + name)
	if err != nil {
		t.Skipf("shared samples not available: %v", err)
	}
	return b
}

func TestParseXS55Sample(t *testing.T) {
	doc := readSample(t, "xenserver-5.5-modern-ova.xml")
	if IsLegacy(doc) || !IsExport(doc) {
		t.Fatal("sample misdetected")
	}
	e, err := ParseExport(doc)
	if err != nil {
		t.Fatal(err)
	}
	if e.ExportVersion() != 2 || len(e.Objects) != 9 {
		t.Fatalf("export_vsn %d, %d objects", e.ExportVersion(), len(e.Objects))
	}
	vmo, err := e.VMObject()
	if err != nil || vmo.ID != "Ref:0" {
		t.Fatalf("VM object %v: %v", vmo, err)
	}
	// The dangling real OpaqueRef in affinity is kept as is.
	if vmo.Str("affinity") != "OpaqueRef:b8c1cff1-2b1a-04c6-cf05-e8f832a0c369" {
		t.Fatalf("affinity %q", vmo.Str("affinity"))
	}
	vm, err := e.VM()
	if err != nil {
		t.Fatal(err)
	}
	if vm.Label != "~Unnamed" || vm.Memory != 268435456 || vm.VCPUs != 1 || !vm.HVM {
		t.Fatalf("VM view %+v", vm)
	}
	disks, err := e.Disks(vmo)
	if err != nil {
		t.Fatal(err)
	}
	// The CD (VBD Ref:6, in the iso SR) carries no data.
	if len(disks) != 1 || disks[0].VDI.ID != "Ref:4" || disks[0].Size != 5368709120 || disks[0].Device != "xvda" || !disks[0].Bootable {
		t.Fatalf("disks %+v", disks)
	}
	ifs := e.Interfaces(vmo)
	if len(ifs) != 1 || ifs[0].Device != "0" || ifs[0].Network.Bridge != "xenbr0" || ifs[0].MAC != "00:00:00:00:00:00" {
		t.Fatalf("interfaces %+v", ifs)
	}
	// Read → write → read says the same thing.
	again, err := ParseExport(e.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	if !again.Root.Equal(e.Root) {
		t.Fatal("marshal → parse changed the document")
	}
	if strings.Contains(string(e.Marshal()), "\n") || strings.HasPrefix(string(e.Marshal()), "<?xml") {
		t.Fatal("output is not xapi's compact form")
	}
}

func TestValueVariants(t *testing.T) {
	doc := `<?xml version="1.0"?>
<value><struct>
  <member><name>a</name><value><i4>1</i4></value></member>
  <member><name>b</name><value><int>2</int></value></member>
  <member><name>c</name><value><i8>3</i8></value></member>
  <member><name>d</name><value>4</value></member>
  <member><name>e</name><value><boolean>1</boolean></value></member>
  <member><name>f</name><value><dateTime.iso8601>19700101T00:00:00Z</dateTime.iso8601></value></member>
  <member><name>g</name><value><string>x &amp; y</string></value></member>
  <member><name>h</name><value/></member>
  <member><name>i</name><value><double>1</double></value></member>
  <member><name>j</name><value><array><data/></array></value></member>
</struct></value>`
	v, err := ParseValue([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	for i, name := range []string{"a", "b", "c", "d"} {
		if n, err := v.Field(name).Int64(); err != nil || n != int64(i+1) {
			t.Errorf("%s: %d, %v", name, n, err)
		}
	}
	if b, err := v.Field("e").Bool(); !b || err != nil {
		t.Error("boolean")
	}
	if _, err := v.Field("d").Bool(); err == nil {
		t.Error("a string read as a boolean; xapi refuses that")
	}
	if v.Field("g").Str() != "x & y" || v.Field("h").Str() != "" || v.Field("f").Kind != DateTime {
		t.Error("strings or dates")
	}
	w, err := ParseValue(v.Marshal())
	if err != nil || !w.Equal(v) {
		t.Fatalf("round trip: %v", err)
	}
	if string(NewString("a\x01b\tc").Marshal()) != "<value>ab\tc</value>" {
		t.Errorf("control characters: %s", NewString("a\x01b\tc").Marshal())
	}
}

func TestHostileXML(t *testing.T) {
	deep := strings.Repeat("<value><array><data>", 40) + strings.Repeat("</data></array></value>", 40)
	cases := map[string]string{
		"deep":       deep,
		"doctype":    `<!DOCTYPE x [<!ENTITY a "aaaa">]><value>&a;</value>`,
		"mixed":      `<value>text<struct/></value>`,
		"two":        `<value><int>1</int><int>2</int></value>`,
		"empty bool": `<value><boolean></boolean></value>`,
		"unknown":    `<value><nil/></value>`,
	}
	for name, doc := range cases {
		if _, err := ParseValue([]byte(doc)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// xapi reads any other text of a <boolean> than 1 as false, and so do
	// we; the import check says so.
	v, err := ParseValue([]byte(`<value><boolean>yes</boolean></value>`))
	if b, _ := v.Bool(); err != nil || b {
		t.Fatalf("<boolean>yes</boolean>: %v, %v", b, err)
	}
	var mr *MisreadError
	if err := DecodeValue("bool", v); !errors.As(err, &mr) {
		t.Fatalf("the import check does not say it is misread: %v", err)
	}
}

func TestLegacyToXapiAndBack(t *testing.T) {
	a, err := ParseLegacy(readSample(t, "rbuilder-legacy-ova-filled.xml"))
	if err != nil {
		t.Fatal(err)
	}
	a.VMs[0].Memory = 1 << 30
	a.VMs[0].VCPUs = 4
	a.VMs[0].VBDs = append(a.VMs[0].VBDs, VBD{Device: "xvdb", Function: "user", VDI: "vdi_xvdb", ReadOnly: true})
	a.VDIs = append(a.VDIs, VDI{Name: "vdi_xvdb", Size: 12345, Source: "file://xvdb", Type: TypeGzippedChunks, Variety: "user"})
	e, err := FromAppliance(a, "seed")
	if err != nil {
		t.Fatal(err)
	}
	if e.ExportVersion() != 2 {
		t.Fatal("export_vsn is not 2")
	}
	vmo, _ := e.VMObject()
	// Fields the importer insists on are there and typed right.
	for _, f := range []string{"is_a_template", "ha_always_run", "is_a_snapshot", "is_control_domain"} {
		if _, err := vmo.Bool(f); err != nil {
			t.Errorf("VM.%s: %v", f, err)
		}
	}
	disks, err := e.Disks(vmo)
	// Sizes become whole sectors (12345 → 12800).
	if err != nil || len(disks) != 2 || disks[0].Device != "xvda" || !disks[0].Bootable || disks[1].Size != 12800 || !disks[1].ReadOnly {
		t.Fatalf("disks %+v, %v", disks, err)
	}
	for _, d := range disks {
		sr := e.Object(d.VDI.Str("SR"))
		if sr == nil || sr.Class != "SR" {
			t.Fatalf("VDI %s points at no SR object", d.VDI.ID)
		}
		// A read-only disk is a read-only VBD on a writable VDI: xapi
		// writes the import through a read-write VBD, which VBD.create
		// refuses on a read-only VDI.
		if ro, _ := d.VDI.Bool("read_only"); ro {
			t.Fatalf("VDI %s is read_only", d.VDI.ID)
		}
	}
	// The same seed and input give the same document; another seed, or
	// none, other uuids.
	e2, _ := FromAppliance(a, "seed")
	if string(e.Marshal()) != string(e2.Marshal()) {
		t.Fatal("FromAppliance with a seed is not deterministic")
	}
	uuid := func(e *Export) string { o, _ := e.VMObject(); return o.Str("uuid") }
	e3, _ := FromAppliance(a, "other seed")
	e4, _ := FromAppliance(a, "")
	e5, _ := FromAppliance(a, "")
	if u := uuid(e); u == uuid(e3) || u == uuid(e4) || uuid(e4) == uuid(e5) || len(uuid(e4)) != 36 || uuid(e4)[14] != '4' {
		t.Fatalf("uuids %s %s %s %s", u, uuid(e3), uuid(e4), uuid(e5))
	}
	back, err := e.ToAppliance()
	if err != nil {
		t.Fatal(err)
	}
	got, want := back.VMs[0], a.VMs[0]
	if got.Label != want.Label || got.Memory != want.Memory || got.VCPUs != want.VCPUs || got.HVM != want.HVM ||
		got.KernelCmdline != want.KernelCmdline || len(got.VBDs) != 2 || !got.VBDs[0].Bootable() || got.VBDs[0].Device != "xvda" {
		t.Fatalf("legacy → xapi → legacy changed the VM:\n%+v\n%+v", got, want)
	}
	if back.VDIs[0].Size != XapiSize(1500000000) || back.VDIs[0].Variety != "system" {
		t.Fatalf("disks after the round trip: %+v", back.VDIs)
	}
}

func TestXapiToLegacyAndBack(t *testing.T) {
	e, err := ParseExport(readSample(t, "xenserver-5.5-modern-ova.xml"))
	if err != nil {
		t.Fatal(err)
	}
	a, err := e.ToAppliance()
	if err != nil {
		t.Fatal(err)
	}
	if len(a.VDIs) != 1 || a.VDIs[0].Source != "file://xvda" || a.VDIs[0].Size != 5368709120 {
		t.Fatalf("legacy view %+v", a)
	}
	e2, err := FromAppliance(a, "")
	if err != nil {
		t.Fatal(err)
	}
	v1, _ := e.VM()
	v2, _ := e2.VM()
	if v1.Label != v2.Label || v1.Memory != v2.Memory || v1.VCPUs != v2.VCPUs || v1.HVM != v2.HVM ||
		len(v2.VBDs) != 1 || !v2.VBDs[0].Bootable() {
		t.Fatalf("xapi → legacy → xapi changed the VM:\n%+v\n%+v", v1, v2)
	}
}

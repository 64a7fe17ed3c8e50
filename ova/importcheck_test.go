package ova

import (
	"errors"
	"strings"
	"testing"
)

// fromSample converts the shared legacy sample, with a read-only data disk.
func fromSample(t *testing.T) *Export {
	t.Helper()
	a, err := ParseLegacy(readSample(t, "rbuilder-legacy-ova-filled.xml"))
	if err != nil {
		t.Fatal(err)
	}
	a.VMs[0].Memory = 1 << 30 // the sample says mem_set="0"
	a.VMs[0].VBDs = append(a.VMs[0].VBDs, VBD{Device: "xvdb", Function: "user", VDI: "vdi_xvdb", ReadOnly: true})
	a.VDIs = append(a.VDIs, VDI{Name: "vdi_xvdb", Size: 12345, Source: "file://xvdb", Type: TypeGzippedChunks, Variety: "user"})
	e, err := FromAppliance(a, "")
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// Every record FromAppliance writes decodes as xapi decodes it, and the
// archive has nothing a host refuses.
func TestRecordsWeWriteSatisfyTheDatamodel(t *testing.T) {
	e := fromSample(t)
	if ps := e.ImportProblems(); len(ps) != 0 {
		t.Fatalf("import problems in what we write:\n%v", ps)
	}
	dm := XapiDatamodel()
	classes := map[string]bool{}
	for _, o := range e.Objects {
		classes[o.Class] = true
		if _, err := dm.DecodeRecord(o.Class, o.Snapshot); err != nil {
			t.Errorf("%s %s: %v", o.Class, o.ID, err)
		}
	}
	for _, c := range []string{"VM", "VBD", "VDI", "SR"} {
		if !classes[c] {
			t.Errorf("no %s written", c)
		}
	}
}

// Taking away any required field makes the record undecodable, with
// xapi's own message; taking away a defaulted one does not.
func TestEachRequiredFieldIsRequired(t *testing.T) {
	dm := XapiDatamodel()
	if len(dm.Commit) != 40 {
		t.Fatalf("the table names no xen-api commit: %q", dm.Commit)
	}
	e := fromSample(t)
	required := 0
	for _, o := range e.Objects {
		for name, spec := range dm.Fields(o.Class) {
			if o.Field(name) == nil {
				continue
			}
			rec := &Value{Kind: Struct}
			for _, m := range o.Snapshot.Members {
				if m.Name != name {
					rec.Members = append(rec.Members, m)
				}
			}
			_, err := dm.DecodeRecord(o.Class, rec)
			var fe *FieldError
			switch {
			case spec.Required && (!errors.As(err, &fe) || fe.Printed() != `Failure("Field `+name+` not present in rpc")`):
				t.Errorf("%s without %s: %v", o.Class, name, err)
			case !spec.Required && err != nil:
				t.Errorf("%s without defaulted %s: %v", o.Class, name, err)
			}
			if spec.Required {
				required++
			}
		}
	}
	if required < 60 {
		t.Fatalf("only %d required fields checked", required)
	}
}

// Values are read as ocaml-rpc reads them (rpc 10.2.0 rpc.ml, xmlrpc.ml,
// ppx_deriving_rpc.ml).
func TestDecodeValueAsXapi(t *testing.T) {
	b := func(text string) *Value { return &Value{Kind: Bool, Tag: "boolean", Text: text} }
	i := func(tag, text string) *Value { return &Value{Kind: Int, Tag: tag, Text: text} }
	cases := []struct {
		typ string
		v   *Value
		ok  bool
	}{
		{"bool", b("1"), true},
		{"bool", NewString("true"), false}, // Expected bool, got 'S(true)'
		{"int", NewString("42"), true},     // xapi writes ints untagged
		{"int", i("i4", "42"), true},
		{"int", i("i8", "-7"), true},
		{"int", NewString("0x10"), true},
		{"int", NewString("1_000"), true},
		{"int", NewString(" 5"), false}, // no trimming
		{"int", NewString(""), false},
		{"int", NewDouble(1), false},
		{"string", NewString("x"), true},
		{"string", i("int", "1"), false},
		{"enum vbd_mode(RO|RW)", NewString("rw"), true}, // lowercased both sides
		{"enum vbd_mode(RO|RW)", NewString("R/W"), false},
		{"enum on_normal_exit(destroy|restart)", NewString("Restart"), true},
		{"enum domain_type(hvm|pv|pv_in_pvh|pvh|unspecified)", NewString("pv-in-pvh"), false},
		{"datetime", NewString("19700101T00:00:00Z"), true},
		{"datetime", &Value{Kind: DateTime, Tag: "dateTime.iso8601", Text: "20240102T03:04:05Z"}, true},
		{"datetime", NewString("2024-01-02T03:04:05"), true}, // a missing zone is Z
		{"datetime", NewString("yesterday"), false},
		{"set(ref(vbd))", NewStrings("Ref:1", "Ref:2"), true},
		{"set(ref(vbd))", NewString("Ref:1"), false},
		{"map(string->string)", NewMap(map[string]string{"a": "b"}), true},
		{"map(string->string)", NewStruct(Member{"a", i("int", "1")}), false},
		{"float", NewDouble(1.5), true},
		{"float", NewString("1"), true},
	}
	for _, c := range cases {
		err := DecodeValue(c.typ, c.v)
		if (err == nil) != c.ok {
			t.Errorf("%s %s %q: %v", c.typ, c.v.Tag, c.v.Text, err)
		}
	}
}

// Each rule of ImportProblems, on a broken copy of what we write.
func TestImportProblemsFindWhatHostsRefuse(t *testing.T) {
	cases := []struct {
		name, answer string
		edit         func(e *Export)
	}{
		{"read-only VDI streamed", "VDI_READONLY", func(e *Export) {
			first(e, "VDI").Snapshot.Set("read_only", NewBool(true))
		}},
		{"boolean as a string", "Expected bool", func(e *Export) {
			first(e, "VBD").Snapshot.Set("bootable", NewString("true"))
		}},
		{"required field missing", "Field memory_static_max not present in rpc", func(e *Export) {
			drop(first(e, "VM"), "memory_static_max")
		}},
		{"VDI of a VBD missing", "IMPORT_ERROR_FAILED_TO_FIND_OBJECT", func(e *Export) {
			first(e, "VBD").Snapshot.Set("VDI", NewString("Ref:999"))
		}},
		{"CD drive read-write", "VBD_CDS_MUST_BE_READONLY", func(e *Export) {
			first(e, "VBD").Snapshot.Set("type", NewString("CD"))
		}},
		{"no vCPUs", "INVALID_VALUE", func(e *Export) {
			first(e, "VM").Snapshot.Set("VCPUs_max", NewInt(0))
		}},
		{"version block without xapi_major", "Failed to find key 'xapi_major'", func(e *Export) {
			drop(&Object{Snapshot: e.Root.Field("version")}, "xapi_major")
		}},
		{"two disks on one userdevice", "DEVICE_ALREADY_EXISTS", func(e *Export) {
			for _, o := range e.Objects {
				if o.Class == "VBD" {
					o.Snapshot.Set("userdevice", NewString("0"))
				}
			}
		}},
	}
	for _, c := range cases {
		e := fromSample(t)
		c.edit(e)
		ps := e.ImportProblems()
		found := false
		for _, p := range ps {
			found = found || strings.Contains(p.String(), c.answer)
		}
		if !found {
			t.Errorf("%s: no problem says %s: %v", c.name, c.answer, ps)
		}
	}
}

func first(e *Export, class string) *Object {
	for _, o := range e.Objects {
		if o.Class == class {
			return o
		}
	}
	panic("no " + class)
}

func drop(o *Object, field string) {
	var kept []Member
	for _, m := range o.Snapshot.Members {
		if m.Name != field {
			kept = append(kept, m)
		}
	}
	o.Snapshot.Members = kept
}

// A converted VM gets the platform a current host gives a new VM: NX on
// (xenguest hides NX from a guest without it), ACPI, APIC, PAE.
func TestPlatformOfConvertedVMs(t *testing.T) {
	for _, c := range []struct {
		vm   VM
		want map[string]string
	}{
		{VM{HVM: true}, map[string]string{"nx": "true", "acpi": "1", "apic": "true", "pae": "true", "viridian": "false"}},
		{VM{HVM: false}, map[string]string{"nx": "true", "acpi": "1", "apic": "true", "pae": "true"}},
		{VM{HVM: true, Distrib: "windows"}, map[string]string{"nx": "true", "viridian": "true", "acpi": "1"}},
		{VM{HVM: true, Distrib: "windows", DistribVersion: "win2k"}, map[string]string{"nx": "true", "acpi": "0", "apic": "false"}},
	} {
		c.vm.Label, c.vm.Memory, c.vm.VCPUs = "p", 1<<30, 2
		c.vm.VBDs = []VBD{{Device: "xvda", Function: "root", VDI: "v"}}
		a := &Appliance{VMs: []VM{c.vm}, VDIs: []VDI{{Name: "v", Size: 1 << 20, Source: "file://xvda", Type: TypeGzippedChunks, Variety: "system"}}}
		e, err := FromAppliance(a, "")
		if err != nil {
			t.Fatal(err)
		}
		vm, _ := e.VMObject()
		p := vm.Field("platform")
		for k, v := range c.want {
			if got := p.Field(k).Str(); got != v {
				t.Errorf("%+v: platform %s is %q, want %q", c.vm, k, got, v)
			}
		}
		if p.Field("device-model") != nil {
			t.Errorf("device-model is the importing host's to choose")
		}
		if len(vm.Field("other_config").Field("mac_seed").Str()) != 36 {
			t.Errorf("no mac_seed: VIF.create could not make a MAC")
		}
	}
}

// vcpus="0" becomes one vCPU, as xapi's legacy importer made; mem_set="0"
// cannot start and is refused.
func TestLegacyZeroVCPUsAndMemory(t *testing.T) {
	a, err := ParseLegacy(readSample(t, "rbuilder-legacy-ova-filled.xml"))
	if err != nil {
		t.Fatal(err)
	}
	a.VMs[0].Memory, a.VMs[0].VCPUs = 1<<30, 0
	e, err := FromAppliance(a, "")
	if err != nil {
		t.Fatal(err)
	}
	if vm, _ := e.VM(); vm.VCPUs != 1 {
		t.Fatalf("vcpus=0 gave %d vCPUs", vm.VCPUs)
	}
	a.VMs[0].Memory = 0
	if _, err := FromAppliance(a, ""); !errors.Is(err, ErrInvalidVM) || !strings.Contains(err.Error(), "mem_set") {
		t.Fatalf("mem_set=0: %v", err)
	}
}

// A real export (XenServer 5.5, shared/samples) has nothing a host
// refuses: fields the datamodel added since are defaulted.
func TestRealExportHasNoImportProblems(t *testing.T) {
	e, err := ParseExport(readSample(t, "xenserver-5.5-modern-ova.xml"))
	if err != nil {
		t.Fatal(err)
	}
	if ps := e.ImportProblems(); len(ps) != 0 {
		t.Fatalf("%v", ps)
	}
}

// More of xapi's rules, each on a broken copy of what we write.
func TestImportProblemsMoreRules(t *testing.T) {
	cases := []struct {
		name, answer string
		edit         func(e *Export)
	}{
		{"VIF of no VM", "IMPORT_ERROR_FAILED_TO_FIND_OBJECT [Ref:404]", func(e *Export) {
			e.Root.Field("objects").Items = append(e.Root.Field("objects").Items, NewStruct(
				Member{"class", NewString("VIF")}, Member{"id", NewString("Ref:900")},
				Member{"snapshot", NewStruct(Member{"uuid", NewString("u")}, Member{"device", NewString("0")},
					Member{"network", NewString("Ref:404")}, Member{"VM", NewString("Ref:404")}, Member{"MAC", NewString("")},
					Member{"MTU", NewInt(1500)}, Member{"other_config", NewStruct()}, Member{"status_code", NewInt(0)},
					Member{"status_detail", NewString("")}, Member{"runtime_properties", NewStruct()},
					Member{"qos_algorithm_type", NewString("")}, Member{"qos_algorithm_params", NewStruct()},
					Member{"qos_supported_algorithms", NewArray()})}))
			e2, _ := ParseExport(e.Marshal())
			*e = *e2
		}},
		{"attached VBD without its VDI", "IMPORT_ERROR_ATTACHED_DISKS_NOT_FOUND", func(e *Export) {
			o := first(e, "VBD")
			o.Snapshot.Set("currently_attached", NewBool(true))
			o.Snapshot.Set("VDI", NewString(NullRef))
		}},
		{"userdevice 0 and xvda", "DEVICE_ALREADY_EXISTS", func(e *Export) {
			n := 0
			for _, o := range e.Objects {
				if o.Class == "VBD" {
					o.Snapshot.Set("userdevice", NewString([]string{"0", "xvda"}[n]))
					n++
				}
			}
		}},
		{"xapi_major not a number", `Failure("int_of_string")`, func(e *Export) {
			e.Root.Field("version").Set("xapi_major", NewString("one"))
		}},
	}
	for _, c := range cases {
		e := fromSample(t)
		c.edit(e)
		ps := e.ImportProblems()
		found := false
		for _, p := range ps {
			found = found || strings.Contains(p.String(), c.answer)
		}
		if !found {
			t.Errorf("%s: no problem says %s: %v", c.name, c.answer, ps)
		}
	}
	// A record without parent is reset to valid memory: no start problem.
	e := fromSample(t)
	vm := first(e, "VM")
	vm.Snapshot.Set("memory_static_min", NewInt(1<<40))
	drop(vm, "parent")
	if ps := e.ImportProblems(); len(ps) != 0 {
		t.Fatalf("a pre-DMC record's memory is reset on import: %v", ps)
	}
}

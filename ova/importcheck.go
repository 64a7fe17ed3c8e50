package ova

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// ImportProblem is something in an xapi ova.xml that a host's importer
// refuses, or that makes the VM it imports unable to start. The rules are
// xen-api's (ocaml/xapi/import.ml, importexport.ml, xapi_vbd.ml at the
// datamodel table's commit).
type ImportProblem struct {
	Object string // "VBD Ref:12", or "version" for the version block
	Field  string // the field concerned, "" if none
	Answer string // what the host answers
	Detail string // what is wrong
}

func (p ImportProblem) String() string {
	s := p.Object
	if p.Field != "" {
		s += " field " + p.Field
	}
	return s + ": " + p.Detail + "; the host answers " + p.Answer
}

// importFailure is how an exception raised while decoding reaches the
// client: IMPORT_ERROR with INTERNAL_ERROR: [ printed exception ]
// (import.ml:2436-2439, exnHelper.ml:69-86).
func importFailure(err error) string {
	printed := err.Error()
	var p interface{ Printed() string }
	if errors.As(err, &p) {
		printed = p.Printed()
	}
	return fmt.Sprintf(`IMPORT_ERROR ["INTERNAL_ERROR: [ %s ]"]`, printed)
}

// The version block's keys (importexport.ml:73-92): strings, and the two
// version numbers read with int_of_rpc.
var versionKeys = []struct{ name, typ string }{
	{"hostname", "string"}, {"date", "string"}, {"product_version", "string"}, {"product_brand", "string"},
	{"build_number", "string"}, {"xapi_major", "int63"}, {"xapi_minor", "int63"},
}

// VersionNumber reads xapi_major or xapi_minor as Rpc.int_of_rpc does
// (rpc.ml:199-202): Int, or String through int_of_string, 63 bits.
func VersionNumber(v *Value) (int64, error) {
	if v == nil || v.Kind != Int && v.Kind != String {
		return 0, failure("int_of_string")
	}
	n, ok := OCamlInt64(v.Text)
	if !ok || n > 1<<62-1 || n < -(1<<62) {
		return 0, failure("int_of_string")
	}
	return n, nil
}

// VDI types a VBD may not point at (xapi_vbd.ml:157-180), and the one
// VDI.create refuses (xapi_vdi.ml:578-589).
var (
	incompatibleVBDTypes = map[string]bool{"ha_statefile": true, "redo_log": true, "cbt_metadata": true}
	unsignedDecimal      = regexp.MustCompile(`^[0-9]+$`)
)

// ImportProblems lists what a host would refuse in e, or get wrong: the
// version block, every record of the classes xva knows decoded as xapi
// decodes it, the objects each refers to, the checks of VBD.create and
// VIF.create, and what would stop the VM from starting.
func (e *Export) ImportProblems() []ImportProblem {
	var ps []ImportProblem
	add := func(o *Object, field, answer, format string, args ...any) {
		name := "version"
		if o != nil {
			name = o.Class + " " + o.ID
		}
		ps = append(ps, ImportProblem{Object: name, Field: field, Answer: answer, Detail: fmt.Sprintf(format, args...)})
	}
	version := e.Root.Field("version")
	for _, k := range versionKeys {
		v := version.Field(k.name)
		if v == nil {
			add(nil, k.name, "IMPORT_ERROR", "the version block has no %s (\"Failed to find key '%s' in version data\")", k.name, k.name)
		} else if k.typ == "int63" {
			if _, err := VersionNumber(v); err != nil {
				add(nil, k.name, importFailure(err), "%q is not an integer", v.Text)
			}
		} else if err := DecodeValue(k.typ, v); err != nil {
			add(nil, k.name, importFailure(err), "%v", err)
		}
	}
	dm := XapiDatamodel()
	byID := map[string]*Object{}
	for _, o := range e.Objects {
		byID[o.ID] = o
	}
	for _, o := range e.Objects {
		if dm.Fields(o.Class) == nil {
			continue
		}
		misread, err := dm.DecodeRecord(o.Class, o.Snapshot)
		for _, m := range misread {
			field, what, _ := strings.Cut(m, ": ")
			add(o, field, "nothing, and reads it otherwise", "%s", what)
		}
		if err != nil {
			var fe *FieldError
			field := ""
			if errors.As(err, &fe) {
				field = fe.Field
			}
			add(o, field, importFailure(err), "%v", err)
			continue
		}
		switch o.Class {
		case "VM":
			ps = append(ps, vmStartProblems(o)...)
		case "VDI":
			if sr := byID[o.Str("SR")]; sr == nil || sr.Class != "SR" {
				add(o, "SR", "IMPORT_ERROR_FAILED_TO_FIND_OBJECT ["+o.Str("SR")+"]", "the VDI's SR %s is not in the archive", o.Str("SR"))
			}
			if strings.EqualFold(o.Str("type"), "cbt_metadata") {
				add(o, "type", `VDI_INCOMPATIBLE_TYPE ["", "cbt_metadata"]`, "VDI.create refuses a VDI of type cbt_metadata")
			}
		case "VBD":
			ps = append(ps, vbdProblems(o, byID)...)
		case "VIF":
			if vm := byID[o.Str("VM")]; vm == nil || vm.Class != "VM" {
				add(o, "VM", "IMPORT_ERROR_FAILED_TO_FIND_OBJECT ["+o.Str("VM")+"]", "the VIF's VM %s is not in the archive", o.Str("VM"))
			}
			if n := byID[o.Str("network")]; (n == nil || n.Class != "network") && o.Field("other_config").Field("maps_to") == nil {
				add(o, "network", "IMPORT_ERROR_FAILED_TO_FIND_OBJECT ["+o.Str("network")+"]", "the VIF's network %s is not in the archive", o.Str("network"))
			}
			if !unsignedDecimal.MatchString(o.Str("device")) {
				add(o, "device", "INVALID_DEVICE ["+o.Str("device")+"]", "VIF.create wants an unsigned decimal device, not %q", o.Str("device"))
			}
		}
	}
	ps = append(ps, duplicateDevices(e)...)
	return ps
}

// vbdProblems are the checks of the VBD handler (import.ml:1376-1514),
// VBD.create (xapi_vbd.ml:137-299) and the dom0 read-write attach a VDI
// whose data is streamed goes through (attach_helpers.ml:48-65).
func vbdProblems(o *Object, byID map[string]*Object) []ImportProblem {
	var ps []ImportProblem
	add := func(field, answer, format string, args ...any) {
		ps = append(ps, ImportProblem{Object: "VBD " + o.ID, Field: field, Answer: answer, Detail: fmt.Sprintf(format, args...)})
	}
	if vm := byID[o.Str("VM")]; vm == nil || vm.Class != "VM" {
		add("VM", "IMPORT_ERROR_FAILED_TO_FIND_OBJECT ["+o.Str("VM")+"]", "the VBD's VM %s is not in the archive", o.Str("VM"))
	}
	r := o.VBD()
	cd := r.IsCD()
	if cd && !strings.EqualFold(r.Mode, "RO") {
		add("mode", "VBD_CDS_MUST_BE_READONLY", "a CD drive must be mode RO")
	}
	if !cd && r.Empty {
		add("empty", `VBD_NOT_REMOVABLE_MEDIA ["in constructor"]`, "only a CD drive can be empty")
	}
	ud := r.Userdevice
	if _, ok := DeviceNumber(ud); !ok && ud != "autodetect" {
		add("userdevice", "INVALID_DEVICE ["+ud+"]", "userdevice %q is neither a number nor a device name", ud)
	}
	vdi := byID[r.VDI]
	// A VBD attached at export whose VDI does not come with it
	// (import.ml:1431-1442): only a CD of an HVM VM may lack it.
	if attached, _ := o.Bool("currently_attached"); attached && !r.Empty && !imported(vdi, byID) {
		vm := byID[r.VM]
		hvm := vm != nil && (strings.EqualFold(vm.Str("domain_type"), "hvm") || vm.Str("HVM_boot_policy") != "")
		if !(cd && hvm) {
			add("currently_attached", "IMPORT_ERROR_ATTACHED_DISKS_NOT_FOUND", "the VBD was attached, and its VDI %s does not come with the archive", r.VDI)
		}
	}
	if cd || r.Empty {
		return ps
	}
	if vdi == nil || vdi.Class != "VDI" {
		add("VDI", "IMPORT_ERROR_FAILED_TO_FIND_OBJECT ["+r.VDI+"]", "the disk's VDI %s is not in the archive", r.VDI)
		return ps
	}
	if t := strings.ToLower(vdi.Str("type")); incompatibleVBDTypes[t] {
		add("VDI", "VDI_INCOMPATIBLE_TYPE", "a VBD cannot point at a VDI of type %s", t)
	}
	if ro, _ := vdi.Bool("read_only"); ro && imported(vdi, byID) {
		ps = append(ps, ImportProblem{Object: "VDI " + vdi.ID, Field: "read_only", Answer: "VDI_READONLY [" + vdi.ID + "]",
			Detail: "the import writes a disk's data through a read-write VBD in dom0, which VBD.create refuses on a read-only VDI (make the VBD mode RO instead)"})
	}
	return ps
}

// imported reports whether the VDI object vdi is created by an import: it
// is there, and its SR is not an ISO library (import.ml:945-985).
func imported(vdi *Object, byID map[string]*Object) bool {
	if vdi == nil || vdi.Class != "VDI" {
		return false
	}
	sr := byID[vdi.Str("SR")]
	return sr != nil && sr.Class == "SR" && !strings.EqualFold(sr.Str("content_type"), "iso")
}

// DeviceNumber reads a VBD's userdevice as the disk number xapi compares
// for clashes (xapi_vbd_helpers.ml:403-415, device_number.ml:190-238): a
// number, or a device name (xvda, hda, sda, xvdb2) as its disk index.
func DeviceNumber(d string) (int64, bool) {
	if n, ok := OCamlInt64(d); ok {
		return n, n >= 0
	}
	m := xenDeviceName.FindStringSubmatch(d)
	if m == nil {
		return 0, false
	}
	var n int64
	for _, c := range m[2] {
		n = n*26 + int64(c-'a') + 1
	}
	return n - 1, true
}

var xenDeviceName = regexp.MustCompile(`^(xvd|hd|sd)([a-z]+)[0-9]*$`)

// duplicateDevices finds two VBDs or two VIFs of one VM with the same
// device number (DEVICE_ALREADY_EXISTS).
func duplicateDevices(e *Export) []ImportProblem {
	var ps []ImportProblem
	seen := map[string]string{}
	for _, o := range e.Objects {
		field := map[string]string{"VBD": "userdevice", "VIF": "device"}[o.Class]
		if field == "" || o.Str(field) == "autodetect" {
			continue
		}
		n, ok := DeviceNumber(o.Str(field))
		if !ok {
			continue
		}
		key := fmt.Sprintf("%s\x00%s\x00%d", o.Class, o.Str("VM"), n)
		if first, dup := seen[key]; dup {
			ps = append(ps, ImportProblem{Object: o.Class + " " + o.ID, Field: field, Answer: "DEVICE_ALREADY_EXISTS [" + o.Str(field) + "]",
				Detail: fmt.Sprintf("%s %s of the same VM has %s %s too", o.Class, first, field, o.Str(field))})
			continue
		}
		seen[key] = o.ID
	}
	return ps
}

// vmStartProblems are what VM.start refuses that the import lets through
// (xapi_vm_helpers.ml:238-296, validate_basic_parameters): the VM imports
// but can never start. Templates and snapshots are not started.
func vmStartProblems(o *Object) []ImportProblem {
	tmpl, _ := o.Bool("is_a_template")
	snap, _ := o.Bool("is_a_snapshot")
	if tmpl || snap {
		return nil
	}
	var ps []ImportProblem
	add := func(field, answer, format string, args ...any) {
		ps = append(ps, ImportProblem{Object: "VM " + o.ID, Field: field, Answer: answer + " at VM.start",
			Detail: "the VM imports but cannot start: " + fmt.Sprintf(format, args...)})
	}
	num := func(f string) int64 { n, _ := OCamlInt64(o.Str(f)); return n }
	// A record without parent is taken for one exported before dynamic
	// memory control, and its memory is reset to valid values
	// (import.ml:597-615, vm_memory_constraints.ml:142-156).
	checkMemory := o.Field("parent") != nil
	vmax, vstart := num("VCPUs_max"), num("VCPUs_at_startup")
	switch {
	case vmax < 1:
		add("VCPUs_max", `INVALID_VALUE ["VCPUs_max"]`, "VCPUs_max is %d", vmax)
	case vstart < 1:
		add("VCPUs_at_startup", `INVALID_VALUE ["VCPUs-at-startup"]`, "VCPUs_at_startup is %d", vstart)
	case vstart > vmax:
		add("VCPUs_at_startup", "VALUE_NOT_SUPPORTED", "VCPUs_at_startup %d is more than VCPUs_max %d", vstart, vmax)
	}
	if smin, smax := num("memory_static_min"), num("memory_static_max"); checkMemory && smax < smin {
		add("memory_static_max", "MEMORY_CONSTRAINT_VIOLATION", "memory_static_max %d is below memory_static_min %d", smax, smin)
	}
	if dmin, dmax := num("memory_dynamic_min"), num("memory_dynamic_max"); checkMemory && dmax < dmin {
		add("memory_dynamic_max", "MEMORY_CONSTRAINT_VIOLATION", "memory_dynamic_max %d is below memory_dynamic_min %d", dmax, dmin)
	}
	return ps
}

package ova

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// NullRef is xapi's null reference.
const NullRef = "OpaqueRef:NULL"

// Export is an xapi-generation ova.xml: one XML-RPC struct with a version
// block and the exported objects. Objects point into Root, so changing a
// snapshot changes what Marshal writes.
type Export struct {
	Root    *Value
	Objects []*Object
	byID    map[string]*Object // Objects by ID, made by ParseExport
}

// Object is one exported record.
type Object struct {
	Class    string // VM, VBD, VDI, SR, VIF, network, ...
	ID       string // "Ref:12"; opaque, need not start with Ref:
	Snapshot *Value // the full API record, a struct keyed by field name
}

// Field returns a field of the record.
func (o *Object) Field(name string) *Value { return o.Snapshot.Field(name) }

// Str returns a string field ("" if absent).
func (o *Object) Str(name string) string { return o.Field(name).Str() }

// Int returns an integer field.
func (o *Object) Int(name string) (int64, error) {
	n, err := o.Field(name).Int64()
	if err != nil {
		return 0, fmt.Errorf("ova: %s %s field %s: %v", o.Class, o.ID, name, err)
	}
	return n, nil
}

// Bool returns a boolean field.
func (o *Object) Bool(name string) (bool, error) {
	b, err := o.Field(name).Bool()
	if err != nil {
		return false, fmt.Errorf("ova: %s %s field %s: %v", o.Class, o.ID, name, err)
	}
	return b, nil
}

// IsExport reports whether doc looks like an xapi ova.xml: its root element
// is <value>. It reads only up to the root's start tag; ParseExport checks
// the rest.
func IsExport(doc []byte) bool { return rootTag(doc) == "value" }

// ParseExport reads an xapi ova.xml.
func ParseExport(doc []byte) (*Export, error) {
	root, err := ParseValue(doc)
	if err != nil {
		return nil, err
	}
	e := &Export{Root: root}
	if root.Kind != Struct {
		return nil, errors.New("ova: ova.xml is not an XML-RPC struct")
	}
	if v := root.Field("version"); v == nil || v.Kind != Struct {
		return nil, errors.New("ova: ova.xml has no version struct")
	}
	objs := root.Field("objects")
	if objs == nil || objs.Kind != Array {
		return nil, errors.New("ova: ova.xml has no objects array")
	}
	e.byID = make(map[string]*Object, len(objs.Items))
	for i, it := range objs.Items {
		o := &Object{Class: it.Field("class").Str(), ID: it.Field("id").Str(), Snapshot: it.Field("snapshot")}
		if o.Class == "" || o.ID == "" || o.Snapshot == nil || o.Snapshot.Kind != Struct {
			return nil, fmt.Errorf("ova: object %d lacks a class, an id or a snapshot struct", i)
		}
		if e.byID[o.ID] != nil {
			return nil, fmt.Errorf("ova: two objects have id %q", o.ID)
		}
		e.byID[o.ID] = o
		e.Objects = append(e.Objects, o)
	}
	return e, nil
}

// SetVirtualSize sets the virtual_size of the VDI with id. The document's
// bytes are what Marshal then writes.
func (e *Export) SetVirtualSize(id string, size int64) {
	if o := e.Object(id); o != nil {
		o.Snapshot.Set("virtual_size", NewInt(size))
	}
}

// Marshal writes the document as xapi does.
func (e *Export) Marshal() []byte { return e.Root.Marshal() }

// ExportVersion returns export_vsn; a missing one reads as 0, as in xapi.
func (e *Export) ExportVersion() int64 {
	v := e.Root.Field("version").Field("export_vsn")
	if v == nil {
		return 0
	}
	n, err := v.Int64()
	if err != nil {
		return -1
	}
	return n
}

// Object returns the object with id, or nil. It is a map lookup, so that
// resolving every reference of a document costs time linear in its size;
// an Export whose Objects were changed after ParseExport is searched.
func (e *Export) Object(id string) *Object {
	if len(e.byID) == len(e.Objects) {
		if o := e.byID[id]; o == nil || o.ID == id {
			return o
		}
	}
	for _, o := range e.Objects {
		if o.ID == id {
			return o
		}
	}
	return nil
}

// VMObject returns the exported VM: the first VM that is neither a
// snapshot nor a template, else the first VM.
func (e *Export) VMObject() (*Object, error) {
	var first *Object
	for _, o := range e.Objects {
		if o.Class != "VM" {
			continue
		}
		if first == nil {
			first = o
		}
		snap, _ := o.Bool("is_a_snapshot")
		tmpl, _ := o.Bool("is_a_template")
		ctrl, _ := o.Bool("is_control_domain")
		if !snap && !tmpl && !ctrl {
			return o, nil
		}
	}
	if first == nil {
		return nil, errors.New("ova: ova.xml holds no VM object")
	}
	return first, nil
}

// ExportDisk is a disk of an exported VM whose blocks the archive carries.
type ExportDisk struct {
	VDI        *Object
	VBD        *Object // nil for a suspend image
	Size       int64   // VDI virtual_size
	Device     string  // VBD device, or "xvd" + letter of userdevice
	Userdevice string
	Bootable   bool
	ReadOnly   bool
}

// Disks returns the disks of vm whose data an archive carries, as xapi
// decides (Import.non_cdrom_vdis): the VDIs of its non-CD, non-empty VBDs
// that are in the document and not in an ISO SR, plus its suspend VDI.
func (e *Export) Disks(vm *Object) ([]ExportDisk, error) {
	// Count first: a document may hold a hundred thousand VBDs.
	vbds := 0
	for _, o := range e.Objects {
		if o.Class == "VBD" && o.Str("VM") == vm.ID {
			vbds++
		}
	}
	if vbds > MaxDisks {
		return nil, fmt.Errorf("ova: VM %s has %d VBDs, more than the %d allowed", vm.ID, vbds, MaxDisks)
	}
	var disks []ExportDisk
	seen := map[string]bool{}
	for _, o := range e.Objects {
		if o.Class != "VBD" {
			continue
		}
		vbd := o.VBD()
		if vbd.VM != vm.ID || vbd.IsCD() || vbd.Empty {
			continue
		}
		vdi := e.Object(vbd.VDI)
		if vdi == nil || vdi.Class != "VDI" || seen[vdi.ID] {
			continue
		}
		rec, err := vdi.VDI()
		if err != nil {
			return nil, err
		}
		if sr := e.Object(rec.SR); sr != nil && sr.SR().ContentType == "iso" {
			continue
		}
		if rec.VirtualSize < 0 {
			return nil, fmt.Errorf("ova: VDI %s has negative virtual_size %d", vdi.ID, rec.VirtualSize)
		}
		d := ExportDisk{VDI: vdi, VBD: o, Size: rec.VirtualSize, Userdevice: vbd.Userdevice, Bootable: vbd.Bootable,
			ReadOnly: strings.EqualFold(vbd.Mode, "RO"), Device: vbd.Device}
		if d.Device == "" {
			d.Device = deviceName(d.Userdevice)
		}
		seen[vdi.ID] = true
		disks = append(disks, d)
	}
	if ref := vm.Str("suspend_VDI"); ref != "" && ref != NullRef {
		if vdi := e.Object(ref); vdi != nil && vdi.Class == "VDI" && !seen[vdi.ID] {
			size, err := vdi.Int("virtual_size")
			if err != nil {
				return nil, err
			}
			disks = append(disks, ExportDisk{VDI: vdi, Size: size, Device: "suspend"})
		}
	}
	slices.SortFunc(disks, func(a, b ExportDisk) int { return strings.Compare(a.VDI.ID, b.VDI.ID) })
	// Devices name image files: each must be a plain name, and unique.
	used := map[string]bool{}
	for i := range disks {
		if d := disks[i].Device; !plainName(d) || used[d] {
			disks[i].Device = fmt.Sprintf("disk%d", i)
		}
		used[disks[i].Device] = true
	}
	return disks, nil
}

// plainName reports whether s can name a file on its own.
func plainName(s string) bool {
	return s != "" && s != "." && s != ".." && len(s) <= 200 && !strings.ContainsAny(s, "/\\\x00")
}

// deviceName turns a userdevice number into a Xen device name: 0 → xvda.
func deviceName(userdevice string) string {
	var n int
	if _, err := fmt.Sscanf(userdevice, "%d", &n); err != nil || n < 0 || n > 25 {
		return "disk" + userdevice
	}
	return "xvd" + string(rune('a'+n))
}

// VM returns the generation-neutral view of the exported VM, with its
// firmware (HVM_boot_params:firmware of an HVM VM, "" for PV or when
// unset) and its VIFs in device order.
func (e *Export) VM() (VM, error) {
	o, err := e.VMObject()
	if err != nil {
		return VM{}, err
	}
	vm := VM{
		Label:         o.Str("name_label"),
		Description:   o.Str("name_description"),
		KernelCmdline: o.Str("PV_args"),
		HVM:           o.Str("HVM_boot_policy") != "" || strings.EqualFold(o.Str("domain_type"), "hvm"),
	}
	if vm.Memory, err = o.Int("memory_static_max"); err != nil {
		return vm, err
	}
	vcpus, err := o.Int("VCPUs_max")
	if err != nil {
		return vm, err
	}
	vm.VCPUs = int(vcpus)
	disks, err := e.Disks(o)
	if err != nil {
		return vm, err
	}
	for _, d := range disks {
		if d.VBD == nil {
			continue
		}
		fn := "user"
		if d.Bootable {
			fn = "root"
		}
		vm.VBDs = append(vm.VBDs, VBD{Device: d.Device, Function: fn, ReadOnly: d.ReadOnly, VDI: d.VDI.ID})
	}
	if vm.HVM {
		// As the record says it: a host reads exactly "bios" and "uefi"
		// and refuses to start the VM with anything else
		// (xapi_xenops.ml:255-268).
		vm.Firmware = o.Field("HVM_boot_params").Field("firmware").Str()
	}
	vm.VIFs = e.vifs(o)
	return vm, nil
}

// vifs reads the VIF objects of vm in order of device number (devices
// that are not numbers after, by name). A VIF whose network object is not
// in the document has Network ""; an MTU that is not a number reads as 0.
// Nothing here fails: the interfaces are information, and an archive
// whose disks are sound stays readable.
func (e *Export) vifs(vm *Object) []VIF {
	var vifs []VIF
	for _, o := range e.Objects {
		if o.Class != "VIF" || o.Str("VM") != vm.ID {
			continue
		}
		v := VIF{Device: o.Str("device"), MAC: o.Str("MAC")}
		if n := e.Object(o.Str("network")); n != nil && n.Class == "network" {
			v.Network = n.Str("name_label")
		}
		v.MTU, _ = OCamlInt64(o.Str("MTU"))
		vifs = append(vifs, v)
	}
	slices.SortStableFunc(vifs, func(a, b VIF) int {
		m, errA := strconv.ParseUint(a.Device, 10, 64)
		n, errB := strconv.ParseUint(b.Device, 10, 64)
		switch {
		case errA == nil && errB == nil:
			return cmp.Compare(m, n)
		case errA == nil:
			return -1
		case errB == nil:
			return 1
		}
		return strings.Compare(a.Device, b.Device)
	})
	return vifs
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

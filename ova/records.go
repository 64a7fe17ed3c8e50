package ova

import "strings"

// Typed views of the records an xapi ova.xml carries. They read the fields
// xva uses; everything else stays in the Object's snapshot, untouched.

// VBDRecord is a view of a VBD object.
type VBDRecord struct {
	VM, VDI, Device, Userdevice, Mode, Type string
	Bootable, Empty                         bool
}

// VBD reads o as a VBD.
func (o *Object) VBD() VBDRecord {
	boot, _ := o.Bool("bootable")
	empty, _ := o.Bool("empty")
	return VBDRecord{VM: o.Str("VM"), VDI: o.Str("VDI"), Device: o.Str("device"), Userdevice: o.Str("userdevice"),
		Mode: o.Str("mode"), Type: o.Str("type"), Bootable: boot, Empty: empty}
}

// IsCD reports whether the VBD is a CD drive, which carries no data.
func (r VBDRecord) IsCD() bool { return strings.EqualFold(r.Type, "CD") }

// VDIRecord is a view of a VDI object.
type VDIRecord struct {
	NameLabel, SR, Type string
	VirtualSize         int64
	ReadOnly            bool
}

// VDI reads o as a VDI.
func (o *Object) VDI() (VDIRecord, error) {
	size, err := o.Int("virtual_size")
	ro, _ := o.Bool("read_only")
	return VDIRecord{NameLabel: o.Str("name_label"), SR: o.Str("SR"), Type: o.Str("type"), VirtualSize: size, ReadOnly: ro}, err
}

// SRRecord is a view of an SR object.
type SRRecord struct{ NameLabel, Type, ContentType string }

// SR reads o as an SR.
func (o *Object) SR() SRRecord {
	return SRRecord{NameLabel: o.Str("name_label"), Type: o.Str("type"), ContentType: o.Str("content_type")}
}

// VIFRecord is a view of a VIF object.
type VIFRecord struct{ VM, Network, Device, MAC string }

// VIF reads o as a VIF.
func (o *Object) VIF() VIFRecord {
	return VIFRecord{VM: o.Str("VM"), Network: o.Str("network"), Device: o.Str("device"), MAC: o.Str("MAC")}
}

// NetworkRecord is a view of a network object.
type NetworkRecord struct{ NameLabel, Bridge string }

// Network reads o as a network.
func (o *Object) Network() NetworkRecord {
	return NetworkRecord{NameLabel: o.Str("name_label"), Bridge: o.Str("bridge")}
}

// Interface is a network interface of the exported VM.
type Interface struct {
	Device, MAC string
	Network     NetworkRecord // empty if the network is not in the document
}

// Interfaces lists vm's VIFs in device order.
func (e *Export) Interfaces(vm *Object) []Interface {
	var ifs []Interface
	for _, o := range e.Objects {
		if o.Class != "VIF" {
			continue
		}
		v := o.VIF()
		if v.VM != vm.ID {
			continue
		}
		i := Interface{Device: v.Device, MAC: v.MAC}
		if n := e.Object(v.Network); n != nil && n.Class == "network" {
			i.Network = n.Network()
		}
		ifs = append(ifs, i)
	}
	return ifs
}

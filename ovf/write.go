package ovf

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"unicode/utf8"
)

// Namespaces Marshal writes. The 2.0 storage and Ethernet namespaces are
// the DMTF ones, without the ".xsd" VirtualBox adds.
const (
	nsRASD   = "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData"
	nsVSSD   = "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData"
	nsSASD   = "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_StorageAllocationSettingData"
	nsEPASD  = "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_EthernetPortAllocationSettingData"
	nsXSI    = "http://www.w3.org/2001/XMLSchema-instance"
	nsVMW    = "http://www.vmware.com/schema/ovf"
	nsXenOVF = "http://schemas.citrix.com/ovf/envelope/1"
)

// DefaultSystemType is the vssd:VirtualSystemType Marshal writes when the
// System has none: a VMware hardware version every vSphere since 5.5
// imports.
const DefaultSystemType = "vmx-10"

// WriteOptions are the choices of Marshal.
type WriteOptions struct {
	Version string // "1.0" (the default) or "2.0"
}

// Marshal writes the descriptor as an OVF envelope of the version asked
// for, in UTF-8, in the element order of DSP8023, with RASD children in
// the alphabetical order the CIM schemas require. The output depends only
// on d and o.
//
// It fills in what a reader needs and d leaves open, so that Parse of the
// output equals d with these filled in: System.ID "vm" when empty, Name
// the ID when empty, OSType 1 (Other) when -1, SystemType
// DefaultSystemType when empty, NIC Model "E1000" when empty, a disk's
// Controller "scsi" when "" or "other", and an Address for each disk that
// has none (SCSI units 0 to 15 but 7). A disk goes on the previous disk's
// controller when it has the same bus and a higher address, else on a new
// one, so that the disks read back in the same order; CD drives go on IDE
// controllers of their own. A MAC is written in its normal form
// (lower-case, colons). Memory is written in MiB when it is a whole
// number of them, else in bytes. Version and Dropped are not written.
//
// A descriptor whose document would exceed MaxDescriptorSize is refused:
// the writer is more verbose than most inputs (controllers, ElementNames,
// escaped text), so even a descriptor Parse accepted can be too big.
func (d *Descriptor) Marshal(o WriteOptions) ([]byte, error) {
	v := o.Version
	if v == "" {
		v = "1.0"
	}
	if v != "1.0" && v != "2.0" {
		return nil, fmt.Errorf("ovf: cannot write OVF version %q (only 1.0 and 2.0)", o.Version)
	}
	if err := d.check(); err != nil {
		return nil, err
	}
	w := &xw{}
	w.b.WriteString(xml.Header)
	w.open("ovf:Envelope", d.namespaces(v)...)
	d.writeReferences(w)
	d.writeDisks(w)
	d.writeNetworks(w)
	d.System.write(w)
	w.close("ovf:Envelope")
	if w.b.Len() > MaxDescriptorSize {
		// Parse and callers refuse such a document; do not write one.
		return nil, fmt.Errorf("%w: %d bytes, more than the %d allowed", errTooLarge, w.b.Len(), MaxDescriptorSize)
	}
	return w.b.Bytes(), nil
}

var errTooLarge = errors.New("ovf: the descriptor would be too large")

// namespaces are the Envelope's attributes: only the prefixes used.
func (d *Descriptor) namespaces(v string) []string {
	ovf := nsOVF1
	if v == "2.0" {
		ovf = nsOVF2
	}
	a := []string{"xmlns:ovf", ovf, "xmlns:rasd", nsRASD, "xmlns:vssd", nsVSSD, "xmlns:xsi", nsXSI}
	if v == "2.0" {
		a = append(a, "xmlns:sasd", nsSASD, "xmlns:epasd", nsEPASD)
	}
	if d.System.Firmware != "" {
		a = append(a, "xmlns:vmw", nsVMW)
	}
	if d.System.Xen != nil {
		a = append(a, "xmlns:xenovf", nsXenOVF)
	}
	return append(a, "ovf:version", v)
}

// check refuses what Parse would refuse or could not read back the same.
func (d *Descriptor) check() error {
	files := map[string]bool{}
	for _, f := range d.Files {
		if err := f.check(files); err != nil {
			return err
		}
		files[f.ID] = true
	}
	disks := map[string]bool{}
	for _, k := range d.Disks {
		if err := k.check(files, disks); err != nil {
			return err
		}
		disks[k.ID] = true
	}
	for _, n := range d.Networks {
		if n.Name == "" {
			return errors.New("ovf: a Network has no name")
		}
	}
	if err := d.System.check(disks); err != nil {
		return err
	}
	return d.checkText()
}

func (f File) check(seen map[string]bool) error {
	switch {
	case f.ID == "":
		return fmt.Errorf("ovf: File %q has no ID", f.Href)
	case seen[f.ID]:
		return fmt.Errorf("ovf: two Files have ID %q", f.ID)
	case f.Size < -1 || f.ChunkSize < 0:
		return fmt.Errorf("ovf: File %q: negative size or chunk size", f.ID)
	case f.Compression != "" && f.Compression != "gzip":
		return fmt.Errorf("ovf: File %q: compression %q is not supported (only gzip)", f.ID, f.Compression)
	}
	if h, err := cleanHref(f.Href); err != nil || h != f.Href {
		return fmt.Errorf("ovf: File %q: href %q is not a plain relative name inside the package", f.ID, f.Href)
	}
	return nil
}

func (k Disk) check(files, seen map[string]bool) error {
	switch {
	case k.ID == "":
		return errors.New("ovf: a Disk has no ID")
	case seen[k.ID]:
		return fmt.Errorf("ovf: two Disks have ID %q", k.ID)
	case k.Capacity < 0 || k.Capacity > MaxCapacity:
		return fmt.Errorf("ovf: Disk %q: capacity %d is not from 0 to %d bytes", k.ID, k.Capacity, int64(MaxCapacity))
	case k.PopulatedSize < -1:
		return fmt.Errorf("ovf: Disk %q: negative populated size", k.ID)
	case k.FileRef != "" && !files[k.FileRef]:
		return fmt.Errorf("ovf: Disk %q: file %q is not among the Files", k.ID, k.FileRef)
	}
	return nil
}

func (s *System) check(disks map[string]bool) error {
	switch {
	case s.VCPUs < 0 || s.VCPUs > MaxVCPUs:
		return fmt.Errorf("ovf: %d vCPUs is not from 0 to %d", s.VCPUs, MaxVCPUs)
	case s.Memory < 0 || s.Memory > MaxMemory:
		return fmt.Errorf("ovf: memory of %d bytes is not from 0 to %d", s.Memory, int64(MaxMemory))
	case s.OSType < -1 || s.OSType > 32767:
		return fmt.Errorf("ovf: OSType %d is not from 0 to 32767", s.OSType)
	case s.Firmware != "" && s.Firmware != "bios" && s.Firmware != "uefi":
		return fmt.Errorf("ovf: firmware %q is not bios or uefi", s.Firmware)
	case s.CDs < 0 || s.CDs > maxEntries:
		return fmt.Errorf("ovf: %d CD drives is not from 0 to %d", s.CDs, maxEntries)
	case len(s.Disks)+len(s.NICs) > maxEntries:
		return fmt.Errorf("ovf: more than %d devices", maxEntries)
	}
	for i, n := range s.NICs {
		if n.MAC != "" && normalMAC(n.MAC) == "" {
			return fmt.Errorf("ovf: network adapter %d: %q is not a MAC address", i+1, n.MAC)
		}
	}
	for _, r := range s.Disks {
		if !disks[r.DiskID] {
			return fmt.Errorf("ovf: the system's disk %q is not among the Disks", r.DiskID)
		}
		if _, ok := buses[r.Controller]; !ok && r.Controller != "" && r.Controller != "other" {
			return fmt.Errorf("ovf: disk %q: controller %q is not ide, scsi, sata, nvme or other", r.DiskID, r.Controller)
		}
		if r.Address < -1 || r.Address > 1<<20 || r.Device < -1 || r.Device > 1<<20 {
			return fmt.Errorf("ovf: disk %q: address %d or device %d out of range", r.DiskID, r.Address, r.Device)
		}
	}
	return nil
}

// checkText refuses text XML cannot carry (invalid UTF-8, most control
// characters), which would not read back.
func (d *Descriptor) checkText() error {
	s := &d.System
	texts := []string{s.ID, s.Name, s.Description, s.OSDescription, s.SystemType}
	for _, f := range d.Files {
		texts = append(texts, f.ID, f.Href)
	}
	for _, k := range d.Disks {
		texts = append(texts, k.ID, k.FileRef, k.Format)
	}
	for _, n := range d.Networks {
		texts = append(texts, n.Name, n.Description)
	}
	for _, n := range s.NICs {
		texts = append(texts, n.Network, n.MAC, n.Model)
	}
	for k, v := range s.Xen {
		texts = append(texts, k, v)
	}
	for _, t := range texts {
		if !xmlText(t) {
			return fmt.Errorf("ovf: %q holds a character XML cannot carry", t)
		}
	}
	return nil
}

func xmlText(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		ok := r == 0x09 || r == 0x0A || r == 0x0D || r >= 0x20 && r <= 0xD7FF ||
			r >= 0xE000 && r <= 0xFFFD || r >= 0x10000 && r <= 0x10FFFF
		if !ok {
			return false
		}
	}
	return true
}

func (d *Descriptor) writeReferences(w *xw) {
	w.open("ovf:References")
	for _, f := range d.Files {
		a := []string{"ovf:href", f.Href, "ovf:id", f.ID}
		if f.Size >= 0 {
			a = append(a, "ovf:size", itoa(f.Size))
		}
		if f.Compression != "" {
			a = append(a, "ovf:compression", f.Compression)
		}
		if f.ChunkSize > 0 {
			a = append(a, "ovf:chunkSize", itoa(f.ChunkSize))
		}
		w.empty("ovf:File", a...)
	}
	w.close("ovf:References")
}

func (d *Descriptor) writeDisks(w *xw) {
	if len(d.Disks) == 0 {
		return
	}
	w.open("ovf:DiskSection")
	w.leaf("ovf:Info", "Virtual disk information")
	for _, k := range d.Disks {
		a := []string{"ovf:capacity", itoa(k.Capacity), "ovf:capacityAllocationUnits", "byte", "ovf:diskId", k.ID}
		if k.FileRef != "" {
			a = append(a, "ovf:fileRef", k.FileRef)
		}
		if k.Format != "" {
			a = append(a, "ovf:format", k.Format)
		}
		if k.PopulatedSize >= 0 {
			a = append(a, "ovf:populatedSize", itoa(k.PopulatedSize))
		}
		w.empty("ovf:Disk", a...)
	}
	w.close("ovf:DiskSection")
}

func (d *Descriptor) writeNetworks(w *xw) {
	if len(d.Networks) == 0 {
		return
	}
	w.open("ovf:NetworkSection")
	w.leaf("ovf:Info", "The list of logical networks")
	for _, n := range d.Networks {
		if n.Description == "" {
			w.empty("ovf:Network", "ovf:name", n.Name)
			continue
		}
		w.open("ovf:Network", "ovf:name", n.Name)
		w.leaf("ovf:Description", n.Description)
		w.close("ovf:Network")
	}
	w.close("ovf:NetworkSection")
}

func (s *System) write(w *xw) {
	id := s.ID
	if id == "" {
		id = "vm"
	}
	name := s.Name
	if name == "" {
		name = id
	}
	w.open("ovf:VirtualSystem", "ovf:id", id)
	w.leaf("ovf:Info", "A virtual machine")
	w.leaf("ovf:Name", name)
	if s.Description != "" {
		w.open("ovf:AnnotationSection")
		w.leaf("ovf:Info", "A human-readable annotation")
		w.leaf("ovf:Annotation", s.Description)
		w.close("ovf:AnnotationSection")
	}
	os := s.OSType
	if os < 0 {
		os = 1 // CIM "Other"
	}
	w.open("ovf:OperatingSystemSection", "ovf:id", strconv.Itoa(os))
	w.leaf("ovf:Info", "The kind of installed guest operating system")
	if s.OSDescription != "" {
		w.leaf("ovf:Description", s.OSDescription)
	}
	w.close("ovf:OperatingSystemSection")
	s.writeHardware(w, name)
	w.close("ovf:VirtualSystem")
}

func (s *System) writeHardware(w *xw, name string) {
	w.open("ovf:VirtualHardwareSection")
	w.leaf("ovf:Info", "Virtual hardware requirements")
	w.open("ovf:System")
	w.leaf("vssd:ElementName", "Virtual Hardware Family")
	w.leaf("vssd:InstanceID", "0")
	w.leaf("vssd:VirtualSystemIdentifier", name)
	w.leaf("vssd:VirtualSystemType", firstOf(s.SystemType, DefaultSystemType))
	w.close("ovf:System")
	for _, it := range s.items() {
		it.write(w)
	}
	s.writeXen(w)
	switch s.Firmware {
	case "uefi":
		w.empty("vmw:Config", "ovf:required", "false", "vmw:key", "firmware", "vmw:value", "efi")
	case "bios":
		w.empty("vmw:Config", "ovf:required", "false", "vmw:key", "firmware", "vmw:value", "bios")
	}
	w.close("ovf:VirtualHardwareSection")
}

// writeXen writes XenCenter's VirtualSystemOtherConfigurationData, in
// the order of their names so that the output is deterministic.
func (s *System) writeXen(w *xw) {
	names := make([]string, 0, len(s.Xen))
	for k := range s.Xen {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		w.open("xenovf:VirtualSystemOtherConfigurationData", "Name", k)
		w.leaf("xenovf:Info", "XenServer virtual machine setting")
		w.leaf("xenovf:Value", s.Xen[k])
		w.close("xenovf:VirtualSystemOtherConfigurationData")
	}
}

// rasd is an Item: its children are written in the alphabetical order
// of the CIM schema, empty ones left out.
type rasd struct {
	address, addressOnParent, allocationUnits, automaticAllocation string
	connection, description, elementName, hostResource, instanceID string
	parent, resourceSubType, resourceType, virtualQuantity         string
	optional                                                       bool // ovf:required="false"
}

func (r rasd) write(w *xw) {
	if r.optional {
		w.open("ovf:Item", "ovf:required", "false")
	} else {
		w.open("ovf:Item")
	}
	for _, f := range [][2]string{
		{"Address", r.address}, {"AddressOnParent", r.addressOnParent},
		{"AllocationUnits", r.allocationUnits}, {"AutomaticAllocation", r.automaticAllocation},
		{"Connection", r.connection}, {"Description", r.description},
		{"ElementName", r.elementName}, {"HostResource", r.hostResource},
		{"InstanceID", r.instanceID}, {"Parent", r.parent},
		{"ResourceSubType", r.resourceSubType}, {"ResourceType", r.resourceType},
		{"VirtualQuantity", r.virtualQuantity},
	} {
		if f[1] != "" || f[0] == "ElementName" || f[0] == "InstanceID" {
			w.leaf("rasd:"+f[0], f[1])
		}
	}
	w.close("ovf:Item")
}

// bus is how Marshal writes a controller of each kind.
type bus struct {
	resourceType, subType, name string
	units                       int // addresses 0 to units-1
}

var buses = map[string]bus{
	"ide":  {"5", "PIIX4", "IDE controller", 2},
	"scsi": {"6", "lsilogic", "SCSI controller", 16},
	"sata": {"20", "AHCI", "SATA controller", 30},
	"nvme": {"20", "vmware.nvme.controller", "NVMe controller", 15},
}

// items lays out the hardware: CPU, memory, controllers, disks, CD
// drives, network adapters, with InstanceIDs counted from 1 in that
// order.
func (s *System) items() []rasd {
	l := &layout{perKind: map[string]int{}}
	if s.VCPUs > 0 {
		l.head = append(l.head, rasd{allocationUnits: "hertz * 10^6", description: "Number of virtual CPUs",
			elementName: strconv.Itoa(s.VCPUs) + " virtual CPU(s)", resourceType: "3",
			virtualQuantity: strconv.Itoa(s.VCPUs)})
	}
	if s.Memory > 0 {
		units, q := "byte * 2^20", s.Memory>>20
		if s.Memory&(1<<20-1) != 0 {
			units, q = "byte", s.Memory // exact rather than rounded: it reads back the same
		}
		l.head = append(l.head, rasd{allocationUnits: units, description: "Memory Size",
			elementName: "Memory", resourceType: "4", virtualQuantity: itoa(q)})
	}
	l.disks(s.Disks)
	l.cds(s.CDs)
	for i, n := range s.NICs {
		l.device(rasd{address: normalMAC(n.MAC), automaticAllocation: "true", connection: n.Network,
			elementName:     "Network adapter " + strconv.Itoa(i+1),
			resourceSubType: firstOf(n.Model, "E1000"), resourceType: "10"}, -1)
	}
	return l.number()
}

// layout collects the items; controllers are made as devices need them
// and listed before the devices.
type layout struct {
	head, ctrls, devs []rasd
	parents           []int // each device's controller, an index into ctrls, or -1
	perKind           map[string]int
}

func (l *layout) controller(kind string) int {
	b, n := buses[kind], strconv.Itoa(l.perKind[kind])
	l.perKind[kind]++
	l.ctrls = append(l.ctrls, rasd{address: n, elementName: b.name + " " + n,
		resourceSubType: b.subType, resourceType: b.resourceType})
	return len(l.ctrls) - 1
}

func (l *layout) device(r rasd, parent int) {
	l.devs, l.parents = append(l.devs, r), append(l.parents, parent)
}

// disks puts each disk on the previous disk's controller when it has the
// same bus and a higher address (given, or the next free unit), else on
// a new controller: so Parse, which orders disks by controller and
// address, reads them back in this order.
func (l *layout) disks(ds []DiskRef) {
	ctrl, prevKind, prevAddr := -1, "", -1
	for i, r := range ds {
		kind := r.Controller
		if _, ok := buses[kind]; !ok {
			kind = "scsi"
		}
		addr := r.Address
		if addr < 0 {
			addr = nextUnit(kind, prevKindAddr(kind, prevKind, prevAddr))
		}
		if kind != prevKind || addr <= prevAddr || r.Address < 0 && addr >= buses[kind].units {
			ctrl = l.controller(kind)
			if r.Address < 0 {
				addr = nextUnit(kind, -1)
			}
		}
		prevKind, prevAddr = kind, addr
		d := rasd{addressOnParent: strconv.Itoa(addr), elementName: "Hard disk " + strconv.Itoa(i+1),
			hostResource: "ovf:/disk/" + r.DiskID, resourceType: "17"}
		if r.Device >= 0 {
			d.connection = "device=" + strconv.Itoa(r.Device) // XenCenter's userdevice
		}
		l.device(d, ctrl)
	}
}

// cds puts the CD drives two to an IDE controller of their own.
func (l *layout) cds(n int) {
	ctrl := -1
	for i := 0; i < n; i++ {
		if i%2 == 0 {
			ctrl = l.controller("ide")
		}
		l.device(rasd{addressOnParent: strconv.Itoa(i % 2), automaticAllocation: "false",
			elementName: "CD/DVD drive " + strconv.Itoa(i+1), resourceType: "15", optional: true}, ctrl)
	}
}

// number gives the items their InstanceIDs and the devices their Parent.
func (l *layout) number() []rasd {
	all := slices.Concat(l.head, l.ctrls, l.devs)
	for i := range all {
		all[i].instanceID = strconv.Itoa(i + 1)
	}
	for i, p := range l.parents {
		if p >= 0 {
			all[len(l.head)+len(l.ctrls)+i].parent = all[len(l.head)+p].instanceID
		}
	}
	return all
}

// prevKindAddr is the last address used on the current controller when
// it is of this kind, else -1 (a new controller starts at its first unit).
func prevKindAddr(kind, prevKind string, prevAddr int) int {
	if kind == prevKind {
		return prevAddr
	}
	return -1
}

// nextUnit is the first unit after prev on a controller of this kind;
// SCSI skips 7, the controller's own ID.
func nextUnit(kind string, prev int) int {
	u := prev + 1
	if kind == "scsi" && u == 7 {
		u++
	}
	return u
}

func itoa(i int64) string { return strconv.FormatInt(i, 10) }

// xw writes indented XML; names and attribute names are ours, values
// are escaped.
type xw struct {
	b     bytes.Buffer
	depth int
}

func (w *xw) start(name string, attrs []string) {
	for i := 0; i < w.depth; i++ {
		w.b.WriteString("  ")
	}
	w.b.WriteString("<" + name)
	for i := 0; i+1 < len(attrs); i += 2 {
		w.b.WriteString(" " + attrs[i] + `="`)
		xml.EscapeText(&w.b, []byte(attrs[i+1])) // never fails on a bytes.Buffer
		w.b.WriteString(`"`)
	}
}

func (w *xw) open(name string, attrs ...string) {
	w.start(name, attrs)
	w.b.WriteString(">\n")
	w.depth++
}

func (w *xw) close(name string) {
	w.depth--
	for i := 0; i < w.depth; i++ {
		w.b.WriteString("  ")
	}
	w.b.WriteString("</" + name + ">\n")
}

func (w *xw) empty(name string, attrs ...string) {
	w.start(name, attrs)
	w.b.WriteString("/>\n")
}

func (w *xw) leaf(name, text string, attrs ...string) {
	w.start(name, attrs)
	w.b.WriteString(">")
	xml.EscapeText(&w.b, []byte(text))
	w.b.WriteString("</" + name + ">\n")
}

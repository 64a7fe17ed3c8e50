package ova

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/beevik/etree"
)

// Legacy VDI types. Reading accepts the misspelling that some writers used;
// writing always uses TypeGzippedChunks.
const (
	TypeGzippedChunks    = "dir-gzipped-chunks"
	typeGzippedChunksAlt = "dir-gzippedchunks"
)

// MaxDisks bounds the disks of a VM (its VBDs) and of an archive (its
// VDIs), checked before they are looked at: xapi allows at most 255 VBDs
// per VM.
const MaxDisks = 256

// maxLegacyVMs bounds the <vm> elements of a legacy appliance. xapi wrote
// and imports one; a few more cost nothing.
const maxLegacyVMs = 16

// Varieties xapi accepts for a legacy VDI (case-insensitive).
var varieties = []string{"system", "ephemeral", "user", "suspend", "crashdump", "metadata"}

// Appliance is a legacy (version 0.1) ova.xml: one or more VMs and the
// disks their VBDs refer to.
type Appliance struct {
	VMs  []VM
	VDIs []VDI
}

// VM is a virtual machine as both generations describe it.
type VM struct {
	Label          string
	Description    string
	Memory         int64 // bytes
	VCPUs          int
	HVM            bool
	KernelCmdline  string
	Distrib        string // legacy config/@distrib, optional
	DistribVersion string // legacy config/@distrib_version, optional
	VBDs           []VBD
	// Firmware is what an HVM VM boots with: "" (not stated: BIOS, the
	// default), FirmwareBIOS or FirmwareUEFI. Only the xapi generation
	// carries it, as HVM_boot_params:firmware.
	Firmware string
	// VIFs are the VM's network interfaces. Only the xapi generation
	// carries them.
	VIFs []VIF
}

// Firmware values (xen-api ocaml/xapi/xapi_xenops.ml:255-268 reads
// HVM_boot_params:firmware as exactly these; absent is BIOS).
const (
	FirmwareBIOS = "bios"
	FirmwareUEFI = "uefi"
)

// VIF is a network interface of a VM.
type VIF struct {
	Device  string // "0", "1", …: an unsigned decimal, unique in the VM
	MAC     string // "aa:bb:cc:dd:ee:ff"; "" lets the host make one from the VM's mac_seed
	Network string // the network's name_label
	MTU     int64  // 0 is the default, 1500
}

// LegacyDrops lists, as plain phrases a caller can print, what of vm a
// legacy (0.1) ova.xml cannot carry and MarshalLegacy therefore leaves
// out: "2 network interfaces", "UEFI firmware". It is empty when the
// legacy document says everything.
func (vm VM) LegacyDrops() []string {
	var drops []string
	switch n := len(vm.VIFs); n {
	case 0:
	case 1:
		drops = append(drops, "1 network interface")
	default:
		drops = append(drops, strconv.Itoa(n)+" network interfaces")
	}
	switch f := vm.Firmware; {
	case f == FirmwareUEFI:
		drops = append(drops, "UEFI firmware")
	case f != "" && f != FirmwareBIOS:
		drops = append(drops, fmt.Sprintf("firmware %q", f))
	}
	return drops
}

// VBD attaches a VDI to a VM.
type VBD struct {
	Device   string // "sda", "xvda", "0"
	Function string // "root" marks the boot disk
	ReadOnly bool
	VDI      string // VDI.Name
}

// Bootable reports whether the VBD is the VM's boot disk.
func (b VBD) Bootable() bool { return strings.EqualFold(b.Function, "root") }

// VDI is a virtual disk.
type VDI struct {
	Name    string // key that VBD.VDI refers to
	Size    int64  // bytes
	Source  string // "file://sda": the directory holding its chunks
	Type    string
	Variety string
}

// SourceDir is the archive directory named by the VDI's file:// source. It
// is not checked for safety; callers that touch files must do that.
func (v VDI) SourceDir() (string, error) {
	dir, ok := strings.CutPrefix(v.Source, "file://")
	if !ok {
		return "", fmt.Errorf("ova: vdi %q: source %q is not a file:// URI", v.Name, v.Source)
	}
	return dir, nil
}

// IsLegacy reports whether doc looks like a legacy ova.xml: its root element
// is <appliance>. It reads only up to the root's start tag; ParseLegacy
// checks the rest.
func IsLegacy(doc []byte) bool { return rootTag(doc) == "appliance" }

// ParseLegacy reads a legacy ova.xml. It accepts what real files contain:
// an XML declaration or none, the misspelt type "dir-gzippedchunks", a
// missing variety (system for the boot disk, user otherwise), a missing
// <hacks>, vbd modes w, rw, r and ro, and whitespace around text.
func ParseLegacy(doc []byte) (*Appliance, error) {
	root, err := readDoc(doc)
	if err != nil {
		return nil, err
	}
	if root.Tag != "appliance" {
		return nil, errors.New("ova: legacy ova.xml has no <appliance> root element")
	}
	if v := root.SelectAttrValue("version", ""); v != "0.1" {
		return nil, fmt.Errorf("ova: unsupported legacy appliance version %q (want 0.1)", v)
	}
	// Count first: the cross references below cost a lookup each.
	vms, vdis := root.SelectElements("vm"), root.SelectElements("vdi")
	if len(vms) > maxLegacyVMs {
		return nil, fmt.Errorf("ova: legacy ova.xml has %d <vm> elements, more than the %d allowed", len(vms), maxLegacyVMs)
	}
	if len(vdis) > MaxDisks {
		return nil, fmt.Errorf("ova: legacy ova.xml has %d <vdi> elements, more than the %d allowed", len(vdis), MaxDisks)
	}
	for _, e := range vms {
		if n := len(e.SelectElements("vbd")); n > MaxDisks {
			return nil, fmt.Errorf("ova: a <vm> of the legacy ova.xml has %d <vbd> elements, more than the %d allowed", n, MaxDisks)
		}
	}
	a := &Appliance{}
	for _, e := range vms {
		vm, err := parseLegacyVM(e)
		if err != nil {
			return nil, err
		}
		a.VMs = append(a.VMs, vm)
	}
	if len(a.VMs) == 0 {
		return nil, errors.New("ova: legacy ova.xml has no <vm>")
	}
	boot := a.bootVDIs()
	for _, e := range vdis {
		vdi, err := parseLegacyVDI(e, boot)
		if err != nil {
			return nil, err
		}
		a.VDIs = append(a.VDIs, vdi)
	}
	return a, a.check()
}

func (a *Appliance) bootVDIs() map[string]bool {
	boot := map[string]bool{}
	for _, vm := range a.VMs {
		for _, b := range vm.VBDs {
			if b.Bootable() {
				boot[b.VDI] = true
			}
		}
	}
	return boot
}

// check verifies cross references: every VBD names a VDI, names and sources
// are unique.
func (a *Appliance) check() error {
	names := map[string]bool{}
	sources := map[string]bool{}
	for _, v := range a.VDIs {
		if names[v.Name] {
			return fmt.Errorf("ova: two vdis are named %q", v.Name)
		}
		if sources[v.Source] {
			return fmt.Errorf("ova: two vdis have source %q", v.Source)
		}
		names[v.Name], sources[v.Source] = true, true
	}
	for _, vm := range a.VMs {
		for _, b := range vm.VBDs {
			if !names[b.VDI] {
				return fmt.Errorf("ova: vbd %q refers to vdi %q, which is not defined", b.Device, b.VDI)
			}
		}
	}
	return nil
}

func parseLegacyVM(e *etree.Element) (VM, error) {
	var vm VM
	vm.Label = childText(e, "label")
	vm.Description = childText(e, "shortdesc")
	cfg := e.SelectElement("config")
	if cfg == nil {
		return vm, errors.New("ova: <vm> has no <config>")
	}
	var err error
	if vm.Memory, err = intAttr(cfg, "mem_set"); err != nil {
		return vm, err
	}
	vcpus, err := intAttr(cfg, "vcpus")
	if err != nil {
		return vm, err
	}
	if vcpus < 0 || vcpus > 1<<16 {
		return vm, fmt.Errorf("ova: config vcpus=%d is out of range", vcpus)
	}
	vm.VCPUs = int(vcpus)
	vm.Distrib = cfg.SelectAttrValue("distrib", "")
	vm.DistribVersion = cfg.SelectAttrValue("distrib_version", "")
	// xapi defaults is_hvm to true when the attribute is absent.
	vm.HVM = true
	if h := e.SelectElement("hacks"); h != nil {
		vm.HVM = strings.EqualFold(h.SelectAttrValue("is_hvm", "true"), "true")
		vm.KernelCmdline = h.SelectAttrValue("kernel_boot_cmdline", "")
	}
	for _, b := range e.SelectElements("vbd") {
		vbd, err := parseLegacyVBD(b)
		if err != nil {
			return vm, err
		}
		vm.VBDs = append(vm.VBDs, vbd)
	}
	return vm, nil
}

func parseLegacyVBD(e *etree.Element) (VBD, error) {
	var b VBD
	var err error
	if b.Device, err = reqAttr(e, "vbd", "device"); err != nil {
		return b, err
	}
	if b.Function, err = reqAttr(e, "vbd", "function"); err != nil {
		return b, err
	}
	if b.VDI, err = reqAttr(e, "vbd", "vdi"); err != nil {
		return b, err
	}
	mode, err := reqAttr(e, "vbd", "mode")
	if err != nil {
		return b, err
	}
	switch strings.ToLower(mode) {
	case "w", "rw":
	case "r", "ro":
		b.ReadOnly = true
	default:
		return b, fmt.Errorf("ova: vbd %q has mode %q (want w, rw, r or ro)", b.Device, mode)
	}
	return b, nil
}

func parseLegacyVDI(e *etree.Element, boot map[string]bool) (VDI, error) {
	var v VDI
	var err error
	if v.Name, err = reqAttr(e, "vdi", "name"); err != nil {
		return v, err
	}
	if v.Source, err = reqAttr(e, "vdi", "source"); err != nil {
		return v, err
	}
	if _, err := v.SourceDir(); err != nil {
		return v, err
	}
	if v.Size, err = intAttr(e, "size"); err != nil {
		return v, err
	}
	if v.Size < 0 {
		return v, fmt.Errorf("ova: vdi %q has negative size %d", v.Name, v.Size)
	}
	switch t := e.SelectAttrValue("type", TypeGzippedChunks); t {
	case TypeGzippedChunks, typeGzippedChunksAlt:
		v.Type = TypeGzippedChunks
	default:
		return v, fmt.Errorf("ova: vdi %q has type %q; only %s is supported", v.Name, t, TypeGzippedChunks)
	}
	v.Variety = strings.ToLower(e.SelectAttrValue("variety", ""))
	switch {
	case v.Variety == "" && boot[v.Name]:
		v.Variety = "system"
	case v.Variety == "":
		v.Variety = "user"
	case !validVariety(v.Variety):
		return v, fmt.Errorf("ova: vdi %q has variety %q (want one of %s)", v.Name, v.Variety, strings.Join(varieties, ", "))
	}
	return v, nil
}

func validVariety(s string) bool {
	for _, v := range varieties {
		if s == v {
			return true
		}
	}
	return false
}

func childText(e *etree.Element, tag string) string {
	c := e.SelectElement(tag)
	if c == nil {
		return ""
	}
	return strings.TrimSpace(c.Text())
}

func reqAttr(e *etree.Element, elem, name string) (string, error) {
	a := e.SelectAttr(name)
	if a == nil {
		return "", fmt.Errorf("ova: <%s> lacks the required attribute %q", elem, name)
	}
	return a.Value, nil
}

func intAttr(e *etree.Element, name string) (int64, error) {
	s, err := reqAttr(e, e.Tag, name)
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("ova: <%s %s=%q> is not an integer", e.Tag, name, s)
	}
	return n, nil
}

// SetSize sets the size of the vdi named name.
func (a *Appliance) SetSize(name string, size int64) {
	for i := range a.VDIs {
		if a.VDIs[i].Name == name {
			a.VDIs[i].Size = size
		}
	}
}

// MarshalLegacy writes the appliance as a legacy ova.xml that pre-2021 xapi
// imports: every vdi has a variety and type dir-gzipped-chunks, every vm a
// <hacks>, modes are w or r, attributes in the order xapi's own writer used.
// The format has no place for a VM's network interfaces or firmware: they
// are left out, and each VM's LegacyDrops says what was, for the caller to
// tell its user.
func (a *Appliance) MarshalLegacy() ([]byte, error) {
	if err := a.check(); err != nil {
		return nil, err
	}
	d := etree.NewDocument()
	d.CreateProcInst("xml", `version="1.0"`)
	root := d.CreateElement("appliance")
	root.CreateAttr("version", "0.1")
	for _, vm := range a.VMs {
		e := root.CreateElement("vm")
		e.CreateAttr("name", "vm")
		e.CreateElement("label").SetText(vm.Label)
		e.CreateElement("shortdesc").SetText(vm.Description)
		cfg := e.CreateElement("config")
		cfg.CreateAttr("mem_set", strconv.FormatInt(vm.Memory, 10))
		cfg.CreateAttr("vcpus", strconv.Itoa(vm.VCPUs))
		if vm.Distrib != "" {
			cfg.CreateAttr("distrib", vm.Distrib)
		}
		if vm.DistribVersion != "" {
			cfg.CreateAttr("distrib_version", vm.DistribVersion)
		}
		h := e.CreateElement("hacks")
		h.CreateAttr("is_hvm", strconv.FormatBool(vm.HVM))
		h.CreateAttr("kernel_boot_cmdline", vm.KernelCmdline)
		for _, b := range vm.VBDs {
			v := e.CreateElement("vbd")
			v.CreateAttr("device", b.Device)
			v.CreateAttr("function", b.Function)
			v.CreateAttr("mode", map[bool]string{false: "w", true: "r"}[b.ReadOnly])
			v.CreateAttr("vdi", b.VDI)
		}
	}
	for _, vdi := range a.VDIs {
		if _, err := vdi.SourceDir(); err != nil {
			return nil, err
		}
		variety := vdi.Variety
		if variety == "" {
			variety = "user"
		}
		v := root.CreateElement("vdi")
		v.CreateAttr("name", vdi.Name)
		v.CreateAttr("size", strconv.FormatInt(vdi.Size, 10))
		v.CreateAttr("source", vdi.Source)
		v.CreateAttr("type", TypeGzippedChunks)
		v.CreateAttr("variety", variety)
	}
	d.Indent(2)
	return d.WriteToBytes()
}

// VDI returns the VDI called name.
func (a *Appliance) VDI(name string) (VDI, bool) {
	for _, v := range a.VDIs {
		if v.Name == name {
			return v, true
		}
	}
	return VDI{}, false
}

package xva

import (
	"fmt"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/xva-tools/xva/ova"
)

// Generation is the format generation of an archive.
type Generation int

// The two XVA generations.
const (
	Legacy Generation = iota + 1 // version 0.1 appliance, gzip chunks
	XAPI                         // XML-RPC ova.xml, hashed 1 MiB blocks
)

func (g Generation) String() string {
	switch g {
	case Legacy:
		return "legacy"
	case XAPI:
		return "xapi"
	}
	return fmt.Sprintf("Generation(%d)", int(g))
}

// ParseGeneration reads "legacy" or "xapi".
func ParseGeneration(s string) (Generation, error) {
	switch strings.ToLower(s) {
	case "legacy":
		return Legacy, nil
	case "xapi":
		return XAPI, nil
	}
	return 0, fmt.Errorf("xva: unknown format %q (want legacy or xapi)", s)
}

// Metadata is an archive's ova.xml, parsed.
type Metadata struct {
	Generation Generation
	OVA        []byte // ova.xml exactly as read
	VM         ova.VM // the (first) VM
	Legacy     *ova.Appliance
	Export     *ova.Export // xapi generation
	// Disks in archive order: sorted by ID, as xapi reads them.
	Disks []Disk
}

// maxDisks caps the disks of one archive; xapi allows at most 255 VBDs.
const maxDisks = ova.MaxDisks

// MaxDiskSize caps a disk's declared size before anything is allocated
// for it. XenServer's largest VDIs (GFS2/qcow2, raw LUNs) are 16 TiB; 64
// TiB leaves room without letting a hostile ova.xml ask for exabytes.
const MaxDiskSize = 64 << 40

// Disk is one disk of an archive.
type Disk struct {
	ID       string // member prefix: "sda" (legacy) or "Ref:12" (xapi)
	Device   string // VBD device, which names its image in a VM directory
	VDI      string // VDI name (legacy) or ref
	Size     int64  // bytes
	Bootable bool
}

// ParseMetadata parses an ova.xml of either generation and checks what the
// readers rely on: disk member prefixes that stay inside the archive,
// devices usable as file names, no two disks sharing either.
func ParseMetadata(doc []byte) (*Metadata, error) {
	if ova.IsLegacy(doc) {
		a, err := ova.ParseLegacy(doc)
		if err != nil {
			return nil, err
		}
		return legacyMetadata(doc, a)
	}
	e, err := ova.ParseExport(doc)
	if err != nil {
		return nil, err
	}
	return xapiMetadata(doc, e)
}

// fromExport describes the xapi document e, its bytes what e marshals to:
// the one way a model made or changed here becomes an ova.xml, so that
// bytes and model never disagree.
func fromExport(e *ova.Export) (*Metadata, error) { return xapiMetadata(e.Marshal(), e) }

// fromAppliance describes the legacy document a, as fromExport does.
func fromAppliance(a *ova.Appliance) (*Metadata, error) {
	doc, err := a.MarshalLegacy()
	if err != nil {
		return nil, err
	}
	return legacyMetadata(doc, a)
}

// xapiMetadata describes an xapi-generation archive. Devices come from the
// VBDs (ova.Export.Disks makes them plain and unique).
func xapiMetadata(doc []byte, e *ova.Export) (*Metadata, error) {
	switch v := e.ExportVersion(); {
	case v == 0:
		return nil, fmt.Errorf("%w: export_vsn 0 (XenServer 4.0 beta) archives carry no checksums and no current host imports them", ErrUnsupported)
	case v < 0 || v > 2:
		return nil, fmt.Errorf("%w: export_vsn %d", ErrUnsupported, v)
	}
	vm, err := e.VM()
	if err != nil {
		return nil, err
	}
	vmo, _ := e.VMObject()
	disks, err := e.Disks(vmo)
	if err != nil {
		return nil, err
	}
	m := &Metadata{Generation: XAPI, OVA: doc, VM: vm, Export: e}
	for _, d := range disks {
		if err := checkPrefix(d.VDI.ID); err != nil {
			return nil, fmt.Errorf("ova: VDI id %q %w", d.VDI.ID, err)
		}
		m.Disks = append(m.Disks, Disk{ID: d.VDI.ID, Device: d.Device, VDI: d.VDI.ID, Size: d.Size, Bootable: d.Bootable})
	}
	return m, m.check()
}

func legacyMetadata(doc []byte, a *ova.Appliance) (*Metadata, error) {
	m := &Metadata{Generation: Legacy, OVA: doc, VM: a.VMs[0], Legacy: a}
	vbds := map[string]ova.VBD{} // by VDI; the last VBD naming a VDI wins
	for _, vm := range a.VMs {
		for _, b := range vm.VBDs {
			vbds[b.VDI] = b
		}
	}
	for _, vdi := range a.VDIs {
		prefix, err := vdi.SourceDir()
		if err != nil {
			return nil, err
		}
		if err := checkPrefix(prefix); err != nil {
			return nil, fmt.Errorf("ova: vdi %q: source %q %w", vdi.Name, vdi.Source, err)
		}
		d := Disk{ID: prefix, VDI: vdi.Name, Size: vdi.Size, Device: path.Base(prefix)}
		if b, ok := vbds[vdi.Name]; ok {
			d.Device, d.Bootable = b.Device, b.Bootable()
		}
		m.Disks = append(m.Disks, d)
	}
	return m, m.check()
}

// check enforces unique, safe prefixes and devices and sorts the disks into
// archive order.
func (m *Metadata) check() error {
	if len(m.Disks) > maxDisks {
		return fmt.Errorf("ova: %d disks, more than the %d allowed", len(m.Disks), maxDisks)
	}
	slices.SortFunc(m.Disks, func(a, b Disk) int { return strings.Compare(a.ID, b.ID) })
	devices := map[string]bool{}
	for i, d := range m.Disks {
		if d.Size < 0 || d.Size > MaxDiskSize {
			return fmt.Errorf("ova: disk %s declares %d bytes; at most %d (64 TiB) are accepted", d.Device, d.Size, int64(MaxDiskSize))
		}
		if !safeName(d.Device) {
			return fmt.Errorf("ova: disk device %q cannot name a file", d.Device)
		}
		if devices[d.Device] {
			return fmt.Errorf("ova: two disks use device %q", d.Device)
		}
		devices[d.Device] = true
		for _, e := range m.Disks[:i] {
			if e.ID == d.ID || strings.HasPrefix(d.ID, e.ID+"/") || strings.HasPrefix(e.ID, d.ID+"/") {
				return fmt.Errorf("ova: disks %q and %q share member names", e.ID, d.ID)
			}
		}
	}
	return nil
}

// checkPrefix refuses member prefixes that would leave the archive.
func checkPrefix(p string) error {
	if p == "" || !filepath.IsLocal(p) || strings.ContainsAny(p, "\\\x00") || filepath.Clean(p) != p {
		return fmt.Errorf("is outside the archive")
	}
	return nil
}

// safeName reports whether s can be used as a single file name.
func safeName(s string) bool {
	return s != "" && s != "." && s != ".." && !strings.ContainsAny(s, "/\\\x00") && len(s) <= 200
}

// diskOf returns the disk a member belongs to: the one whose prefix
// followed by "/" begins its name.
func (m *Metadata) diskOf(name string) *Disk {
	var best *Disk
	for i := range m.Disks {
		d := &m.Disks[i]
		if strings.HasPrefix(name, d.ID+"/") && (best == nil || len(d.ID) > len(best.ID)) {
			best = d
		}
	}
	return best
}

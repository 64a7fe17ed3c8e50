// Package vmdk implements disk.Source and disk.Sink for VMware VMDK
// images: monolithicSparse, streamOptimized, monolithicFlat,
// twoGbMaxExtentSparse and twoGbMaxExtentFlat read; monolithicSparse and
// streamOptimized written, in the forms qemu, VMware and VirtualBox read.
//
// A format package: it may import disk and internal/{fsutil, pipeline},
// never another format package.
package vmdk

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Sizes and limits. All binary VMDK integers are little-endian.
const (
	SectorSize = 512
	// GrainSize is the grain size we write: 128 sectors, 64 KiB, what
	// qemu, VMware and VirtualBox use.
	GrainSize = 64 << 10
	// MaxSize is the largest virtual size we write: 2^32 sectors, 2 TiB.
	// Grain tables hold 32-bit sector numbers, and qemu refuses larger
	// sparse extents (VMDK_EXTENT_MAX_SECTORS).
	MaxSize = 1 << 32 * SectorSize

	headerSize  = 512
	gtEntries   = 512 // grain table entries we write, and at most read (qemu's limit)
	grainSector = GrainSize / SectorSize
	descSectors = 20 // the embedded descriptor's room, as qemu leaves it
	gdAtEnd     = ^uint64(0)

	maxGrainSectors = 0x10000 // 32 MiB grains (qemu allows 1 GiB; every writer uses 64 KiB)
	maxDescriptor   = 1 << 20 // the longest descriptor read (qemu's)
	maxExtents      = 8192    // extents of one descriptor
)

// Header flags.
const (
	flagNL         = 1 << 0  // valid newline-detection bytes
	flagRGD        = 1 << 1  // a redundant grain directory
	flagZeroGrain  = 1 << 2  // grain table entry 1 means a zeroed grain
	flagCompressed = 1 << 16 // grains are compressed
	flagMarkers    = 1 << 17 // grains (and metadata) carry markers
)

// Marker types of a streamOptimized file.
const (
	markerEOS    = 0
	markerGT     = 1
	markerGD     = 2
	markerFooter = 3
)

const (
	magic           = "KDMV"
	vmdk3Magic      = "COWD"
	compressNone    = 0
	compressDeflate = 1
)

// ErrCorrupt wraps every error about a malformed image, so callers can tell
// it from an I/O error.
var ErrCorrupt = errors.New("vmdk: corrupt image")

// ErrUnsupported wraps what the package recognises but does not read
// (ESX 3 COWD sparse files, snapshot chains, VMFS extents).
var ErrUnsupported = errors.New("vmdk: unsupported")

func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrCorrupt, fmt.Sprintf(format, args...))
}

func unsupported(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrUnsupported, fmt.Sprintf(format, args...))
}

// Header is the 512-byte SparseExtentHeader at the start of a sparse
// extent (and, in a streamOptimized file, its copy in the footer).
type Header struct {
	Version           uint32
	Flags             uint32
	Capacity          uint64 // sectors
	GrainSize         uint64 // sectors
	DescriptorOffset  uint64 // sectors
	DescriptorSize    uint64 // sectors
	NumGTEsPerGT      uint32
	RGDOffset         uint64 // sectors
	GDOffset          uint64 // sectors, or gdAtEnd
	OverHead          uint64 // sectors
	UncleanShutdown   bool
	CompressAlgorithm uint16
}

func (h *Header) marshal() []byte {
	b := make([]byte, headerSize)
	copy(b, magic)
	le := binary.LittleEndian
	le.PutUint32(b[4:], h.Version)
	le.PutUint32(b[8:], h.Flags)
	le.PutUint64(b[12:], h.Capacity)
	le.PutUint64(b[20:], h.GrainSize)
	le.PutUint64(b[28:], h.DescriptorOffset)
	le.PutUint64(b[36:], h.DescriptorSize)
	le.PutUint32(b[44:], h.NumGTEsPerGT)
	le.PutUint64(b[48:], h.RGDOffset)
	le.PutUint64(b[56:], h.GDOffset)
	le.PutUint64(b[64:], h.OverHead)
	if h.UncleanShutdown {
		b[72] = 1
	}
	copy(b[73:], "\n \r\n")
	le.PutUint16(b[77:], h.CompressAlgorithm)
	return b
}

// parseHeader reads a SparseExtentHeader and checks what does not depend
// on the file's size.
func parseHeader(b []byte) (*Header, error) {
	if len(b) < headerSize {
		return nil, corrupt("a sparse header needs %d bytes, have %d", headerSize, len(b))
	}
	if string(b[:4]) != magic {
		if string(b[:4]) == vmdk3Magic {
			return nil, unsupported("an ESX 3 (COWD) sparse extent")
		}
		return nil, corrupt("no KDMV magic")
	}
	le := binary.LittleEndian
	h := &Header{
		Version: le.Uint32(b[4:]), Flags: le.Uint32(b[8:]), Capacity: le.Uint64(b[12:]),
		GrainSize: le.Uint64(b[20:]), DescriptorOffset: le.Uint64(b[28:]), DescriptorSize: le.Uint64(b[36:]),
		NumGTEsPerGT: le.Uint32(b[44:]), RGDOffset: le.Uint64(b[48:]), GDOffset: le.Uint64(b[56:]),
		OverHead: le.Uint64(b[64:]), UncleanShutdown: b[72] != 0, CompressAlgorithm: le.Uint16(b[77:]),
	}
	switch {
	case h.Version < 1 || h.Version > 3:
		return nil, unsupported("sparse extent version %d", h.Version)
	case h.Flags&flagNL != 0 && string(b[73:77]) != "\n \r\n":
		return nil, corrupt("the newline-detection bytes are altered (the file went through a text-mode transfer?)")
	case h.GrainSize < 1 || h.GrainSize > maxGrainSectors || h.GrainSize&(h.GrainSize-1) != 0:
		return nil, corrupt("grain size of %d sectors (want a power of 2 up to %d)", h.GrainSize, maxGrainSectors)
	case h.NumGTEsPerGT < 1 || h.NumGTEsPerGT > gtEntries:
		return nil, corrupt("%d entries per grain table (want 1 to %d)", h.NumGTEsPerGT, gtEntries)
	case h.Capacity > 1<<44:
		return nil, corrupt("capacity of %d sectors", h.Capacity)
	case h.Flags&flagCompressed != 0 && h.CompressAlgorithm != compressDeflate:
		return nil, unsupported("compression algorithm %d", h.CompressAlgorithm)
	case h.Flags&flagCompressed != 0 && h.Flags&flagMarkers == 0:
		return nil, unsupported("compressed grains without markers")
	}
	return h, nil
}

// Descriptor is a parsed descriptor file: its header keys, its extents and
// its disk database.
type Descriptor struct {
	Version    int
	CID        uint32
	ParentCID  uint32
	CreateType string
	Extents    []ExtentLine
	// DDB holds the ddb.* entries, keys in lower case.
	DDB map[string]string
}

// ExtentLine is one extent of a descriptor.
type ExtentLine struct {
	Access  string // RW, RDONLY
	Sectors uint64
	Type    string // FLAT, SPARSE, ZERO
	File    string // relative to the descriptor; "" for ZERO
	Offset  uint64 // FLAT: sectors into the file
}

// Sectors is the virtual size of the disk the descriptor describes.
func (d *Descriptor) Sectors() uint64 {
	var n uint64
	for _, e := range d.Extents {
		n += e.Sectors
	}
	return n
}

// maxSectors bounds a descriptor's total size: 2^44 sectors, 8 PiB.
const maxSectors = 1 << 44

// ParseDescriptor parses a descriptor strictly: a version of 1 to 3, a
// quoted createType, extent lines of known access and type whose files
// are local names (never absolute, never reaching out of the descriptor's
// directory with ".."), and no parent (a snapshot's child is not read).
// Unknown keys are ignored, as VMware ignores them.
func ParseDescriptor(text []byte) (*Descriptor, error) {
	if len(text) > maxDescriptor {
		return nil, corrupt("the descriptor is %d bytes (at most %d)", len(text), maxDescriptor)
	}
	if i := bytes.IndexByte(text, 0); i >= 0 {
		text = text[:i] // an embedded descriptor is padded with NULs
	}
	d := &Descriptor{ParentCID: 0xffffffff, DDB: map[string]string{}}
	seen := map[string]bool{}
	var total uint64
	for n, line := range strings.Split(string(text), "\n") {
		line = strings.TrimSpace(strings.TrimSuffix(line, "\r"))
		if line == "" || line[0] == '#' {
			continue
		}
		where := fmt.Sprintf("descriptor line %d", n+1)
		if !isText(line) {
			return nil, corrupt("%s: control characters", where)
		}
		if k, v, ok := strings.Cut(line, "="); ok && !strings.ContainsAny(k, `"`) {
			key := strings.ToLower(strings.TrimSpace(k))
			if key == "" || strings.ContainsAny(key, " \t") {
				return nil, corrupt("%s: %q is neither key=value nor an extent", where, line)
			}
			v = strings.TrimSpace(v)
			if seen[key] {
				return nil, corrupt("%s: %s given twice", where, key)
			}
			seen[key] = true
			if err := d.setKey(key, v); err != nil {
				return nil, fmt.Errorf("%s: %w", where, err)
			}
			continue
		}
		e, err := parseExtent(line)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		if len(d.Extents) == maxExtents {
			return nil, corrupt("more than %d extents", maxExtents)
		}
		total += e.Sectors
		if total > maxSectors {
			return nil, corrupt("the extents add up to over %d sectors", uint64(maxSectors))
		}
		d.Extents = append(d.Extents, e)
	}
	switch {
	case d.Version == 0:
		return nil, corrupt("the descriptor has no version")
	case d.CreateType == "":
		return nil, corrupt("the descriptor has no createType")
	case d.ParentCID != 0xffffffff || seen["parentfilenamehint"]:
		return nil, unsupported("a child disk (parentCID %08x): its parent chain is not read", d.ParentCID)
	}
	return d, nil
}

func isText(s string) bool {
	for _, r := range s {
		if r < 0x20 && r != '\t' || r == 0x7f {
			return false
		}
	}
	return true
}

func (d *Descriptor) setKey(key, v string) error {
	switch key {
	case "version":
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 3 {
			return unsupported("descriptor version %q", v)
		}
		d.Version = n
	case "cid", "parentcid":
		x, err := strconv.ParseUint(v, 16, 32)
		if err != nil {
			return corrupt("%s %q is not 8 hex digits", key, v)
		}
		if key == "cid" {
			d.CID = uint32(x)
		} else {
			d.ParentCID = uint32(x)
		}
	case "createtype":
		s, ok := unquote(v)
		if !ok || s == "" {
			return corrupt("createType %s is not a quoted name", v)
		}
		d.CreateType = s
	default:
		if strings.HasPrefix(key, "ddb.") {
			s, ok := unquote(v)
			if !ok {
				s = v
			}
			d.DDB[key] = s
		}
	}
	return nil
}

func unquote(v string) (string, bool) {
	if len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' || strings.Contains(v[1:len(v)-1], `"`) {
		return "", false
	}
	return v[1 : len(v)-1], true
}

// parseExtent parses `ACCESS SECTORS TYPE "FILE" [OFFSET]`.
func parseExtent(line string) (ExtentLine, error) {
	var e ExtentLine
	head, rest, quoted := strings.Cut(line, `"`)
	f := strings.Fields(head)
	if len(f) != 3 {
		return e, corrupt("%q is neither key=value nor an extent", line)
	}
	e.Access, e.Type = strings.ToUpper(f[0]), strings.ToUpper(f[2])
	switch e.Access {
	case "RW", "RDONLY":
	case "NOACCESS":
		return e, unsupported("a NOACCESS extent")
	default:
		return e, corrupt("extent access %q", f[0])
	}
	n, err := strconv.ParseUint(f[1], 10, 64)
	if err != nil || n == 0 || n > maxSectors {
		return e, corrupt("extent size %q", f[1])
	}
	e.Sectors = n
	var tail string
	if quoted {
		var ok bool
		e.File, tail, ok = strings.Cut(rest, `"`)
		if !ok {
			return e, corrupt("unterminated file name in %q", line)
		}
		tail = strings.TrimSpace(tail)
		if err := checkName(e.File); err != nil {
			return e, err
		}
	}
	switch e.Type {
	case "FLAT", "VMFS":
		e.Type = "FLAT"
		if !quoted {
			return e, corrupt("a flat extent without a file")
		}
		if tail != "" {
			off, err := strconv.ParseUint(tail, 10, 64)
			if err != nil || off > maxSectors {
				return e, corrupt("flat extent offset %q", tail)
			}
			e.Offset = off
		}
	case "SPARSE":
		if !quoted || tail != "" {
			return e, corrupt("a sparse extent wants a file name and nothing after it")
		}
	case "ZERO":
		if quoted || tail != "" {
			return e, corrupt("a zero extent has no file")
		}
	default:
		return e, unsupported("%s extents", e.Type)
	}
	return e, nil
}

// checkName refuses an extent file name that is not a plain relative path
// inside the descriptor's directory.
func checkName(name string) error {
	switch {
	case name == "":
		return corrupt("an empty extent file name")
	case strings.HasPrefix(name, "/") || strings.HasPrefix(name, `\`) || len(name) > 1 && name[1] == ':':
		return corrupt("extent file %q is an absolute path; extents are named relative to the descriptor", name)
	}
	for part := range strings.FieldsFuncSeq(name, func(r rune) bool { return r == '/' || r == '\\' }) {
		if part == ".." {
			return corrupt("extent file %q reaches out of the descriptor's directory", name)
		}
	}
	return nil
}

// descriptorText is the descriptor we write.
func descriptorText(cid uint32, createType, file string, sectors uint64, adapter string) string {
	heads, spt := uint64(16), uint64(63)
	if adapter != "ide" {
		heads = 255
	}
	cyl := min(sectors/(heads*spt), 16383)
	return fmt.Sprintf(`# Disk DescriptorFile
version=1
CID=%08x
parentCID=ffffffff
createType="%s"

# Extent description
RW %d SPARSE "%s"

# The Disk Data Base
#DDB

ddb.virtualHWVersion = "4"
ddb.geometry.cylinders = "%d"
ddb.geometry.heads = "%d"
ddb.geometry.sectors = "%d"
ddb.adapterType = "%s"
`, cid, createType, sectors, file, cyl, heads, spt, adapter)
}

// String renders the descriptor in the syntax ParseDescriptor reads: the
// header keys, the extents, and the disk database in key order.
func (d *Descriptor) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Disk DescriptorFile\nversion=%d\nCID=%08x\nparentCID=%08x\ncreateType=\"%s\"\n\n# Extent description\n",
		d.Version, d.CID, d.ParentCID, d.CreateType)
	for _, e := range d.Extents {
		switch e.Type {
		case "ZERO":
			fmt.Fprintf(&b, "%s %d ZERO\n", e.Access, e.Sectors)
		case "FLAT":
			fmt.Fprintf(&b, "%s %d FLAT \"%s\" %d\n", e.Access, e.Sectors, e.File, e.Offset)
		default:
			fmt.Fprintf(&b, "%s %d %s \"%s\"\n", e.Access, e.Sectors, e.Type, e.File)
		}
	}
	b.WriteString("\n# The Disk Data Base\n#DDB\n\n")
	keys := make([]string, 0, len(d.DDB))
	for k := range d.DDB {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if v := d.DDB[k]; strings.Contains(v, `"`) {
			fmt.Fprintf(&b, "%s = %s\n", k, v)
		} else {
			fmt.Fprintf(&b, "%s = \"%s\"\n", k, v)
		}
	}
	return b.String()
}

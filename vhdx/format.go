// Package vhdx implements disk.Source and disk.Sink for Microsoft VHDX
// images: fixed, dynamic and differencing disks read, fixed and dynamic
// disks written, in the layout qemu writes (MS-VHDX; qemu's block/vhdx.c;
// libyal's libvhdi documentation).
//
// A format package: it may import disk and internal/fsutil, never another
// format package.
package vhdx

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"strings"
	"unicode/utf16"
)

// Sizes and limits. All VHDX integers are little-endian.
const (
	// SectorSize is the logical sector size we write; 4096 is read too.
	SectorSize = 512
	// BlockSize is the payload block size we write unless told otherwise.
	BlockSize = 32 << 20
	// MinBlockSize and MaxBlockSize bound a block size, a power of two.
	MinBlockSize = 1 << 20
	MaxBlockSize = 256 << 20
	// MaxSize is the largest virtual size, 64 TiB.
	MaxSize = 64 << 40

	mib          = 1 << 20
	headerSize   = 4 << 10  // the CRC of a header covers 4 KiB
	regionSize   = 64 << 10 // and that of a region table 64 KiB
	header1Off   = 64 << 10
	header2Off   = 128 << 10
	region1Off   = 192 << 10
	region2Off   = 256 << 10
	metaTableLen = 64 << 10 // the metadata table, before its items
	maxEntries   = 2047     // region and metadata table entries
	bitmapSize   = 1 << 20  // a sector bitmap block
	maxLocator   = 64 << 10 // the largest parent locator read

	fileSig   = "vhdxfile"
	headSig   = "head"
	regionSig = "regi"
	metaSig   = "metadata"
	logSig    = "loge"
)

// BAT entry states (the low 3 bits of an entry).
const (
	stateNotPresent = 0 // payload: read the parent, or zeros; bitmap: none
	stateUndefined  = 1
	stateZero       = 2
	stateUnmapped   = 3
	stateUnmapped95 = 5 // the v0.95 spelling of unmapped, as qemu accepts
	stateFull       = 6 // payload: in the file; bitmap: present
	statePartial    = 7 // differencing: the sector bitmap says which
)

// ErrCorrupt wraps every error about a malformed image, so callers can tell
// it from an I/O error.
var ErrCorrupt = errors.New("vhdx: corrupt image")

// ErrLog is returned for an image whose log holds writes not yet replayed
// into it: its BAT and metadata cannot be trusted until they are.
var ErrLog = errors.New("vhdx: the image's log holds writes that were never replayed into it (was it open when its host stopped?); replay them first, with Hyper-V or `qemu-img check -r all`")

func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrCorrupt, fmt.Sprintf(format, args...))
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// checksum is the CRC-32C of b with the 4 bytes at 4 (the checksum field
// of every VHDX structure that has one) read as zeros.
func checksum(b []byte) uint32 {
	c := crc32.Update(0, castagnoli, b[:4])
	c = crc32.Update(c, castagnoli, []byte{0, 0, 0, 0})
	return crc32.Update(c, castagnoli, b[8:])
}

// setChecksum stores b's checksum in it.
func setChecksum(b []byte) { binary.LittleEndian.PutUint32(b[4:], checksum(b)) }

// GUID is a GUID in its on-disk (Microsoft mixed-endian) byte order.
type GUID [16]byte

// parseGUID reads "2DC27766-F623-4200-9D64-115E9BFD4A08", optionally in
// braces, into its on-disk form.
func parseGUID(s string) (GUID, bool) {
	var g GUID
	s = strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(s), "{"), "}")
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return g, false
	}
	var raw [16]byte
	hex := strings.ReplaceAll(s, "-", "")
	for i := range raw {
		hi, ok1 := unhex(hex[2*i])
		lo, ok2 := unhex(hex[2*i+1])
		if !ok1 || !ok2 {
			return g, false
		}
		raw[i] = hi<<4 | lo
	}
	g = GUID{raw[3], raw[2], raw[1], raw[0], raw[5], raw[4], raw[7], raw[6]}
	copy(g[8:], raw[8:])
	return g, true
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

func mustGUID(s string) GUID {
	g, ok := parseGUID(s)
	if !ok {
		panic("vhdx: bad GUID " + s)
	}
	return g
}

// String is the GUID's usual text form, in upper case as Hyper-V writes it.
func (g GUID) String() string {
	return fmt.Sprintf("%02X%02X%02X%02X-%02X%02X-%02X%02X-%02X%02X-%02X%02X%02X%02X%02X%02X",
		g[3], g[2], g[1], g[0], g[5], g[4], g[7], g[6], g[8], g[9], g[10], g[11], g[12], g[13], g[14], g[15])
}

// IsZero reports whether g is all zeros.
func (g GUID) IsZero() bool { return g == GUID{} }

// Region and metadata item GUIDs (MS-VHDX; qemu vhdx.c; libvhdi).
var (
	guidBAT        = mustGUID("2DC27766-F623-4200-9D64-115E9BFD4A08")
	guidMetadata   = mustGUID("8B7CA206-4790-4B9A-B8FE-575F050F886E")
	guidFileParams = mustGUID("CAA16737-FA36-4D43-B3B6-33F0AA44E76B")
	guidDiskSize   = mustGUID("2FA54224-CD1B-4876-B211-5DBED83BF4B8")
	guidPage83     = mustGUID("BECA12AB-B2E6-4523-93EF-C309E000C746")
	guidLogical    = mustGUID("8141BF1D-A96F-4709-BA47-F233A8FAAB5F")
	guidPhysical   = mustGUID("CDA348C7-445D-4471-9CC9-E9885251C556")
	guidLocator    = mustGUID("A8D35F2D-B30B-454D-ABF7-D3D84834AB0C")
	guidVHDXParent = mustGUID("B04AEFB7-D19E-4A81-B789-25B8E9445913") // the locator type
)

// Header is the active one of an image's two headers.
type Header struct {
	Sequence  uint64
	FileWrite GUID
	DataWrite GUID
	Log       GUID // zero when the log holds nothing to replay
	LogLength uint32
	LogOffset uint64
}

func (h *Header) marshal() []byte {
	b := make([]byte, headerSize)
	copy(b, headSig)
	binary.LittleEndian.PutUint64(b[8:], h.Sequence)
	copy(b[16:], h.FileWrite[:])
	copy(b[32:], h.DataWrite[:])
	copy(b[48:], h.Log[:])
	binary.LittleEndian.PutUint16(b[64:], 0) // log version
	binary.LittleEndian.PutUint16(b[66:], 1) // version
	binary.LittleEndian.PutUint32(b[68:], h.LogLength)
	binary.LittleEndian.PutUint64(b[72:], h.LogOffset)
	setChecksum(b)
	return b
}

// parseHeader reads a header; ok is false for one that does not count (a
// bad signature, checksum or version), as a torn write leaves it.
func parseHeader(b []byte) (h *Header, ok bool) {
	if string(b[:4]) != headSig || binary.LittleEndian.Uint32(b[4:]) != checksum(b) ||
		binary.LittleEndian.Uint16(b[66:]) != 1 {
		return nil, false
	}
	h = &Header{Sequence: binary.LittleEndian.Uint64(b[8:]),
		LogLength: binary.LittleEndian.Uint32(b[68:]), LogOffset: binary.LittleEndian.Uint64(b[72:])}
	copy(h.FileWrite[:], b[16:])
	copy(h.DataWrite[:], b[32:])
	copy(h.Log[:], b[48:])
	if binary.LittleEndian.Uint16(b[64:]) != 0 { // log version
		return nil, false
	}
	return h, true
}

// region is an entry of the region table.
type region struct {
	id       GUID
	off, len int64
	required bool
}

func (r region) end() int64 { return r.off + r.len }

func marshalRegions(rs []region) []byte {
	b := make([]byte, regionSize)
	copy(b, regionSig)
	binary.LittleEndian.PutUint32(b[8:], uint32(len(rs)))
	for i, r := range rs {
		e := b[16+32*i:]
		copy(e, r.id[:])
		binary.LittleEndian.PutUint64(e[16:], uint64(r.off))
		binary.LittleEndian.PutUint32(e[24:], uint32(r.len))
		if r.required {
			binary.LittleEndian.PutUint32(e[28:], 1)
		}
	}
	setChecksum(b)
	return b
}

// parseRegions reads a region table; ok is false for one whose signature
// or checksum is wrong.
func parseRegions(b []byte) (rs []region, ok bool, err error) {
	if string(b[:4]) != regionSig || binary.LittleEndian.Uint32(b[4:]) != checksum(b) {
		return nil, false, nil
	}
	n := binary.LittleEndian.Uint32(b[8:])
	if n > maxEntries {
		return nil, true, corrupt("the region table has %d entries; at most %d fit", n, maxEntries)
	}
	for i := range int(n) {
		e := b[16+32*i:]
		var r region
		copy(r.id[:], e)
		off := binary.LittleEndian.Uint64(e[16:])
		if off > MaxSize*2 {
			return nil, true, corrupt("region %s at %d: past any possible image", r.id, off)
		}
		r.off, r.len = int64(off), int64(binary.LittleEndian.Uint32(e[24:]))
		r.required = binary.LittleEndian.Uint32(e[28:])&1 != 0
		rs = append(rs, r)
	}
	return rs, true, nil
}

// metaItem is an entry of the metadata table with its data.
type metaItem struct {
	id    GUID
	flags uint32 // bit 0 IsUser, 1 IsVirtualDisk, 2 IsRequired
	data  []byte
}

const (
	metaVirtualDisk = 2
	metaRequired    = 4
)

// marshalMeta lays out the metadata table and its items, packed after the
// table, into a region of n bytes.
func marshalMeta(items []metaItem, n int) []byte {
	b := make([]byte, n)
	copy(b, metaSig)
	binary.LittleEndian.PutUint16(b[10:], uint16(len(items)))
	off := metaTableLen
	for i, it := range items {
		e := b[32+32*i:]
		copy(e, it.id[:])
		binary.LittleEndian.PutUint32(e[16:], uint32(off))
		binary.LittleEndian.PutUint32(e[20:], uint32(len(it.data)))
		binary.LittleEndian.PutUint32(e[24:], it.flags)
		copy(b[off:], it.data)
		off += len(it.data)
	}
	return b
}

// parentLocator is a differencing disk's parent locator: its key-value
// pairs (parent_linkage, relative_path, absolute_win32_path, ...).
type parentLocator map[string]string

func marshalLocator(kv [][2]string) []byte {
	hdr := 20 + 12*len(kv)
	b := make([]byte, hdr)
	copy(b, guidVHDXParent[:])
	binary.LittleEndian.PutUint16(b[18:], uint16(len(kv)))
	for i, p := range kv {
		k, v := utf16LE(p[0]), utf16LE(p[1])
		e := 20 + 12*i
		binary.LittleEndian.PutUint32(b[e:], uint32(len(b)))
		binary.LittleEndian.PutUint32(b[e+4:], uint32(len(b)+len(k)))
		binary.LittleEndian.PutUint16(b[e+8:], uint16(len(k)))
		binary.LittleEndian.PutUint16(b[e+10:], uint16(len(v)))
		b = append(append(b, k...), v...)
	}
	return b
}

// parseLocator reads a parent locator; offsets are from its start.
func parseLocator(b []byte) (parentLocator, error) {
	if len(b) < 20 {
		return nil, corrupt("the parent locator is %d bytes, too short", len(b))
	}
	if GUID(b[:16]) != guidVHDXParent {
		return nil, corrupt("the parent locator is of type %s, not a VHDX parent", GUID(b[:16]))
	}
	n := int(binary.LittleEndian.Uint16(b[18:]))
	if 20+12*n > len(b) {
		return nil, corrupt("the parent locator's %d entries run past its %d bytes", n, len(b))
	}
	str := func(off uint32, n uint16) (string, error) {
		if int64(off)+int64(n) > int64(len(b)) || n%2 != 0 {
			return "", corrupt("a parent locator string (%d bytes at %d) is outside its %d bytes", n, off, len(b))
		}
		return fromUTF16LE(b[off : off+uint32(n)]), nil
	}
	l := parentLocator{}
	for i := range n {
		e := b[20+12*i:]
		k, err := str(binary.LittleEndian.Uint32(e), binary.LittleEndian.Uint16(e[8:]))
		if err != nil {
			return nil, err
		}
		v, err := str(binary.LittleEndian.Uint32(e[4:]), binary.LittleEndian.Uint16(e[10:]))
		if err != nil {
			return nil, err
		}
		if _, dup := l[k]; dup {
			return nil, corrupt("the parent locator has key %q twice", k)
		}
		l[k] = v
	}
	return l, nil
}

func utf16LE(s string) []byte {
	var b []byte
	for _, u := range utf16.Encode([]rune(s)) {
		b = binary.LittleEndian.AppendUint16(b, u)
	}
	return b
}

func fromUTF16LE(b []byte) string {
	u := make([]uint16, len(b)/2)
	for i := range u {
		u[i] = binary.LittleEndian.Uint16(b[2*i:])
	}
	return string(utf16.Decode(u))
}

// fileIdentifier is the first 64 KiB: the signature and the creator.
func fileIdentifier(creator string) []byte {
	b := make([]byte, 64<<10)
	copy(b, fileSig)
	copy(b[8:8+512], utf16LE(creator))
	return b
}

// creatorOf reads the creator string of a file identifier.
func creatorOf(b []byte) string {
	c := b[8 : 8+512]
	for i := 0; i+1 < len(c); i += 2 {
		if c[i] == 0 && c[i+1] == 0 {
			c = c[:i]
			break
		}
	}
	return strings.TrimSpace(fromUTF16LE(c))
}

// chunkRatio is the number of payload blocks one sector bitmap covers.
func chunkRatio(blockSize int64, logical uint32) int64 {
	return (1 << 23) * int64(logical) / blockSize
}

// batEntries is the number of BAT entries of a disk: payload blocks with a
// sector bitmap entry after every chunkRatio of them; a differencing disk
// has the last chunk's bitmap entry too.
func batEntries(blocks, ratio int64, parent bool) int64 {
	if blocks == 0 {
		return 0
	}
	if parent {
		return (blocks + ratio - 1) / ratio * (ratio + 1)
	}
	return blocks + (blocks-1)/ratio
}

// payloadIndex is the BAT index of payload block b.
func payloadIndex(b, ratio int64) int64 { return b + b/ratio }

// bitmapIndex is the BAT index of the sector bitmap of chunk c.
func bitmapIndex(c, ratio int64) int64 { return c*(ratio+1) + ratio }

func pad(n, to int64) int64 { return (n + to - 1) / to * to }

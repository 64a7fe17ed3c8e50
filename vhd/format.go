// Package vhd implements disk.Source and disk.Sink for Microsoft VHD
// images: fixed, dynamic and differencing disks read, fixed and dynamic
// disks written, in the form every reader (qemu, libvhdi, tapdisk, xapi)
// agrees on.
//
// A format package: it may import disk and internal/fsutil, never another
// format package.
package vhd

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"time"
	"unicode/utf16"
)

// Sizes and limits. All VHD integers are big-endian.
const (
	SectorSize = 512
	// BlockSize is the data size of a dynamic disk's blocks that we write.
	BlockSize = 2 << 20
	// MaxSize is the largest virtual size: 0xff000000 sectors, 2040 GiB, the
	// limit qemu, xapi and the SR drivers share (the BAT holds 32-bit
	// sector numbers).
	MaxSize = 0xff000000 * SectorSize

	footerSize = 512
	headerSize = 1024
)

// vhdxSignature starts a VHDX file (MS-VHDX §2.2.1), which Detect must not
// take for a VHD.
const vhdxSignature = "vhdxfile"

// Disk types.
const (
	TypeFixed   = 2
	TypeDynamic = 3
	TypeDiff    = 4
)

// TypeName names a disk type.
func TypeName(t uint32) string {
	switch t {
	case TypeFixed:
		return "fixed"
	case TypeDynamic:
		return "dynamic"
	case TypeDiff:
		return "differencing"
	}
	return fmt.Sprintf("type %d", t)
}

// ErrCorrupt wraps every error about a malformed image, so callers can tell
// it from an I/O error.
var ErrCorrupt = errors.New("vhd: corrupt image")

func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrCorrupt, fmt.Sprintf(format, args...))
}

const (
	footerCookie = "conectix"
	headerCookie = "cxsparse"
	batmapCookie = "tdbatmap"
	unused       = 0xFFFFFFFF // a BAT entry of an unallocated block
	vhdVersion   = 0x00010000
	noOffset     = 0xFFFFFFFFFFFFFFFF
)

// vhdEpoch is the VHD timestamp's epoch, 2000-01-01 00:00:00 UTC.
var vhdEpoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// Footer is the 512-byte structure at the end of every VHD (and copied at
// the start of a dynamic one).
type Footer struct {
	Features   uint32
	Version    uint32
	DataOffset uint64
	Timestamp  uint32
	Creator    [4]byte
	CreatorVer uint32
	CreatorOS  uint32
	OrigSize   uint64
	CurrSize   uint64
	Cylinders  uint16
	Heads      uint8
	SPT        uint8
	Type       uint32
	Checksum   uint32
	UUID       [16]byte
	SavedState uint8
	Hidden     uint8 // blktap's use of the first reserved byte
}

func checksum(b []byte, skip int) uint32 {
	var sum uint32
	for i, c := range b {
		if i >= skip && i < skip+4 {
			continue
		}
		sum += uint32(c)
	}
	return ^sum
}

// parseFooter reads a footer; ok is false when b does not start with the
// cookie (no footer there), err reports a footer that is there but bad.
func parseFooter(b []byte) (f *Footer, ok bool, err error) {
	if len(b) < footerSize-1 || string(b[:8]) != footerCookie {
		return nil, false, nil
	}
	if len(b) == footerSize-1 {
		b = append(b, 0) // Virtual PC's old 511-byte footer
	}
	be := binary.BigEndian
	f = &Footer{
		Features:   be.Uint32(b[8:]),
		Version:    be.Uint32(b[12:]),
		DataOffset: be.Uint64(b[16:]),
		Timestamp:  be.Uint32(b[24:]),
		CreatorVer: be.Uint32(b[32:]),
		CreatorOS:  be.Uint32(b[36:]),
		OrigSize:   be.Uint64(b[40:]),
		CurrSize:   be.Uint64(b[48:]),
		Cylinders:  be.Uint16(b[56:]),
		Heads:      b[58],
		SPT:        b[59],
		Type:       be.Uint32(b[60:]),
		Checksum:   be.Uint32(b[64:]),
		SavedState: b[84],
		Hidden:     b[85],
	}
	copy(f.Creator[:], b[28:32])
	copy(f.UUID[:], b[68:84])
	if got := checksum(b[:footerSize], 64); got != f.Checksum {
		// blktap once marked VHDs hidden without updating the checksum.
		b2 := bytes.Clone(b[:footerSize])
		b2[85] = 0
		if f.Hidden == 0 || checksum(b2, 64) != f.Checksum {
			return f, true, corrupt("footer checksum is %08x, its bytes sum to %08x", f.Checksum, got)
		}
	}
	if f.Type != TypeFixed && f.Type != TypeDynamic && f.Type != TypeDiff {
		return f, true, corrupt("unsupported disk type %d", f.Type)
	}
	return f, true, nil
}

func (f *Footer) marshal() []byte {
	b := make([]byte, footerSize)
	be := binary.BigEndian
	copy(b, footerCookie)
	be.PutUint32(b[8:], f.Features)
	be.PutUint32(b[12:], f.Version)
	be.PutUint64(b[16:], f.DataOffset)
	be.PutUint32(b[24:], f.Timestamp)
	copy(b[28:], f.Creator[:])
	be.PutUint32(b[32:], f.CreatorVer)
	be.PutUint32(b[36:], f.CreatorOS)
	be.PutUint64(b[40:], f.OrigSize)
	be.PutUint64(b[48:], f.CurrSize)
	be.PutUint16(b[56:], f.Cylinders)
	b[58], b[59] = f.Heads, f.SPT
	be.PutUint32(b[60:], f.Type)
	copy(b[68:], f.UUID[:])
	b[84], b[85] = f.SavedState, f.Hidden
	f.Checksum = checksum(b, 64)
	be.PutUint32(b[64:], f.Checksum)
	return b
}

// Locator is a parent locator entry of a differencing disk's header.
type Locator struct {
	Code   uint32 // platform code: W2ru, W2ku, MacX, ...
	Space  uint32 // data space: sectors if below 512, else bytes
	Length uint32 // data length in bytes
	Offset uint64 // data offset in the file
}

// Platform codes of parent locators.
const (
	codeW2ru = 0x57327275 // relative Windows path, UTF-16LE
	codeW2ku = 0x57326B75 // absolute Windows path, UTF-16LE
	codeMacX = 0x4D616358 // file:// URL, UTF-8
)

// Header is the 1024-byte dynamic disk header.
type Header struct {
	DataOffset  uint64
	TableOffset uint64
	Version     uint32
	MaxEntries  uint32
	BlockSize   uint32
	Checksum    uint32
	ParentUUID  [16]byte
	ParentTime  uint32
	ParentName  string
	Locators    [8]Locator
}

func parseHeader(b []byte) (*Header, error) {
	if len(b) < headerSize || string(b[:8]) != headerCookie {
		return nil, corrupt("no dynamic disk header (cxsparse) where the footer points")
	}
	be := binary.BigEndian
	h := &Header{
		DataOffset:  be.Uint64(b[8:]),
		TableOffset: be.Uint64(b[16:]),
		Version:     be.Uint32(b[24:]),
		MaxEntries:  be.Uint32(b[28:]),
		BlockSize:   be.Uint32(b[32:]),
		Checksum:    be.Uint32(b[36:]),
		ParentTime:  be.Uint32(b[56:]),
	}
	copy(h.ParentUUID[:], b[40:56])
	h.ParentName = utf16BE(b[64:576])
	for i := range h.Locators {
		e := b[576+24*i:]
		h.Locators[i] = Locator{Code: be.Uint32(e), Space: be.Uint32(e[4:]), Length: be.Uint32(e[8:]), Offset: be.Uint64(e[16:])}
	}
	if got := checksum(b[:headerSize], 36); got != h.Checksum {
		return nil, corrupt("dynamic header checksum is %08x, its bytes sum to %08x", h.Checksum, got)
	}
	if bs := h.BlockSize; bs < SectorSize || bs&(bs-1) != 0 || bs > 1<<30 {
		return nil, corrupt("block size %d is not a power of two of at least 512", bs)
	}
	return h, nil
}

func (h *Header) marshal() []byte {
	b := make([]byte, headerSize)
	be := binary.BigEndian
	copy(b, headerCookie)
	be.PutUint64(b[8:], h.DataOffset)
	be.PutUint64(b[16:], h.TableOffset)
	be.PutUint32(b[24:], h.Version)
	be.PutUint32(b[28:], h.MaxEntries)
	be.PutUint32(b[32:], h.BlockSize)
	copy(b[40:], h.ParentUUID[:])
	be.PutUint32(b[56:], h.ParentTime)
	for i, r := range utf16.Encode([]rune(h.ParentName)) {
		if 2*i+2 > 512 {
			break
		}
		be.PutUint16(b[64+2*i:], r)
	}
	for i, l := range h.Locators {
		e := b[576+24*i:]
		be.PutUint32(e, l.Code)
		be.PutUint32(e[4:], l.Space)
		be.PutUint32(e[8:], l.Length)
		be.PutUint64(e[16:], l.Offset)
	}
	h.Checksum = checksum(b, 36)
	be.PutUint32(b[36:], h.Checksum)
	return b
}

func utf16BE(b []byte) string {
	var u []uint16
	for i := 0; i+1 < len(b); i += 2 {
		c := binary.BigEndian.Uint16(b[i:])
		if c == 0 {
			break
		}
		u = append(u, c)
	}
	return string(utf16.Decode(u))
}

func utf16LE(b []byte) string {
	var u []uint16
	for i := 0; i+1 < len(b); i += 2 {
		c := binary.LittleEndian.Uint16(b[i:])
		if c == 0 {
			break
		}
		u = append(u, c)
	}
	return string(utf16.Decode(u))
}

// geometry is the CHS geometry of the VHD specification's appendix (as
// blktap's vhd_chs computes it) for size bytes.
func geometry(size uint64) (cyl uint16, heads, spt uint8) {
	secs := max((size+SectorSize-1)/SectorSize, 1)
	secs = min(secs, 65535*16*255)
	var h, s, cth uint64
	if secs >= 65535*16*63 {
		s, h = 255, 16
		cth = secs / s
	} else {
		s = 17
		cth = secs / s
		h = max((cth+1023)/1024, 4)
		if cth >= h*1024 || h > 16 {
			s, h = 31, 16
			cth = secs / s
		}
		if cth >= h*1024 {
			s, h = 63, 16
			cth = secs / s
		}
	}
	return uint16(cth / h), uint8(h), uint8(s)
}

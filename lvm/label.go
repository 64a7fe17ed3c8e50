// Package lvm implements disk.Source and disk.Sink for logical volumes:
// read and written through /dev/VG/LV when device-mapper is there, or
// directly on the physical volume (a block device or an image file) from
// the LVM2 metadata read in Go, and created by XenServer's SR conventions
// with the LVM tools.
//
// A format package: it may import disk and internal/{fsutil, blockdev},
// never another format package.
package lvm

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"unsafe"
)

// ErrCorrupt wraps errors about malformed LVM metadata.
var ErrCorrupt = errors.New("lvm: bad LVM2 metadata")

func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrCorrupt, fmt.Sprintf(format, args...))
}

// On-disk constants (lvm2 lib/label/label.h, lib/format_text/layout.h).
const (
	sectorSize     = 512
	labelID        = "LABELONE"
	labelType      = "LVM2 001"
	labelScan      = 4 // the label is in one of the first four sectors
	mdaHeaderSize  = 512
	mdaMagic       = " LVM2 x[5A%r0N*>"
	initialCRC     = 0xf597a6cf
	maxMetadata    = 128 << 20 // refuse metadata areas larger than this
	maxDiskLocns   = 16
	rawLocnIgnored = 1
)

// crc is LVM's CRC-32: the reflected IEEE polynomial from 0xf597a6cf, with
// no final complement.
func crc(b []byte) uint32 { return ^crc32.Update(^uint32(initialCRC), crc32.IEEETable, b) }

// Area is a data or metadata area of a PV, in bytes.
type Area struct{ Offset, Size uint64 }

// PV is a physical volume's label, header and committed metadata.
type PV struct {
	UUID          string // 32 characters, as in the label
	DevSize       uint64
	DataAreas     []Area
	MetadataAreas []Area
	Metadata      string // the committed metadata text
	VG            *VG    // parsed from it
}

// ReadPV reads the LVM2 label of the PV in r (size bytes) and its
// committed metadata.
func ReadPV(r io.ReaderAt, size int64) (*PV, error) {
	label, at, err := findLabel(r)
	if err != nil {
		return nil, err
	}
	pv, err := parsePVHeader(label, at)
	if err != nil {
		return nil, err
	}
	if len(pv.MetadataAreas) == 0 {
		return nil, corrupt("the PV has no metadata area")
	}
	var firstErr error
	for _, mda := range pv.MetadataAreas {
		text, at, err := readMetadata(r, size, mda)
		if err != nil {
			firstErr = errors.Join(firstErr, err)
			continue
		}
		if text == "" {
			continue // an ignored area
		}
		vg, err := ParseMetadata(text)
		if te := (*TextError)(nil); errors.As(err, &te) {
			te.PVOffset = at(te.Offset)
		}
		if err != nil {
			return nil, fmt.Errorf("metadata area at byte %d: %w", mda.Offset, err)
		}
		pv.Metadata, pv.VG = text, vg
		return pv, nil
	}
	if firstErr != nil {
		return nil, firstErr
	}
	return nil, corrupt("no metadata area holds committed metadata (an orphan PV?)")
}

// findLabel returns the sector holding the label and its number.
func findLabel(r io.ReaderAt) ([]byte, int, error) {
	buf := make([]byte, labelScan*sectorSize)
	n, err := r.ReadAt(buf, 0)
	if n < sectorSize && err != nil {
		return nil, 0, err
	}
	for s := 0; (s+1)*sectorSize <= n; s++ {
		b := buf[s*sectorSize : (s+1)*sectorSize]
		if string(b[:8]) != labelID {
			continue
		}
		le := binary.LittleEndian
		if got := le.Uint64(b[8:]); got != uint64(s) {
			return nil, 0, corrupt("the label in sector %d says it is in sector %d", s, got)
		}
		if want, got := le.Uint32(b[16:]), crc(b[20:]); want != got {
			return nil, 0, corrupt("label checksum is %08x, its bytes give %08x", want, got)
		}
		if string(b[24:32]) != labelType {
			return nil, 0, corrupt("label type %q is not %q", b[24:32], labelType)
		}
		return b, s, nil
	}
	return nil, 0, errNotPV
}

var errNotPV = errors.New("lvm: no LVM2 label in the first four sectors")

// IsPV reports whether r starts with an LVM2 label.
func IsPV(r io.ReaderAt) bool {
	_, _, err := findLabel(r)
	return err != errNotPV && !errors.Is(err, io.EOF)
}

func parsePVHeader(label []byte, _ int) (*PV, error) {
	le := binary.LittleEndian
	off := int(le.Uint32(label[20:]))
	if off < 32 || off+32+8+16 > len(label) {
		return nil, corrupt("PV header offset %d", off)
	}
	h := label[off:]
	pv := &PV{UUID: string(h[:32]), DevSize: le.Uint64(h[32:])}
	h = h[40:]
	var err error
	if pv.DataAreas, h, err = diskLocns(h); err != nil {
		return nil, err
	}
	if pv.MetadataAreas, _, err = diskLocns(h); err != nil {
		return nil, err
	}
	return pv, nil
}

// diskLocns reads a zero-terminated list of {offset, size}.
func diskLocns(b []byte) ([]Area, []byte, error) {
	var as []Area
	for i := 0; ; i++ {
		if len(b) < 16 || i > maxDiskLocns {
			return nil, nil, corrupt("unterminated area list in the PV header")
		}
		a := Area{binary.LittleEndian.Uint64(b), binary.LittleEndian.Uint64(b[8:])}
		b = b[16:]
		if a.Offset == 0 && a.Size == 0 {
			return as, b, nil
		}
		as = append(as, a)
	}
}

// readMetadata reads the committed metadata text of one metadata area; ""
// for an area marked ignored. at maps a byte of the text to its offset in
// the PV.
func readMetadata(r io.ReaderAt, devSize int64, mda Area) (text string, at func(int) int64, err error) {
	if mda.Size < mdaHeaderSize || mda.Size > maxMetadata || mda.Offset > uint64(devSize) || mda.Size > uint64(devSize)-mda.Offset {
		return "", nil, corrupt("metadata area {%d, %d} does not fit the device", mda.Offset, mda.Size)
	}
	h := make([]byte, mdaHeaderSize)
	if _, err := r.ReadAt(h, int64(mda.Offset)); err != nil {
		return "", nil, err
	}
	le := binary.LittleEndian
	if want, got := le.Uint32(h), crc(h[4:]); want != got {
		return "", nil, corrupt("metadata area header checksum is %08x, its bytes give %08x", want, got)
	}
	if string(h[4:20]) != mdaMagic {
		return "", nil, corrupt("metadata area header has no LVM2 magic")
	}
	if start := le.Uint64(h[24:]); start != mda.Offset {
		return "", nil, corrupt("metadata area header says it starts at %d, the PV header %d", start, mda.Offset)
	}
	// The first raw_locn is the committed metadata.
	loc := h[40:]
	off, size, sum, flags := le.Uint64(loc), le.Uint64(loc[8:]), le.Uint32(loc[16:]), le.Uint32(loc[20:])
	if flags&rawLocnIgnored != 0 || size == 0 {
		return "", nil, nil
	}
	if off < mdaHeaderSize || off >= mda.Size || size > mda.Size-mdaHeaderSize {
		return "", nil, corrupt("metadata text {%d, %d} lies outside its area of %d bytes", off, size, mda.Size)
	}
	// One byte spare for the newline added below, so that the text is
	// never copied: an area may hold 128 MiB.
	buf := make([]byte, size, size+1)
	first := min(size, mda.Size-off)
	if _, err := r.ReadAt(buf[:first], int64(mda.Offset+off)); err != nil {
		return "", nil, err
	}
	// The area is a circular buffer: the text may wrap to its start, after
	// the header.
	if first < size {
		if _, err := r.ReadAt(buf[first:], int64(mda.Offset+mdaHeaderSize)); err != nil {
			return "", nil, err
		}
	}
	if got := crc(buf); got != sum {
		return "", nil, corrupt("metadata text checksum is %08x, its bytes give %08x", sum, got)
	}
	at = func(i int) int64 {
		if uint64(i) < first {
			return int64(mda.Offset + off + uint64(i))
		}
		return int64(mda.Offset + mdaHeaderSize + uint64(i) - first)
	}
	buf = append(bytes.TrimRight(bytes.TrimRight(buf, "\x00"), "\n"), '\n')
	// buf is not touched again: the text shares its memory rather than
	// doubling 128 MiB.
	return unsafe.String(&buf[0], len(buf)), at, nil
}

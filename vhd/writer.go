package vhd

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/xva-tools/xva/disk"
	"github.com/xva-tools/xva/internal/fsutil"
)

var _ disk.Sink = (*Sink)(nil)

// The creator we stamp: blktap's "tap\0", version 1.3. qemu takes the size
// of a tap image from current_size as it stands (for most other creators it
// recomputes it from the CHS geometry, shaving up to tens of KiB off sizes
// that are not CHS-exact), libvhdi and xapi read current_size anyway, and a
// tap image is what XenServer's tapdisk opens read-write, provided it has a
// valid batmap, which we write (zeroed: "no block is known to be full",
// always true).
var (
	tapCreator    = [4]byte{'t', 'a', 'p', 0}
	tapCreatorVer = uint32(0x00010003)
	batmapVersion = uint32(0x00010002)
)

// Sink writes a VHD, fixed or dynamic. It is created under a temporary name
// beside the target and renamed by Commit. Data must arrive in increasing
// offset order, as disk.Sink says; a dynamic disk's blocks then land in
// increasing file order, so readers that only go forward (xapi's, XO's)
// can stream it.
type Sink struct {
	f     *os.File
	final string
	size  int64 // the disk's size
	vsize int64 // the size rounded up to a sector, what the footer says
	fixed bool
	done  bool

	footer Footer
	// dynamic disks
	bat     []uint32
	dataPos int64 // file offset where the next block's bitmap goes
	last    int64 // the last block allocated, -1 for none

	// On a medium (CreateOn) rather than a new file: stale bytes must never
	// show, so each block is gathered and written whole.
	medium Medium
	end    int64  // the medium's size: the footer goes at end - 512
	cur    int64  // block being gathered, -1 for none
	buf    []byte // its bitmap and data
	dirty  bool
}

// Medium is what CreateOn writes onto: a block device or a logical volume.
type Medium interface {
	io.WriterAt
	Sync() error
}

// ErrTooSmall: the medium cannot hold the largest VHD the disk could need.
var ErrTooSmall = errors.New("vhd: the target is too small")

// CreateOn starts a dynamic VHD of size bytes on a medium of end bytes, as
// XenServer keeps VHDs on LVM: the primary footer at end - 512, the copy at
// 0. Allocated blocks are written whole, bitmap and data, so the medium's
// stale bytes never show; the rest is governed by the BAT. A medium too
// small for the largest layout the disk could need is refused before
// anything is written.
func CreateOn(m Medium, size, end int64) (*Sink, error) {
	vsize := pad(size, SectorSize)
	if vsize > MaxSize {
		return nil, fmt.Errorf("vhd: the disk is %d bytes; a VHD holds at most 2040 GiB", size)
	}
	s := &Sink{size: size, vsize: vsize, last: -1, cur: -1, medium: m, end: end}
	if err := s.initDynamic(); err != nil {
		return nil, err
	}
	if need := s.firstBlock() + int64(len(s.bat))*(BlockSize+4096) + footerSize; need > end {
		return nil, fmt.Errorf("%w: a %d-byte disk needs up to %d bytes as a VHD; the target holds %d", ErrTooSmall, size, need, end)
	}
	return s, nil
}

// Create starts a dynamic VHD (2 MiB blocks) of size bytes at path, which
// must not exist. A size that is not a whole number of sectors is rounded
// up with zeros; over 2040 GiB is refused.
func Create(path string, size int64) (*Sink, error) { return create(path, size, false) }

// CreateFixed starts a fixed VHD of size bytes at path, as Create does.
func CreateFixed(path string, size int64) (*Sink, error) { return create(path, size, true) }

func create(path string, size int64, fixed bool) (*Sink, error) {
	if size < 0 {
		return nil, fmt.Errorf("vhd: negative size %d", size)
	}
	vsize := pad(size, SectorSize)
	if vsize > MaxSize {
		return nil, fmt.Errorf("vhd: the disk is %d bytes; a VHD holds at most 2040 GiB (%d bytes); use the raw format", size, int64(MaxSize))
	}
	if fsutil.Exists(path) {
		return nil, fmt.Errorf("vhd: %s already exists", path)
	}
	f, err := fsutil.CreateTemp(path)
	if err != nil {
		return nil, err
	}
	s := &Sink{f: f, final: path, size: size, vsize: vsize, fixed: fixed, last: -1, cur: -1}
	if fixed {
		err := s.initFooter(TypeFixed)
		if err == nil {
			err = f.Truncate(vsize)
		}
		if err != nil {
			s.Abort()
			return nil, err
		}
		return s, nil
	}
	if err := s.initDynamic(); err != nil {
		s.Abort()
		return nil, err
	}
	return s, nil
}

func (s *Sink) initFooter(typ uint32) error {
	s.footer = Footer{
		Features: 2, Version: vhdVersion, DataOffset: noOffset,
		Timestamp: uint32(time.Since(vhdEpoch) / time.Second),
		Creator:   tapCreator, CreatorVer: tapCreatorVer,
		OrigSize: uint64(s.vsize), CurrSize: uint64(s.vsize), Type: typ,
	}
	s.footer.Cylinders, s.footer.Heads, s.footer.SPT = geometry(uint64(s.vsize))
	_, err := rand.Read(s.footer.UUID[:])
	return err
}

func (s *Sink) initDynamic() error {
	if err := s.initFooter(TypeDynamic); err != nil {
		return err
	}
	s.footer.DataOffset = footerSize
	s.bat = make([]uint32, (s.vsize+BlockSize-1)/BlockSize)
	for i := range s.bat {
		s.bat[i] = unused
	}
	s.dataPos = s.firstBlock()
	return nil
}

// Dynamic layout: footer copy at 0, header at 512, BAT at 1536, batmap
// header and map after it, then the blocks.
const tableOffset = footerSize + headerSize

func (s *Sink) batBytes() int64 { return pad(4*int64(len(s.bat)), SectorSize) }

func (s *Sink) batmapHeaderOffset() int64 { return tableOffset + s.batBytes() }

func (s *Sink) batmapSectors() int64 {
	return max(pad((int64(len(s.bat))+7)/8, SectorSize)/SectorSize, 1)
}

// firstBlock places the first block after the batmap, its data on a 4 KiB
// boundary as tapdisk places blocks (bitmap in the sector before).
func (s *Sink) firstBlock() int64 {
	end := s.batmapHeaderOffset() + SectorSize + s.batmapSectors()*SectorSize
	return alignedBitmap(end)
}

// alignedBitmap is the first offset at or after off whose next sector is
// 4 KiB-aligned.
func alignedBitmap(off int64) int64 {
	return pad(off+SectorSize, 4096) - SectorSize
}

// Size implements disk.Sink.
func (s *Sink) Size() int64 { return s.size }

// WriteAt implements disk.Sink. Data goes straight to its place in the
// file: a block is allocated when its first non-zero bytes arrive, and zero
// runs inside it are left as holes in the file, which read as zeros.
func (s *Sink) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(p)) > s.size {
		return 0, fmt.Errorf("vhd: write of %d bytes at %d past the disk's end %d", len(p), off, s.size)
	}
	if s.medium != nil {
		return s.gather(p, off)
	}
	var err error
	if s.fixed {
		err = disk.DataRuns(p, off, func(run []byte, at int64) error {
			_, err := s.f.WriteAt(run, at)
			return err
		})
	} else {
		err = disk.WriteUnits(s.f, p, off, BlockSize, s.blockData)
	}
	if err != nil {
		return 0, err
	}
	return len(p), nil
}

// gather copies p into the block being gathered, writing out the previous
// one when a later block begins.
func (s *Sink) gather(p []byte, off int64) (int, error) {
	n := len(p)
	for len(p) > 0 {
		b := off / BlockSize
		if b != s.cur {
			if b < s.cur {
				return 0, fmt.Errorf("vhd: write at %d goes back before block %d", off, s.cur)
			}
			if err := s.writeGathered(); err != nil {
				return 0, err
			}
			s.cur = b
		}
		if s.buf == nil {
			s.buf = make([]byte, SectorSize+BlockSize)
			copy(s.buf, allOnes)
		}
		c := copy(s.buf[SectorSize+off%BlockSize:], p)
		if !disk.IsZero(p[:c]) {
			s.dirty = true
		}
		p, off = p[c:], off+int64(c)
	}
	return n, nil
}

// writeGathered writes the gathered block, bitmap and data in one go, if it
// holds anything but zeros; an all-zero block stays unallocated.
func (s *Sink) writeGathered() error {
	if s.cur < 0 {
		return nil
	}
	defer func() {
		s.cur, s.dirty = -1, false
		clear(s.buf[SectorSize:])
	}()
	if !s.dirty {
		return nil
	}
	if _, err := s.medium.WriteAt(s.buf, s.dataPos); err != nil {
		return err
	}
	s.bat[s.cur] = uint32(s.dataPos / SectorSize)
	s.dataPos = alignedBitmap(s.dataPos + SectorSize + BlockSize)
	return nil
}

// allOnes is the bitmap of an allocated block: every sector present, as
// qemu, xapi and XO write it.
var allOnes = func() []byte {
	b := make([]byte, SectorSize)
	for i := range b {
		b[i] = 0xFF
	}
	return b
}()

// blockData returns the file offset of block b's data, allocating the
// block after the last one if it has none. Blocks only come in increasing
// order, so the file's blocks are in disk order.
func (s *Sink) blockData(b int64) (int64, error) {
	if e := s.bat[b]; e != unused {
		return int64(e)*SectorSize + SectorSize, nil
	}
	if b < s.last {
		return 0, fmt.Errorf("vhd: write to block %d after block %d", b, s.last)
	}
	if _, err := s.f.WriteAt(allOnes, s.dataPos); err != nil {
		return 0, err
	}
	s.bat[b] = uint32(s.dataPos / SectorSize)
	s.last = b
	pos := s.dataPos + SectorSize
	s.dataPos = alignedBitmap(pos + BlockSize)
	return pos, nil
}

// Commit writes the metadata and the footers, flushes the file to stable
// storage and renames it into place (on a medium: flushes it).
func (s *Sink) Commit() error {
	if s.done {
		return errors.New("vhd: image already committed or aborted")
	}
	if s.medium != nil {
		s.done = true
		err := s.writeGathered()
		if err == nil {
			err = s.writeMetadata(s.medium, s.end-footerSize)
		}
		if err == nil {
			err = s.medium.Sync()
		}
		return err
	}
	s.done = true
	if err := s.finish(); err != nil {
		fsutil.Discard(s.f)
		return err
	}
	return fsutil.Publish(s.f, s.final, false)
}

func (s *Sink) finish() error {
	if s.fixed {
		_, err := s.f.WriteAt(s.footer.marshal(), s.vsize)
		return err
	}
	// The footer at the end, right after the last block.
	end := s.lastBlockEnd()
	if err := s.f.Truncate(end + footerSize); err != nil {
		return err
	}
	return s.writeMetadata(s.f, end)
}

// writeMetadata writes the footer at footerAt and the footer copy, header,
// BAT and batmap at the start.
func (s *Sink) writeMetadata(w io.WriterAt, footerAt int64) error {
	footer := s.footer.marshal()
	if _, err := w.WriteAt(footer, footerAt); err != nil {
		return err
	}
	h := Header{DataOffset: noOffset, TableOffset: tableOffset, Version: vhdVersion,
		MaxEntries: uint32(len(s.bat)), BlockSize: BlockSize}
	meta := append(footer, h.marshal()...)
	bat := make([]byte, s.batBytes())
	for i := range bat {
		bat[i] = 0xFF
	}
	for i, e := range s.bat {
		binary.BigEndian.PutUint32(bat[4*i:], e)
	}
	meta = append(meta, bat...)
	meta = append(meta, s.batmapHeader()...)
	meta = append(meta, make([]byte, s.batmapSectors()*SectorSize)...)
	_, err := w.WriteAt(meta, 0)
	return err
}

// lastBlockEnd is where the file's data ends: after the last block written,
// or after the metadata if there is none.
func (s *Sink) lastBlockEnd() int64 {
	end := s.batmapHeaderOffset() + SectorSize + s.batmapSectors()*SectorSize
	for _, e := range s.bat {
		if e != unused {
			end = max(end, int64(e)*SectorSize+SectorSize+BlockSize)
		}
	}
	return end
}

// batmapHeader is blktap's batmap header for an all-zero map: the checksum
// is the complement of the map's byte sum, 0.
func (s *Sink) batmapHeader() []byte {
	b := make([]byte, SectorSize)
	copy(b, batmapCookie)
	binary.BigEndian.PutUint64(b[8:], uint64(s.batmapHeaderOffset()+SectorSize))
	binary.BigEndian.PutUint32(b[16:], uint32(s.batmapSectors()))
	binary.BigEndian.PutUint32(b[20:], batmapVersion)
	binary.BigEndian.PutUint32(b[24:], ^uint32(0))
	return b
}

// Abort removes the partial image (on a medium: stops; what was written
// stays, unreferenced by any BAT).
func (s *Sink) Abort() error {
	if s.done {
		return nil
	}
	s.done = true
	if s.medium != nil {
		return nil
	}
	fsutil.Discard(s.f)
	return nil
}

package vmdk

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/xva-tools/xva/disk"
	"github.com/xva-tools/xva/internal/fsutil"
)

var _ disk.Sink = (*Sink)(nil)

// Sink writes a monolithicSparse VMDK in qemu's layout: header, embedded
// descriptor, redundant grain directory and tables, grain directory and
// tables (all preallocated, as VMware's specification and VirtualBox
// require), then 64 KiB grains in increasing disk order from overHead.
// Data must arrive in increasing offset order, as disk.Sink says: a grain
// is allocated at the end of the file when its first non-zero bytes
// arrive, and each grain table is written, to both copies, as soon as the
// data has passed its 32 MiB. Tables of ranges without data are never
// written and stay holes of the file. Memory: one grain table (2 KiB);
// the directories are made at Commit (4 bytes per 32 MiB of disk, twice).
//
// A size that is not a whole number of sectors is padded with zeros to
// one: a VMDK's capacity is counted in sectors.
type Sink struct {
	f     *os.File
	final string
	size  int64 // the disk's size
	done  bool
	geo   layout

	dataPos int64    // file offset of the next grain
	last    int64    // the last grain allocated, -1 for none
	curGT   int64    // the grain table being filled, -1 for none
	gt      []uint32 // its entries
	gtDirty bool
}

// layout is where a sparse file's metadata goes, in sectors.
type layout struct {
	capacity  uint64 // sectors
	grains    int64
	gts       int64 // grain tables (directory entries)
	gdSectors int64
	rgd, gd   int64 // the directories
	rgt, gt   int64 // their first tables
	overHead  int64
}

func newLayout(size int64) layout {
	var l layout
	l.capacity = uint64((size + SectorSize - 1) / SectorSize)
	l.grains = (int64(l.capacity) + grainSector - 1) / grainSector
	l.gts = (l.grains + gtEntries - 1) / gtEntries
	l.gdSectors = (4*l.gts + SectorSize - 1) / SectorSize
	l.rgd = 1 + descSectors
	l.rgt = l.rgd + l.gdSectors
	l.gd = l.rgt + l.gts*4
	l.gt = l.gd + l.gdSectors
	l.overHead = (l.gt + l.gts*4 + grainSector - 1) / grainSector * grainSector
	return l
}

func checkSize(size int64) error {
	switch {
	case size < 0:
		return fmt.Errorf("vmdk: negative size %d", size)
	case size > MaxSize:
		return fmt.Errorf("vmdk: the disk is %d bytes; a sparse VMDK holds at most 2 TiB (%d bytes); use the raw format", size, int64(MaxSize))
	}
	return nil
}

// Create starts a monolithicSparse VMDK of size bytes at path, which must
// not exist. It is written under a temporary name beside path and renamed
// into place by Commit.
func Create(path string, size int64) (*Sink, error) {
	if err := checkSize(size); err != nil {
		return nil, err
	}
	if fsutil.Exists(path) {
		return nil, fmt.Errorf("vmdk: %s already exists", path)
	}
	f, err := fsutil.CreateTemp(path)
	if err != nil {
		return nil, err
	}
	s := &Sink{f: f, final: path, size: size, geo: newLayout(size), last: -1, curGT: -1, gt: make([]uint32, gtEntries)}
	s.dataPos = s.geo.overHead * SectorSize
	return s, nil
}

// Size implements disk.Sink.
func (s *Sink) Size() int64 { return s.size }

// WriteAt implements disk.Sink. Runs of whole zero 4 KiB blocks are not
// written; a grain holding nothing else is never allocated, and the zero
// blocks of an allocated one are holes of the file.
func (s *Sink) WriteAt(p []byte, off int64) (int, error) {
	if s.done {
		return 0, errors.New("vmdk: write after Commit or Abort")
	}
	if off < 0 || off+int64(len(p)) > s.size {
		return 0, fmt.Errorf("vmdk: write of %d bytes at %d past the disk's end %d", len(p), off, s.size)
	}
	if err := disk.WriteUnits(s.f, p, off, GrainSize, s.grainData); err != nil {
		return 0, err
	}
	return len(p), nil
}

// grainData is the file offset of grain g, allocated after the last grain
// if it has none yet.
func (s *Sink) grainData(g int64) (int64, error) {
	t := g / gtEntries
	if t == s.curGT && s.gt[g%gtEntries] != 0 {
		return int64(s.gt[g%gtEntries]) * SectorSize, nil
	}
	if g <= s.last {
		return 0, fmt.Errorf("vmdk: write to grain %d after grain %d", g, s.last)
	}
	if t != s.curGT {
		if err := s.flushGT(); err != nil {
			return 0, err
		}
		s.curGT = t
	}
	sector := s.dataPos / SectorSize
	if sector+grainSector > 1<<32 {
		return 0, fmt.Errorf("vmdk: the image passes the 2 TiB a sparse VMDK can address")
	}
	s.gt[g%gtEntries] = uint32(sector)
	s.gtDirty = true
	s.last = g
	s.dataPos += GrainSize
	return sector * SectorSize, nil
}

// flushGT writes the grain table being filled to both copies.
func (s *Sink) flushGT() error {
	if s.curGT < 0 || !s.gtDirty {
		return nil
	}
	b := make([]byte, 4*gtEntries)
	for i, e := range s.gt {
		binary.LittleEndian.PutUint32(b[4*i:], e)
	}
	for _, base := range []int64{s.geo.rgt, s.geo.gt} {
		if _, err := s.f.WriteAt(b, (base+4*s.curGT)*SectorSize); err != nil {
			return err
		}
	}
	clear(s.gt)
	s.gtDirty, s.curGT = false, -1
	return nil
}

// header is the sparse header of the image.
func (s *Sink) header() *Header {
	return &Header{Version: 1, Flags: flagNL | flagRGD, Capacity: s.geo.capacity, GrainSize: grainSector,
		DescriptorOffset: 1, DescriptorSize: descSectors, NumGTEsPerGT: gtEntries,
		RGDOffset: uint64(s.geo.rgd), GDOffset: uint64(s.geo.gd), OverHead: uint64(s.geo.overHead)}
}

// directory is a grain directory whose tables follow each other from
// sector first.
func directory(n, first int64) []byte {
	b := make([]byte, (4*n+SectorSize-1)/SectorSize*SectorSize)
	for i := range n {
		binary.LittleEndian.PutUint32(b[4*i:], uint32(first+4*i))
	}
	return b
}

func newCID() (uint32, error) {
	var b [4]byte
	_, err := rand.Read(b[:])
	return binary.LittleEndian.Uint32(b[:]), err
}

// Commit writes the last grain table, the header, descriptor and both
// directories, flushes the file to stable storage and renames it into
// place.
func (s *Sink) Commit() error {
	if s.done {
		return errors.New("vmdk: image already committed or aborted")
	}
	s.done = true
	if err := s.finish(); err != nil {
		fsutil.Discard(s.f)
		return err
	}
	return fsutil.Publish(s.f, s.final, false)
}

func (s *Sink) finish() error {
	if err := s.flushGT(); err != nil {
		return err
	}
	cid, err := newCID()
	if err != nil {
		return err
	}
	meta := s.header().marshal()
	desc := descriptorText(cid, "monolithicSparse", filepath.Base(s.final), s.geo.capacity, "ide")
	meta = append(meta, make([]byte, descSectors*SectorSize)...)
	copy(meta[SectorSize:], desc)
	meta = append(meta, directory(s.geo.gts, s.geo.rgt)...)
	if _, err := s.f.WriteAt(meta, 0); err != nil {
		return err
	}
	if _, err := s.f.WriteAt(directory(s.geo.gts, s.geo.gt), s.geo.gd*SectorSize); err != nil {
		return err
	}
	return s.f.Truncate(s.dataPos)
}

// Abort removes the partial image.
func (s *Sink) Abort() error {
	if s.done {
		return nil
	}
	s.done = true
	fsutil.Discard(s.f)
	return nil
}

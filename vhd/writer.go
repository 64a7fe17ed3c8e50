package vhd

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
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
}

// Create starts a VHD of size bytes at path (which must not exist): fixed
// when fixed is true, otherwise dynamic with 2 MiB blocks. A size that is not
// a whole number of sectors is rounded up with zeros; over 2040 GiB is
// refused.
func Create(path string, size int64, fixed bool) (*Sink, error) {
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
	s := &Sink{f: f, final: path, size: size, vsize: vsize, fixed: fixed, last: -1}
	s.footer = Footer{
		Features: 2, Version: vhdVersion, DataOffset: noOffset,
		Timestamp: uint32(time.Since(vhdEpoch) / time.Second),
		Creator:   tapCreator, CreatorVer: tapCreatorVer,
		OrigSize: uint64(vsize), CurrSize: uint64(vsize), Type: TypeFixed,
	}
	s.footer.Cylinders, s.footer.Heads, s.footer.SPT = geometry(uint64(vsize))
	if _, err := rand.Read(s.footer.UUID[:]); err != nil {
		s.Abort()
		return nil, err
	}
	if fixed {
		if err := f.Truncate(vsize); err != nil {
			s.Abort()
			return nil, err
		}
		return s, nil
	}
	s.footer.Type, s.footer.DataOffset = TypeDynamic, footerSize
	s.bat = make([]uint32, (vsize+BlockSize-1)/BlockSize)
	for i := range s.bat {
		s.bat[i] = unused
	}
	s.dataPos = s.firstBlock()
	return s, nil
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
	err := disk.DataRuns(p, off, func(run []byte, at int64) error {
		if s.fixed {
			_, err := s.f.WriteAt(run, at)
			return err
		}
		for len(run) > 0 {
			b := at / BlockSize
			n := min(int64(len(run)), (b+1)*BlockSize-at)
			if disk.IsZero(run[:n]) { // a short zero run DataRuns kept
				run, at = run[n:], at+n
				continue
			}
			pos, err := s.blockData(b)
			if err != nil {
				return err
			}
			if _, err := s.f.WriteAt(run[:n], pos+at%BlockSize); err != nil {
				return err
			}
			run, at = run[n:], at+n
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return len(p), nil
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
// storage and renames it into place.
func (s *Sink) Commit() error {
	if s.done {
		return errors.New("vhd: image already committed or aborted")
	}
	err := s.finish()
	if err == nil {
		err = s.f.Sync()
	}
	if cerr := s.f.Close(); err == nil {
		err = cerr
	}
	s.done = true
	if err == nil {
		err = fsutil.RenameNoReplace(s.f.Name(), s.final)
	}
	if err != nil {
		os.Remove(s.f.Name())
	}
	return err
}

func (s *Sink) finish() error {
	if s.fixed {
		_, err := s.f.WriteAt(s.footer.marshal(), s.vsize)
		return err
	}
	footer := s.footer.marshal()
	// The footer at the end, right after the last block.
	end := s.lastBlockEnd()
	if _, err := s.f.WriteAt(footer, end); err != nil {
		return err
	}
	if err := s.f.Truncate(end + footerSize); err != nil {
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
	_, err := s.f.WriteAt(meta, 0)
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

// Abort removes the partial image.
func (s *Sink) Abort() error {
	if s.done {
		return nil
	}
	s.done = true
	s.f.Close()
	return os.Remove(s.f.Name())
}

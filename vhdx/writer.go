package vhdx

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"os"

	"github.com/xva-tools/xva/disk"
	"github.com/xva-tools/xva/internal/fsutil"
)

var _ disk.Sink = (*Sink)(nil)

// Options are the choices of a new image.
type Options struct {
	// BlockSize is the payload block size: a power of two from 1 MiB to
	// 256 MiB; 0 means BlockSize (32 MiB).
	BlockSize int64
	// Fixed preallocates every block (LeaveBlocksAllocated).
	Fixed bool
}

// layout is where a new image puts its parts, as qemu does: the file
// identifier, two headers and two region tables in the first MiB, a 1 MiB
// empty log, the BAT, the 1 MiB metadata region, then the payload blocks,
// every part on a 1 MiB boundary.
type layout struct {
	size, blockSize int64 // virtual size (whole sectors), block size
	fixed, parent   bool
	ratio, blocks   int64
	entries         int64 // BAT entries
	batOff, batLen  int64
	metaOff         int64
	dataOff         int64 // the first payload block
	header          Header
	diskID          GUID
	locator         []byte // a differencing disk's parent locator
}

const (
	logOff  = mib
	logLen  = mib
	batOff  = logOff + logLen
	metaLen = mib
	creator = "xva"
)

func newLayout(size int64, o Options, locator []byte) (*layout, error) {
	bs := o.BlockSize
	if bs == 0 {
		bs = BlockSize
	}
	if bs < MinBlockSize || bs > MaxBlockSize || bs&(bs-1) != 0 {
		return nil, fmt.Errorf("vhdx: block size %d is not a power of two from 1 MiB to 256 MiB", bs)
	}
	if size == 0 {
		// An empty disk has no block and no BAT entry, but qemu computes
		// its BAT as (uint32)(0 - 1) / chunk ratio entries and refuses a
		// smaller region: 1 MiB blocks make that 8 MiB (of holes).
		bs = MinBlockSize
	}
	l := &layout{size: size, blockSize: bs, fixed: o.Fixed, parent: locator != nil, locator: locator}
	l.ratio = chunkRatio(bs, SectorSize)
	l.blocks = (size + bs - 1) / bs
	l.entries = batEntries(l.blocks, l.ratio, l.parent)
	l.batOff, l.batLen = batOff, max(pad(8*l.entries, mib), mib)
	if size == 0 {
		l.batLen = pad(8*(0xFFFFFFFF/l.ratio), mib)
	}
	l.metaOff = l.batOff + l.batLen
	l.dataOff = l.metaOff + metaLen
	l.header = Header{LogLength: logLen, LogOffset: logOff}
	for _, g := range []*GUID{&l.header.FileWrite, &l.header.DataWrite, &l.diskID} {
		if _, err := rand.Read(g[:]); err != nil {
			return nil, err
		}
	}
	return l, nil
}

// metadata is the metadata region: the table, then the five items qemu
// writes (all required, as qemu and Hyper-V mark them), then the parent
// locator of a differencing disk.
func (l *layout) metadata() []byte {
	var flags uint32
	if l.fixed {
		flags |= 1
	}
	if l.parent {
		flags |= 2
	}
	u32 := func(v uint32) []byte { return binary.LittleEndian.AppendUint32(nil, v) }
	items := []metaItem{
		{id: guidFileParams, flags: metaRequired, data: append(u32(uint32(l.blockSize)), u32(flags)...)},
		{id: guidDiskSize, flags: metaRequired | metaVirtualDisk, data: binary.LittleEndian.AppendUint64(nil, uint64(l.size))},
		{id: guidPage83, flags: metaRequired | metaVirtualDisk, data: l.diskID[:]},
		{id: guidLogical, flags: metaRequired | metaVirtualDisk, data: u32(SectorSize)},
		{id: guidPhysical, flags: metaRequired | metaVirtualDisk, data: u32(SectorSize)},
	}
	if l.parent {
		items = append(items, metaItem{id: guidLocator, flags: metaRequired, data: l.locator})
	}
	return marshalMeta(items, metaLen)
}

// head is the first MiB: the file identifier, the headers (sequence 1 and
// 2, both valid, no log to replay) and the two identical region tables.
func (l *layout) head() []byte {
	b := fileIdentifier(creator)
	b = append(b, make([]byte, 1<<20-len(b))...)
	for i, off := range []int64{header1Off, header2Off} {
		h := l.header
		h.Sequence = uint64(i + 1)
		copy(b[off:], h.marshal())
	}
	rt := marshalRegions([]region{
		{id: guidBAT, off: l.batOff, len: l.batLen, required: true},
		{id: guidMetadata, off: l.metaOff, len: metaLen, required: true},
	})
	copy(b[region1Off:], rt)
	copy(b[region2Off:], rt)
	return b
}

// marshalBAT is the BAT, blocks(i) being the file offset of payload
// block i (0 for none); absent blocks are NOT_PRESENT, which reads as zeros
// in a disk without a parent, the sector bitmap entries too.
func (l *layout) marshalBAT(blocks func(b int64) int64) []byte {
	bat := make([]byte, pad(8*l.entries, 4096)) // the rest of the region is a hole
	for b := range l.blocks {
		if off := blocks(b); off != 0 {
			binary.LittleEndian.PutUint64(bat[8*payloadIndex(b, l.ratio):], uint64(off)|stateFull)
		}
	}
	return bat
}

// Sink writes a VHDX, dynamic or fixed, in one forward pass: data goes
// straight to its block in the file, blocks in increasing disk order, and
// Commit writes what precedes them (headers, region tables, the BAT, the
// metadata) into the room left for it at the start. It is created under a
// temporary name beside the target and renamed by Commit.
//
// Memory: the block map, 8 bytes per block, and the BAT Commit writes from
// it, 8 bytes per entry (with 32 MiB blocks 512 KiB each for a 2 TiB disk,
// 16 MiB for 64 TiB; 1 MiB blocks cost 32 times that), and no data buffer:
// what WriteAt is given goes to the file as it is.
type Sink struct {
	f     *os.File
	final string
	size  int64 // the disk's size as given
	l     *layout
	done  bool

	blocks  []int64 // file offset of each payload block, 0 for none
	dataPos int64   // where the next block goes
	last    int64   // the last block allocated, -1 for none
}

// Create starts a dynamic VHDX (32 MiB blocks) of size bytes at path,
// which must not exist. A size that is not a whole number of 512-byte
// sectors is rounded up with zeros; over 64 TiB is refused.
func Create(path string, size int64) (*Sink, error) { return CreateWith(path, size, Options{}) }

// CreateFixed starts a fixed VHDX of size bytes at path, as Create does:
// every block is allocated, the file as large as the disk plus 4 MiB.
func CreateFixed(path string, size int64) (*Sink, error) {
	return CreateWith(path, size, Options{Fixed: true})
}

// CreateWith starts a VHDX of size bytes at path with the given options.
func CreateWith(path string, size int64, o Options) (*Sink, error) {
	if size < 0 {
		return nil, fmt.Errorf("vhdx: negative size %d", size)
	}
	vsize := pad(size, SectorSize)
	if vsize > MaxSize {
		return nil, fmt.Errorf("vhdx: the disk is %d bytes; a VHDX holds at most 64 TiB (%d bytes); use the raw format", size, int64(MaxSize))
	}
	l, err := newLayout(vsize, o, nil)
	if err != nil {
		return nil, err
	}
	if fsutil.Exists(path) {
		return nil, fmt.Errorf("vhdx: %s already exists", path)
	}
	f, err := fsutil.CreateTemp(path)
	if err != nil {
		return nil, err
	}
	s := &Sink{f: f, final: path, size: size, l: l, blocks: make([]int64, l.blocks), dataPos: l.dataOff, last: -1}
	if o.Fixed {
		for b := range s.blocks {
			s.blocks[b] = l.dataOff + int64(b)*l.blockSize
		}
		s.dataPos = l.dataOff + l.blocks*l.blockSize
		s.last = l.blocks
		if err := f.Truncate(s.dataPos); err != nil {
			s.Abort()
			return nil, err
		}
	}
	return s, nil
}

// Size implements disk.Sink.
func (s *Sink) Size() int64 { return s.size }

// WriteAt implements disk.Sink. A dynamic disk's block is allocated at the
// end of the file when its first non-zero bytes arrive; zero runs are left
// as holes in the file, which read as zeros.
func (s *Sink) WriteAt(p []byte, off int64) (int, error) {
	if s.done {
		return 0, errors.New("vhdx: write to an image already committed or aborted")
	}
	if off < 0 || off+int64(len(p)) > s.size {
		return 0, fmt.Errorf("vhdx: write of %d bytes at %d past the disk's end %d", len(p), off, s.size)
	}
	if err := disk.WriteUnits(s.f, p, off, s.l.blockSize, s.block); err != nil {
		return 0, err
	}
	return len(p), nil
}

// block returns the file offset of block b, allocating it after the last
// one if it has none: blocks come in increasing order, so the file's blocks
// are in disk order.
func (s *Sink) block(b int64) (int64, error) {
	if off := s.blocks[b]; off != 0 {
		return off, nil
	}
	if b < s.last {
		return 0, fmt.Errorf("vhdx: write to block %d after block %d", b, s.last)
	}
	s.blocks[b], s.last = s.dataPos, b
	s.dataPos += s.l.blockSize
	return s.blocks[b], nil
}

// Commit writes the start of the file (identifier, headers, region
// tables, the empty log, BAT and metadata), sizes the file to whole
// blocks, flushes it to stable storage and renames it into place.
func (s *Sink) Commit() error {
	if s.done {
		return errors.New("vhdx: image already committed or aborted")
	}
	s.done = true
	if err := s.finish(); err != nil {
		fsutil.Discard(s.f)
		return err
	}
	return fsutil.Publish(s.f, s.final, false)
}

func (s *Sink) finish() error {
	l := s.l
	if err := s.f.Truncate(s.dataPos); err != nil {
		return err
	}
	if _, err := s.f.WriteAt(l.head(), 0); err != nil {
		return err
	}
	if _, err := s.f.WriteAt(l.marshalBAT(func(b int64) int64 { return s.blocks[b] }), l.batOff); err != nil {
		return err
	}
	_, err := s.f.WriteAt(l.metadata(), l.metaOff)
	return err
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

package vmdk

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"sync"

	"github.com/klauspost/compress/zlib"
)

// maxGDEntries is the most grain directory entries read: qemu's limit of
// 32 Mi (a 512-entry table of 64 KiB grains covers 32 MiB; 32 Mi of them
// cover 1 EiB, far past any real disk).
const maxGDEntries = 32 << 20

// sparseExtent is a hosted sparse extent (monolithicSparse,
// streamOptimized, one file of twoGbMaxExtentSparse): a header, a grain
// directory, grain tables and grains. Every table entry is checked when
// the extent is opened; only grain tables holding an allocated grain are
// kept, so memory is 2 KiB per 32 MiB of the disk holding data (with
// 64 KiB grains), plus 4 bytes per 32 MiB of virtual size for the
// directory, never the disk's size.
type sparseExtent struct {
	ra         io.ReaderAt
	name       string
	fileSize   int64
	h          *Header
	grainBytes int64
	capacity   int64      // bytes
	gts        [][]uint32 // per directory entry; nil when no grain is allocated under it
	cache      grainCache
}

// gte values with a meaning of their own.
const (
	gteUnallocated = 0
	gteZero        = 1 // with flagZeroGrain
)

func (s *sparseExtent) readAt(n int, off int64, what string) ([]byte, error) {
	if off < 0 || off > s.fileSize || int64(n) > s.fileSize-off {
		return nil, corrupt("%s at byte %d (%d bytes) runs past the end of the file (%d bytes)", what, off, n, s.fileSize)
	}
	b := make([]byte, n)
	got, err := s.ra.ReadAt(b, off)
	if got == n {
		return b, nil
	}
	if err == nil || err == io.EOF {
		return nil, corrupt("the file ends inside the %s at byte %d", what, off)
	}
	return nil, err
}

// openSparse reads and checks a sparse extent's header (or, for a
// streamOptimized file whose header says the directory is at the end, its
// footer), grain directory and grain tables.
func openSparse(ra io.ReaderAt, fileSize int64, name string) (*sparseExtent, error) {
	s := &sparseExtent{ra: ra, name: name, fileSize: fileSize}
	b, err := s.readAt(headerSize, 0, "sparse header")
	if err != nil {
		return nil, err
	}
	if s.h, err = parseHeader(b); err != nil {
		return nil, err
	}
	if s.h.GDOffset == gdAtEnd {
		if err := s.readFooter(); err != nil {
			return nil, err
		}
	}
	h := s.h
	s.grainBytes = int64(h.GrainSize) * SectorSize
	s.capacity = int64(h.Capacity) * SectorSize
	if int64(h.OverHead) > s.fileSize/SectorSize {
		return nil, corrupt("the file is %d bytes, shorter than the %d sectors of metadata its header declares (truncated?)", s.fileSize, h.OverHead)
	}
	if s.capacity == 0 {
		return s, nil
	}
	return s, s.loadTables()
}

// readFooter reads the footer of a streamOptimized file: a footer marker,
// the header with the real directory offset, and the end-of-stream marker
// in the last three sectors. It must agree with the header.
func (s *sparseExtent) readFooter() error {
	if s.fileSize < 4*SectorSize {
		return corrupt("the header puts the grain directory at the end, and the file is too short for a footer")
	}
	b, err := s.readAt(3*SectorSize, s.fileSize/SectorSize*SectorSize-3*SectorSize, "footer")
	if err != nil {
		return err
	}
	le := binary.LittleEndian
	if le.Uint32(b[8:]) != 0 || le.Uint32(b[12:]) != markerFooter {
		return corrupt("no footer marker 3 sectors before the end of the file (truncated?)")
	}
	if le.Uint64(b[1024:]) != 0 || le.Uint32(b[1032:]) != 0 || le.Uint32(b[1036:]) != markerEOS {
		return corrupt("no end-of-stream marker in the last sector (truncated?)")
	}
	f, err := parseHeader(b[512:1024])
	if err != nil {
		return fmt.Errorf("footer: %w", err)
	}
	h := s.h
	if f.Version != h.Version || f.Flags != h.Flags || f.Capacity != h.Capacity || f.GrainSize != h.GrainSize ||
		f.NumGTEsPerGT != h.NumGTEsPerGT || f.OverHead != h.OverHead || f.CompressAlgorithm != h.CompressAlgorithm {
		return corrupt("the footer disagrees with the header")
	}
	if f.GDOffset == gdAtEnd {
		return corrupt("the footer does not say where the grain directory is")
	}
	s.h = f
	return nil
}

// loadTables reads the grain directory and every grain table it points to,
// checking each entry against the file.
func (s *sparseExtent) loadTables() error {
	h := s.h
	perGT := int64(h.NumGTEsPerGT) * int64(h.GrainSize) // sectors, at most 2^30
	n := (int64(h.Capacity) + perGT - 1) / perGT
	if n > maxGDEntries {
		return corrupt("%d grain directory entries (at most %d)", n, maxGDEntries)
	}
	if h.GDOffset > uint64(s.fileSize/SectorSize) {
		return corrupt("the grain directory at sector %d is past the end of the file (%d bytes)", h.GDOffset, s.fileSize)
	}
	gdAt := int64(h.GDOffset) * SectorSize
	if gdAt < headerSize {
		return corrupt("the grain directory is at sector %d, over the header", h.GDOffset)
	}
	gd, err := s.readAt(int(4*n), gdAt, "grain directory")
	if err != nil {
		return err
	}
	s.gts = make([][]uint32, n)
	grains := (int64(h.Capacity) + int64(h.GrainSize) - 1) / int64(h.GrainSize)
	gtBytes := 4 * int(h.NumGTEsPerGT)
	seen := map[uint32][]uint32{} // tables shared by several entries are read once
	for i := range n {
		e := binary.LittleEndian.Uint32(gd[4*i:])
		if e == 0 {
			continue
		}
		if gt, ok := seen[e]; ok {
			s.gts[i] = gt
			continue
		}
		at := int64(e) * SectorSize
		if at < headerSize {
			return corrupt("grain directory entry %d puts its grain table at sector %d, over the header", i, e)
		}
		b, err := s.readAt(gtBytes, at, fmt.Sprintf("grain table %d", i))
		if err != nil {
			return err
		}
		gt := make([]uint32, h.NumGTEsPerGT)
		any := false
		for j := range gt {
			g := i*int64(h.NumGTEsPerGT) + int64(j)
			v := binary.LittleEndian.Uint32(b[4*j:])
			if g >= grains {
				break // entries past the disk's end are never used
			}
			if err := s.checkGTE(v, g, at+4*int64(j)); err != nil {
				return err
			}
			gt[j] = v
			any = any || v != gteUnallocated
		}
		if any {
			s.gts[i] = gt
		}
		seen[e] = s.gts[i]
	}
	return nil
}

// checkGTE checks grain g's table entry v, read at byte at: its grain must
// lie after the metadata and inside the file.
func (s *sparseExtent) checkGTE(v uint32, g, at int64) error {
	if v == gteUnallocated || v == gteZero && s.h.Flags&flagZeroGrain != 0 {
		return nil
	}
	off := int64(v) * SectorSize
	where := fmt.Sprintf("the grain table entry at byte %d (disk offset %d)", at, g*s.grainBytes)
	if v < uint32(min(s.h.OverHead, 1<<32-1)) || off < headerSize {
		return corrupt("%s points at sector %d, inside the header and tables (grains start at sector %d)", where, v, s.h.OverHead)
	}
	need := min(s.grainBytes, s.capacity-g*s.grainBytes)
	if s.compressed() {
		need = markerSize + 1
	}
	if off > s.fileSize || need > s.fileSize-off {
		return corrupt("%s points at sector %d, past the end of the file (%d bytes)", where, v, s.fileSize)
	}
	return nil
}

const markerSize = 12 // a grain marker: lba (8), size (4)

func (s *sparseExtent) compressed() bool { return s.h.Flags&flagCompressed != 0 }

// gte is grain g's table entry.
func (s *sparseExtent) gte(g int64) uint32 {
	per := int64(s.h.NumGTEsPerGT)
	gt := s.gts[g/per]
	if gt == nil {
		return gteUnallocated
	}
	return gt[g%per]
}

func (s *sparseExtent) allocated(g int64) bool {
	v := s.gte(g)
	return v != gteUnallocated && !(v == gteZero && s.h.Flags&flagZeroGrain != 0)
}

// readAtExtent reads p at byte off of the extent, off+len(p) <= capacity.
func (s *sparseExtent) readAtExtent(p []byte, off int64) error {
	for len(p) > 0 {
		g := off / s.grainBytes
		in := off % s.grainBytes
		n := min(int64(len(p)), s.grainBytes-in)
		switch {
		case !s.allocated(g):
			clear(p[:n])
		case s.compressed():
			data, err := s.grain(g)
			if err != nil {
				return err
			}
			copy(p[:n], data[in:])
		default:
			if _, err := s.ra.ReadAt(p[:n], int64(s.gte(g))*SectorSize+in); err != nil {
				return fmt.Errorf("reading the grain at disk offset %d: %w", g*s.grainBytes, err)
			}
		}
		p, off = p[n:], off+n
	}
	return nil
}

// grain inflates compressed grain g: its marker must name it, its data must
// lie in the file, and it must inflate to the grain's bytes and no more.
func (s *sparseExtent) grain(g int64) ([]byte, error) {
	if b := s.cache.get(g); b != nil {
		return b, nil
	}
	at := int64(s.gte(g)) * SectorSize
	where := fmt.Sprintf("the compressed grain at byte %d (disk offset %d)", at, g*s.grainBytes)
	m, err := s.readAt(markerSize, at, "grain marker")
	if err != nil {
		return nil, err
	}
	lba := binary.LittleEndian.Uint64(m)
	size := int64(binary.LittleEndian.Uint32(m[8:]))
	switch {
	case lba != uint64(g)*s.h.GrainSize:
		return nil, corrupt("%s is marked for sector %d", where, lba)
	case size == 0 || size > 2*s.grainBytes:
		return nil, corrupt("%s declares %d compressed bytes", where, size)
	case size > s.fileSize-at-markerSize:
		return nil, corrupt("%s runs past the end of the file (%d bytes)", where, s.fileSize)
	}
	comp, err := s.readAt(int(size), at+markerSize, "compressed grain")
	if err != nil {
		return nil, err
	}
	zr, err := zlib.NewReader(bytes.NewReader(comp))
	if err != nil {
		return nil, corrupt("%s: %v", where, err)
	}
	out := make([]byte, s.grainBytes+1)
	n, err := io.ReadFull(zr, out)
	switch {
	case n > int(s.grainBytes):
		return nil, corrupt("%s inflates past its grain of %d bytes", where, s.grainBytes)
	case err != io.ErrUnexpectedEOF && err != io.EOF:
		return nil, corrupt("%s: %v", where, err)
	case int64(n) < min(s.grainBytes, s.capacity-g*s.grainBytes):
		return nil, corrupt("%s inflates to only %d bytes", where, n)
	}
	out = out[:s.grainBytes]
	clear(out[n:])
	s.cache.put(g, out)
	return out, nil
}

// grainCache keeps the last few inflated grains: a disk is read in pieces
// that need not be whole grains.
type grainCache struct {
	mu   sync.Mutex
	keys [4]int64
	vals [4][]byte
	next int
}

func (c *grainCache) get(g int64) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, k := range c.keys {
		if c.vals[i] != nil && k == g {
			return c.vals[i]
		}
	}
	return nil
}

func (c *grainCache) put(g int64, b []byte) {
	c.mu.Lock()
	c.keys[c.next], c.vals[c.next] = g, b
	c.next = (c.next + 1) % len(c.keys)
	c.mu.Unlock()
}

// embeddedDescriptor is the descriptor a sparse extent carries, or nil.
func (s *sparseExtent) embeddedDescriptor() ([]byte, error) {
	h := s.h
	if h.DescriptorOffset == 0 || h.DescriptorSize == 0 {
		return nil, nil
	}
	if h.DescriptorSize > maxDescriptor/SectorSize || h.DescriptorOffset > uint64(s.fileSize) {
		return nil, corrupt("the embedded descriptor (%d sectors at sector %d) is outside the file or too large", h.DescriptorSize, h.DescriptorOffset)
	}
	return s.readAt(int(h.DescriptorSize)*SectorSize, int64(h.DescriptorOffset)*SectorSize, "embedded descriptor")
}

package vmdk

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/klauspost/compress/zlib"
	"github.com/xva-tools/xva/disk"
	"github.com/xva-tools/xva/internal/fsutil"
	"github.com/xva-tools/xva/internal/pipeline"
)

var _ disk.Sink = (*StreamSink)(nil)

// StreamSink writes a streamOptimized VMDK as VMware writes one, what
// ESXi and OVF/OVA imports take: a version 3 header saying the grain
// directory is at the end, the embedded descriptor, then each grain that
// holds data as a grain marker and its zlib-compressed bytes, a grain
// table (with its marker) as soon as the data has passed its 32 MiB, and
// at the end the grain directory, the footer (the header again, with the
// directory's offset) and the end-of-stream marker. The file is written
// front to back, never seeking.
//
// Grains are compressed on up to jobs workers (internal/pipeline's ordered
// pool) and written in disk order. Memory is bounded by the pool: at most
// 2×jobs grains in flight, each 64 KiB in and at most about as much out,
// plus the grain being gathered, one grain table (2 KiB) and the grain
// directory (4 bytes per 32 MiB of disk).
//
// A size that is not a whole number of sectors is padded with zeros to
// one.
type StreamSink struct {
	f     *os.File
	w     *bufio.Writer
	final string
	size  int64
	geo   layout
	done  bool
	pool  *pipeline.Ordered[*packed]

	cur int64  // the grain being gathered, -1 for none
	buf []byte // its bytes, nil while it is all zeros

	// Owned by the pool's emitting goroutine until Close returns.
	pos   int64 // bytes written
	curGT int64
	gt    []uint32
	gd    []uint32
}

// packed is a grain ready to write: marker, compressed bytes, padding.
type packed struct {
	g   int64
	rec *bytes.Buffer
}

var (
	grainBufs = sync.Pool{New: func() any { b := make([]byte, GrainSize); return &b }}
	recBufs   = sync.Pool{New: func() any { return bytes.NewBuffer(make([]byte, 0, GrainSize+1024)) }}
	zwriters  = sync.Pool{New: func() any { return zlib.NewWriter(nil) }}
)

// CreateStream starts a streamOptimized VMDK of size bytes at path, which
// must not exist, compressing on jobs workers (0: one per core). It is
// written under a temporary name beside path and renamed into place by
// Commit.
func CreateStream(path string, size int64, jobs int) (*StreamSink, error) {
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
	s, err := newStream(f, filepath.Base(path), size, jobs)
	if err != nil {
		fsutil.Discard(f)
		return nil, err
	}
	s.f, s.final = f, path
	return s, nil
}

// NewStreamWriter writes a streamOptimized VMDK of size bytes into w, front
// to back, as CreateStream does into a file: what an OVA member or an HTTP
// upload needs. name is the file name its descriptor gives the extent.
// Commit writes the end of the image and flushes it into w, which it does
// not close; Abort stops the workers. Written then gives the image's size.
func NewStreamWriter(w io.Writer, name string, size int64, jobs int) (*StreamSink, error) {
	if err := checkSize(size); err != nil {
		return nil, err
	}
	return newStream(w, name, size, jobs)
}

func newStream(w io.Writer, name string, size int64, jobs int) (*StreamSink, error) {
	s := &StreamSink{w: bufio.NewWriterSize(w, 1<<20), size: size, geo: newLayout(size), cur: -1, curGT: -1}
	s.gt = make([]uint32, gtEntries)
	s.gd = make([]uint32, s.geo.gts)
	cid, err := newCID()
	if err != nil {
		return nil, err
	}
	// Header and descriptor, padded to the first grain at overHead.
	head := make([]byte, grainSector*SectorSize)
	copy(head, s.header(gdAtEnd).marshal())
	copy(head[SectorSize:], descriptorText(cid, "streamOptimized", name, s.geo.capacity, "lsilogic"))
	if err := s.write(head); err != nil {
		return nil, err
	}
	s.pool = pipeline.NewOrdered(context.Background(), jobs, s.emit, func(p *packed) {
		if p.rec != nil {
			recBufs.Put(p.rec)
		}
	})
	return s, nil
}

// Written is the image's size in bytes, once Commit has returned (the
// workers own the count until then).
func (s *StreamSink) Written() int64 { return s.pos }

// header is the header (gd = gdAtEnd) or the footer's copy of it.
func (s *StreamSink) header(gd uint64) *Header {
	return &Header{Version: 3, Flags: flagNL | flagCompressed | flagMarkers, Capacity: s.geo.capacity,
		GrainSize: grainSector, DescriptorOffset: 1, DescriptorSize: descSectors, NumGTEsPerGT: gtEntries,
		GDOffset: gd, OverHead: grainSector, CompressAlgorithm: compressDeflate}
}

func (s *StreamSink) write(b []byte) error {
	_, err := s.w.Write(b)
	s.pos += int64(len(b))
	return err
}

// Size implements disk.Sink.
func (s *StreamSink) Size() int64 { return s.size }

// WriteAt implements disk.Sink: data is gathered a grain at a time, and a
// grain that holds anything but zeros is compressed once the data passes
// its end.
func (s *StreamSink) WriteAt(p []byte, off int64) (int, error) {
	if s.done {
		return 0, errors.New("vmdk: write after Commit or Abort")
	}
	if off < 0 || off+int64(len(p)) > s.size {
		return 0, fmt.Errorf("vmdk: write of %d bytes at %d past the disk's end %d", len(p), off, s.size)
	}
	n := len(p)
	for len(p) > 0 {
		g := off / GrainSize
		if g != s.cur {
			if g < s.cur {
				return 0, fmt.Errorf("vmdk: write at %d goes back before grain %d", off, s.cur)
			}
			if err := s.submit(); err != nil {
				return 0, err
			}
			s.cur = g
		}
		c := min(int64(len(p)), (g+1)*GrainSize-off)
		if s.buf == nil && !disk.IsZero(p[:c]) {
			s.buf = *grainBufs.Get().(*[]byte)
			clear(s.buf)
		}
		if s.buf != nil {
			copy(s.buf[off%GrainSize:], p[:c])
		}
		p, off = p[c:], off+c
	}
	return n, nil
}

// submit hands the gathered grain to the pool.
func (s *StreamSink) submit() error {
	g, buf := s.cur, s.buf
	s.cur, s.buf = -1, nil
	if buf == nil {
		return nil
	}
	// The last grain holds only the sectors inside the disk.
	n := min(int64(GrainSize), int64(s.geo.capacity)*SectorSize-g*GrainSize)
	return s.pool.Submit(func(context.Context) (*packed, error) {
		defer grainBufs.Put(&buf)
		if disk.IsZero(buf[:n]) {
			return &packed{g: -1}, nil
		}
		return compressGrain(g, buf[:n])
	})
}

// compressGrain makes grain g's record: marker (lba, size), zlib data,
// zeros to the next sector.
func compressGrain(g int64, data []byte) (*packed, error) {
	rec := recBufs.Get().(*bytes.Buffer)
	rec.Reset()
	rec.Write(make([]byte, markerSize))
	zw := zwriters.Get().(*zlib.Writer)
	defer zwriters.Put(zw)
	zw.Reset(rec)
	if _, err := zw.Write(data); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	b := rec.Bytes()
	binary.LittleEndian.PutUint64(b, uint64(g*grainSector))
	binary.LittleEndian.PutUint32(b[8:], uint32(len(b)-markerSize))
	if r := len(b) % SectorSize; r != 0 {
		rec.Write(make([]byte, SectorSize-r))
	}
	return &packed{g: g, rec: rec}, nil
}

// emit writes a compressed grain, after the grain table of the grains
// before it when this one starts another table.
func (s *StreamSink) emit(p *packed) error {
	if p.g < 0 {
		return nil
	}
	defer recBufs.Put(p.rec)
	if t := p.g / gtEntries; t != s.curGT {
		if err := s.flushGT(); err != nil {
			return err
		}
		s.curGT = t
	}
	if s.pos/SectorSize+int64(p.rec.Len())/SectorSize > 1<<32-16 {
		return errors.New("vmdk: the image passes the 2 TiB a sparse VMDK can address")
	}
	s.gt[p.g%gtEntries] = uint32(s.pos / SectorSize)
	return s.write(p.rec.Bytes())
}

// marker is a metadata marker: numSectors of metadata of type typ follow.
func marker(numSectors uint64, typ uint32) []byte {
	b := make([]byte, SectorSize)
	binary.LittleEndian.PutUint64(b, numSectors)
	binary.LittleEndian.PutUint32(b[12:], typ)
	return b
}

// flushGT writes the grain table being filled, with its marker.
func (s *StreamSink) flushGT() error {
	if s.curGT < 0 {
		return nil
	}
	b := make([]byte, 4*gtEntries)
	for i, e := range s.gt {
		binary.LittleEndian.PutUint32(b[4*i:], e)
	}
	if err := s.write(marker(4, markerGT)); err != nil {
		return err
	}
	s.gd[s.curGT] = uint32(s.pos / SectorSize)
	clear(s.gt)
	s.curGT = -1
	return s.write(b)
}

// Commit compresses the last grain, writes the last grain table, the grain
// directory, the footer and the end-of-stream marker, flushes the file to
// stable storage and renames it into place.
func (s *StreamSink) Commit() error {
	if s.done {
		return errors.New("vmdk: image already committed or aborted")
	}
	s.done = true
	if err := s.finish(); err != nil {
		if s.f != nil {
			fsutil.Discard(s.f)
		}
		return err
	}
	if s.f == nil {
		return nil
	}
	return fsutil.Publish(s.f, s.final, false)
}

func (s *StreamSink) finish() error {
	err := s.submit()
	if err != nil {
		return s.pool.Abort(err)
	}
	if err := s.pool.Close(); err != nil {
		return err
	}
	if err := s.flushGT(); err != nil {
		return err
	}
	gdSectors := uint64(s.geo.gdSectors)
	if err := s.write(marker(gdSectors, markerGD)); err != nil {
		return err
	}
	gdAt := uint64(s.pos / SectorSize)
	gd := make([]byte, gdSectors*SectorSize)
	for i, e := range s.gd {
		binary.LittleEndian.PutUint32(gd[4*i:], e)
	}
	for _, b := range [][]byte{gd, marker(1, markerFooter), s.header(gdAt).marshal(), make([]byte, SectorSize)} {
		if err := s.write(b); err != nil {
			return err
		}
	}
	return s.w.Flush()
}

// Abort stops the workers and removes the partial image.
func (s *StreamSink) Abort() error {
	if s.done {
		return nil
	}
	s.done = true
	if s.buf != nil {
		b := s.buf
		grainBufs.Put(&b)
		s.buf = nil
	}
	s.pool.Abort(errors.New("vmdk: aborted"))
	if s.f != nil {
		fsutil.Discard(s.f)
	}
	return nil
}

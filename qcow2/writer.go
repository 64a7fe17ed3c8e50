package qcow2

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"os"
	"sync"

	"github.com/klauspost/compress/flate"
	"github.com/klauspost/compress/zstd"

	"github.com/xva-tools/xva/disk"
	"github.com/xva-tools/xva/internal/fsutil"
	"github.com/xva-tools/xva/internal/pipeline"
)

var _ disk.Sink = (*Sink)(nil)

// Sink writes a version 3 qcow2 image (compat 1.1) in one pass. Data must
// arrive in increasing offset order, as disk.Sink says; the file is then
//
//	cluster 0            the header, written last
//	for each L2 range    its data clusters in guest order (all-zero
//	                     clusters are left unallocated; compressed ones
//	                     byte-packed), then its L2 table
//	the L1 table
//	the refcount table   at the very end
//
// with each refcount block written where the file stands when it grows
// past the clusters the block counts (cluster_size/2 clusters, 2 GiB of
// file with 64 KiB clusters), and the last ones before the refcount table.
// qemu-img check finds it exact: no leaks, the copied flag on every normal
// entry, none on compressed ones.
//
// Memory: the L1 table, 8 bytes per L2 range (cluster_size/8 clusters,
// 512 MiB of disk with 64 KiB clusters: O(size / cluster_size / 8192) at
// the default, 32 KiB for 2 TiB), the refcount table's entries, 8 bytes
// per refcount block (4 KiB for 1 TiB of file at 64 KiB), one L2 table,
// one refcount block and one cluster being gathered; compressing, 3 ×
// jobs clusters more.
type Sink struct {
	f      *os.File // nil on a medium
	medium Medium
	w      io.WriterAt
	final  string
	size   int64 // the disk's size
	vsize  int64 // the size rounded up to a sector, what the header says
	done   bool

	cs        int64
	bits      uint
	l2Entries int64
	pos       int64 // the file offset of the next cluster
	l1        []uint64
	slot      int64  // the L1 index of the L2 table being filled, -1 for none
	l2        []byte // that table
	l2n       int    // its entries set
	cur       int64  // the guest cluster being gathered, -1 for none
	buf       []byte
	dirty     bool
	last      int64 // the last guest cluster written, -1 for none

	// Refcounts, kept a block at a time: a block is written as soon as
	// the file grows past the clusters it counts.
	rbRange  int64    // the range of clusters rb counts
	rb       []byte   // its refcount block
	reftable []uint64 // where the blocks of the ranges before it went

	// Compressed output: clusters are compressed on a pool, in order.
	compression int // 0 none, else compressionZlib+1 or compressionZstd+1
	jobs        int
	pool        *pipeline.Ordered[compressed]
	bufs        sync.Pool
}

// compressed is a cluster and its compressed form (nil when compressing
// does not make it smaller).
type compressed struct {
	c    int64
	raw  *[]byte // a buffer of bufs
	data []byte
}

// Medium is what CreateOn writes onto: a block device or a logical volume.
type Medium interface {
	io.WriterAt
	Sync() error
}

// ErrTooSmall: the medium cannot hold the largest image the disk could need.
var ErrTooSmall = errors.New("qcow2: the target is too small")

// Option sets a property of the image written.
type Option func(*Sink) error

// WithClusterSize sets the cluster size: a power of two from 512 bytes to
// 2 MiB (qemu's limits); the default is 64 KiB.
func WithClusterSize(n int64) Option {
	return func(s *Sink) error {
		if n < 1<<minClusterBits || n > 1<<maxClusterBits || n&(n-1) != 0 {
			return fmt.Errorf("qcow2: cluster size %d is not a power of two from 512 bytes to 2 MiB", n)
		}
		s.cs = n
		return nil
	}
}

// WithCompression makes every cluster that compresses smaller a
// compressed cluster: "zlib" (raw deflate, qemu's default compression
// type) or "zstd" (compression type 1, which needs qemu 5.1 or later);
// "" for none. Clusters are compressed on jobs goroutines (0: one per
// CPU), with at most 3 × jobs clusters in memory.
func WithCompression(kind string, jobs int) Option {
	return func(s *Sink) error {
		switch kind {
		case "":
			s.compression = 0
		case "zlib":
			s.compression = compressionZlib + 1
		case "zstd":
			s.compression = compressionZstd + 1
		default:
			return fmt.Errorf("qcow2: unknown compression %q (zlib or zstd)", kind)
		}
		s.jobs = pipeline.Jobs(jobs)
		return nil
	}
}

// CheckOptions reports an option that Create would refuse, creating
// nothing.
func CheckOptions(opts ...Option) error {
	s := &Sink{}
	for _, o := range opts {
		if err := o(s); err != nil {
			return err
		}
	}
	return nil
}

// Create starts a qcow2 image of size bytes at path, which must not exist.
// A size that is not a whole number of 512-byte sectors is rounded up with
// zeros (qemu reads whole sectors).
func Create(path string, size int64, opts ...Option) (*Sink, error) {
	s, err := newSink(size, opts)
	if err != nil {
		return nil, err
	}
	if fsutil.Exists(path) {
		return nil, fmt.Errorf("qcow2: %s already exists", path)
	}
	f, err := fsutil.CreateTemp(path)
	if err != nil {
		return nil, err
	}
	s.f, s.w, s.final = f, f, path
	return s, nil
}

// CreateOn starts a qcow2 image of size bytes on a medium of end bytes.
// Every cluster is written whole, so the medium's stale bytes never show.
// A medium too small for the largest image the disk could need is refused
// before anything is written.
func CreateOn(m Medium, size, end int64, opts ...Option) (*Sink, error) {
	s, err := newSink(size, opts)
	if err != nil {
		return nil, err
	}
	if need := s.maxFile(); need > end {
		return nil, fmt.Errorf("%w: a %d-byte disk needs up to %d bytes as a qcow2 image; the target holds %d", ErrTooSmall, size, need, end)
	}
	s.medium, s.w = m, m
	return s, nil
}

func newSink(size int64, opts []Option) (*Sink, error) {
	if size < 0 {
		return nil, fmt.Errorf("qcow2: negative size %d", size)
	}
	s := &Sink{size: size, vsize: (size + 511) &^ 511, cs: DefaultClusterSize, slot: -1, cur: -1, last: -1}
	for _, o := range opts {
		if err := o(s); err != nil {
			return nil, err
		}
	}
	s.bits = uint(bits.TrailingZeros64(uint64(s.cs)))
	s.l2Entries = s.cs / 8
	clusters := (s.vsize + s.cs - 1) >> s.bits
	l1 := (clusters + s.l2Entries - 1) / s.l2Entries
	if l1*8 > maxL1Bytes {
		return nil, fmt.Errorf("qcow2: a %d-byte disk needs an L1 table over qemu's 32 MiB with %d-byte clusters; use larger clusters", size, s.cs)
	}
	s.l1 = make([]uint64, l1)
	s.rb = make([]byte, s.cs)
	s.ref(0) // cluster 0 is the header's
	s.pos = s.cs
	if s.compression != 0 {
		s.bufs.New = func() any { b := make([]byte, s.cs); return &b }
		s.pool = pipeline.NewOrdered(context.Background(), s.jobs, s.emit, func(c compressed) { s.bufs.Put(c.raw) })
	}
	return s, nil
}

// maxFile is the largest file the disk can make: every cluster allocated.
func (s *Sink) maxFile() int64 {
	clusters := (s.vsize + s.cs - 1) >> s.bits
	t := 1 + clusters + int64(len(s.l1)) + s.l1Clusters()
	nrb, nrt := s.refcountClusters(t)
	// Compressed clusters are stored in fewer bytes, or as they are; what
	// packing them can waste is a cluster before each table and block.
	return (t + int64(len(s.l1)) + 2*nrb + nrt + 2) * s.cs
}

// l1Clusters is the L1 table's size in clusters; an empty disk has none
// (qemu counts only the table's bytes as used).
// perBlock is the clusters a refcount block counts (16-bit refcounts).
func (s *Sink) perBlock() int64 { return s.cs / 2 }

// alloc takes the next cluster of the file (pos aligned up first) and
// returns its offset. A refcount block whose range the file has left is
// written first, in the cluster that would have been taken.
func (s *Sink) alloc() (int64, error) {
	s.pos = (s.pos + s.cs - 1) &^ (s.cs - 1)
	if err := s.leaveRange(); err != nil {
		return 0, err
	}
	off := s.pos
	s.ref(off >> s.bits)
	s.pos += s.cs
	return off, nil
}

// leaveRange writes the refcount block of the range before pos's if pos
// (cluster-aligned) has left it: in the cluster at pos, which it counts
// in the next block.
func (s *Sink) leaveRange() error {
	if (s.pos>>s.bits)/s.perBlock() == s.rbRange {
		return nil
	}
	if _, err := s.w.WriteAt(s.rb, s.pos); err != nil {
		return err
	}
	s.reftable = append(s.reftable, uint64(s.pos))
	clear(s.rb)
	s.rbRange++
	s.ref(s.pos >> s.bits)
	s.pos += s.cs
	return nil
}

// ref counts one more reference to cluster c, which is in rbRange.
func (s *Sink) ref(c int64) {
	i := 2 * (c % s.perBlock())
	binary.BigEndian.PutUint16(s.rb[i:], binary.BigEndian.Uint16(s.rb[i:])+1)
}

// refs is cluster c's refcount so far (c in rbRange).
func (s *Sink) refs(c int64) uint16 { return binary.BigEndian.Uint16(s.rb[2*(c%s.perBlock()):]) }

// placeBytes takes n bytes at pos for a compressed cluster, never across
// a range of refcount blocks and never making a refcount overflow, and
// counts a reference to each cluster they touch.
func (s *Sink) placeBytes(n int64) (int64, error) {
	first, last := s.pos>>s.bits, (s.pos+n-1)>>s.bits
	if s.pos&(s.cs-1) != 0 && (last/s.perBlock() != s.rbRange || s.refs(first) == 0xffff) {
		s.pos = (s.pos + s.cs - 1) &^ (s.cs - 1)
	}
	if s.pos&(s.cs-1) == 0 {
		if err := s.leaveRange(); err != nil {
			return 0, err
		}
	}
	off := s.pos
	for c := off >> s.bits; c <= (off+n-1)>>s.bits; c++ {
		s.ref(c)
	}
	s.pos += n
	return off, nil
}

func (s *Sink) l1Clusters() int64 { return (int64(len(s.l1))*8 + s.cs - 1) / s.cs }

// refcountClusters sizes the refcount blocks and table that cover t
// clusters and themselves.
func (s *Sink) refcountClusters(t int64) (nrb, nrt int64) {
	perBlock := s.cs * 8 / 16
	for {
		b := (t + nrb + nrt + perBlock - 1) / perBlock
		r := (b*8 + s.cs - 1) / s.cs
		if b == nrb && r == nrt {
			return nrb, nrt
		}
		nrb, nrt = b, r
	}
}

// Size implements disk.Sink.
func (s *Sink) Size() int64 { return s.size }

// WriteAt implements disk.Sink. Whole clusters are written as they come;
// a cluster that arrives in parts is gathered first. All-zero clusters are
// left unallocated.
func (s *Sink) WriteAt(p []byte, off int64) (int, error) {
	if s.done {
		return 0, errors.New("qcow2: write to a committed or aborted image")
	}
	if off < 0 || off+int64(len(p)) > s.size {
		return 0, fmt.Errorf("qcow2: write of %d bytes at %d past the disk's end %d", len(p), off, s.size)
	}
	n := len(p)
	for len(p) > 0 {
		c := off >> s.bits
		in := off & (s.cs - 1)
		m := min(int64(len(p)), s.cs-in)
		if c != s.cur {
			if c < s.cur || c <= s.last {
				return 0, fmt.Errorf("qcow2: write at %d goes back before cluster %d", off, max(s.cur, s.last))
			}
			if err := s.flushCluster(); err != nil {
				return 0, err
			}
			if m == s.cs {
				if !disk.IsZero(p[:m]) {
					if err := s.writeData(c, p[:m]); err != nil {
						return 0, err
					}
				}
				p, off = p[m:], off+m
				continue
			}
			s.cur = c
			if s.buf == nil {
				s.buf = make([]byte, s.cs)
			}
		}
		copy(s.buf[in:], p[:m])
		if !s.dirty && !disk.IsZero(p[:m]) {
			s.dirty = true
		}
		p, off = p[m:], off+m
	}
	return n, nil
}

// flushCluster writes the gathered cluster if it holds anything but zeros.
func (s *Sink) flushCluster() error {
	if s.cur < 0 {
		return nil
	}
	c, dirty := s.cur, s.dirty
	s.cur, s.dirty = -1, false
	if !dirty {
		clear(s.buf)
		return nil
	}
	err := s.writeData(c, s.buf)
	clear(s.buf)
	return err
}

// writeData stores guest cluster c: at the end of the file, or, when
// compressing, through the pool (a copy: data is the caller's).
func (s *Sink) writeData(c int64, data []byte) error {
	s.last = c
	if s.pool == nil {
		return s.place(c, data, nil)
	}
	raw := s.bufs.Get().(*[]byte)
	copy(*raw, data)
	return s.pool.Submit(func(context.Context) (compressed, error) {
		z, err := s.compress(*raw)
		return compressed{c, raw, z}, err
	})
}

// emit places a compressed cluster, in guest order.
func (s *Sink) emit(z compressed) error {
	err := s.place(z.c, *z.raw, z.data)
	s.bufs.Put(z.raw)
	return err
}

// compress returns raw compressed, or nil when that is not smaller than
// a cluster less a byte (qemu then stores it as it is, as we do).
func (s *Sink) compress(raw []byte) ([]byte, error) {
	var b bytes.Buffer
	if s.compression == compressionZstd+1 {
		z := zstdEnc().EncodeAll(raw, make([]byte, 0, len(raw)))
		if len(z) >= len(raw)-1 {
			return nil, nil
		}
		return z, nil
	}
	w, _ := flateWriters.Get().(*flate.Writer)
	if w == nil {
		var err error
		if w, err = flate.NewWriter(&b, flate.DefaultCompression); err != nil {
			return nil, err
		}
	} else {
		w.Reset(&b)
	}
	defer flateWriters.Put(w)
	w.Write(raw)
	if err := w.Close(); err != nil {
		return nil, err
	}
	if b.Len() >= len(raw)-1 {
		return nil, nil
	}
	return b.Bytes(), nil
}

// flateWriters are raw deflate writers, reused: each holds its tables.
var flateWriters sync.Pool

var zstdEnc = sync.OnceValue(func() *zstd.Encoder {
	e, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithEncoderCRC(false))
	if err != nil {
		panic(err)
	}
	return e
})

// place puts guest cluster c in the file: raw in a cluster of its own,
// or z, its compressed form, packed after what came before; after the L2
// table of the range before if c starts a new one.
func (s *Sink) place(c int64, raw, z []byte) error {
	if slot := c / s.l2Entries; slot != s.slot {
		if err := s.flushL2(); err != nil {
			return err
		}
		s.slot = slot
	}
	var e uint64
	if z == nil {
		off, err := s.alloc()
		if err != nil {
			return err
		}
		if _, err := s.w.WriteAt(raw, off); err != nil {
			return err
		}
		e = uint64(off) | copiedFlag
	} else {
		off, err := s.placeBytes(int64(len(z)))
		if err != nil {
			return err
		}
		if _, err := s.w.WriteAt(z, off); err != nil {
			return err
		}
		x := 62 - (s.bits - 8)
		nsect := (off+int64(len(z))-1)/512 - off/512
		e = compressedFlag | uint64(nsect)<<x | uint64(off)
	}
	if s.l2 == nil {
		s.l2 = make([]byte, s.cs)
	}
	binary.BigEndian.PutUint64(s.l2[8*(c%s.l2Entries):], e)
	s.l2n++
	return nil
}

// flushL2 writes the L2 table being filled, if it has entries.
func (s *Sink) flushL2() error {
	if s.slot < 0 || s.l2n == 0 {
		return nil
	}
	off, err := s.alloc()
	if err != nil {
		return err
	}
	if _, err := s.w.WriteAt(s.l2, off); err != nil {
		return err
	}
	s.l1[s.slot] = uint64(off) | copiedFlag
	clear(s.l2)
	s.l2n, s.slot = 0, -1
	return nil
}

// Commit writes the last L2 table, the L1 table, the refcounts and the
// header, flushes the file to stable storage and renames it into place
// (on a medium: flushes it).
func (s *Sink) Commit() error {
	if s.done {
		return errors.New("qcow2: image already committed or aborted")
	}
	s.done = true
	err := s.finish()
	if s.medium != nil {
		if err == nil {
			err = s.medium.Sync()
		}
		return err
	}
	if err != nil {
		fsutil.Discard(s.f)
		return err
	}
	return fsutil.Publish(s.f, s.final, false)
}

func (s *Sink) finish() error {
	if err := s.flushCluster(); err != nil {
		if s.pool != nil {
			s.pool.Abort(err)
			s.pool = nil
		}
		return err
	}
	if s.pool != nil {
		err := s.pool.Close()
		s.pool = nil
		if err != nil {
			return err
		}
	}
	if err := s.flushL2(); err != nil {
		return err
	}
	// The L1 table, whole clusters.
	var l1Off int64
	b := make([]byte, s.cs)
	for k := range s.l1Clusters() {
		clear(b)
		for i := range s.l2Entries {
			if j := k*s.l2Entries + i; j < int64(len(s.l1)) {
				binary.BigEndian.PutUint64(b[8*i:], s.l1[j])
			}
		}
		off, err := s.alloc()
		if err != nil {
			return err
		}
		if k == 0 {
			l1Off = off
		}
		if _, err := s.w.WriteAt(b, off); err != nil {
			return err
		}
	}
	// The refcount blocks left, from rbRange's on, and the table after
	// them, sized to count themselves too.
	s.pos = (s.pos + s.cs - 1) &^ (s.cs - 1)
	if err := s.leaveRange(); err != nil {
		return err
	}
	t := s.pos >> s.bits
	per := s.perBlock()
	var nrb, nrt int64
	for {
		total := t + nrb + nrt
		b := (total+per-1)/per - s.rbRange
		r := ((s.rbRange+b)*8 + s.cs - 1) / s.cs
		if b == nrb && r == nrt {
			break
		}
		nrb, nrt = b, r
	}
	total := t + nrb + nrt
	for k := range nrb {
		rng := s.rbRange + k
		if k > 0 {
			clear(s.rb)
		}
		for c := max(t, rng*per); c < min(total, (rng+1)*per); c++ {
			s.ref(c)
		}
		off := (t + k) << s.bits
		if _, err := s.w.WriteAt(s.rb, off); err != nil {
			return err
		}
		s.reftable = append(s.reftable, uint64(off))
	}
	rt := make([]byte, nrt*s.cs)
	for k, off := range s.reftable {
		binary.BigEndian.PutUint64(rt[8*k:], off)
	}
	rtOff := (t + nrb) << s.bits
	if _, err := s.w.WriteAt(rt, rtOff); err != nil {
		return err
	}
	h := header{Version: 3, ClusterBits: uint32(s.bits), Size: uint64(s.vsize),
		L1Size: uint32(len(s.l1)), L1Offset: uint64(l1Off),
		RefTableOffset: uint64(rtOff), RefTableCluster: uint32(nrt),
		RefcountOrder: refcountOrder16, HeaderLength: v3HeaderLen}
	if s.compression == compressionZstd+1 {
		h.CompressionType = compressionZstd
		h.Incompatible |= incCompression
	}
	hc := make([]byte, s.cs) // the header, then the end of extensions (zeros)
	copy(hc, h.marshal())
	_, err := s.w.WriteAt(hc, 0)
	return err
}

// Abort removes the partial image (on a medium: stops; what was written
// stays, unreferenced by any header).
func (s *Sink) Abort() error {
	if s.done {
		return nil
	}
	s.done = true
	if s.pool != nil {
		s.pool.Abort(errors.New("qcow2: aborted"))
	}
	if s.medium == nil {
		fsutil.Discard(s.f)
	}
	return nil
}

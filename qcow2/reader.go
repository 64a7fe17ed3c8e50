package qcow2

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"iter"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/klauspost/compress/flate"
	"github.com/klauspost/compress/zstd"

	"github.com/xva-tools/xva/disk"
	"github.com/xva-tools/xva/internal/fsutil"
)

var (
	_ disk.Source   = (*Image)(nil)
	_ disk.Extenter = (*Image)(nil)
)

// Image is a qcow2 image opened for reading: the active state (snapshots
// are not read), and below it its backing file, if it has one.
type Image struct {
	f        *os.File    // nil for an image opened from a ReaderAt
	ra       io.ReaderAt // what is read: f, or the ReaderAt
	path     string
	fileSize int64

	hdr       header
	cs        int64 // cluster size
	bits      uint  // cluster bits
	l2Entries int64
	l1        []uint64

	backingName   string // as the header says it
	backingFormat string // from the header extension, "" if none
	backing       disk.Source
	backingPath   string

	l2s   tableCache
	zmu   sync.Mutex // the last compressed cluster inflated
	zc    int64
	zdata []byte
}

// Open opens the qcow2 image at path and, if it has one, its backing chain.
func Open(path string) (*Image, error) { return open(path, nil) }

func open(path string, chain []os.FileInfo) (*Image, error) {
	if len(chain) > maxChain {
		return nil, corrupt("backing chain longer than %d", maxChain)
	}
	f, err := fsutil.OpenInput(path, true, 0)
	if err != nil {
		return nil, err
	}
	size, err := f.Seek(0, io.SeekEnd) // works for block devices too
	if err != nil {
		f.Close()
		return nil, err
	}
	img := &Image{f: f, ra: f, path: path, fileSize: size}
	if err := img.load(); err != nil {
		img.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if img.backingName != "" {
		st, err := f.Stat()
		if err == nil {
			err = img.openBacking(append(chain, st))
		}
		if err != nil {
			img.Close()
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	}
	return img, nil
}

// OpenOn opens the qcow2 image held in r, size bytes long, named name in
// errors. An image with a backing file is refused: the backing file is
// found relative to the image's own file.
func OpenOn(r io.ReaderAt, size int64, name string) (*Image, error) {
	img := &Image{ra: r, path: name, fileSize: size}
	if err := img.load(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if img.backingName != "" {
		return nil, fmt.Errorf("%s: %w", name, unsupported("the image has a backing file (%q), which can only be found from a file", img.backingName))
	}
	return img, nil
}

// Detect reports whether r, size bytes long, starts with the qcow magic
// (any version: a qcow version 1 is then refused by Open rather than taken
// for a raw disk).
func Detect(r io.ReaderAt, size int64) bool {
	if size < 8 {
		return false
	}
	b := make([]byte, 4)
	_, err := r.ReadAt(b, 0)
	return err == nil && string(b) == magic
}

// readAt reads n bytes at off, all of which must be in the file.
func (img *Image) readAt(n int64, off int64, what string) ([]byte, error) {
	if off < 0 || n < 0 || off > img.fileSize || n > img.fileSize-off {
		return nil, corrupt("%s (%d bytes at %d) runs past the end of the file (%d bytes)", what, n, off, img.fileSize)
	}
	b := make([]byte, n)
	got, err := img.ra.ReadAt(b, off)
	if int64(got) == n {
		return b, nil
	}
	if err == nil || err == io.EOF {
		return nil, corrupt("the file ends inside %s at %d", what, off)
	}
	return nil, err
}

// load reads and checks the header, its extensions and the L1 table.
func (img *Image) load() error {
	if img.fileSize < v2HeaderLen {
		return corrupt("the file is %d bytes, too short for a qcow2 header", img.fileSize)
	}
	b, err := img.readAt(v2HeaderLen, 0, "the header")
	if err != nil {
		return err
	}
	if string(b[:4]) != magic {
		return corrupt("not a qcow2 image: no QFI\\xfb magic")
	}
	switch v := binary.BigEndian.Uint32(b[4:]); v {
	case 2:
	case 3:
		if b, err = img.readAt(min(img.fileSize, v3HeaderLen), 0, "the version 3 header"); err != nil {
			return err
		}
		if len(b) < 104 {
			return corrupt("the file is %d bytes, too short for a version 3 header", img.fileSize)
		}
	case 1:
		return unsupported("qcow version 1 images are not read; 'qemu-img convert -O qcow2' makes a qcow2 of it")
	default:
		return unsupported("qcow2 version %d (versions 2 and 3 are read)", v)
	}
	if len(b) < v3HeaderLen {
		b = append(b, make([]byte, v3HeaderLen-len(b))...)
	}
	h := parseHeader(b)
	img.hdr = h
	if h.ClusterBits < minClusterBits || h.ClusterBits > maxClusterBits {
		return corrupt("cluster_bits %d is outside %d..%d", h.ClusterBits, minClusterBits, maxClusterBits)
	}
	img.bits = uint(h.ClusterBits)
	img.cs = 1 << img.bits
	img.l2Entries = img.cs / 8
	if h.Version >= 3 {
		if h.HeaderLength < 104 || int64(h.HeaderLength) > img.cs {
			return corrupt("header_length %d is outside 104..%d (the cluster size)", h.HeaderLength, img.cs)
		}
		if h.RefcountOrder > 6 {
			return corrupt("refcount_order %d is over 6", h.RefcountOrder)
		}
		if unknown := h.Incompatible &^ incKnown; unknown != 0 {
			return unsupported("unknown incompatible feature bits %#x", unknown)
		}
		switch {
		case h.Incompatible&incCorrupt != 0:
			return corrupt("qemu marked the image corrupt (incompatible feature bit 1); 'qemu-img check -r all' may repair it")
		case h.Incompatible&incDataFile != 0:
			return unsupported("the image keeps its data in an external data file, which is not read")
		case h.Incompatible&incExtendedL2 != 0:
			return unsupported("extended L2 entries (subclusters) are not read")
		case (h.Incompatible&incCompression != 0) != (h.CompressionType != compressionZlib):
			return corrupt("compression type %d disagrees with incompatible feature bit 3", h.CompressionType)
		case h.CompressionType > compressionZstd:
			return unsupported("compression type %d (zlib and zstd are read)", h.CompressionType)
		}
	}
	if h.CryptMethod != 0 {
		return unsupported("the image is encrypted (method %d), which is not read", h.CryptMethod)
	}
	if h.Size > 1<<62 {
		return corrupt("virtual size %d is too large", h.Size)
	}
	if err := img.loadExtensions(); err != nil {
		return err
	}
	if err := img.checkRefcountTable(); err != nil {
		return err
	}
	return img.loadL1()
}

func (img *Image) loadExtensions() error {
	h := img.hdr
	start := int64(h.HeaderLength)
	end := img.cs
	if h.BackingOffset != 0 {
		if h.BackingOffset > uint64(img.cs) || int64(h.BackingOffset) < start {
			return corrupt("the backing file name at %d is outside the header cluster, after the header", h.BackingOffset)
		}
		end = int64(h.BackingOffset)
		if h.BackingSize > maxBackingName || int64(h.BackingSize) > img.cs-end {
			return corrupt("the backing file name is %d bytes (at most %d, inside the header cluster)", h.BackingSize, maxBackingName)
		}
		if h.BackingSize > 0 {
			name, err := img.readAt(int64(h.BackingSize), end, "the backing file name")
			if err != nil {
				return err
			}
			img.backingName = string(name)
		}
	}
	end = min(end, img.fileSize)
	if end <= start {
		return nil
	}
	b, err := img.readAt(end-start, start, "the header extensions")
	if err != nil {
		return err
	}
	var seen []uint32
	for pos := 0; pos+8 <= len(b); {
		typ := binary.BigEndian.Uint32(b[pos:])
		n := int(binary.BigEndian.Uint32(b[pos+4:]))
		if typ == extEnd {
			return nil
		}
		data := b[pos+8:]
		if n > len(data) {
			return corrupt("header extension %#x at %d is %d bytes, past the end of the header area", typ, start+int64(pos), n)
		}
		if slices.Contains(seen, typ) {
			return corrupt("header extension %#x appears twice", typ)
		}
		seen = append(seen, typ)
		data = data[:n]
		if typ == extBackingFmt {
			if n >= 16 {
				return corrupt("the backing format name is %d bytes (at most 15)", n)
			}
			img.backingFormat = string(data)
		}
		pos += 8 + (n+7)/8*8
	}
	return nil
}

// checkRefcountTable checks the refcount table's place and size, as qemu
// does before it opens an image; the reader does not use the refcounts.
func (img *Image) checkRefcountTable() error {
	h := img.hdr
	const maxReftable = 8 << 20
	if int64(h.RefTableCluster) > maxReftable/img.cs {
		return corrupt("the refcount table is %d clusters, over qemu's 8 MiB", h.RefTableCluster)
	}
	if h.RefTableOffset%uint64(img.cs) != 0 || h.RefTableOffset > 1<<56 {
		return corrupt("the refcount table offset %d is not a cluster boundary in range", h.RefTableOffset)
	}
	return nil
}

func (img *Image) loadL1() error {
	h := img.hdr
	clusters := (int64(h.Size) + img.cs - 1) >> img.bits
	need := (clusters + img.l2Entries - 1) / img.l2Entries
	if int64(h.L1Size) < need {
		return corrupt("the L1 table has %d entries; a %d-byte disk needs %d", h.L1Size, h.Size, need)
	}
	bytes := int64(h.L1Size) * 8
	if bytes > maxL1Bytes {
		return corrupt("the L1 table has %d entries, over qemu's 32 MiB", h.L1Size)
	}
	if h.L1Size == 0 {
		return nil
	}
	if h.L1Offset%uint64(img.cs) != 0 || h.L1Offset == 0 || h.L1Offset > uint64(img.fileSize) {
		return corrupt("the L1 table offset %d is not a cluster boundary inside the file after the header", h.L1Offset)
	}
	b, err := img.readAt(bytes, int64(h.L1Offset), "the L1 table")
	if err != nil {
		return err
	}
	img.l1 = make([]uint64, h.L1Size)
	for i := range img.l1 {
		e := binary.BigEndian.Uint64(b[8*i:])
		img.l1[i] = e
		if e&l1ReservedMask != 0 {
			return corrupt("L1 entry %d (%#x) has reserved bits set", i, e)
		}
		if off := e & offsetMask; off != 0 {
			if err := img.checkCluster(off, "L1 entry", int64(i)); err != nil {
				return err
			}
			if int64(off)+img.cs > img.fileSize {
				return corrupt("L1 entry %d puts its L2 table at %d, past the end of the file (%d bytes)", i, off, img.fileSize)
			}
		}
	}
	// Each L2 table serves one range, so that the tables walked are
	// bounded by the file's size, not by the disk's.
	tables := make([]uint64, 0, len(img.l1))
	for _, e := range img.l1 {
		if off := e & offsetMask; off != 0 {
			tables = append(tables, off)
		}
	}
	slices.Sort(tables)
	for i := 1; i < len(tables); i++ {
		if tables[i] == tables[i-1] {
			return corrupt("two L1 entries share the L2 table at %d", tables[i])
		}
	}
	return nil
}

// checkCluster checks that a table entry points at a whole cluster after
// the header that starts inside the file.
func (img *Image) checkCluster(off uint64, what string, i int64) error {
	switch {
	case off%uint64(img.cs) != 0:
		return corrupt("%s %d points at %d, not a cluster boundary", what, i, off)
	case off < uint64(img.cs):
		return corrupt("%s %d points into the header cluster (%d)", what, i, off)
	case off >= uint64(img.fileSize):
		return corrupt("%s %d points at %d, past the end of the file (%d bytes)", what, i, off, img.fileSize)
	}
	return nil
}

// openBacking finds, checks and opens the backing file, chain listing the
// files already open above it.
func (img *Image) openBacking(chain []os.FileInfo) error {
	name := img.backingName
	if strings.Contains(name, "://") || strings.HasPrefix(name, "json:") || strings.ContainsRune(name, 0) {
		return unsupported("the backing file %q is not a local file", name)
	}
	p := name
	if !filepath.IsAbs(p) {
		p = filepath.Join(filepath.Dir(img.path), p)
	}
	img.backingPath = p
	st, err := os.Stat(p)
	if err != nil {
		return fmt.Errorf("backing file %q: %w", name, err)
	}
	for _, c := range chain {
		if os.SameFile(c, st) {
			return corrupt("the backing chain is cyclic: %s is its own backing file", p)
		}
	}
	format := img.backingFormat
	if format == "" {
		if f, err := os.Open(p); err == nil {
			b := make([]byte, 4)
			if _, err := io.ReadFull(f, b); err == nil && string(b) == magic {
				format = "qcow2"
			} else {
				format = "raw"
			}
			f.Close()
		}
	}
	switch format {
	case "qcow2":
		b, err := open(p, chain)
		if err != nil {
			return fmt.Errorf("backing file: %w", err)
		}
		img.backing = b
	case "raw":
		f, err := fsutil.OpenInput(p, true, 0)
		if err != nil {
			return err
		}
		size, err := f.Seek(0, io.SeekEnd)
		if err != nil {
			f.Close()
			return err
		}
		img.backing = &rawFile{f, size}
	default:
		return unsupported("backing file %s is in format %q (qcow2 and raw are read)", p, format)
	}
	return nil
}

// rawFile is a raw backing file.
type rawFile struct {
	f    *os.File
	size int64
}

func (r *rawFile) ReadAt(p []byte, off int64) (int, error) { return r.f.ReadAt(p, off) }
func (r *rawFile) Size() int64                             { return r.size }
func (r *rawFile) Close() error                            { return r.f.Close() }
func (r *rawFile) Extents(ctx context.Context) iter.Seq2[disk.Extent, error] {
	return fsutil.DataExtents(ctx, r.f, 0, r.size)
}

// Size implements disk.Source: the virtual size.
func (img *Image) Size() int64 { return int64(img.hdr.Size) }

// ClusterSize is the image's cluster size.
func (img *Image) ClusterSize() int64 { return img.cs }

// Close closes the image and its backing chain.
func (img *Image) Close() error {
	if img.backing != nil {
		img.backing.Close()
	}
	if img.f == nil {
		return nil
	}
	return img.f.Close()
}

// ParallelReads implements disk.Parallel: reads may run at once (the
// tables and the last inflated cluster are behind locks, the file is read
// with pread), and for an image with compressed clusters each read costs
// their inflating, so a reader reads a few pieces ahead on every core.
// qemu-img convert -c compresses every cluster it writes, and no header
// bit says so (zstd's names only the algorithm), so the first L2 tables
// tell.
func (img *Image) ParallelReads() bool {
	seen := 0
	for i := range img.l1 {
		if seen == 4 {
			break
		}
		t, err := img.l2s.get(img, int64(i))
		if err != nil || t == nil {
			continue
		}
		seen++
		step := len(t) / int(img.l2Entries)
		for k := 0; k+8 <= len(t); k += step {
			if binary.BigEndian.Uint64(t[k:])&compressedFlag != 0 {
				return true
			}
		}
	}
	return false
}

// ReadAt implements disk.Source.
func (img *Image) ReadAt(p []byte, off int64) (int, error) {
	size := img.Size()
	if off < 0 {
		return 0, fmt.Errorf("qcow2: negative offset %d", off)
	}
	if off >= size {
		return 0, io.EOF
	}
	n := len(p)
	if rest := size - off; int64(n) > rest {
		n = int(rest)
	}
	q, at := p[:n], off
	for len(q) > 0 {
		m, err := img.readRun(q, at)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", img.path, err)
		}
		q, at = q[m:], at+m
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// entry is the L2 entry of guest cluster c (0 when unallocated).
func (img *Image) entry(c int64) (uint64, error) {
	i := c / img.l2Entries
	if i >= int64(len(img.l1)) {
		return 0, nil
	}
	t, err := img.l2s.get(img, i)
	if err != nil || t == nil {
		return 0, err
	}
	return binary.BigEndian.Uint64(t[8*(c%img.l2Entries):]), nil
}

// isData reports whether L2 entry e is a normal data cluster.
func isData(e uint64) bool {
	return e&(compressedFlag|l2ReservedMask|zeroFlag) == 0 && e&offsetMask != 0
}

// readRun reads the start of p from guest offset at: the cluster there,
// and when it is a data cluster, the data clusters that follow it in the
// file too, in one read. It returns the bytes read.
func (img *Image) readRun(p []byte, at int64) (int64, error) {
	c := at >> img.bits
	in := at & (img.cs - 1)
	m := min(int64(len(p)), img.cs-in)
	e, err := img.entry(c)
	if err != nil {
		return 0, err
	}
	if !isData(e) {
		return m, img.readCluster(p[:m], c, in)
	}
	host := e & offsetMask
	if err := img.checkCluster(host, "the L2 entry of guest offset", c<<img.bits); err != nil {
		return 0, err
	}
	for m < int64(len(p)) {
		next, err := img.entry(c + 1)
		if err != nil {
			return 0, err
		}
		if !isData(next) || next&offsetMask != host+uint64((c+1-at>>img.bits)<<img.bits) {
			break
		}
		c++
		if err := img.checkCluster(next&offsetMask, "the L2 entry of guest offset", c<<img.bits); err != nil {
			return 0, err
		}
		m += min(img.cs, int64(len(p))-m)
	}
	got, err := img.ra.ReadAt(p[:m], int64(host)+in)
	if err == io.EOF || (err == nil && int64(got) < m) {
		clear(p[got:m]) // a last cluster written short reads zeros past the file's end, as in qemu
		return m, nil
	}
	return m, err
}

// readCluster reads p from guest cluster c at offset in within it.
func (img *Image) readCluster(p []byte, c, in int64) error {
	e, err := img.entry(c)
	if err != nil {
		return err
	}
	guest := c << img.bits
	switch {
	case e&compressedFlag != 0:
		data, err := img.inflated(c, e)
		if err != nil {
			return err
		}
		copy(p, data[in:])
		return nil
	case e&l2ReservedMask != 0:
		return corrupt("the L2 entry of the cluster at guest offset %d (%#x) has reserved bits set", guest, e)
	case e&zeroFlag != 0:
		if img.hdr.Version < 3 {
			return corrupt("a version 2 image has a zero cluster at guest offset %d", guest)
		}
		clear(p)
		return nil
	case e&offsetMask == 0:
		return img.fromBelow(p, guest+in)
	}
	host := e & offsetMask
	if err := img.checkCluster(host, "the L2 entry of guest offset", guest); err != nil {
		return err
	}
	got, err := img.ra.ReadAt(p, int64(host)+in)
	if err == io.EOF || (err == nil && got < len(p)) {
		clear(p[got:]) // a last cluster written short reads zeros past the file's end, as in qemu
		return nil
	}
	return err
}

// fromBelow fills p with what lies under this image at off: the backing
// file's bytes, zeros past its end or without one.
func (img *Image) fromBelow(p []byte, off int64) error {
	if img.backing == nil || off >= img.backing.Size() {
		clear(p)
		return nil
	}
	n := len(p)
	if rest := img.backing.Size() - off; int64(n) > rest {
		n = int(rest)
	}
	got, err := img.backing.ReadAt(p[:n], off)
	if got == n {
		err = nil
	} else if err == nil || err == io.EOF {
		err = fmt.Errorf("backing file %s: short read at %d", img.backingPath, off)
	}
	clear(p[n:])
	return err
}

// tableCache keeps the last few L2 tables read.
type tableCache struct {
	mu   sync.Mutex
	keys [8]int64
	vals [8][]byte
	next int
	n    int
}

func (tc *tableCache) get(img *Image, i int64) ([]byte, error) {
	off := img.l1[i] & offsetMask
	if off == 0 {
		return nil, nil
	}
	tc.mu.Lock()
	for k := range tc.n {
		if tc.keys[k] == i {
			t := tc.vals[k]
			tc.mu.Unlock()
			return t, nil
		}
	}
	tc.mu.Unlock()
	t, err := img.readAt(img.cs, int64(off), "an L2 table")
	if err != nil {
		return nil, err
	}
	tc.mu.Lock()
	tc.keys[tc.next], tc.vals[tc.next] = i, t
	tc.next = (tc.next + 1) % len(tc.keys)
	tc.n = min(tc.n+1, len(tc.keys))
	tc.mu.Unlock()
	return t, nil
}

// inflated returns guest cluster c, compressed as L2 entry e, inflated.
func (img *Image) inflated(c int64, e uint64) ([]byte, error) {
	img.zmu.Lock()
	if img.zdata != nil && img.zc == c {
		d := img.zdata
		img.zmu.Unlock()
		return d, nil
	}
	img.zmu.Unlock()
	guest := c << img.bits
	if img.hdr.Version >= 3 && e&copiedFlag != 0 {
		return nil, corrupt("the compressed cluster at guest offset %d has the copied flag", guest)
	}
	x := 62 - (img.bits - 8)
	coff := int64(e & (1<<x - 1))
	nsect := int64((e>>x)&(1<<(img.bits-8)-1)) + 1
	csize := nsect*512 - coff&511
	switch {
	case coff < img.cs:
		return nil, corrupt("the compressed cluster at guest offset %d points into the header (%d)", guest, coff)
	case coff >= img.fileSize:
		return nil, corrupt("the compressed cluster at guest offset %d points at %d, past the end of the file (%d bytes)", guest, coff, img.fileSize)
	}
	src, err := img.readAt(min(csize, img.fileSize-coff), coff, "a compressed cluster")
	if err != nil {
		return nil, err
	}
	out := make([]byte, img.cs)
	if img.hdr.CompressionType == compressionZstd {
		err = unzstd(out, src)
	} else {
		err = undeflate(out, src)
	}
	if err != nil {
		return nil, corrupt("the compressed cluster at guest offset %d (%d bytes at %d): %v", guest, csize, coff, err)
	}
	img.zmu.Lock()
	img.zc, img.zdata = c, out
	img.zmu.Unlock()
	return out, nil
}

var flatePool sync.Pool

// undeflate inflates the raw deflate stream in src into out, which it must
// fill exactly.
func undeflate(out, src []byte) error {
	br := bytes.NewReader(src)
	var r io.ReadCloser
	if v := flatePool.Get(); v != nil {
		r = v.(io.ReadCloser)
		r.(flate.Resetter).Reset(br, nil)
	} else {
		r = flate.NewReader(br)
	}
	defer flatePool.Put(r)
	n, err := io.ReadFull(r, out)
	if err != nil {
		return fmt.Errorf("inflates to %d bytes of %d: %v", n, len(out), err)
	}
	var one [1]byte
	if m, _ := r.Read(one[:]); m > 0 {
		return fmt.Errorf("inflates past its %d-byte cluster", len(out))
	}
	return nil
}

var zstdDec = sync.OnceValue(func() *zstd.Decoder {
	d, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecodeAllCapLimit(true),
		zstd.WithDecoderMaxMemory(1<<maxClusterBits))
	if err != nil {
		panic(err)
	}
	return d
})

// unzstd decodes zstd frames from src into out until out is full, as qemu
// does: frames after the one that fills it are the next cluster's.
func unzstd(out, src []byte) error {
	got := out[:0]
	for len(got) < len(out) {
		n, err := frameLen(src)
		if err != nil {
			return fmt.Errorf("zstd: %v after %d bytes of %d", err, len(got), len(out))
		}
		frame := src[:n]
		src = src[n:]
		if binary.LittleEndian.Uint32(frame)&0xFFFFFFF0 == 0x184D2A50 {
			continue // a skippable frame
		}
		d, err := zstdDec().DecodeAll(frame, got)
		if errors.Is(err, zstd.ErrDecoderSizeExceeded) || len(d) > len(out) {
			return fmt.Errorf("inflates past its %d-byte cluster", len(out))
		}
		if err != nil {
			return fmt.Errorf("zstd: %v", err)
		}
		got = d
	}
	return nil
}

// frameLen is the length of the zstd frame at the start of src.
func frameLen(src []byte) (int, error) {
	var h zstd.Header
	if err := h.Decode(src); err != nil {
		return 0, err
	}
	if h.Skippable {
		n := int64(h.HeaderSize) + int64(h.SkippableSize)
		if n > int64(len(src)) {
			return 0, io.ErrUnexpectedEOF
		}
		return int(n), nil
	}
	pos := h.HeaderSize
	for {
		if pos+3 > len(src) {
			return 0, io.ErrUnexpectedEOF
		}
		bh := uint32(src[pos]) | uint32(src[pos+1])<<8 | uint32(src[pos+2])<<16
		pos += 3
		size := int(bh >> 3)
		switch (bh >> 1) & 3 {
		case 1: // RLE
			size = 1
		case 3:
			return 0, errors.New("reserved block type")
		}
		if size > len(src)-pos {
			return 0, io.ErrUnexpectedEOF
		}
		pos += size
		if bh&1 != 0 {
			break
		}
	}
	if h.HasCheckSum {
		pos += 4
	}
	if pos > len(src) {
		return 0, io.ErrUnexpectedEOF
	}
	return pos, nil
}

// Extents implements disk.Extenter: the allocated clusters (data and
// compressed), and those of the backing chain, merged as they come.
func (img *Image) Extents(ctx context.Context) iter.Seq2[disk.Extent, error] {
	if img.backing == nil {
		return img.ownExtents(ctx)
	}
	below := func(yield func(disk.Extent, error) bool) {
		for e, err := range disk.Extents(ctx, img.backing) {
			if err == nil && e.Off >= img.Size() {
				return
			}
			if err == nil {
				e.Len = min(e.Len, img.Size()-e.Off)
			}
			if !yield(e, err) || err != nil {
				return
			}
		}
	}
	return union(img.ownExtents(ctx), below)
}

// union merges two sequences of sorted extents.
func union(a, b iter.Seq2[disk.Extent, error]) iter.Seq2[disk.Extent, error] {
	return func(yield func(disk.Extent, error) bool) {
		nextA, stopA := iter.Pull2(a)
		defer stopA()
		nextB, stopB := iter.Pull2(b)
		defer stopB()
		ea, errA, okA := nextA()
		eb, errB, okB := nextB()
		var cur disk.Extent
		for okA || okB {
			if err := cmp.Or(errA, errB); err != nil {
				yield(disk.Extent{}, err)
				return
			}
			var e disk.Extent
			if !okB || okA && ea.Off <= eb.Off {
				e = ea
				ea, errA, okA = nextA()
			} else {
				e = eb
				eb, errB, okB = nextB()
			}
			if cur.Len > 0 && e.Off <= cur.End() {
				cur.Len = max(cur.End(), e.End()) - cur.Off
				continue
			}
			if cur.Len > 0 && !yield(cur, nil) {
				return
			}
			cur = e
		}
		if cur.Len > 0 {
			yield(cur, nil)
		}
	}
}

// ownExtents lists the clusters this image holds data for (not zero
// clusters, not unallocated ones), merged where adjacent.
func (img *Image) ownExtents(ctx context.Context) iter.Seq2[disk.Extent, error] {
	return func(yield func(disk.Extent, error) bool) {
		size := img.Size()
		var cur disk.Extent
		for i, l1e := range img.l1 {
			if l1e&offsetMask == 0 {
				continue
			}
			if err := ctx.Err(); err != nil {
				yield(disk.Extent{}, err)
				return
			}
			if int64(i)*img.l2Entries<<img.bits >= size {
				break
			}
			t, err := img.l2s.get(img, int64(i))
			if err != nil {
				yield(disk.Extent{}, fmt.Errorf("%s: %w", img.path, err))
				return
			}
			for j := range img.l2Entries {
				off := (int64(i)*img.l2Entries + j) << img.bits
				if off >= size {
					break
				}
				e := binary.BigEndian.Uint64(t[8*j:])
				if e&compressedFlag == 0 && (e&zeroFlag != 0 || e&offsetMask == 0) {
					continue
				}
				n := min(img.cs, size-off)
				if cur.Len > 0 && cur.End() == off {
					cur.Len += n
					continue
				}
				if cur.Len > 0 && !yield(cur, nil) {
					return
				}
				cur = disk.Extent{Off: off, Len: n}
			}
		}
		if cur.Len > 0 {
			yield(cur, nil)
		}
	}
}

// Info describes an image.
type Info struct {
	Version        int
	Size           int64
	ClusterSize    int64
	Clusters       int64 // clusters of the virtual disk
	Allocated      int64 // clusters this image holds data for
	AllocatedBytes int64 // their bytes, within the virtual size
	Compression    string
	Backing        []string // the backing chain, nearest first
}

// Info reports what the image is.
func (img *Image) Info(ctx context.Context) (Info, error) {
	i := Info{Version: int(img.hdr.Version), Size: img.Size(), ClusterSize: img.cs,
		Clusters: (img.Size() + img.cs - 1) / img.cs, Compression: "zlib"}
	if img.hdr.CompressionType == compressionZstd {
		i.Compression = "zstd"
	}
	for e, err := range img.ownExtents(ctx) {
		if err != nil {
			return i, err
		}
		i.AllocatedBytes += e.Len
		i.Allocated += (e.Len + img.cs - 1) / img.cs
	}
	for b := img; b != nil && b.backingPath != ""; {
		i.Backing = append(i.Backing, b.backingPath)
		b, _ = b.backing.(*Image)
	}
	return i, nil
}

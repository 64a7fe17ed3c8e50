package vhdx

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"iter"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/xva-tools/xva/disk"
	"github.com/xva-tools/xva/internal/fsutil"
)

var (
	_ disk.Source   = (*Image)(nil)
	_ disk.Extenter = (*Image)(nil)
)

// maxChain is the longest differencing chain followed, as for VHD.
const maxChain = 30

// Image is a VHDX opened for reading.
type Image struct {
	f        *os.File    // nil for an image opened from a ReaderAt
	ra       io.ReaderAt // what is read: f, or the ReaderAt
	path     string
	fileSize int64
	creator  string

	Header     *Header
	size       int64 // virtual size
	blockSize  int64
	logical    uint32
	physical   uint32
	fixed      bool // LeaveBlocksAllocated
	hasParent  bool
	diskID     GUID
	locator    parentLocator
	ratio      int64    // chunk ratio
	blocks     int64    // payload blocks
	bat        []uint64 // the BAT as read
	regions    []region // the log, BAT and metadata: what no block may overlap
	parent     *Image
	bitmaps    bitmapCache
	parentPath string
}

// Open opens the VHDX at path, and for a differencing disk its parents.
func Open(path string) (*Image, error) { return open(path, 0) }

func open(path string, depth int) (*Image, error) {
	if depth > maxChain {
		return nil, corrupt("differencing chain longer than %d", maxChain)
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
	err = img.load()
	if err == nil && img.hasParent {
		err = img.loadParent(depth)
	}
	if err != nil {
		img.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return img, nil
}

// OpenOn opens the VHDX held in r, size bytes long, named name in errors.
// A differencing disk is refused: its parent cannot be looked for.
func OpenOn(r io.ReaderAt, size int64, name string) (*Image, error) {
	img := &Image{ra: r, path: name, fileSize: size}
	if err := img.load(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if img.hasParent {
		return nil, fmt.Errorf("%s: a differencing VHDX's parent can only be found from a file", name)
	}
	return img, nil
}

// Detect reports whether r, size bytes long, starts with the VHDX file
// identifier.
func Detect(r io.ReaderAt, size int64) bool {
	if size < 8 {
		return false
	}
	b := make([]byte, 8)
	_, err := r.ReadAt(b, 0)
	return err == nil && string(b) == fileSig
}

func (img *Image) readAt(n int64, off int64) ([]byte, error) {
	if off < 0 || n < 0 || off > img.fileSize || n > img.fileSize-off {
		return nil, corrupt("the file ends at byte %d, inside a structure of %d bytes at %d", img.fileSize, n, off)
	}
	b := make([]byte, n)
	got, err := img.ra.ReadAt(b, off)
	if int64(got) == n {
		return b, nil
	}
	if err == nil || err == io.EOF {
		return nil, corrupt("the file ends at byte %d, inside a structure at %d", img.fileSize, off)
	}
	return nil, err
}

// load reads and checks the headers, region table, metadata, log and BAT.
func (img *Image) load() error {
	if img.fileSize < region2Off+regionSize {
		return corrupt("the file is %d bytes, too short for a VHDX", img.fileSize)
	}
	id, err := img.readAt(64<<10, 0)
	if err != nil {
		return err
	}
	if string(id[:8]) != fileSig {
		return corrupt("not a VHDX: no vhdxfile identifier")
	}
	img.creator = creatorOf(id)
	if err := img.loadHeader(); err != nil {
		return err
	}
	if err := img.checkLog(); err != nil {
		return err
	}
	bat, meta, err := img.loadRegions()
	if err != nil {
		return err
	}
	if err := img.loadMetadata(meta); err != nil {
		return err
	}
	return img.loadBAT(bat)
}

// loadHeader picks the valid header with the higher sequence number, as
// qemu does; two valid ones with the same number must be identical.
func (img *Image) loadHeader() error {
	b1, err := img.readAt(headerSize, header1Off)
	if err != nil {
		return err
	}
	b2, err := img.readAt(headerSize, header2Off)
	if err != nil {
		return err
	}
	h1, ok1 := parseHeader(b1)
	h2, ok2 := parseHeader(b2)
	switch {
	case !ok1 && !ok2:
		return corrupt("neither header is valid (signature, CRC-32C, version 1)")
	case ok1 && ok2 && h1.Sequence == h2.Sequence && string(b1) != string(b2):
		return corrupt("both headers have sequence number %d but differ", h1.Sequence)
	case !ok2 || ok1 && h1.Sequence >= h2.Sequence:
		img.Header = h1
	default:
		img.Header = h2
	}
	h := img.Header
	if h.LogLength%mib != 0 || h.LogOffset%mib != 0 || h.LogLength > 0 && h.LogOffset < mib {
		return corrupt("the log (%d bytes at %d) is not on 1 MiB boundaries", h.LogLength, h.LogOffset)
	}
	if h.LogLength > 0 {
		if h.LogOffset > uint64(img.fileSize) || int64(h.LogLength) > img.fileSize-int64(h.LogOffset) {
			return corrupt("the log (%d bytes at %d) runs past the end of the file (%d bytes)", h.LogLength, h.LogOffset, img.fileSize)
		}
		img.regions = append(img.regions, region{off: int64(h.LogOffset), len: int64(h.LogLength)})
	}
	return nil
}

// checkLog refuses an image with log entries to replay: a non-zero log
// GUID and a valid entry carrying it. Replaying is left to the tools that
// write VHDX in place (Hyper-V, qemu-img check -r all).
func (img *Image) checkLog() error {
	h := img.Header
	if h.Log.IsZero() || h.LogLength == 0 {
		return nil
	}
	end := int64(h.LogOffset) + int64(h.LogLength)
	b := make([]byte, 4096)
	for off := int64(h.LogOffset); off < end; off += 4096 {
		if _, err := img.ra.ReadAt(b, off); err != nil {
			return err
		}
		if string(b[:4]) != logSig || GUID(b[32:48]) != h.Log {
			continue
		}
		n := int64(binary.LittleEndian.Uint32(b[8:]))
		if n < 4096 || n%4096 != 0 || n > end-off {
			continue
		}
		entry, err := img.readAt(n, off)
		if err != nil {
			return err
		}
		if binary.LittleEndian.Uint32(entry[4:]) == checksum(entry) {
			return ErrLog
		}
	}
	return nil
}

// loadRegions reads the region table (the second copy if the first is
// torn) and returns the BAT and metadata regions, checked to lie in the
// file past the headers, overlapping neither each other nor the log.
func (img *Image) loadRegions() (bat, meta region, err error) {
	var rs []region
	var ok bool
	for _, off := range []int64{region1Off, region2Off} {
		b, err := img.readAt(regionSize, off)
		if err != nil {
			return bat, meta, err
		}
		if rs, ok, err = parseRegions(b); err != nil {
			return bat, meta, err
		} else if ok {
			break
		}
	}
	if !ok {
		return bat, meta, corrupt("neither region table is valid (signature, CRC-32C)")
	}
	var haveBAT, haveMeta bool
	for _, r := range rs {
		switch r.id {
		case guidBAT:
			if haveBAT {
				return bat, meta, corrupt("two BAT regions")
			}
			bat, haveBAT = r, true
		case guidMetadata:
			if haveMeta {
				return bat, meta, corrupt("two metadata regions")
			}
			meta, haveMeta = r, true
		default:
			if r.required {
				return bat, meta, corrupt("the image requires region %s, unknown to xva", r.id)
			}
			continue
		}
		if r.off%mib != 0 || r.off < mib || r.len == 0 || r.len%mib != 0 {
			return bat, meta, corrupt("region %s (%d bytes at %d) is not on 1 MiB boundaries past the headers", r.id, r.len, r.off)
		}
		if r.off > img.fileSize || r.len > img.fileSize-r.off {
			return bat, meta, corrupt("region %s (%d bytes at %d) runs past the end of the file (%d bytes)", r.id, r.len, r.off, img.fileSize)
		}
		for _, o := range img.regions {
			if r.off < o.end() && o.off < r.end() {
				return bat, meta, corrupt("region %s (%d bytes at %d) overlaps another (%d bytes at %d) or the log", r.id, r.len, r.off, o.len, o.off)
			}
		}
		img.regions = append(img.regions, r)
	}
	if !haveBAT || !haveMeta {
		return bat, meta, corrupt("the region table lacks the BAT or the metadata")
	}
	return bat, meta, nil
}

// loadMetadata reads the metadata table and the items xva needs, all
// required, each of its exact size and inside the region.
func (img *Image) loadMetadata(r region) error {
	t, err := img.readAt(metaTableLen, r.off)
	if err != nil {
		return err
	}
	if string(t[:8]) != metaSig {
		return corrupt("no metadata table signature")
	}
	n := int(binary.LittleEndian.Uint16(t[10:]))
	if n > maxEntries {
		return corrupt("the metadata table has %d entries; at most %d fit", n, maxEntries)
	}
	items := map[GUID][]byte{}
	want := map[GUID]int64{guidFileParams: 8, guidDiskSize: 8, guidPage83: 16, guidLogical: 4, guidPhysical: 4, guidLocator: -1}
	for i := range n {
		e := t[32+32*i:]
		id := GUID(e[:16])
		off, length := int64(binary.LittleEndian.Uint32(e[16:])), int64(binary.LittleEndian.Uint32(e[20:]))
		flags := binary.LittleEndian.Uint32(e[24:])
		w, known := want[id]
		if !known {
			if flags&metaRequired != 0 {
				return corrupt("the image requires metadata item %s, unknown to xva", id)
			}
			continue
		}
		if _, dup := items[id]; dup {
			return corrupt("metadata item %s appears twice", id)
		}
		if w >= 0 && length != w || w < 0 && (length < 20 || length > maxLocator) {
			return corrupt("metadata item %s is %d bytes", id, length)
		}
		if off < metaTableLen || off > r.len || length > r.len-off {
			return corrupt("metadata item %s (%d bytes at %d) is outside the %d-byte metadata region", id, length, off, r.len)
		}
		if items[id], err = img.readAt(length, r.off+off); err != nil {
			return err
		}
	}
	for _, id := range []GUID{guidFileParams, guidDiskSize, guidPage83, guidLogical, guidPhysical} {
		if items[id] == nil {
			return corrupt("metadata item %s is missing", id)
		}
	}
	fp := items[guidFileParams]
	img.blockSize = int64(binary.LittleEndian.Uint32(fp))
	flags := binary.LittleEndian.Uint32(fp[4:])
	img.fixed, img.hasParent = flags&1 != 0, flags&2 != 0
	if bs := img.blockSize; bs < MinBlockSize || bs > MaxBlockSize || bs&(bs-1) != 0 {
		return corrupt("block size %d is not a power of two from 1 to 256 MiB", bs)
	}
	img.logical = binary.LittleEndian.Uint32(items[guidLogical])
	img.physical = binary.LittleEndian.Uint32(items[guidPhysical])
	if img.logical != 512 && img.logical != 4096 || img.physical != 512 && img.physical != 4096 {
		return corrupt("sector sizes %d (logical) and %d (physical); each must be 512 or 4096", img.logical, img.physical)
	}
	vs := binary.LittleEndian.Uint64(items[guidDiskSize])
	if vs > MaxSize || vs%uint64(img.logical) != 0 {
		return corrupt("virtual size %d is over 64 TiB or not a whole number of %d-byte sectors", vs, img.logical)
	}
	img.size = int64(vs)
	img.diskID = GUID(items[guidPage83])
	if img.hasParent {
		if items[guidLocator] == nil {
			return corrupt("a differencing disk without a parent locator")
		}
		if img.locator, err = parseLocator(items[guidLocator]); err != nil {
			return err
		}
	}
	return nil
}

// loadBAT reads the BAT whole (it lies in the file, so its size is bounded
// by the file's) and checks every allocated block lies in the file, past
// the headers, clear of the regions and of each other.
func (img *Image) loadBAT(r region) error {
	img.ratio = chunkRatio(img.blockSize, img.logical)
	img.blocks = (img.size + img.blockSize - 1) / img.blockSize
	n := batEntries(img.blocks, img.ratio, img.hasParent)
	if n*8 > r.len {
		return corrupt("the BAT needs %d entries; its region holds %d", n, r.len/8)
	}
	b, err := img.readAt(n*8, r.off)
	if err != nil {
		return err
	}
	img.bat = make([]uint64, n)
	type span struct{ off, end, at int64 }
	var used []span
	for i := range img.bat {
		e := binary.LittleEndian.Uint64(b[8*i:])
		img.bat[i] = e
		state, mb := e&7, e>>20
		isBitmap := int64(i)%(img.ratio+1) == img.ratio
		var length int64
		switch {
		case isBitmap && state == stateNotPresent:
			continue
		case isBitmap && state == stateFull:
			length = bitmapSize
		case isBitmap:
			return corrupt("BAT entry %d (a sector bitmap) has state %d", i, state)
		case state == stateNotPresent, state == stateUndefined, state == stateZero, state == stateUnmapped, state == stateUnmapped95:
			continue
		case state == statePartial && !img.hasParent:
			return corrupt("BAT entry %d is partially present in a disk without a parent", i)
		case state == stateFull, state == statePartial:
			blk := int64(i) - int64(i)/(img.ratio+1)
			if blk >= img.blocks {
				continue // the last chunk's slots past the disk, never read
			}
			length = min(img.blockSize, img.size-blk*img.blockSize)
		default:
			return corrupt("BAT entry %d has state %d", i, state)
		}
		if mb == 0 || mb > uint64(img.fileSize)>>20 || int64(mb<<20) > img.fileSize-length {
			return corrupt("BAT entry %d puts %d bytes at MiB %d, outside the file (%d bytes)", i, length, mb, img.fileSize)
		}
		off := int64(mb << 20)
		for _, o := range img.regions {
			if off < o.end() && o.off < off+length {
				return corrupt("BAT entry %d puts its block at %d, inside the log, BAT or metadata", i, off)
			}
		}
		used = append(used, span{off, off + length, int64(i)})
	}
	slices.SortFunc(used, func(a, b span) int { return int(min(max(a.off-b.off, -1), 1)) })
	for i := 1; i < len(used); i++ {
		if used[i].off < used[i-1].end {
			return corrupt("BAT entries %d and %d put their blocks at %d and %d, overlapping", used[i-1].at, used[i].at, used[i-1].off, used[i].off)
		}
	}
	if img.hasParent {
		for blk := range img.blocks {
			c := blk / img.ratio
			if img.state(blk) == statePartial && img.bat[bitmapIndex(c, img.ratio)]&7 != stateFull {
				return corrupt("block %d is partially present but chunk %d has no sector bitmap", blk, c)
			}
		}
	}
	return nil
}

// loadParent opens the parent the locator names and checks it is the one
// the disk was made from: its DataWriteGuid is the parent_linkage.
func (img *Image) loadParent(depth int) error {
	want, ok := parseGUID(img.locator["parent_linkage"])
	if !ok {
		return corrupt("the parent locator's parent_linkage %q is not a GUID", img.locator["parent_linkage"])
	}
	alt, _ := parseGUID(img.locator["parent_linkage2"])
	var tried []string
	for _, p := range img.parentCandidates() {
		if slices.Contains(tried, p) {
			continue
		}
		tried = append(tried, p)
		if _, err := os.Stat(p); err != nil {
			continue
		}
		parent, err := open(p, depth+1)
		if err != nil {
			return fmt.Errorf("parent %s: %w", p, err)
		}
		if got := parent.Header.DataWrite; got != want && (alt.IsZero() || got != alt) {
			parent.Close()
			return corrupt("parent %s has DataWriteGuid %s; the differencing disk was made from %s", p, got, want)
		}
		img.parent, img.parentPath = parent, p
		return nil
	}
	return fmt.Errorf("parent (DataWriteGuid %s) not found; looked for %s", want, strings.Join(tried, ", "))
}

// parentCandidates lists where the parent may be: relative_path against
// the child's directory, then the base name of every path the locator
// gives, in the child's directory.
func (img *Image) parentCandidates() []string {
	dir := filepath.Dir(img.path)
	slash := func(p string) string { return strings.ReplaceAll(p, `\`, "/") }
	var c []string
	if p := slash(img.locator["relative_path"]); p != "" {
		if filepath.IsAbs(p) {
			c = append(c, p)
		} else {
			c = append(c, filepath.Join(dir, p))
		}
	}
	for _, k := range []string{"relative_path", "absolute_win32_path", "volume_path"} {
		if p := slash(img.locator[k]); p != "" {
			c = append(c, filepath.Join(dir, filepath.Base(p)))
		}
	}
	return c
}

// Size implements disk.Source: the virtual size.
func (img *Image) Size() int64 { return img.size }

// Close closes the image and its parents.
func (img *Image) Close() error {
	if img.parent != nil {
		img.parent.Close()
	}
	if img.f == nil {
		return nil
	}
	return img.f.Close()
}

// Parent is the parent of a differencing disk, or nil.
func (img *Image) Parent() *Image { return img.parent }

// state is the BAT state of payload block b.
func (img *Image) state(b int64) uint64 { return img.bat[payloadIndex(b, img.ratio)] & 7 }

// blockOffset is the file offset of payload block b.
func (img *Image) blockOffset(b int64) int64 {
	return int64(img.bat[payloadIndex(b, img.ratio)] >> 20 << 20)
}

// ReadAt implements disk.Source, following the BAT, the sector bitmaps of
// a differencing disk, and its parent.
func (img *Image) ReadAt(p []byte, off int64) (int, error) {
	size := img.Size()
	if off < 0 {
		return 0, fmt.Errorf("vhdx: read at negative offset %d", off)
	}
	if off >= size {
		return 0, io.EOF
	}
	n := len(p)
	if rest := size - off; int64(n) > rest {
		n = int(rest)
	}
	q, at := p[:n], off
	bs := img.blockSize
	for len(q) > 0 {
		b, in := at/bs, at%bs
		m := min(int64(len(q)), bs-in)
		if err := img.readBlock(q[:m], b, in); err != nil {
			return 0, err
		}
		q, at = q[m:], at+m
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// readBlock reads p from payload block b at offset in within it.
func (img *Image) readBlock(p []byte, b, in int64) error {
	switch img.state(b) {
	case stateFull:
		if _, err := img.ra.ReadAt(p, img.blockOffset(b)+in); err != nil {
			return fmt.Errorf("reading block %d: %w", b, err)
		}
		return nil
	case stateNotPresent, stateUndefined:
		return img.fromBelow(p, b*img.blockSize+in)
	case statePartial:
	default: // zero, unmapped
		clear(p)
		return nil
	}
	bm, err := img.bitmap(b / img.ratio)
	if err != nil {
		return err
	}
	lss := int64(img.logical)
	chunkOff := (b % img.ratio) * img.blockSize // of the block in its chunk
	data := img.blockOffset(b)
	for len(p) > 0 {
		s := (chunkOff + in) / lss
		set := bitSet(bm, s)
		end := (in/lss + 1) * lss
		for end < in+int64(len(p)) && bitSet(bm, (chunkOff+end)/lss) == set {
			end += lss
		}
		n := min(end-in, int64(len(p)))
		if set {
			if _, err := img.ra.ReadAt(p[:n], data+in); err != nil {
				return fmt.Errorf("reading block %d: %w", b, err)
			}
		} else if err := img.fromBelow(p[:n], b*img.blockSize+in); err != nil {
			return err
		}
		p, in = p[n:], in+n
	}
	return nil
}

// fromBelow fills p with what lies under this image at off: the parent's
// bytes for a differencing disk, zeros otherwise.
func (img *Image) fromBelow(p []byte, off int64) error {
	if img.parent == nil {
		clear(p)
		return nil
	}
	n, err := img.parent.ReadAt(p, off)
	if err == io.EOF {
		clear(p[n:]) // a child larger than its parent reads zeros past it
		return nil
	}
	return err
}

// bitSet: bit 0 of byte 0 is the chunk's first sector.
func bitSet(bm []byte, sector int64) bool { return bm[sector>>3]&(1<<(sector&7)) != 0 }

// bitmapCache keeps the last few sector bitmaps read (1 MiB each).
type bitmapCache struct {
	mu    sync.Mutex
	keys  [2]int64
	vals  [2][]byte
	next  int
	valid [2]bool
}

func (img *Image) bitmap(c int64) ([]byte, error) {
	bc := &img.bitmaps
	bc.mu.Lock()
	for i := range bc.keys {
		if bc.valid[i] && bc.keys[i] == c {
			bm := bc.vals[i]
			bc.mu.Unlock()
			return bm, nil
		}
	}
	bc.mu.Unlock()
	bm, err := img.readAt(bitmapSize, int64(img.bat[bitmapIndex(c, img.ratio)]>>20<<20))
	if err != nil {
		return nil, err
	}
	bc.mu.Lock()
	bc.keys[bc.next], bc.vals[bc.next], bc.valid[bc.next] = c, bm, true
	bc.next = (bc.next + 1) % len(bc.keys)
	bc.mu.Unlock()
	return bm, nil
}

// Extents implements disk.Extenter: the blocks held in the file (of a
// file on disk, only their data, as SEEK_DATA finds it), and for a
// differencing disk those of its parents too.
func (img *Image) Extents(ctx context.Context) iter.Seq2[disk.Extent, error] {
	return func(yield func(disk.Extent, error) bool) {
		own, err := img.ownExtents(ctx)
		if err != nil {
			yield(disk.Extent{}, err)
			return
		}
		if img.parent != nil {
			var below []disk.Extent
			for e, err := range img.parent.Extents(ctx) {
				if err != nil {
					yield(e, err)
					return
				}
				if e.Off < img.Size() {
					below = append(below, disk.Extent{Off: e.Off, Len: min(e.Len, img.Size()-e.Off)})
				}
			}
			own = union(own, below)
		}
		for _, e := range own {
			if !yield(e, nil) {
				return
			}
		}
	}
}

// ownExtents lists the blocks held in this file, merged where adjacent on
// the disk and in the file; of a file, only the data SEEK_DATA finds in
// them.
func (img *Image) ownExtents(ctx context.Context) ([]disk.Extent, error) {
	type run struct{ off, file, len int64 }
	var runs []run
	bs := img.blockSize
	for b := range img.blocks {
		if s := img.state(b); s != stateFull && s != statePartial {
			continue
		}
		off, file := b*bs, img.blockOffset(b)
		n := min(bs, img.size-off)
		if l := len(runs) - 1; l >= 0 && runs[l].off+runs[l].len == off && runs[l].file+runs[l].len == file {
			runs[l].len += n
		} else {
			runs = append(runs, run{off, file, n})
		}
	}
	var ext []disk.Extent
	add := func(e disk.Extent) {
		if l := len(ext) - 1; l >= 0 && ext[l].End() == e.Off {
			ext[l].Len += e.Len
		} else {
			ext = append(ext, e)
		}
	}
	for _, r := range runs {
		if img.f == nil {
			add(disk.Extent{Off: r.off, Len: r.len})
			continue
		}
		for e, err := range fsutil.DataExtents(ctx, img.f, r.file, r.file+r.len) {
			if err != nil {
				return nil, err
			}
			add(disk.Extent{Off: r.off + e.Off, Len: e.Len}) // e.Off is from r.file
		}
	}
	return ext, nil
}

// union merges two sorted extent lists.
func union(a, b []disk.Extent) []disk.Extent {
	all := append(slices.Clone(a), b...)
	slices.SortFunc(all, func(x, y disk.Extent) int { return int(min(max(x.Off-y.Off, -1), 1)) })
	var out []disk.Extent
	for _, e := range all {
		if len(out) > 0 && e.Off <= out[len(out)-1].End() {
			last := &out[len(out)-1]
			last.Len = max(last.End(), e.End()) - last.Off
			continue
		}
		out = append(out, e)
	}
	return out
}

// Info describes an image.
type Info struct {
	Type           string // fixed, dynamic or differencing
	Size           int64
	BlockSize      int64
	LogicalSector  int
	PhysicalSector int
	Blocks         int   // payload blocks
	Allocated      int   // payload blocks held in the file
	AllocatedBytes int64 // their bytes
	Creator        string
	UUID           string // the virtual disk id (Page 83 data)
	ParentUUID     string // the parent's DataWriteGuid (parent_linkage)
	Parent         string // path of the parent opened
}

// Info reports what the image is.
func (img *Image) Info(context.Context) (Info, error) {
	i := Info{Type: "dynamic", Size: img.size, BlockSize: img.blockSize, Blocks: int(img.blocks),
		LogicalSector: int(img.logical), PhysicalSector: int(img.physical),
		Creator: img.creator, UUID: img.diskID.String()}
	switch {
	case img.hasParent:
		i.Type = "differencing"
		i.ParentUUID = strings.Trim(img.locator["parent_linkage"], "{}")
		i.Parent = img.parentPath
	case img.fixed:
		i.Type = "fixed"
	}
	for b := range img.blocks {
		if s := img.state(b); s == stateFull || s == statePartial {
			i.Allocated++
			i.AllocatedBytes += min(img.blockSize, img.size-b*img.blockSize)
		}
	}
	return i, nil
}

package vhd

import (
	"bytes"
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

// maxChain is the longest differencing chain followed, as in XenServer's
// SR drivers (MAX_CHAIN_SIZE).
const maxChain = 30

// Image is a VHD opened for reading.
type Image struct {
	f        *os.File    // nil for an image opened from a ReaderAt
	ra       io.ReaderAt // what is read: f, or the ReaderAt
	path     string
	fileSize int64
	Footer   *Footer
	Header   *Header // dynamic and differencing disks only
	bat      []uint32
	bmBytes  int64  // bytes of a block's sector bitmap
	parent   *Image // differencing disks only
	bitmaps  bitmapCache
}

// Open opens the VHD at path, and for a differencing disk its parents.
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
	if err := img.load(depth); err != nil {
		img.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return img, nil
}

// OpenOn opens the VHD held in r, size bytes long (a VHD inside a
// logical volume, read through its segment map), named name in errors. A
// differencing disk is refused: its parent cannot be looked for.
func OpenOn(r io.ReaderAt, size int64, name string) (*Image, error) {
	img := &Image{ra: r, path: name, fileSize: size}
	if err := img.load(0); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if img.Footer.Type == TypeDiff {
		return nil, fmt.Errorf("%s: a differencing VHD's parent can only be found from a file", name)
	}
	return img, nil
}

// load reads and checks the footers, header, BAT and parent.
func (img *Image) load(depth int) error {
	size := img.fileSize
	if size < footerSize {
		return corrupt("the file is %d bytes, too short for a VHD", size)
	}
	if err := img.loadFooter(); err != nil {
		return err
	}
	if img.Footer.CurrSize > MaxSize {
		return corrupt("virtual size %d is over the 2040 GiB VHD limit", img.Footer.CurrSize)
	}
	if img.Footer.Type == TypeFixed {
		return nil
	}
	if err := img.loadHeader(); err != nil {
		return err
	}
	if err := img.loadBAT(); err != nil {
		return err
	}
	if img.Footer.Type == TypeDiff {
		return img.loadParent(depth)
	}
	return nil
}

func (img *Image) readAt(n int, off int64) ([]byte, error) {
	b := make([]byte, n)
	got, err := img.ra.ReadAt(b, off)
	if got == n {
		return b, nil
	}
	if err == nil || err == io.EOF {
		return nil, corrupt("the file ends at byte %d, inside a structure at %d", img.fileSize, off)
	}
	return nil, err
}

// loadFooter finds the footer as libvhd does: at the end of the file (or a
// 511-byte one), the copy at 0 for dynamic disks. Both copies must be valid
// and identical, which is what XO's reader insists on and qemu and libvhd
// each assume of the copy they read.
func (img *Image) loadFooter() error {
	end, err := img.readAt(footerSize, img.fileSize-footerSize)
	if err != nil {
		return err
	}
	start, err := img.readAt(footerSize, 0)
	if err != nil {
		return err
	}
	f, ok, err := parseFooter(end)
	if err != nil {
		return fmt.Errorf("footer at the end: %w", err)
	}
	short := false
	if !ok {
		if f, ok, err = parseFooter(end[1:]); ok && err == nil {
			short = true // Virtual PC's 511-byte footer
		}
	}
	if !ok {
		if f0, ok0, _ := parseFooter(start); ok0 && f0.Type != TypeFixed {
			return corrupt("no footer at the end of the file (truncated? it is %d bytes)", img.fileSize)
		}
		return corrupt("not a VHD: no conectix footer")
	}
	if err != nil {
		return err
	}
	img.Footer = f
	if f.Type == TypeFixed {
		want := int64(f.CurrSize) + footerSize
		if short {
			want--
		}
		if img.fileSize != want {
			return corrupt("the fixed disk file is %d bytes; its footer declares %d data bytes plus the footer", img.fileSize, f.CurrSize)
		}
		return nil
	}
	f0, ok0, err := parseFooter(start)
	switch {
	case !ok0:
		return corrupt("no copy of the footer at offset 0")
	case err != nil:
		return fmt.Errorf("footer copy at offset 0: %w", err)
	case !bytes.Equal(start, end) && !(short && bytes.Equal(start[:footerSize-1], end[1:])):
		return corrupt("the footer copy at offset 0 differs from the footer at the end (%s vs %s)", describe(f0), describe(f))
	}
	return nil
}

func describe(f *Footer) string {
	return fmt.Sprintf("%s, %d bytes, checksum %08x", TypeName(f.Type), f.CurrSize, f.Checksum)
}

func (img *Image) loadHeader() error {
	off := img.Footer.DataOffset
	if off < footerSize || off > uint64(img.fileSize) {
		return corrupt("the footer puts the dynamic header at %d, outside the file", off)
	}
	b, err := img.readAt(headerSize, int64(off))
	if err != nil {
		return err
	}
	if img.Header, err = parseHeader(b); err != nil {
		return err
	}
	bs := int64(img.Header.BlockSize)
	img.bmBytes = pad(bs/SectorSize/8, SectorSize)
	if need := (int64(img.Footer.CurrSize) + bs - 1) / bs; int64(img.Header.MaxEntries) < need {
		return corrupt("the BAT has %d entries; the disk needs %d", img.Header.MaxEntries, need)
	}
	return nil
}

func pad(n, to int64) int64 { return (n + to - 1) / to * to }

func (img *Image) loadBAT() error {
	h := img.Header
	// The BAT is read whole: refuse one larger than the file before
	// allocating it.
	batBytes := 4 * int64(h.MaxEntries)
	if h.TableOffset > uint64(img.fileSize) || batBytes > img.fileSize-int64(h.TableOffset) {
		return corrupt("the BAT (%d entries at %d) runs past the end of the file", h.MaxEntries, h.TableOffset)
	}
	b, err := img.readAt(int(batBytes), int64(h.TableOffset))
	if err != nil {
		return err
	}
	img.bat = make([]uint32, h.MaxEntries)
	limit := img.fileSize - footerSize
	for i := range img.bat {
		e := binary.BigEndian.Uint32(b[4*i:])
		img.bat[i] = e
		if e == unused {
			continue
		}
		if end := int64(e)*SectorSize + img.bmBytes + int64(h.BlockSize); end > limit {
			return corrupt("BAT entry %d puts its block at sector %d, past the end of the file (%d bytes)", i, e, img.fileSize)
		}
	}
	return nil
}

// loadParent opens the parent a differencing disk names and checks it is
// the one it was made from.
func (img *Image) loadParent(depth int) error {
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
		if parent.Footer.UUID != img.Header.ParentUUID {
			parent.Close()
			return corrupt("parent %s has UUID %s; the differencing disk was made from %s",
				p, uuidString(parent.Footer.UUID), uuidString(img.Header.ParentUUID))
		}
		img.parent = parent
		return nil
	}
	return fmt.Errorf("parent %q (UUID %s) not found; looked for %s", img.Header.ParentName,
		uuidString(img.Header.ParentUUID), strings.Join(tried, ", "))
}

// parentCandidates lists where the parent may be, in locator order:
// relative locators against the child's directory, absolute ones as they
// are and by base name, then the parent name from the header.
func (img *Image) parentCandidates() []string {
	dir := filepath.Dir(img.path)
	var c []string
	for _, l := range img.Header.Locators {
		if l.Code == 0 || l.Length == 0 || l.Length > 64<<10 || l.Offset > uint64(img.fileSize) || int64(l.Length) > img.fileSize-int64(l.Offset) {
			continue
		}
		b, err := img.readAt(int(l.Length), int64(l.Offset))
		if err != nil {
			continue
		}
		var p string
		switch l.Code {
		case codeMacX:
			p = strings.TrimPrefix(strings.TrimRight(string(b), "\x00"), "file://")
		case codeW2ru, codeW2ku:
			p = strings.ReplaceAll(utf16LE(b), `\`, "/")
		default:
			continue
		}
		if p == "" {
			continue
		}
		if filepath.IsAbs(p) {
			c = append(c, p)
		} else {
			c = append(c, filepath.Join(dir, p))
		}
		c = append(c, filepath.Join(dir, filepath.Base(p)))
	}
	if img.Header.ParentName != "" {
		c = append(c, filepath.Join(dir, filepath.Base(strings.ReplaceAll(img.Header.ParentName, `\`, "/"))))
	}
	return c
}

func uuidString(u [16]byte) string {
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}

// Size implements disk.Source: the virtual size, current_size.
func (img *Image) Size() int64 { return int64(img.Footer.CurrSize) }

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

// blockSize is the size of a dynamic disk's blocks.
func (img *Image) blockSize() int64 { return int64(img.Header.BlockSize) }

// ReadAt implements disk.Source, following the BAT, honouring the sector
// bitmaps, and reading unallocated ranges of a differencing disk from its
// parent.
func (img *Image) ReadAt(p []byte, off int64) (int, error) {
	size := img.Size()
	if off >= size {
		return 0, io.EOF
	}
	n := len(p)
	if rest := size - off; int64(n) > rest {
		n = int(rest)
	}
	var err error
	if img.Footer.Type == TypeFixed {
		_, err = img.ra.ReadAt(p[:n], off)
	} else {
		err = img.readBlocks(p[:n], off)
	}
	if err != nil {
		return 0, err
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (img *Image) readBlocks(p []byte, off int64) error {
	bs := img.blockSize()
	for len(p) > 0 {
		b := off / bs
		in := off % bs
		n := min(int64(len(p)), bs-in)
		if err := img.readBlock(p[:n], b, in); err != nil {
			return err
		}
		p, off = p[n:], off+n
	}
	return nil
}

// readBlock reads p from block b at offset in within it.
func (img *Image) readBlock(p []byte, b, in int64) error {
	e := img.bat[b]
	if e == unused {
		return img.fromBelow(p, b*img.blockSize()+in)
	}
	bm, err := img.bitmap(b)
	if err != nil {
		return err
	}
	data := int64(e)*SectorSize + img.bmBytes
	// Runs of sectors whose bits agree are read in one go.
	for len(p) > 0 {
		s := in / SectorSize
		set := bitSet(bm, s)
		end := (s + 1) * SectorSize
		for end < in+int64(len(p)) && bitSet(bm, end/SectorSize) == set {
			end += SectorSize
		}
		n := min(end-in, int64(len(p)))
		if set {
			if _, err := img.ra.ReadAt(p[:n], data+in); err != nil {
				return fmt.Errorf("reading block %d: %w", b, err)
			}
		} else if err := img.fromBelow(p[:n], b*img.blockSize()+in); err != nil {
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

func bitSet(bm []byte, sector int64) bool { return bm[sector>>3]&(0x80>>(sector&7)) != 0 }

// bitmapCache keeps the last few block bitmaps read: a disk is read front
// to back in pieces smaller than a block.
type bitmapCache struct {
	mu    sync.Mutex
	keys  [8]int64
	vals  [8][]byte
	next  int
	valid [8]bool
}

func (img *Image) bitmap(b int64) ([]byte, error) {
	c := &img.bitmaps
	c.mu.Lock()
	for i := range c.keys {
		if c.valid[i] && c.keys[i] == b {
			bm := c.vals[i]
			c.mu.Unlock()
			return bm, nil
		}
	}
	c.mu.Unlock()
	bm, err := img.readAt(int(img.bmBytes), int64(img.bat[b])*SectorSize)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.keys[c.next], c.vals[c.next], c.valid[c.next] = b, bm, true
	c.next = (c.next + 1) % len(c.keys)
	c.mu.Unlock()
	return bm, nil
}

// Extents implements disk.Extenter: a fixed disk's data ranges (SEEK_DATA),
// a dynamic disk's allocated blocks, and for a differencing disk those of
// the whole chain.
func (img *Image) Extents(ctx context.Context) iter.Seq2[disk.Extent, error] {
	if img.Footer.Type == TypeFixed {
		if img.f == nil {
			return func(yield func(disk.Extent, error) bool) {
				if img.Size() > 0 {
					yield(disk.Extent{Len: img.Size()}, nil)
				}
			}
		}
		return fsutil.DataExtents(ctx, img.f, 0, img.Size())
	}
	return func(yield func(disk.Extent, error) bool) {
		own := img.blockExtents()
		if img.parent == nil {
			for _, e := range own {
				if !yield(e, nil) {
					return
				}
			}
			return
		}
		var all []disk.Extent
		for e, err := range img.parent.Extents(ctx) {
			if err != nil {
				yield(e, err)
				return
			}
			if e.Off < img.Size() {
				all = append(all, disk.Extent{Off: e.Off, Len: min(e.Len, img.Size()-e.Off)})
			}
		}
		for _, e := range union(own, all) {
			if !yield(e, nil) {
				return
			}
		}
	}
}

// blockExtents lists the allocated blocks, merged where adjacent.
func (img *Image) blockExtents() []disk.Extent {
	var ext []disk.Extent
	bs, size := img.blockSize(), img.Size()
	for b, e := range img.bat {
		off := int64(b) * bs
		if e == unused || off >= size {
			continue
		}
		n := min(bs, size-off)
		if len(ext) > 0 && ext[len(ext)-1].End() == off {
			ext[len(ext)-1].Len += n
		} else {
			ext = append(ext, disk.Extent{Off: off, Len: n})
		}
	}
	return ext
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
	Type           string
	Size           int64
	BlockSize      int64
	Blocks         int   // BAT entries
	Allocated      int   // allocated blocks
	AllocatedBytes int64 // bytes of data held: allocated blocks, or a fixed disk's data extents
	Creator        string
	UUID           string
	ParentUUID     string
	Parent         string // path of the parent opened
}

// Info reports what the image is.
func (img *Image) Info(ctx context.Context) (Info, error) {
	i := Info{Type: TypeName(img.Footer.Type), Size: img.Size(), UUID: uuidString(img.Footer.UUID),
		Creator: strings.TrimRight(string(img.Footer.Creator[:]), "\x00 ")}
	if img.Footer.Type == TypeFixed {
		for e, err := range img.Extents(ctx) {
			if err != nil {
				return i, err
			}
			i.AllocatedBytes += e.Len
		}
		return i, nil
	}
	i.BlockSize, i.Blocks = img.blockSize(), len(img.bat)
	for _, e := range img.bat {
		if e != unused {
			i.Allocated++
		}
	}
	i.AllocatedBytes = int64(i.Allocated) * i.BlockSize
	if img.parent != nil {
		i.ParentUUID, i.Parent = uuidString(img.Header.ParentUUID), img.parent.path
	}
	return i, nil
}

// IsVHD reports whether the file at path ends (or, for a dynamic disk,
// starts) with a VHD footer cookie.
func IsVHD(path string) bool {
	f, err := fsutil.OpenInput(path, true, 0)
	if err != nil {
		return false
	}
	defer f.Close()
	end, err := f.Seek(0, io.SeekEnd)
	return err == nil && Detect(f, end)
}

// Detect reports whether r, size bytes long, holds a VHD footer cookie
// at its end (or a 511-byte footer's), or at its start. A file that starts
// with the VHDX identifier is a VHDX, whatever its last sector holds (the
// guest's last sector, which may be a VHD footer: a fixed VHD copied onto
// a disk).
func Detect(r io.ReaderAt, size int64) bool {
	b := make([]byte, 8)
	if size >= 8 {
		if _, err := r.ReadAt(b, 0); err == nil && string(b) == vhdxSignature {
			return false
		}
	}
	for _, off := range []int64{0, size - footerSize, size - footerSize + 1} {
		if off >= 0 && off+8 <= size {
			if _, err := r.ReadAt(b, off); err == nil && string(b) == footerCookie {
				return true
			}
		}
	}
	return false
}

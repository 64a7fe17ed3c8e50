package vmdk

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"os"
	"path/filepath"
	"strings"

	"github.com/xva-tools/xva/disk"
	"github.com/xva-tools/xva/internal/fsutil"
)

var (
	_ disk.Source   = (*Image)(nil)
	_ disk.Extenter = (*Image)(nil)
)

// Image is a VMDK opened for reading: one sparse file, or a descriptor and
// the extents it lists, laid end to end.
type Image struct {
	path       string
	createType string
	desc       *Descriptor // the descriptor read, nil when there is none
	size       int64
	extents    []*extent
	files      []*os.File
}

// extent is one extent of the disk, at [start, start+length).
type extent struct {
	start, length int64
	kind          string // FLAT, SPARSE, ZERO
	ra            io.ReaderAt
	f             *os.File // a flat extent's file, for SEEK_DATA; nil otherwise
	off           int64    // a flat extent's byte offset in its file
	sp            *sparseExtent
}

// Detect reports whether r, size bytes long, holds a VMDK: a sparse extent
// ("KDMV", or ESX 3's "COWD", which Open refuses) or a text descriptor,
// recognised as qemu does: comment and blank lines, then version=1, 2 or 3.
func Detect(r io.ReaderAt, size int64) bool {
	b := make([]byte, min(size, 4096))
	n, _ := r.ReadAt(b, 0)
	b = b[:n]
	if len(b) >= 4 && (string(b[:4]) == magic || string(b[:4]) == vmdk3Magic) {
		return true
	}
	return size <= maxDescriptor && isDescriptor(b)
}

func isDescriptor(b []byte) bool {
	for len(b) > 0 {
		line, rest, ok := bytes.Cut(b, []byte("\n"))
		if !ok {
			return false // the version line must end in a newline
		}
		t := bytes.TrimSpace(line)
		switch {
		case len(t) == 0 || t[0] == '#':
			b = rest
			continue
		case bytes.Equal(t, []byte("version=1")), bytes.Equal(t, []byte("version=2")), bytes.Equal(t, []byte("version=3")):
			return true
		}
		return false
	}
	return false
}

// Open opens the VMDK at path: a sparse file (monolithicSparse,
// streamOptimized), or a descriptor whose extents (monolithicFlat,
// twoGbMaxExtentSparse, twoGbMaxExtentFlat, ...) are files beside it.
// Every structure is checked before it is used.
func Open(path string) (*Image, error) {
	f, err := fsutil.OpenInput(path, true, 0)
	if err != nil {
		return nil, err
	}
	size, err := f.Seek(0, io.SeekEnd) // works for block devices too
	if err != nil {
		f.Close()
		return nil, err
	}
	img := &Image{path: path, files: []*os.File{f}}
	if err := img.load(f, size, true); err != nil {
		img.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return img, nil
}

// OpenOn opens the sparse VMDK held in r, size bytes long, named name in
// errors. A descriptor is refused: its extent files can only be found
// from a file.
func OpenOn(r io.ReaderAt, size int64, name string) (*Image, error) {
	img := &Image{path: name}
	if err := img.load(r, size, false); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return img, nil
}

func (img *Image) load(r io.ReaderAt, size int64, file bool) error {
	head := make([]byte, min(size, 4))
	if _, err := r.ReadAt(head, 0); err != nil && err != io.EOF {
		return err
	}
	if len(head) == 4 && (string(head) == magic || string(head) == vmdk3Magic) {
		return img.loadSparse(r, size)
	}
	if size > maxDescriptor {
		return corrupt("not a VMDK: no sparse header, and too large for a descriptor")
	}
	text := make([]byte, size)
	if _, err := r.ReadAt(text, 0); err != nil && err != io.EOF {
		return err
	}
	if !isDescriptor(text) {
		return corrupt("not a VMDK: neither a sparse header nor a descriptor")
	}
	if !file {
		return errors.New("vmdk: a descriptor's extent files can only be found from a file")
	}
	d, err := ParseDescriptor(text)
	if err != nil {
		return err
	}
	img.desc, img.createType = d, d.CreateType
	return img.loadExtents(d)
}

// loadSparse opens a single sparse file: monolithicSparse or
// streamOptimized, whose embedded descriptor names only itself.
func (img *Image) loadSparse(r io.ReaderAt, size int64) error {
	sp, err := openSparse(r, size, img.path)
	if err != nil {
		return err
	}
	img.createType = "monolithicSparse"
	if sp.compressed() {
		img.createType = "streamOptimized"
	}
	text, err := sp.embeddedDescriptor()
	if err != nil {
		return err
	}
	if text != nil {
		// Only the disk database and the type are taken from it, as qemu
		// and VirtualBox do: the header says where the grains are.
		if d, err := ParseDescriptor(text); err == nil {
			img.desc = d
			if d.CreateType == "monolithicSparse" || d.CreateType == "streamOptimized" {
				img.createType = d.CreateType
			}
		} else if lower := bytes.ToLower(text); errors.Is(err, ErrUnsupported) ||
			bytes.Contains(lower, []byte("parentfilenamehint")) {
			// A snapshot's delta read alone would be the wrong disk, even
			// when the rest of its descriptor does not parse.
			return unsupported("a child disk (its descriptor names a parent): its parent chain is not read")
		}
	}
	if sp.capacity == 0 && img.desc != nil && img.desc.Sectors() > 0 {
		return unsupported("a sparse header with no capacity whose descriptor lists extents")
	}
	img.size = sp.capacity
	if img.size > 0 {
		img.extents = []*extent{{length: sp.capacity, kind: "SPARSE", ra: r, sp: sp}}
	}
	return nil
}

// loadExtents opens the extent files a descriptor lists, each relative to
// the descriptor's directory and inside it: os.Root refuses a name, or a
// symbolic link, that leads out of it.
func (img *Image) loadExtents(d *Descriptor) error {
	if len(d.Extents) == 0 {
		return corrupt("the descriptor lists no extents")
	}
	root, err := os.OpenRoot(filepath.Dir(img.path))
	if err != nil {
		return err
	}
	defer root.Close()
	var pos int64
	for i, e := range d.Extents {
		x := &extent{start: pos, length: int64(e.Sectors) * SectorSize, kind: e.Type}
		pos += x.length
		img.extents = append(img.extents, x)
		if e.Type == "ZERO" {
			continue
		}
		f, err := root.Open(filepath.FromSlash(strings.ReplaceAll(e.File, `\`, "/")))
		if err != nil {
			return fmt.Errorf("extent %d: %w", i+1, err)
		}
		img.files = append(img.files, f)
		st, err := f.Stat()
		if err != nil {
			return err
		}
		if !st.Mode().IsRegular() {
			return corrupt("extent %d: %s is not a regular file", i+1, e.File)
		}
		fsize := st.Size()
		x.ra = f
		switch e.Type {
		case "FLAT":
			x.f, x.off = f, int64(e.Offset)*SectorSize
			if x.off > fsize || x.length > fsize-x.off {
				return corrupt("extent %d: %s is %d bytes; the descriptor reads %d bytes from byte %d", i+1, e.File, fsize, x.length, x.off)
			}
		case "SPARSE":
			sp, err := openSparse(f, fsize, e.File)
			if err != nil {
				return fmt.Errorf("extent %d (%s): %w", i+1, e.File, err)
			}
			if sp.h.Capacity < e.Sectors {
				return corrupt("extent %d: %s holds %d sectors; the descriptor says %d", i+1, e.File, sp.h.Capacity, e.Sectors)
			}
			x.sp = sp
		}
	}
	img.size = pos
	return nil
}

// Size implements disk.Source: the virtual size.
func (img *Image) Size() int64 { return img.size }

// CreateType is the VMDK's subformat: monolithicSparse, streamOptimized,
// monolithicFlat, twoGbMaxExtentSparse, twoGbMaxExtentFlat, ...
func (img *Image) CreateType() string { return img.createType }

// Close closes the image's files.
func (img *Image) Close() error {
	var err error
	for _, f := range img.files {
		if e := f.Close(); err == nil {
			err = e
		}
	}
	img.files = nil
	return err
}

// ParallelReads implements disk.Parallel: reads may run at once, and for
// an image with compressed grains each costs their inflating.
func (img *Image) ParallelReads() bool {
	for _, x := range img.extents {
		if x.sp != nil && x.sp.compressed() {
			return true
		}
	}
	return false
}

// ReadAt implements disk.Source.
func (img *Image) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("vmdk: negative offset %d", off)
	}
	if off >= img.size {
		return 0, io.EOF
	}
	n := len(p)
	if rest := img.size - off; int64(n) > rest {
		n = int(rest)
	}
	q, at := p[:n], off
	for _, x := range img.extents {
		if len(q) == 0 {
			break
		}
		if at >= x.start+x.length {
			continue
		}
		in := at - x.start
		m := min(int64(len(q)), x.length-in)
		if err := x.read(q[:m], in); err != nil {
			return 0, err
		}
		q, at = q[m:], at+m
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (x *extent) read(p []byte, in int64) error {
	switch x.kind {
	case "FLAT":
		_, err := x.ra.ReadAt(p, x.off+in)
		if err == io.EOF {
			return corrupt("the flat extent file ends early")
		}
		return err
	case "SPARSE":
		return x.sp.readAtExtent(p, in)
	}
	clear(p)
	return nil
}

// Extents implements disk.Extenter: allocated grains of sparse extents,
// data (SEEK_DATA) of flat ones, nothing of zero ones.
func (img *Image) Extents(ctx context.Context) iter.Seq2[disk.Extent, error] {
	return func(yield func(disk.Extent, error) bool) {
		var pending disk.Extent
		emit := func(e disk.Extent) bool {
			if e.Len <= 0 {
				return true
			}
			if pending.Len > 0 && pending.End() == e.Off {
				pending.Len += e.Len
				return true
			}
			if pending.Len > 0 && !yield(pending, nil) {
				return false
			}
			pending = e
			return true
		}
		for _, x := range img.extents {
			if err := ctx.Err(); err != nil {
				yield(disk.Extent{}, err)
				return
			}
			switch x.kind {
			case "FLAT":
				if x.f == nil {
					if !emit(disk.Extent{Off: x.start, Len: x.length}) {
						return
					}
					continue
				}
				for e, err := range fsutil.DataExtents(ctx, x.f, x.off, x.off+x.length) {
					if err != nil {
						yield(e, err)
						return
					}
					if !emit(disk.Extent{Off: x.start + e.Off, Len: e.Len}) {
						return
					}
				}
			case "SPARSE":
				sp := x.sp
				grains := (x.length + sp.grainBytes - 1) / sp.grainBytes
				per := int64(sp.h.NumGTEsPerGT)
				for g := int64(0); g < grains; g++ {
					if sp.gts[g/per] == nil {
						g += per - 1 - g%per
						continue
					}
					if sp.allocated(g) {
						off := g * sp.grainBytes
						if !emit(disk.Extent{Off: x.start + off, Len: min(sp.grainBytes, x.length-off)}) {
							return
						}
					}
				}
			}
		}
		if pending.Len > 0 {
			yield(pending, nil)
		}
	}
}

// Info describes an image.
type Info struct {
	CreateType     string // the subformat
	Size           int64
	GrainSize      int64 // bytes; 0 when no extent is sparse
	Grains         int64 // grains of the sparse extents
	Allocated      int64 // allocated grains
	AllocatedBytes int64 // bytes of data held: allocated grains and flat extents' data
	Extents        int   // extent files
	Version        uint32
	Compressed     bool
	CID            string
	UUID           string // ddb.uuid, when the descriptor has one
}

// Info reports what the image is.
func (img *Image) Info(ctx context.Context) (Info, error) {
	i := Info{CreateType: img.createType, Size: img.size}
	for _, x := range img.extents {
		if x.kind != "ZERO" {
			i.Extents++
		}
		if x.sp == nil {
			continue
		}
		i.GrainSize, i.Version, i.Compressed = x.sp.grainBytes, x.sp.h.Version, x.sp.compressed()
		n := (x.length + x.sp.grainBytes - 1) / x.sp.grainBytes
		i.Grains += n
		per := int64(x.sp.h.NumGTEsPerGT)
		for g := int64(0); g < n; g++ {
			if x.sp.gts[g/per] == nil {
				g += per - 1 - g%per
			} else if x.sp.allocated(g) {
				i.Allocated++
			}
		}
	}
	for e, err := range img.Extents(ctx) {
		if err != nil {
			return i, err
		}
		i.AllocatedBytes += e.Len
	}
	if d := img.desc; d != nil {
		i.CID = fmt.Sprintf("%08x", d.CID)
		i.UUID = d.DDB["ddb.uuid"]
	}
	return i, nil
}

// IsVMDK reports whether the file at path is a VMDK by its content.
func IsVMDK(path string) bool {
	f, err := fsutil.OpenInput(path, true, 0)
	if err != nil {
		return false
	}
	defer f.Close()
	end, err := f.Seek(0, io.SeekEnd)
	return err == nil && Detect(f, end)
}

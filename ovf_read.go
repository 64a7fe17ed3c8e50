package xva

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/xva-tools/xva/disk"
	"github.com/xva-tools/xva/ova"
	"github.com/xva-tools/xva/ovf"
)

// IsOVF reports whether path is an OVF package: an OVA (a tar holding an
// .ovf descriptor) or an .ovf descriptor beside its files.
func IsOVF(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		return false
	}
	head := make([]byte, 4096)
	n, _ := io.ReadFull(f, head)
	head = head[:n]
	if isOVA(head) {
		return true
	}
	// An .ovf is taken at its name, whatever its encoding (XenCenter writes
	// UTF-16): the parser says what is wrong with one that is not OVF.
	switch strings.ToLower(filepath.Ext(path)) {
	case ".ova":
		return looksLikeTarHeader(head)
	case ".ovf":
		return true
	}
	return false
}

// ovfInput is an OVF package opened for reading: its descriptor, its
// manifest, and the disks of its virtual system in the VM's order.
type ovfInput struct {
	path     string
	pkg      *ovf.Package
	desc     *ovf.Descriptor
	manifest *ovf.Manifest // nil when the package has none
	disks    []ovfDisk
	notes    []string // what the package says that an XVA cannot carry, and how it is laid out
}

// ovfDisk is one disk of the virtual system.
type ovfDisk struct {
	device string // the device it gets in the VM: xvda, xvdb, ...
	disk   ovf.Disk
	file   *ovf.File // nil for a blank disk, which the VM gets as zeros
}

// openOVF opens the OVF package at path and reads its descriptor and
// manifest, checking that every disk names a file of the package.
func openOVF(path string) (*ovfInput, error) {
	pkg, err := ovf.OpenPackage(path)
	if err != nil {
		return nil, ovfError(path, err)
	}
	in := &ovfInput{path: path, pkg: pkg}
	if err := in.load(); err != nil {
		pkg.Close()
		return nil, err
	}
	return in, nil
}

func (in *ovfInput) load() error {
	name := in.pkg.DescriptorName()
	doc, err := in.pkg.Descriptor()
	if err != nil {
		return ovfError(name, err)
	}
	if in.desc, err = ovf.Parse(doc); err != nil {
		return corrupt(KindMetadata, name, "", -1, "%v", plainOVF(err))
	}
	if mf := in.pkg.ManifestName(); mf != "" {
		b, err := in.pkg.ManifestBytes()
		if err != nil {
			return ovfError(mf, err)
		}
		if in.manifest, err = ovf.ParseManifest(b); err != nil {
			return corrupt(KindMetadata, mf, "", -1, "%v", plainOVF(err))
		}
	}
	for _, d := range in.desc.Dropped {
		in.notes = append(in.notes, "not carried over: "+d)
	}
	if names := xenSettings(in.desc.System.Xen); names != "" {
		in.notes = append(in.notes, "not carried over: XenCenter's XenServer settings ("+names+
			"); the VM gets a current host's defaults (HVM, its firmware kept)")
	}
	return in.collectDisks()
}

// xenSettings names the XenCenter settings of a package (other than the
// firmware in HVM_boot_params, which is read), sorted, "" for none.
func xenSettings(xen map[string]string) string {
	var names []string
	for k := range xen {
		names = append(names, k)
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}

// collectDisks pairs each disk of the virtual system with its DiskSection
// entry and its file, and names its device.
func (in *ovfInput) collectDisks() error {
	if len(in.desc.System.Disks) == 0 {
		return corrupt(KindMetadata, in.pkg.DescriptorName(), "", -1, "the virtual system has no disk")
	}
	if len(in.desc.System.Disks) > maxDisks {
		return corrupt(KindMetadata, in.pkg.DescriptorName(), "", -1, "%d disks are more than a VM can have (%d)", len(in.desc.System.Disks), maxDisks)
	}
	for i, ref := range in.desc.System.Disks {
		d, ok := in.diskByID(ref.DiskID)
		if !ok {
			return corrupt(KindMetadata, in.pkg.DescriptorName(), "", -1, "disk %q is in no DiskSection", ref.DiskID)
		}
		od := ovfDisk{device: ovfDevice(i), disk: d}
		if d.FileRef != "" {
			f, ok := in.fileByID(d.FileRef)
			if !ok {
				return corrupt(KindMetadata, in.pkg.DescriptorName(), "", -1, "disk %q names file %q, which References lacks", d.ID, d.FileRef)
			}
			od.file = &f
		}
		in.disks = append(in.disks, od)
	}
	return nil
}

func (in *ovfInput) diskByID(id string) (ovf.Disk, bool) {
	for _, d := range in.desc.Disks {
		if d.ID == id {
			return d, true
		}
	}
	return ovf.Disk{}, false
}

func (in *ovfInput) fileByID(id string) (ovf.File, bool) {
	for _, f := range in.desc.Files {
		if f.ID == id {
			return f, true
		}
	}
	return ovf.File{}, false
}

// ovfDevice is the device of the VM's i-th disk: xvda ... xvdz, xvdaa ...
func ovfDevice(i int) string {
	name := ""
	for i++; i > 0; i = (i - 1) / 26 {
		name = string(rune('a'+(i-1)%26)) + name
	}
	return "xvd" + name
}

func (in *ovfInput) close() error { return in.pkg.Close() }

// allNotes is what the package's layout and files called for (a file's
// size other than its ovf:size is noted when it is opened) and what the VM
// loses, so far.
func (in *ovfInput) allNotes() []string {
	return append(in.pkg.Notes(), in.notes...)
}

// appliance is the VM the package describes, as the legacy model pack
// starts from: its disks in the VM's order, the first the boot disk.
func (in *ovfInput) appliance() (*ova.Appliance, error) {
	s := in.desc.System
	vm := ova.VM{
		Label:       s.Name,
		Description: s.Description,
		Memory:      s.Memory,
		VCPUs:       s.VCPUs,
		// An OVF describes virtual hardware: the guest boots as an HVM
		// guest from its disk, as XenCenter's import makes it.
		HVM:      true,
		Firmware: s.Firmware,
	}
	if vm.Memory <= 0 {
		return nil, corrupt(KindMetadata, in.pkg.DescriptorName(), "", -1, "the virtual system states no memory (no Item of ResourceType 4)")
	}
	if vm.VCPUs < 1 {
		vm.VCPUs = 1
		in.notes = append(in.notes, "the virtual system states no vCPUs: it gets 1")
	}
	for i, n := range s.NICs {
		vm.VIFs = append(vm.VIFs, ova.VIF{Device: fmt.Sprint(i), MAC: n.MAC, Network: n.Network})
	}
	a := &ova.Appliance{}
	for i, d := range in.disks {
		function, variety := "user", "user"
		if i == 0 {
			function, variety = "root", "system"
		}
		name := "vdi_" + d.device
		vm.VBDs = append(vm.VBDs, ova.VBD{Device: d.device, Function: function, VDI: name})
		a.VDIs = append(a.VDIs, ova.VDI{Name: name, Size: d.disk.Capacity, Source: "file://" + d.device,
			Type: ova.TypeGzippedChunks, Variety: variety})
	}
	a.VMs = []ova.VM{vm}
	return a, nil
}

// metadata is the package's VM as an archive's metadata.
func (in *ovfInput) metadata() (*Metadata, error) {
	a, err := in.appliance()
	if err != nil {
		return nil, err
	}
	return fromAppliance(a)
}

// source opens the data of disk d: its file, in whatever image format it
// holds, grown to the capacity the descriptor gives. A gzip-compressed
// file cannot be read at random: it is inflated into a temporary file in
// tmpdir first, removed when the source is closed.
func (in *ovfInput) source(d ovfDisk, tmpdir string) (disk.Source, error) {
	if d.file == nil {
		return disk.Zero(d.disk.Capacity), nil
	}
	f, err := in.pkg.OpenFile(d.file.Href, d.file.Size, d.file.ChunkSize, d.file.Compression)
	if err != nil {
		return nil, ovfError(d.file.Href, err)
	}
	var r io.ReaderAt = f
	size := f.Size()
	var spool *os.File
	if f.Sequential() {
		if spool, size, err = inflate(f, tmpdir, d.file.Href, maxImage(d.disk.Capacity)); err != nil {
			return nil, err
		}
		r = spool
	}
	img, err := openImageOn(r, size, d.file.Href)
	if err != nil {
		removeSpool(spool)
		return nil, err
	}
	if spool != nil {
		img = &closing{img, spoolCloser{spool}}
	}
	switch {
	case img.Size() > d.disk.Capacity:
		return in.clip(img, d)
	case img.Size() < d.disk.Capacity:
		return disk.Grow(img, d.disk.Capacity), nil
	}
	return img, nil
}

// maxExcess is how far past its capacity an image may reach and still be
// read at the capacity: qemu rounds a VHD up to its CHS geometry, some
// tens of KiB; anything near this is another disk.
const maxExcess = 64 << 20

// clip reads an image larger than its disk's capacity at the capacity,
// when what lies past it reads as zeros (qemu-img's VHDs: their size is
// rounded up to a CHS geometry); an image with data past its capacity is
// not the disk the descriptor describes.
func (in *ovfInput) clip(img disk.Source, d ovfDisk) (disk.Source, error) {
	excess := img.Size() - d.disk.Capacity
	refuse := func() (disk.Source, error) {
		img.Close()
		return nil, corrupt(KindImage, d.file.Href, d.device, -1, "the image holds %d bytes, more than the disk's capacity of %d in the descriptor", img.Size(), d.disk.Capacity)
	}
	if excess > maxExcess {
		return refuse()
	}
	buf := make([]byte, excess)
	if _, err := img.ReadAt(buf, d.disk.Capacity); err != nil && err != io.EOF {
		img.Close()
		return nil, err
	}
	if !disk.IsZero(buf) {
		return refuse()
	}
	in.notes = append(in.notes, fmt.Sprintf("%s: the image is %d bytes, its capacity %d; the %d bytes past it are zeros and are left out",
		d.file.Href, img.Size(), d.disk.Capacity, excess))
	return disk.Clip(img, d.disk.Capacity), nil
}

// openImageOn opens an image held in r (size bytes), in the format its
// content says; a malformed image is an integrity failure naming name.
func openImageOn(r io.ReaderAt, size int64, name string) (disk.Source, error) {
	m := disk.Section(r, size)
	f := detectFormat(m, size)
	img, err := f.openOn(m, name)
	if err != nil {
		return nil, imageError(name, err)
	}
	return checkedReads(f, img, name), nil
}

// maxImage is the largest image file a disk of capacity bytes can need:
// its data, the metadata of any format (VHD's bitmaps and qcow2's tables
// take well under 1/64 of it) and what a clipped image may hold past it.
// A compressed file inflating to more is refused before it fills the disk.
func maxImage(capacity int64) int64 {
	return capacity + capacity/64 + maxExcess + 1<<20
}

// inflate copies the inflated stream of f, at most limit bytes, into a new
// temporary file in tmpdir and returns it with its size.
func inflate(f ovf.FileData, tmpdir, name string, limit int64) (*os.File, int64, error) {
	rc, err := f.Reader()
	if err != nil {
		return nil, 0, ovfError(name, err)
	}
	defer rc.Close()
	tmp, err := os.CreateTemp(tmpdir, ".xva-inflate-*")
	if err != nil {
		return nil, 0, err
	}
	n, err := spoolSparse(tmp, io.LimitReader(rc, limit+1))
	if err == nil && n > limit {
		err = corrupt(KindImage, name, "", -1, "inflates to more than the %d bytes an image of the disk's capacity can need", limit)
	}
	if err != nil {
		removeSpool(tmp)
		if !IsIOError(err) && !IsCorrupt(err) {
			return nil, 0, corrupt(KindCompression, name, "", -1, "%v", err)
		}
		return nil, 0, err
	}
	return tmp, n, nil
}

// spoolSparse writes what r reads into f, leaving its zero runs as holes.
// Only io.EOF ends it: a stream cut short is the reader's error.
func spoolSparse(f *os.File, r io.Reader) (int64, error) {
	buf := make([]byte, 1<<20)
	var n int64
	for {
		k, err := fill(r, buf)
		werr := disk.DataRuns(buf[:k], n, func(p []byte, off int64) error {
			if _, err := f.WriteAt(p, off); err != nil {
				return ioError{err}
			}
			return nil
		})
		n += int64(k)
		switch {
		case werr != nil:
			return n, werr
		case err == io.EOF:
			if err := f.Truncate(n); err != nil {
				return n, ioError{err}
			}
			return n, nil
		case err != nil:
			return n, err
		}
	}
}

// fill reads into buf until it is full or r ends (io.EOF) or fails.
func fill(r io.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		k, err := r.Read(buf[n:])
		n += k
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

func removeSpool(f *os.File) {
	if f != nil {
		f.Close()
		os.Remove(f.Name())
	}
}

type spoolCloser struct{ f *os.File }

func (s spoolCloser) Close() error { removeSpool(s.f); return nil }

// ovfError makes an error of package ovf about a member or file name an
// integrity failure when it is one (ovf.ErrCorrupt), and leaves others
// (I/O, unsupported) as they are.
func ovfError(name string, err error) error {
	switch {
	case errors.Is(err, ovf.ErrCorrupt):
		return &CorruptError{Kind: KindTar, Member: name, Offset: -1, Err: plainOVF(err)}
	case errors.Is(err, ovf.ErrUnsupported):
		return fmt.Errorf("%w: %v", ErrUnsupported, plainOVF(err))
	}
	return err
}

// plainOVF drops the package prefix from an ovf error's text.
func plainOVF(err error) error {
	return errors.New(strings.TrimPrefix(err.Error(), "ovf: "))
}

// copyDisk reads src whole into sink, on up to jobs cores.
func copyDisk(ctx context.Context, sink disk.Sink, src disk.Source, jobs int, progress func(int64)) (int64, error) {
	r := disk.NewReaderJobs(ctx, src, jobs)
	defer r.Close()
	return disk.Copy(ctx, sink, r, progress)
}

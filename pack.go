package xva

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/xva-tools/xva/chunk"
	"github.com/xva-tools/xva/disk"
	"github.com/xva-tools/xva/internal/fsutil"
	"github.com/xva-tools/xva/ova"
)

// VMSpec describes a VM to pack from its parts.
type VMSpec struct {
	Name          string
	Description   string
	Memory        int64 // bytes
	VCPUs         int
	HVM           bool
	KernelCmdline string
	Disks         []DiskSpec // the first is the boot disk
}

// DiskSpec names a disk image and the device it is attached as.
type DiskSpec struct {
	Device string // "sda", "xvda"
	Path   string // image file
}

// PackResult describes a written archive.
type PackResult struct {
	Output     string
	Generation Generation
	Disks      []PackedDisk
	// Notes says what of the input the output could not carry (converting
	// from OVF or to a legacy archive), and anything else worth knowing.
	Notes []string
}

// PackedDisk describes one disk of a written archive.
type PackedDisk struct {
	Device     string
	Size       int64
	Members    int
	Compressed int64
}

// Pack writes an archive of the VM that spec describes to output, in the
// legacy generation unless WithFormat says otherwise.
func Pack(ctx context.Context, spec *VMSpec, output string, opts ...Option) (*PackResult, error) {
	o, err := makeOptions(opts)
	if err != nil {
		return nil, err
	}
	a, paths, err := spec.appliance()
	if err != nil {
		return nil, err
	}
	m, err := fromAppliance(a)
	if err != nil {
		return nil, err
	}
	return pack(ctx, m, paths, output, o)
}

// PackDir writes an archive of the VM directory vmdir (an ova.xml plus one
// image per disk named after its device, as Unpack writes it) to output, in
// the directory's own generation unless WithFormat says otherwise.
func PackDir(ctx context.Context, vmdir, output string, opts ...Option) (*PackResult, error) {
	o, err := makeOptions(opts)
	if err != nil {
		return nil, err
	}
	m, paths, err := readVMDir(vmdir)
	if err != nil {
		return nil, err
	}
	return pack(ctx, m, paths, output, o)
}

// appliance builds the legacy model of spec and maps each device to its
// image.
func (spec *VMSpec) appliance() (*ova.Appliance, map[string]string, error) {
	if len(spec.Disks) == 0 {
		return nil, nil, fmt.Errorf("xva: a VM needs at least one disk")
	}
	if spec.Memory < 0 || spec.VCPUs < 1 {
		return nil, nil, fmt.Errorf("xva: memory must be positive and vcpus at least 1")
	}
	vm := ova.VM{
		Label:         spec.Name,
		Description:   spec.Description,
		Memory:        spec.Memory,
		VCPUs:         spec.VCPUs,
		HVM:           spec.HVM,
		KernelCmdline: spec.KernelCmdline,
	}
	a := &ova.Appliance{}
	paths := map[string]string{}
	for i, d := range spec.Disks {
		if !safeName(d.Device) || strings.ContainsAny(d.Device, " \t\n") {
			return nil, nil, fmt.Errorf("xva: disk device %q is not a plain name like sda or xvda", d.Device)
		}
		if _, dup := paths[d.Device]; dup {
			return nil, nil, fmt.Errorf("xva: disk device %q given twice", d.Device)
		}
		function, variety := "user", "user"
		if i == 0 {
			function, variety = "root", "system"
		}
		name := "vdi_" + d.Device
		vm.VBDs = append(vm.VBDs, ova.VBD{Device: d.Device, Function: function, VDI: name})
		a.VDIs = append(a.VDIs, ova.VDI{Name: name, Source: "file://" + d.Device, Type: ova.TypeGzippedChunks, Variety: variety})
		paths[d.Device] = d.Path
	}
	a.VMs = []ova.VM{vm}
	return a, paths, nil
}

// pack opens each disk's image, records its size in the metadata of the
// generation to write, and writes the archive.
func pack(ctx context.Context, m *Metadata, paths map[string]string, output string, o *options) (*PackResult, error) {
	return packFrom(ctx, m, func(d *Disk) (disk.Source, error) {
		path, ok := paths[d.Device]
		if !ok {
			return nil, fmt.Errorf("xva: no image given for disk %s", d.Device)
		}
		o.log.Debug("image opened", "device", d.Device, "path", path)
		return openImage(path)
	}, output, o)
}

// packFrom writes the archive of m, in the generation to write, with each
// disk's data from the source open gives it (sized by that source).
func packFrom(ctx context.Context, m *Metadata, open func(d *Disk) (disk.Source, error), output string, o *options) (*PackResult, error) {
	target := o.format
	if target == 0 {
		target = m.Generation
	}
	m, err := convertMetadata(m, target, o.uuidSeed)
	if err != nil {
		return nil, err
	}
	sources := map[string]disk.Source{}
	defer func() {
		for _, s := range sources {
			s.Close()
		}
	}()
	sizes := map[string]int64{}
	for i := range m.Disks {
		d := &m.Disks[i]
		src, err := open(d)
		if err != nil {
			return nil, err
		}
		sources[d.Device] = src
		sizes[d.Device] = src.Size()
	}
	if m, err = withSizes(m, sizes); err != nil {
		return nil, err
	}
	out, err := createOutput(output, target, o)
	if err != nil {
		return nil, err
	}
	res, err := writeArchive(ctx, out, m, func(d *Disk) (disk.Reader, func(), error) {
		r := disk.NewReaderJobs(ctx, sources[d.Device], o.jobs)
		return r, func() { r.Close() }, nil
	}, o)
	if err == nil && o.beforeCommit != nil {
		err = o.beforeCommit()
	}
	if err != nil {
		out.abort()
		return nil, err
	}
	if err := out.commit(); err != nil {
		return nil, err
	}
	o.log.Debug("output complete", "output", output, "format", target.String())
	res.Output = output
	return res, nil
}

// openImage opens a disk image for reading: a raw file or block device, a
// VHD in either, or a logical volume on its PV (lvm:PV:VG/LV).
func openImage(path string) (disk.Source, error) {
	if path == "" {
		return nil, fmt.Errorf("xva: no image given")
	}
	return openSource(path)
}

// convertMetadata returns m in generation g. Converting keeps the VM's
// name, description, memory, vcpus, boot mode, disks and their devices.
func convertMetadata(m *Metadata, g Generation, seed string) (*Metadata, error) {
	if m.Generation == g {
		return m, nil
	}
	if g == XAPI {
		e, err := ova.FromAppliance(m.Legacy, seed)
		if errors.Is(err, ova.ErrInvalidVM) {
			return nil, corrupt(KindMetadata, "ova.xml", "", -1, "%v", err)
		}
		if err != nil {
			return nil, err
		}
		return fromExport(e)
	}
	a, err := m.Export.ToAppliance()
	if err != nil {
		return nil, err
	}
	return fromAppliance(a)
}

// withSizes returns m with each disk's declared size set to sizes[device]
// (for a disk not in sizes, its own), in whole sectors for the xapi
// generation. Metadata that needs no change keeps its exact bytes.
func withSizes(m *Metadata, sizes map[string]int64) (*Metadata, error) {
	changed := false
	for _, d := range m.Disks {
		size, ok := sizes[d.Device]
		if !ok {
			size = d.Size
		}
		if m.Generation == XAPI {
			size = ova.XapiSize(size)
		}
		if size == d.Size {
			continue
		}
		changed = true
		if m.Generation == XAPI {
			m.Export.SetVirtualSize(d.VDI, size)
		} else {
			m.Legacy.SetSize(d.VDI, size)
		}
	}
	if !changed {
		return m, nil
	}
	if m.Generation == XAPI {
		return fromExport(m.Export)
	}
	return fromAppliance(m.Legacy)
}

// diskReader opens the data of one disk for writing it out; done releases
// what it holds.
type diskReader func(d *Disk) (r disk.Reader, done func(), err error)

// writeArchive writes ova.xml and then every disk of m, in archive order.
func writeArchive(ctx context.Context, out archiveOut, m *Metadata, open diskReader, o *options) (*PackResult, error) {
	if err := out.file("ova.xml", m.OVA); err != nil {
		return nil, err
	}
	res := &PackResult{Generation: m.Generation}
	keepZeros := keepZeroBlocks(m)
	for i := range m.Disks {
		d := &m.Disks[i]
		r, done, err := open(d)
		if err != nil {
			return nil, err
		}
		o.progress.StartDisk(d.Device, d.Size)
		start := time.Now()
		pd, err := writeDisk(ctx, out, m.Generation, d, r, o, o.progress.Advance, keepZeros)
		o.progress.EndDisk()
		done()
		if err != nil {
			return nil, err
		}
		o.log.Debug("disk packed", "device", d.Device, "id", d.ID, "size", d.Size, "members", pd.Members,
			"stored", pd.Compressed, "seconds", time.Since(start).Seconds())
		res.Disks = append(res.Disks, pd)
	}
	return res, nil
}

// keepZeroBlocks reports whether an xapi archive must carry its all-zero
// blocks: xapi places the block after a gap at (numbers skipped) × the size
// of the archive's very first block, so when that block is short (the
// first disk with data is under 1 MiB) every gap would be misplaced, and
// there must be none.
func keepZeroBlocks(m *Metadata) bool {
	if m.Generation != XAPI {
		return false
	}
	for _, d := range m.Disks {
		if d.Size > 0 {
			return d.Size < chunk.BlockSize
		}
	}
	return false
}

// writeDisk encodes one disk, read from r, in generation g.
func writeDisk(ctx context.Context, out archiveOut, g Generation, d *Disk, r disk.Reader, o *options, progress func(int64), keepZeros bool) (PackedDisk, error) {
	g8 := disk.NewGather(r)
	if g == XAPI {
		st, err := chunk.WriteBlocks(ctx, memberWriter{out, o.memberStored()}, g8, d.ID, d.Size,
			chunk.BlockOptions{Checksum: o.checksum, Jobs: o.jobs, Progress: progress, KeepZeros: keepZeros})
		return PackedDisk{Device: d.Device, Size: d.Size, Members: st.Blocks, Compressed: st.Data}, err
	}
	return writeLegacyDisk(ctx, out, d, g8, o, progress)
}

// memberWriter writes whole members to an archive, counting their bytes.
type memberWriter struct {
	out    archiveOut
	stored func(int64)
}

func (w memberWriter) WriteMember(name string, data []byte) error {
	w.stored(int64(len(data)))
	return w.out.file(name, data)
}

// countingChunk counts the bytes written to a chunk as they go.
type countingChunk struct {
	chunk.ChunkFile
	stored func(int64)
}

func (c countingChunk) Write(p []byte) (int, error) {
	n, err := c.ChunkFile.Write(p)
	c.stored(int64(n))
	return n, err
}

func writeLegacyDisk(ctx context.Context, out archiveOut, d *Disk, g *disk.Gather, o *options, progress func(int64)) (PackedDisk, error) {
	pd := PackedDisk{Device: d.Device, Size: d.Size}
	gz := chunk.GzipOptions{Level: o.level, Jobs: o.jobs, Progress: progress}
	// A zero-byte disk still gets one (empty) chunk so that its directory
	// exists, as the xe CLI expects.
	for start := int64(0); start < d.Size || start == 0; start += chunk.ChunkSize {
		name := fmt.Sprintf("%s/chunk-%09d.gz", d.ID, start/chunk.ChunkSize)
		length := min(chunk.ChunkSize, d.Size-start)
		n, err := out.chunk(name, func(cf chunk.ChunkFile) (int64, error) {
			return chunk.WriteGzipChunk(ctx, countingChunk{cf, o.memberStored()}, g, start, length, gz)
		})
		if err != nil {
			return pd, fmt.Errorf("writing %s: %w", name, err)
		}
		pd.Members++
		pd.Compressed += n
		if d.Size == 0 {
			break
		}
	}
	return pd, nil
}

// readVMDir reads a VM directory: ova.xml and one image per disk, found by
// device name.
func readVMDir(dir string) (*Metadata, map[string]string, error) {
	doc, err := readFileLimited(filepath.Join(dir, "ova.xml"), maxOVASize)
	if err != nil {
		return nil, nil, err
	}
	meta, err := ParseMetadata(doc)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", filepath.Join(dir, "ova.xml"), err)
	}
	paths := map[string]string{}
	for _, d := range meta.Disks {
		var found []string
		exts := imageExts()
		for _, ext := range exts {
			p := filepath.Join(dir, d.Device+ext)
			if _, err := os.Stat(p); err == nil {
				found = append(found, p)
			}
		}
		switch len(found) {
		case 0:
			return nil, nil, fmt.Errorf("xva: VM directory %s has no image for disk %s (looked for %s%s)", dir, d.Device, d.Device, strings.Join(exts, " and "+d.Device))
		case 1:
			paths[d.Device] = found[0]
		default:
			return nil, nil, fmt.Errorf("xva: VM directory %s has two images for disk %s: %s", dir, d.Device, strings.Join(found, ", "))
		}
	}
	return meta, paths, nil
}

// readFileLimited reads the regular file at path, of at most limit bytes.
func readFileLimited(path string, limit int64) ([]byte, error) {
	f, err := fsutil.OpenInput(path, false, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s is more than the %d bytes allowed", path, limit)
	}
	return b, nil
}

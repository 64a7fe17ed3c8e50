package xva

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/xva-tools/xva/chunk"
	"github.com/xva-tools/xva/disk"
	"github.com/xva-tools/xva/ova"
	"github.com/xva-tools/xva/raw"
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
}

// PackedDisk describes one disk of a written archive.
type PackedDisk struct {
	Device     string
	Size       int64
	Members    int
	Compressed int64
}

// Pack writes an archive of the VM that spec describes to output.
func Pack(ctx context.Context, spec *VMSpec, output string, opts ...Option) (*PackResult, error) {
	o, err := makeOptions(opts)
	if err != nil {
		return nil, err
	}
	a, paths, err := spec.appliance()
	if err != nil {
		return nil, err
	}
	return pack(ctx, a, paths, output, o)
}

// PackDir writes an archive of the VM directory vmdir (an ova.xml plus one
// image per disk named after its device, as Unpack writes it) to output.
func PackDir(ctx context.Context, vmdir, output string, opts ...Option) (*PackResult, error) {
	o, err := makeOptions(opts)
	if err != nil {
		return nil, err
	}
	meta, paths, err := readVMDir(vmdir)
	if err != nil {
		return nil, err
	}
	return pack(ctx, meta.Legacy, paths, output, o)
}

// appliance builds the legacy model of spec, and maps each VDI to its image.
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
		if _, dup := paths["vdi_"+d.Device]; dup {
			return nil, nil, fmt.Errorf("xva: disk device %q given twice", d.Device)
		}
		function, variety := "user", "user"
		if i == 0 {
			function, variety = "root", "system"
		}
		name := "vdi_" + d.Device
		vm.VBDs = append(vm.VBDs, ova.VBD{Device: d.Device, Function: function, VDI: name})
		a.VDIs = append(a.VDIs, ova.VDI{Name: name, Source: "file://" + d.Device, Type: ova.TypeGzippedChunks, Variety: variety})
		paths[name] = d.Path
	}
	a.VMs = []ova.VM{vm}
	return a, paths, nil
}

// pack opens the images, records their sizes in the model and writes the
// archive.
func pack(ctx context.Context, a *ova.Appliance, paths map[string]string, output string, o *options) (*PackResult, error) {
	sources := map[string]disk.Source{}
	defer func() {
		for _, s := range sources {
			s.Close()
		}
	}()
	for i, vdi := range a.VDIs {
		src, err := openImage(paths[vdi.Name])
		if err != nil {
			return nil, err
		}
		sources[vdi.Name] = src
		a.VDIs[i].Size = src.Size()
	}
	doc, err := a.MarshalLegacy()
	if err != nil {
		return nil, err
	}
	meta, err := legacyMetadata(doc, a)
	if err != nil {
		return nil, err
	}
	out, err := createOutput(output, o.dirForm, o.force)
	if err != nil {
		return nil, err
	}
	res, err := writeLegacy(ctx, out, meta, sources, o)
	if err != nil {
		out.abort()
		return nil, err
	}
	if err := out.commit(); err != nil {
		return nil, err
	}
	res.Output = output
	return res, nil
}

// openImage opens a disk image for reading.
func openImage(path string) (disk.Source, error) {
	if path == "" {
		return nil, fmt.Errorf("xva: no image given")
	}
	return raw.Open(path)
}

// writeLegacy writes ova.xml and every disk's gzip chunks to out.
func writeLegacy(ctx context.Context, out archiveOut, meta *Metadata, sources map[string]disk.Source, o *options) (*PackResult, error) {
	if err := out.file("ova.xml", meta.OVA); err != nil {
		return nil, err
	}
	res := &PackResult{Generation: Legacy}
	for _, d := range meta.Disks {
		pd, err := writeLegacyDisk(ctx, out, &d, sources[d.VDI], o)
		if err != nil {
			return nil, err
		}
		res.Disks = append(res.Disks, pd)
	}
	return res, nil
}

func writeLegacyDisk(ctx context.Context, out archiveOut, d *Disk, src disk.Source, o *options) (PackedDisk, error) {
	pd := PackedDisk{Device: d.Device, Size: d.Size}
	o.progress.StartDisk(d.Device, d.Size)
	defer o.progress.EndDisk()
	r := disk.NewReader(ctx, src)
	defer r.Close()
	g := disk.NewGather(r)
	gz := chunk.GzipOptions{Level: o.level, Jobs: o.jobs, Progress: o.progress.Advance}
	// A zero-byte disk still gets one (empty) chunk so that its directory
	// exists, as the xe CLI expects.
	for start := int64(0); start < d.Size || start == 0; start += chunk.ChunkSize {
		name := fmt.Sprintf("%s/chunk-%09d.gz", d.ID, start/chunk.ChunkSize)
		length := min(chunk.ChunkSize, d.Size-start)
		n, err := out.chunk(name, func(cf chunk.ChunkFile) (int64, error) {
			return chunk.WriteGzipChunk(ctx, cf, g, start, length, gz)
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
		p := filepath.Join(dir, d.Device+".raw")
		if _, err := os.Stat(p); err != nil {
			return nil, nil, fmt.Errorf("xva: VM directory %s has no image for disk %s (looked for %s)", dir, d.Device, p)
		}
		paths[d.VDI] = p
	}
	return meta, paths, nil
}

func readFileLimited(path string, limit int64) ([]byte, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if st.Size() > limit {
		return nil, fmt.Errorf("%s is %d bytes, more than the %d allowed", path, st.Size(), limit)
	}
	return os.ReadFile(path)
}

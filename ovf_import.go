package xva

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/xva-tools/xva/disk"
	"github.com/xva-tools/xva/ovf"
)

// convertOVF writes the VM of the OVF package at path as an archive at
// output (xapi unless WithFormat says legacy), reading each disk's image
// from the package straight into the archive's encoder.
func convertOVF(ctx context.Context, path, output string, o *options) (*PackResult, error) {
	in, m, err := openOVFMetadata(path)
	if err != nil {
		return nil, err
	}
	defer in.close()
	if o.format == 0 {
		o.format = XAPI // what every current host imports
	}
	var notes []string
	if o.format == Legacy {
		for _, d := range m.VM.LegacyDrops() {
			notes = append(notes, "not carried over (a legacy archive cannot say it): "+d)
		}
	}
	tmpdir := spoolDir(output)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if output == "-" || o.writer != nil {
		// A stream (an upload) cannot be taken back once sent: its
		// digests are checked before a byte of it goes out.
		if err := in.checkDigests(ctx)(); err != nil {
			return nil, err
		}
	} else {
		o.beforeCommit = in.checkDigests(ctx)
	}
	res, err := packFrom(ctx, m, func(d *Disk) (disk.Source, error) {
		od, err := in.disk(d.Device)
		if err != nil {
			return nil, err
		}
		return in.source(od, tmpdir)
	}, output, o)
	if err != nil {
		return nil, err
	}
	res.Notes = append(in.allNotes(), notes...)
	return res, nil
}

// openOVFMetadata opens the package at path and describes its VM as an
// archive's metadata; the caller closes the package.
func openOVFMetadata(path string) (*ovfInput, *Metadata, error) {
	in, err := openOVF(path)
	if err != nil {
		return nil, nil, err
	}
	m, err := in.metadata()
	if err != nil {
		in.close()
		return nil, nil, err
	}
	return in, m, nil
}

// disk is the package's disk that became device.
func (in *ovfInput) disk(device string) (ovfDisk, error) {
	for _, d := range in.disks {
		if d.device == device {
			return d, nil
		}
	}
	return ovfDisk{}, fmt.Errorf("xva: the package has no disk %s", device)
}

// spoolDir is where a compressed disk of a package is inflated: beside
// the output, whose filesystem must hold the result anyway, or the
// system's temporary directory for a stream.
func spoolDir(output string) string {
	if output == "-" || output == "" {
		return os.TempDir()
	}
	return filepath.Dir(filepath.Clean(output))
}

// unpackOVF writes the VM of the OVF package at path into dir: an xapi
// ova.xml describing it and an image per disk, as Unpack does for an
// archive, so that the directory packs into an XVA.
func unpackOVF(ctx context.Context, path, dir string, o *options) (*UnpackResult, error) {
	in, m, err := openOVFMetadata(path)
	if err != nil {
		return nil, err
	}
	defer in.close()
	if m, err = convertMetadata(m, XAPI, o.uuidSeed); err != nil {
		return nil, err
	}
	if err := checkTargets(m, o); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	digests := in.checkDigests(ctx)
	if len(o.targets) > 0 || o.createLV != "" {
		// Devices and volumes are written in place, with nothing to
		// take back: the digests first.
		if err := digests(); err != nil {
			return nil, err
		}
		digests = func() error { return nil }
	}
	res := &UnpackResult{Generation: XAPI}
	sources := map[string]disk.Source{}
	defer func() {
		for _, s := range sources {
			s.Close()
		}
	}()
	sizes := map[string]int64{}
	for _, d := range m.Disks {
		od, err := in.disk(d.Device)
		if err != nil {
			return nil, err
		}
		src, err := in.source(od, dir)
		if err != nil {
			return nil, err
		}
		sources[d.Device], sizes[d.Device] = src, src.Size()
	}
	if m, err = withSizes(m, sizes); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "ova.xml"), m.OVA, 0o644); err != nil {
		return nil, err
	}
	for i := range m.Disks {
		d := &m.Disks[i]
		ud, err := unpackSource(ctx, m, dir, d, sources[d.Device], o)
		if err != nil {
			return nil, err
		}
		res.Disks = append(res.Disks, ud)
	}
	if err := digests(); err != nil {
		return nil, err
	}
	res.Notes = in.allNotes()
	return res, nil
}

// unpackSource writes disk d, read from src, as its image in dir (or at
// its target).
func unpackSource(ctx context.Context, m *Metadata, dir string, d *Disk, src disk.Source, o *options) (UnpackedDisk, error) {
	path, sink, err := createImage(ctx, m, dir, d, o)
	if err != nil {
		return UnpackedDisk{}, err
	}
	start := time.Now()
	o.progress.StartDisk(d.Device, d.Size)
	n, err := copyDisk(ctx, sink, src, o.jobs, o.progress.Advance)
	o.progress.EndDisk()
	if err == nil {
		err = sink.Commit()
	}
	if err != nil {
		sink.Abort()
		return UnpackedDisk{}, err
	}
	o.log.Debug("disk written", "device", d.Device, "target", path, "size", d.Size, "data", n,
		"seconds", time.Since(start).Seconds())
	return UnpackedDisk{Device: d.Device, Path: path, Size: d.Size, Data: n}, nil
}

// OVFInfo is what info tells of an OVF package beyond the VM and its
// disks.
type OVFInfo struct {
	Version    string `json:"version"`
	Descriptor string `json:"descriptor"`
	// Manifest is the manifest's file name, "" when the package has none;
	// Algorithms the digest algorithms it uses.
	Manifest   string   `json:"manifest"`
	Algorithms []string `json:"manifest_algorithms"`
	Firmware   string   `json:"firmware"` // bios, uefi, or "" when not stated
	// Notes says what the package holds that an XVA cannot carry, and how
	// it is laid out where the standard says otherwise.
	Notes []string `json:"notes"`
}

// ovfInfo describes the OVF package at path: its VM as an XVA would carry
// it, each disk with its file, and what would not be carried over.
func ovfInfo(path string) (*InfoResult, error) {
	in, m, err := openOVFMetadata(path)
	if err != nil {
		return nil, err
	}
	defer in.close()
	form := in.pkg.Form()
	if form == "ovf" {
		form = "ovf directory"
	}
	res := newInfoResult(path, form, m)
	res.Generation = 0
	info := &OVFInfo{Version: in.desc.Version, Descriptor: in.pkg.DescriptorName(), Manifest: in.pkg.ManifestName(),
		Algorithms: []string{}, Firmware: in.desc.System.Firmware, Notes: append([]string{}, in.allNotes()...)}
	if in.manifest != nil {
		for _, e := range in.manifest.Entries {
			if !slices.Contains(info.Algorithms, e.Algorithm) {
				info.Algorithms = append(info.Algorithms, e.Algorithm)
			}
		}
	}
	res.OVF = info
	for _, n := range m.VM.VIFs {
		res.Networks = append(res.Networks, NetInfo{Device: n.Device, MAC: n.MAC, Network: n.Network})
	}
	for i, d := range in.disks {
		di := DiskInfo{Device: d.device, ID: d.disk.ID, Size: d.disk.Capacity, Bootable: i == 0}
		if d.file != nil {
			di.Image = d.file.Href
			di.Members, di.Compressed = in.stored(*d.file)
		}
		res.Disks = append(res.Disks, di)
	}
	return res, nil
}

// stored counts the members of a package file (its chunks, or itself) and
// the bytes they take.
func (in *ovfInput) stored(f ovf.File) (int, int64) {
	n, size := 0, int64(0)
	for _, m := range in.pkg.Members() {
		if m.Name == f.Href || f.ChunkSize > 0 && isChunkOf(m.Name, f.Href) {
			n++
			size += m.Size
		}
	}
	return n, size
}

// isChunkOf reports whether name is a chunk of href: href.NNNNNNNNN.
func isChunkOf(name, href string) bool {
	rest, ok := strings.CutPrefix(name, href+".")
	if !ok || len(rest) != 9 {
		return false
	}
	for _, c := range rest {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

package xva

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/xva-tools/xva/chunk"
	"github.com/xva-tools/xva/disk"
	"github.com/xva-tools/xva/internal/fsutil"
)

// UnpackResult describes a written VM directory.
type UnpackResult struct {
	OutDir     string
	Generation Generation
	Disks      []UnpackedDisk
	BadBlocks  []BadBlock // blocks written despite a bad hash (salvage)
	Notes      []string   // what of an OVF package the VM directory could not carry
}

// UnpackedDisk describes one written disk image.
type UnpackedDisk struct {
	Device string
	Path   string
	Size   int64
	Data   int64 // bytes of data written; the rest are holes
}

// Unpack reads the archive at path (a file, a directory, or "-" for stdin)
// and writes a VM directory at outdir: the archive's ova.xml unchanged plus
// one sparse raw image per disk, named after its device. outdir must not
// exist or be empty. It is assembled under a temporary name and appears only
// when complete.
func Unpack(ctx context.Context, path, outdir string, opts ...Option) (*UnpackResult, error) {
	o, err := makeOptions(opts)
	if err != nil {
		return nil, err
	}
	if _, err := tunedFormat(o.diskFormat, o.imageTuning()); err != nil {
		return nil, err
	}
	for _, target := range o.targets {
		if err := checkTargetName(target, o.diskFormat); err != nil {
			return nil, err
		}
	}
	outdir = filepath.Clean(outdir)
	exists, err := prepareDir(outdir)
	if err != nil {
		return nil, err
	}
	if IsOVF(path) {
		return unpackDir(outdir, exists, o, func(tmp string) (*UnpackResult, error) { return unpackOVF(ctx, path, tmp, o) })
	}
	a, err := openArchive(path, o)
	if err != nil {
		return nil, err
	}
	defer a.close()
	if err := checkTargets(a.meta, o); err != nil {
		return nil, err
	}
	var bad []BadBlock
	if o.salvage != nil {
		if a.meta.Generation != XAPI {
			return nil, fmt.Errorf("xva: --salvage needs an xapi archive, whose blocks are hashed one by one; a legacy chunk is one gzip stream")
		}
		o.onBadBlock = func(e *chunk.MemberError) {
			b := BadBlock{Member: e.Member, Offset: e.Offset, Err: e.Err}
			bad = append(bad, b)
			o.salvage(b)
		}
	}
	res, err := unpackDir(outdir, exists, o, func(tmp string) (*UnpackResult, error) { return unpackInto(ctx, a, tmp, o) })
	if err != nil {
		return nil, err
	}
	if len(bad) > 0 {
		res.BadBlocks = bad
		return res, &CorruptError{Kind: KindChecksum, Member: bad[0].Member, Offset: bad[0].Offset,
			Err: fmt.Errorf("%d blocks failed their hash and were written as found (salvage)", len(bad))}
	}
	return res, nil
}

// checkTargets refuses a --disk target naming a disk m does not have.
func checkTargets(m *Metadata, o *options) error {
	for dev := range o.targets {
		if m.diskByDevice(dev) == nil {
			var devs []string
			for _, d := range m.Disks {
				devs = append(devs, d.Device)
			}
			return fmt.Errorf("xva: --disk %s=…: the archive has no disk %s (it has %s)", dev, dev, strings.Join(devs, ", "))
		}
	}
	return nil
}

// unpackDir has fill write a VM directory under a temporary name beside
// outdir and publishes it there when complete.
func unpackDir(outdir string, exists bool, o *options, fill func(tmp string) (*UnpackResult, error)) (*UnpackResult, error) {
	tmp, err := fsutil.MkdirTemp(outdir)
	if err != nil {
		return nil, err
	}
	res, err := fill(tmp)
	if err == nil {
		err = fsutil.PublishDir(tmp, outdir, exists)
	}
	if err != nil {
		fsutil.DiscardDir(tmp)
		return nil, err
	}
	res.OutDir = outdir
	o.log.Debug("output complete", "outdir", outdir)
	for i := range res.Disks {
		if filepath.Dir(res.Disks[i].Path) == tmp {
			res.Disks[i].Path = filepath.Join(outdir, filepath.Base(res.Disks[i].Path))
		}
	}
	return res, nil
}

func unpackInto(ctx context.Context, a *archive, dir string, o *options) (*UnpackResult, error) {
	if err := fsutil.WriteNew(filepath.Join(dir, "ova.xml"), a.meta.OVA); err != nil {
		return nil, err
	}
	res := &UnpackResult{Generation: a.meta.Generation}
	for {
		d, err := a.nextDisk()
		if err == io.EOF {
			return res, nil
		}
		if err != nil {
			return nil, err
		}
		path, sink, err := createImage(ctx, a.meta, dir, d, o)
		if err != nil {
			return nil, err
		}
		start := time.Now()
		n, err := a.decodeInto(ctx, d, sink)
		if err == nil {
			err = sink.Commit()
		}
		if err != nil {
			sink.Abort()
			return nil, err
		}
		o.log.Debug("disk written", "device", d.Device, "target", path, "size", d.Size, "data", n,
			"seconds", time.Since(start).Seconds())
		res.Disks = append(res.Disks, UnpackedDisk{Device: d.Device, Path: path, Size: d.Size, Data: n})
	}
}

// createImage starts the image of disk d: at the target given for it, on a
// volume created for it, or as a file in dir named after its device.
func createImage(ctx context.Context, m *Metadata, dir string, d *Disk, o *options) (string, disk.Sink, error) {
	target, ok := o.targets[d.Device]
	if !ok && o.createLV != "" {
		var err error
		if target, err = createLV(ctx, o.createLV, d, m.vdiUUID(d), o.diskFormat); err != nil {
			return "", nil, err
		}
		ok = true
	}
	if ok {
		s, err := createTarget(target, d, o.diskFormat, o.imageTuning(), o.prezeroed)
		return target, s, err
	}
	f, _ := formatNamed(o.diskFormat) // checked by WithDiskFormat
	path := filepath.Join(dir, d.Device+f.ext)
	s, err := createFile(path, d.Size, o.diskFormat, o.imageTuning())
	return path, s, err
}

// decodeInto decodes disk d into sink and returns the data bytes written.
func (a *archive) decodeInto(ctx context.Context, d *Disk, sink disk.Sink) (int64, error) {
	a.opts.progress.StartDisk(d.Device, d.Size)
	defer a.opts.progress.EndDisk()
	var n atomic.Int64
	emit := func(off int64, p []byte) error {
		n.Add(int64(len(p)))
		_, err := sink.WriteAt(p, off)
		return err
	}
	var err error
	if a.meta.Generation == Legacy && a.c.random() && disk.IsUnordered(sink) {
		err = a.decodeLegacyConcurrent(ctx, d, emit)
	} else {
		err = a.decode(ctx, d, emit)
	}
	return n.Load(), err
}

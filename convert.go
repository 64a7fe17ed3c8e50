package xva

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/xva-tools/xva/disk"
)

// Convert reads the archive at in and writes it to output in one streaming
// pass, without temporary disk images: in the generation WithFormat gives
// (default: the input's), compressed as WithCompression says (xapi only),
// as a directory or a single file. Every input checksum is verified on the
// way through.
func Convert(ctx context.Context, in, output string, opts ...Option) (*PackResult, error) {
	o, err := makeOptions(opts)
	if err != nil {
		return nil, err
	}
	if IsOVF(in) {
		return convertOVF(ctx, in, output, o)
	}
	a, err := openArchive(in, o)
	if err != nil {
		return nil, err
	}
	defer a.close()
	a.stored = nil // Stored counts the archive written
	target := o.format
	if target == 0 {
		target = a.meta.Generation
	}
	m, err := convertMetadata(a.meta, target, o.uuidSeed)
	if err != nil {
		return nil, err
	}
	// An xapi archive's disks are whole sectors (see ova.XapiSize): pad
	// one that is not, whatever its archive said.
	if m, err = withSizes(m, nil); err != nil {
		return nil, err
	}
	out, err := createOutput(output, target, o)
	if err != nil {
		return nil, err
	}
	if _, isDir := out.(*dirOut); !isDir {
		if m, err = keepOrder(m, a.meta); err != nil {
			out.abort()
			return nil, err
		}
	}
	res, err := convertDisks(ctx, a, out, m, o)
	if err != nil {
		out.abort()
		return nil, err
	}
	if err := out.commit(); err != nil {
		return nil, err
	}
	res.Output = output
	if target == Legacy && a.meta.Generation == XAPI {
		for _, d := range a.meta.VM.LegacyDrops() {
			res.Notes = append(res.Notes, "not carried over (a legacy archive cannot say it): "+d)
		}
	}
	return res, nil
}

// convertDisks writes m's ova.xml, then decodes each disk of a, in archive
// order, straight into its encoder through a pipe.
func convertDisks(ctx context.Context, a *archive, out archiveOut, m *Metadata, o *options) (*PackResult, error) {
	if err := out.file("ova.xml", m.OVA); err != nil {
		return nil, err
	}
	res := &PackResult{Generation: m.Generation}
	next := 0
	for {
		d, err := a.nextDisk()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		i := slices.IndexFunc(m.Disks, func(t Disk) bool { return t.Device == d.Device })
		if i < 0 {
			// No place for it in the target (a suspend image going legacy):
			// still checked, then dropped.
			if err := a.decode(ctx, d, func(int64, []byte) error { return nil }); err != nil {
				return nil, err
			}
			continue
		}
		if i != next {
			return nil, fmt.Errorf("xva: disk %s arrives out of the order the output needs", d.Device)
		}
		next++
		pd, err := convertDisk(ctx, a, out, d, m.Generation, &m.Disks[i], o, keepZeroBlocks(m))
		if err != nil {
			return nil, err
		}
		res.Disks = append(res.Disks, pd)
	}
	return res, nil
}

// convertDisk pipes the decoded bytes of d into the encoder of t.
func convertDisk(ctx context.Context, a *archive, out archiveOut, d *Disk, g Generation, t *Disk, o *options, keepZeros bool) (PackedDisk, error) {
	o.progress.StartDisk(d.Device, d.Size)
	defer o.progress.EndDisk()
	pipe := disk.NewPipe(d.Size)
	decoded := make(chan error, 1)
	go func() {
		err := a.decode(ctx, d, func(off int64, p []byte) error {
			_, err := pipe.WriteAt(p, off)
			return err
		})
		pipe.CloseWrite(err)
		decoded <- err
	}()
	pd, werr := writeDisk(ctx, out, g, t, pipe, o, nil, keepZeros)
	if werr == nil {
		// Let the decoder finish its last chunk: its CRC-32, length and
		// end are checked only then.
		werr = pipe.Drain()
	}
	pipe.CloseRead(werr)
	// The decoder's error is the cause when there is one: the encoder then
	// only saw the pipe end early.
	if derr := <-decoded; derr != nil && !errors.Is(derr, disk.ErrPipeClosed) && (werr == nil || !errors.Is(derr, werr)) {
		return pd, derr
	}
	return pd, werr
}

// keepOrder makes a converted legacy appliance keep the input's disk order
// in a tar: legacy members are read in the order of their source prefixes,
// which are the devices, and those can sort differently from the xapi VDI
// ids the input is ordered by. Only then are the sources renamed, with a
// sortable index; the directory form keeps source = device, which the xe CLI
// needs.
func keepOrder(m, input *Metadata) (*Metadata, error) {
	if m.Generation != Legacy || input.Generation == Legacy {
		return m, nil
	}
	var want, have []string
	for _, d := range input.Disks {
		if m.diskByDevice(d.Device) != nil {
			want = append(want, d.Device)
		}
	}
	for _, d := range m.Disks {
		have = append(have, d.Device)
	}
	if slices.Equal(want, have) {
		return m, nil
	}
	a := m.Legacy
	for i, dev := range want {
		for j := range a.VDIs {
			if a.VDIs[j].Name == m.diskByDevice(dev).VDI {
				a.VDIs[j].Source = fmt.Sprintf("file://%03d-%s", i, dev)
			}
		}
	}
	return fromAppliance(a)
}

// diskByDevice returns the disk with the given device, or nil.
func (m *Metadata) diskByDevice(device string) *Disk {
	for i := range m.Disks {
		if m.Disks[i].Device == device {
			return &m.Disks[i]
		}
	}
	return nil
}

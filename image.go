package xva

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/xva-tools/xva/internal/fsutil"
	"github.com/xva-tools/xva/lvm"
	"github.com/xva-tools/xva/qcow2"
	"github.com/xva-tools/xva/vhd"
	"github.com/xva-tools/xva/vhdx"
	"github.com/xva-tools/xva/vmdk"
)

// ImageInfo describes a disk image file.
type ImageInfo struct {
	Path           string `json:"path"`
	Format         string `json:"format"` // vhd, vmdk, qcow2, vhdx
	Type           string `json:"type"`   // fixed, dynamic, differencing; a VMDK's createType
	Size           int64  `json:"size_bytes"`
	BlockSize      int64  `json:"block_size,omitempty"`
	Blocks         int    `json:"blocks,omitempty"`
	Allocated      int    `json:"allocated_blocks,omitempty"`
	AllocatedBytes int64  `json:"allocated_bytes"`
	Creator        string `json:"creator"`
	UUID           string `json:"uuid"`
	ParentUUID     string `json:"parent_uuid,omitempty"`
	// Backing is a qcow2 image's backing chain, nearest first.
	Backing []string `json:"backing_chain,omitempty"`
	Parent  string   `json:"parent,omitempty"`
}

// IsImage reports whether path is a disk image xva can describe (a format
// of the table that recognises itself by content and can be described:
// a VHD) rather than an archive.
func IsImage(path string) bool {
	st, err := os.Stat(path)
	if err != nil || st.IsDir() {
		return false
	}
	f, err := fileFormat(path)
	return err == nil && f.detect != nil && f.inspect != nil
}

// InspectImage describes the disk image at path. A malformed image gives a
// *CorruptError.
func InspectImage(ctx context.Context, path string) (*ImageInfo, error) {
	f, err := fileFormat(path)
	if err != nil {
		return nil, err
	}
	if f.inspect == nil {
		return nil, fmt.Errorf("xva: %s is a %s image, which xva does not describe", path, f.name)
	}
	return f.inspect(ctx, path)
}

// inspected opens the image at path with open and describes it with
// describe; a malformed image (an error matching corrupt, on opening or
// reading) is an integrity failure naming it.
func inspected[I interface{ Close() error }](path string, corrupt error, open func(string) (I, error), describe func(I) (*ImageInfo, error)) (*ImageInfo, error) {
	img, err := open(path)
	if err == nil {
		defer img.Close()
		var info *ImageInfo
		if info, err = describe(img); err == nil {
			return info, nil
		}
	}
	if errors.Is(err, corrupt) {
		return nil, &CorruptError{Kind: KindImage, Member: path, Offset: -1, Err: err}
	}
	return nil, err
}

// inspectVHD is the format table's description of a VHD.
func inspectVHD(ctx context.Context, path string) (*ImageInfo, error) {
	return inspected(path, vhd.ErrCorrupt, vhd.Open, func(img *vhd.Image) (*ImageInfo, error) {
		i, err := img.Info(ctx)
		if err != nil {
			return nil, err
		}
		return &ImageInfo{Path: path, Format: "vhd", Type: i.Type, Size: i.Size, BlockSize: i.BlockSize,
			Blocks: i.Blocks, Allocated: i.Allocated, AllocatedBytes: i.AllocatedBytes, Creator: i.Creator,
			UUID: i.UUID, ParentUUID: i.ParentUUID, Parent: i.Parent}, nil
	})
}

// inspectVMDK is the format table's description of a VMDK: its
// subformat, grain size and count, allocated grains and bytes, and the
// ddb.uuid of its descriptor when it has one.
func inspectVMDK(ctx context.Context, path string) (*ImageInfo, error) {
	return inspected(path, vmdk.ErrCorrupt, vmdk.Open, func(img *vmdk.Image) (*ImageInfo, error) {
		i, err := img.Info(ctx)
		if err != nil {
			return nil, err
		}
		return &ImageInfo{Path: path, Format: "vmdk", Type: i.CreateType, Size: i.Size, BlockSize: i.GrainSize,
			Blocks: int(i.Grains), Allocated: int(i.Allocated), AllocatedBytes: i.AllocatedBytes, UUID: i.UUID}, nil
	})
}

// inspectQcow2 is the format table's description of a qcow2 image: a
// "dynamic" disk, or "differencing" over a backing file (Parent, the
// nearest; Backing, the whole chain).
func inspectQcow2(ctx context.Context, path string) (*ImageInfo, error) {
	return inspected(path, qcow2.ErrCorrupt, qcow2.Open, func(img *qcow2.Image) (*ImageInfo, error) {
		i, err := img.Info(ctx)
		if err != nil {
			return nil, err
		}
		info := &ImageInfo{Path: path, Format: "qcow2", Type: "dynamic", Size: i.Size, BlockSize: i.ClusterSize,
			Blocks: int(i.Clusters), Allocated: int(i.Allocated), AllocatedBytes: i.AllocatedBytes,
			Creator: fmt.Sprintf("qcow2 version %d", i.Version), Backing: i.Backing}
		if len(i.Backing) > 0 {
			info.Type, info.Parent = "differencing", i.Backing[0]
		}
		return info, nil
	})
}

// inspectVHDX is the format table's description of a VHDX.
func inspectVHDX(ctx context.Context, path string) (*ImageInfo, error) {
	return inspected(path, vhdx.ErrCorrupt, vhdx.Open, func(img *vhdx.Image) (*ImageInfo, error) {
		i, err := img.Info(ctx)
		if err != nil {
			return nil, err
		}
		return &ImageInfo{Path: path, Format: "vhdx", Type: i.Type, Size: i.Size, BlockSize: i.BlockSize,
			Blocks: i.Blocks, Allocated: i.Allocated, AllocatedBytes: i.AllocatedBytes, Creator: i.Creator,
			UUID: i.UUID, ParentUUID: i.ParentUUID, Parent: i.Parent}, nil
	})
}

// PVInfo describes a physical volume: its VG and the logical volumes on it.
type PVInfo struct {
	Path       string   `json:"path"`
	UUID       string   `json:"pv_uuid"`
	VG         string   `json:"vg"`
	Seqno      int64    `json:"seqno"`
	ExtentSize int64    `json:"extent_size"`
	PVs        []PVPart `json:"pvs"`
	LVs        []LVInfo `json:"lvs"`
}

// PVPart is one PV of the VG.
type PVPart struct {
	Name    string `json:"name"`
	ID      string `json:"id"`
	Device  string `json:"device_hint"`
	PEStart int64  `json:"pe_start"`
	PECount int64  `json:"pe_count"`
}

// LVInfo is a logical volume of the VG.
type LVInfo struct {
	Name     string   `json:"name"`
	Size     int64    `json:"size_bytes"`
	Segments int      `json:"segments"`
	Tags     []string `json:"tags"`
	OnThisPV bool     `json:"on_this_pv"` // wholly on this PV, so readable with lvm:PV:VG/LV
	VHD      bool     `json:"vhd"`        // holds a VHD (a VHD-<uuid> of an LVM SR)
}

// IsPV reports whether path (a block device or an image file) carries an
// LVM2 physical volume label.
func IsPV(path string) bool {
	f, err := fsutil.OpenInput(path, true, 0)
	if err != nil {
		return false
	}
	defer f.Close()
	return lvm.IsPV(f)
}

// InspectPV reads the LVM2 metadata of the PV at path.
func InspectPV(path string) (*PVInfo, error) {
	pv, err := lvm.ReadPVFile(path)
	if pe := (*os.PathError)(nil); errors.Is(err, lvm.ErrCorrupt) && errors.As(err, &pe) {
		return nil, &CorruptError{Kind: KindImage, Member: path, Offset: -1, Err: pe.Err}
	}
	if err != nil {
		return nil, err
	}
	vg := pv.VG
	info := &PVInfo{Path: path, UUID: pv.UUID, VG: vg.Name, Seqno: vg.Seqno, ExtentSize: vg.ExtentSize, PVs: []PVPart{}, LVs: []LVInfo{}}
	for _, p := range vg.PVs {
		info.PVs = append(info.PVs, PVPart{p.Name, p.ID, p.Device, p.PEStart, p.PECount})
	}
	for _, lv := range vg.LVs {
		li := LVInfo{Name: lv.Name, Size: vg.Size(lv), Segments: len(lv.Segments), Tags: lv.Tags}
		if li.Tags == nil {
			li.Tags = []string{}
		}
		if vol, err := lvm.OpenVolume(path, vg.Name, lv.Name, false); err == nil {
			li.OnThisPV = true
			li.VHD = vhd.Detect(vol, vol.Size())
			vol.Close()
		}
		info.LVs = append(info.LVs, li)
	}
	return info, nil
}

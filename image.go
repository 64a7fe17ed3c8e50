package xva

import (
	"context"
	"errors"
	"os"

	"github.com/xva-tools/xva/vhd"
)

// ImageInfo describes a disk image file.
type ImageInfo struct {
	Path           string `json:"path"`
	Format         string `json:"format"` // vhd
	Type           string `json:"type"`   // fixed, dynamic, differencing
	Size           int64  `json:"size_bytes"`
	BlockSize      int64  `json:"block_size,omitempty"`
	Blocks         int    `json:"blocks,omitempty"`
	Allocated      int    `json:"allocated_blocks,omitempty"`
	AllocatedBytes int64  `json:"allocated_bytes"`
	Creator        string `json:"creator"`
	UUID           string `json:"uuid"`
	ParentUUID     string `json:"parent_uuid,omitempty"`
	Parent         string `json:"parent,omitempty"`
}

// IsImage reports whether path is a disk image xva can describe (a VHD)
// rather than an archive.
func IsImage(path string) bool {
	st, err := os.Stat(path)
	return err == nil && !st.IsDir() && vhd.IsVHD(path)
}

// InspectImage describes the disk image at path. A malformed image gives a
// *CorruptError.
func InspectImage(ctx context.Context, path string) (*ImageInfo, error) {
	img, err := vhd.Open(path)
	if errors.Is(err, vhd.ErrCorrupt) {
		return nil, &CorruptError{Member: path, Offset: -1, Err: err}
	}
	if err != nil {
		return nil, err
	}
	defer img.Close()
	i, err := img.Info(ctx)
	if err != nil {
		return nil, err
	}
	return &ImageInfo{Path: path, Format: "vhd", Type: i.Type, Size: i.Size, BlockSize: i.BlockSize,
		Blocks: i.Blocks, Allocated: i.Allocated, AllocatedBytes: i.AllocatedBytes, Creator: i.Creator,
		UUID: i.UUID, ParentUUID: i.ParentUUID, Parent: i.Parent}, nil
}

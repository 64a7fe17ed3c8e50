// Package qcow2 reads and writes qcow2 images, the disk format of qemu and
// KVM (Proxmox, OpenStack, libvirt): versions 2 and 3 are read (L1/L2
// tables, zero clusters, deflate and zstd compressed clusters, backing
// files), and version 3 is written in one pass, data in guest order with
// every table after it, optionally with zlib or zstd compressed clusters
// (compressed in parallel).
//
// The format is qemu's docs/interop/qcow2.txt; where that text is silent,
// qemu 7.2's block/qcow2*.c decides, and qemu-img is the test peer.
package qcow2

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// ErrCorrupt wraps every error about a malformed image, so callers can tell
// it from an I/O error.
var ErrCorrupt = errors.New("qcow2: corrupt image")

// ErrUnsupported wraps the errors about valid images this package does not
// read (encryption, external data files, extended L2 entries, unknown
// incompatible features).
var ErrUnsupported = errors.New("qcow2: unsupported image")

func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrCorrupt, fmt.Sprintf(format, args...))
}

func unsupported(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrUnsupported, fmt.Sprintf(format, args...))
}

const (
	magic = "QFI\xfb"

	v2HeaderLen = 72
	v3HeaderLen = 112 // what qemu writes: 104 plus the compression type and padding

	minClusterBits = 9
	maxClusterBits = 21 // qemu's limits, 512 B to 2 MiB

	// DefaultClusterSize is qemu's default, and ours.
	DefaultClusterSize = 64 << 10

	// The largest tables qemu reads (QCOW_MAX_L1_SIZE, QCOW_MAX_REFTABLE_SIZE).
	maxL1Bytes = 32 << 20

	// Incompatible feature bits.
	incDirty        = 1 << 0
	incCorrupt      = 1 << 1
	incDataFile     = 1 << 2
	incCompression  = 1 << 3
	incExtendedL2   = 1 << 4
	incKnown        = incDirty | incCorrupt | incDataFile | incCompression | incExtendedL2
	compressionZlib = 0
	compressionZstd = 1

	// Table entries.
	copiedFlag      = uint64(1) << 63
	compressedFlag  = uint64(1) << 62
	zeroFlag        = uint64(1)
	offsetMask      = uint64(0x00fffffffffffe00)
	l1ReservedMask  = uint64(0x7f000000000001ff)
	l2ReservedMask  = uint64(0x3f000000000001fe)
	reftOffsetMask  = ^uint64(0x1ff)
	refcountOrder16 = 4

	// Header extensions.
	extEnd          = 0x00000000
	extBackingFmt   = 0xE2792ACA
	extFeatureTable = 0x6803F857
	extBitmaps      = 0x23852875
	extCrypto       = 0x0537BE77
	extDataFile     = 0x44415441

	maxBackingName = 1023
	// maxChain is the longest backing chain followed, as the vhd package
	// follows differencing chains (XenServer's MAX_CHAIN_SIZE).
	maxChain = 30
)

// header is the fixed part of a qcow2 header.
type header struct {
	Version         uint32
	BackingOffset   uint64
	BackingSize     uint32
	ClusterBits     uint32
	Size            uint64
	CryptMethod     uint32
	L1Size          uint32
	L1Offset        uint64
	RefTableOffset  uint64
	RefTableCluster uint32
	NbSnapshots     uint32
	SnapshotsOffset uint64
	// version 3
	Incompatible    uint64
	Compatible      uint64
	Autoclear       uint64
	RefcountOrder   uint32
	HeaderLength    uint32
	CompressionType uint8
}

func parseHeader(b []byte) header {
	be := binary.BigEndian
	h := header{
		Version:         be.Uint32(b[4:]),
		BackingOffset:   be.Uint64(b[8:]),
		BackingSize:     be.Uint32(b[16:]),
		ClusterBits:     be.Uint32(b[20:]),
		Size:            be.Uint64(b[24:]),
		CryptMethod:     be.Uint32(b[32:]),
		L1Size:          be.Uint32(b[36:]),
		L1Offset:        be.Uint64(b[40:]),
		RefTableOffset:  be.Uint64(b[48:]),
		RefTableCluster: be.Uint32(b[56:]),
		NbSnapshots:     be.Uint32(b[60:]),
		SnapshotsOffset: be.Uint64(b[64:]),
		RefcountOrder:   refcountOrder16,
		HeaderLength:    v2HeaderLen,
	}
	if h.Version >= 3 {
		h.Incompatible = be.Uint64(b[72:])
		h.Compatible = be.Uint64(b[80:])
		h.Autoclear = be.Uint64(b[88:])
		h.RefcountOrder = be.Uint32(b[96:])
		h.HeaderLength = be.Uint32(b[100:])
		if h.HeaderLength > 104 {
			h.CompressionType = b[104]
		}
	}
	return h
}

// marshal encodes a version 3 header of v3HeaderLen bytes.
func (h *header) marshal() []byte {
	b := make([]byte, v3HeaderLen)
	be := binary.BigEndian
	copy(b, magic)
	be.PutUint32(b[4:], h.Version)
	be.PutUint64(b[8:], h.BackingOffset)
	be.PutUint32(b[16:], h.BackingSize)
	be.PutUint32(b[20:], h.ClusterBits)
	be.PutUint64(b[24:], h.Size)
	be.PutUint32(b[32:], h.CryptMethod)
	be.PutUint32(b[36:], h.L1Size)
	be.PutUint64(b[40:], h.L1Offset)
	be.PutUint64(b[48:], h.RefTableOffset)
	be.PutUint32(b[56:], h.RefTableCluster)
	be.PutUint32(b[60:], h.NbSnapshots)
	be.PutUint64(b[64:], h.SnapshotsOffset)
	be.PutUint64(b[72:], h.Incompatible)
	be.PutUint64(b[80:], h.Compatible)
	be.PutUint64(b[88:], h.Autoclear)
	be.PutUint32(b[96:], h.RefcountOrder)
	be.PutUint32(b[100:], h.HeaderLength)
	b[104] = h.CompressionType
	return b
}

package xva

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/xva-tools/xva/internal/tarx"
)

// NotArchiveError is returned for an input that is not an XVA archive at
// all, as opposed to a damaged one: what it is instead, when its content
// says so, and what to do with it. It matches ErrNotArchive.
type NotArchiveError struct {
	Path string
	What string // "a qcow2 image", "an empty file"; "" when nothing is recognised
	Hint string // what to do with it; "" when nothing is recognised
}

func (e *NotArchiveError) Error() string {
	if e.What == "" {
		return fmt.Sprintf("%s is not an XVA archive: it is neither a tar file (plain, gzip or zstd) nor a directory holding ova.xml", e.Path)
	}
	return fmt.Sprintf("%s is %s, not an XVA archive", e.Path, e.What)
}

// Is makes errors.Is(err, ErrNotArchive) true.
func (e *NotArchiveError) Is(target error) bool { return target == ErrNotArchive }

// Signatures of what people give xva instead of an archive. Each is tested
// where its format's own reader tests it:
//
//   - qcow2 (and qcow v1): "QFI\xfb" at 0, QCOW_MAGIC in qemu's
//     block/qcow2.h, tested by qcow2_probe in block/qcow2.c.
//   - VMDK: "KDMV" at 0 for a sparse extent (VMDK4_MAGIC), "COWD" for the
//     ESX 3 one (VMDK3_MAGIC), or a text descriptor beginning
//     "# Disk DescriptorFile": vmdk_probe in qemu's block/vmdk.c.
//   - VHDX: "vhdxfile" at 0, the file identifier of the VHDX specification
//     §2.2.1; vhdx_probe in qemu's block/vhdx.c.
//   - VHD: the footer cookie "conectix" in the last 512 bytes (a fixed
//     VHD) or at 0 (the copy before a dynamic VHD's header), VHD
//     specification "Hard Disk Footer Format"; vpc_probe in qemu's
//     block/vpc.c tests the one at 0.
//   - ISO 9660: the standard identifier "CD001" at byte 1 of the volume
//     descriptor in logical sector 16 of 2048 bytes, ECMA-119 §8.1.
//   - GPT: the header signature "EFI PART" in LBA 1, UEFI specification
//     §5.3.2; MBR: the boot signature 0x55 0xAA at bytes 510–511, UEFI
//     specification §5.2.1 (Legacy MBR).
//   - OVA: a tar whose first member is the OVF descriptor (*.ovf), DMTF
//     DSP0243 (OVF 2.1) §5.3; OVF: an XML Envelope in the namespace
//     http://schemas.dmtf.org/ovf/envelope/, DSP0243 §7.
var (
	qcowMagic    = []byte("QFI\xfb")
	vmdk4Magic   = []byte("KDMV")
	vmdk3Magic   = []byte("COWD")
	vmdkDescMark = []byte("# Disk DescriptorFile")
	vhdxMagic    = []byte("vhdxfile")
	vhdCookie    = []byte("conectix")
	isoMagic     = []byte("CD001")
	gptMagic     = []byte("EFI PART")
	ovfNamespace = []byte("http://schemas.dmtf.org/ovf/envelope/")
)

// isoOffset is where ISO 9660's first volume descriptor names itself:
// sector 16 of 2048 bytes, byte 1.
const isoOffset = 16*2048 + 1

const convertHint = "xva packs raw images, VHDs and qcow2 images: convert it first with " +
	"'qemu-img convert -O raw %[1]s disk.img', then 'xva pack --disk xvda=disk.img VM.xva'"

// ovfHint is the hint for an OVF package where an archive is wanted.
const ovfHint = "xva reads OVF packages with convert, info, verify, unpack and upload: 'xva convert %[1]s VM.xva' makes it an XVA"

// readsHint is the hint for an image xva reads as it is.
const readsHint = "xva reads %[1]s as they are: 'xva info %[2]s' describes it, 'xva pack --disk xvda=%[2]s VM.xva' packs it"

// identifyFile looks at the file at path, which is not a readable archive,
// and says what it is instead: a *NotArchiveError, or nil when it may be a
// damaged archive after all (a tar header, a directory).
func identifyFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		return nil
	}
	head := make([]byte, isoOffset+len(isoMagic))
	n, _ := io.ReadFull(f, head)
	head = head[:n]
	var tail []byte
	if st.Size() >= 512 {
		tail = make([]byte, 512)
		if _, err := f.ReadAt(tail, st.Size()-512); err != nil {
			tail = nil
		}
	}
	return identify(path, st.Size(), head, tail)
}

// identify says what a file of size bytes is from its first bytes (up to
// and including ISO 9660's identifier) and its last 512.
func identify(path string, size int64, head, tail []byte) error {
	e := &NotArchiveError{Path: path}
	at := func(off int, magic []byte) bool {
		return len(head) >= off+len(magic) && bytes.Equal(head[off:off+len(magic)], magic)
	}
	switch {
	case compressionOf(head) != "":
		return nil // a compressed archive, whose tar the readers judge
	case size == 0:
		e.What, e.Hint = "an empty file", "nothing was ever written to it: a copy or download that did not finish, or the wrong file?"
	case at(0, qcowMagic):
		e.What = "a qcow2 image"
		e.Hint = fmt.Sprintf("xva reads qcow2 images as they are: 'xva info %[1]s' describes it, 'xva pack --disk xvda=%[1]s VM.xva' packs it", path)
	case at(0, vmdk4Magic), at(0, vmdk3Magic), at(0, vmdkDescMark):
		e.What, e.Hint = "a VMDK image", fmt.Sprintf(convertHint, path)
	case at(0, vhdxMagic):
		e.What, e.Hint = "a VHDX image", fmt.Sprintf(readsHint, "VHDXs", path)
	case at(0, vhdCookie), len(tail) == 512 && bytes.Equal(tail[:len(vhdCookie)], vhdCookie):
		e.What, e.Hint = "a VHD image", fmt.Sprintf(readsHint, "VHDs", path)
	case at(isoOffset, isoMagic):
		e.What = "an ISO 9660 (CD/DVD) image"
		e.Hint = "an ISO is not imported as a VM: put it in an ISO library SR and attach it to a VM as its CD drive"
	case isOVA(head):
		e.What = "an OVA (OVF package)"
		e.Hint = fmt.Sprintf(ovfHint, path)
	case bytes.Contains(head[:min(len(head), 4096)], []byte("<Envelope")) && bytes.Contains(head, ovfNamespace),
		bytes.Contains(head[:min(len(head), 4096)], []byte(":Envelope")) && bytes.Contains(head, ovfNamespace):
		e.What = "an OVF descriptor"
		e.Hint = fmt.Sprintf(ovfHint, path)
	case at(512, gptMagic):
		e.What, e.Hint = "a raw disk image (GPT partition table)", fmt.Sprintf("to pack it: 'xva pack --disk xvda=%s VM.xva'", path)
	case len(head) >= 512 && head[510] == 0x55 && head[511] == 0xaa && !looksLikeTarHeader(head):
		e.What, e.Hint = "a raw disk image (MBR partition table)", fmt.Sprintf("to pack it: 'xva pack --disk xvda=%s VM.xva'", path)
	case looksLikeTarHeader(head), tarShaped(head):
		return nil
	}
	return e
}

// tarShaped reports whether head's first block has the numeric fields of a
// tar header (mode, uid, gid, size, mtime, checksum: octal digits padded
// with spaces or NULs) whatever its checksum says: a damaged header, which
// random bytes or another format almost never resemble.
func tarShaped(head []byte) bool {
	if len(head) < tarx.Block {
		return false
	}
	digits := 0
	for _, c := range head[100:156] {
		switch {
		case c >= '0' && c <= '7':
			digits++
		case c != ' ' && c != 0:
			return false
		}
	}
	return digits >= 20
}

// isOVA reports whether head starts a tar whose first member is an OVF
// descriptor.
func isOVA(head []byte) bool {
	if !looksLikeTarHeader(head) {
		return false
	}
	name, _, _ := bytes.Cut(head[:100], []byte{0})
	return strings.HasSuffix(strings.ToLower(string(name)), ".ovf")
}

// looksLikeTarHeader reports whether head starts with a tar header whose
// checksum holds: an archive, damaged or not, or another tar.
func looksLikeTarHeader(head []byte) bool {
	return len(head) >= tarx.Block && tarx.ValidHeader(head[:tarx.Block])
}

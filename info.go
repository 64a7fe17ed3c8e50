package xva

import (
	"context"
	"io"
	"os"

	"github.com/xva-tools/xva/chunk"
	"github.com/xva-tools/xva/internal/fsutil"
)

// InfoResult describes an archive without decoding its disks.
type InfoResult struct {
	Archive     string     `json:"archive"`
	Form        string     `json:"form"` // directory, tar, tar stream, tar.gz stream, tar.zst stream, vm directory
	Generation  Generation `json:"-"`
	Compression string     `json:"compression"`          // none, gzip, zstd
	ExportVsn   int64      `json:"export_vsn,omitempty"` // xapi only
	Checksum    string     `json:"checksum,omitempty"`   // xapi only: xxhash, sha1, mixed
	VM          VMInfo     `json:"vm"`
	Disks       []DiskInfo `json:"disks"`
	// Networks lists the VM's interfaces (xapi and OVF only; legacy archives have none).
	Networks []NetInfo `json:"networks"`
	// OVF is set for an OVF package (an OVA or an .ovf).
	OVF *OVFInfo `json:"ovf,omitempty"`
}

// NetInfo is a network interface of the VM.
type NetInfo struct {
	Device  string `json:"device"`
	MAC     string `json:"mac"`
	Network string `json:"network"`
	Bridge  string `json:"bridge"`
}

// VMInfo is the VM an archive describes.
type VMInfo struct {
	Name          string `json:"name"`
	Description   string `json:"description"`
	Memory        int64  `json:"memory_bytes"`
	VCPUs         int    `json:"vcpus"`
	BootMode      string `json:"boot_mode"` // "HVM" or "PV"
	KernelCmdline string `json:"kernel_cmdline,omitempty"`
}

// DiskInfo is one disk of an archive and how it is stored.
type DiskInfo struct {
	Device     string `json:"device"`
	ID         string `json:"id"`
	Size       int64  `json:"size_bytes"`
	Bootable   bool   `json:"bootable"`
	Members    int    `json:"members"` // chunks (legacy) or data blocks (xapi); 0 in a VM directory
	Compressed int64  `json:"stored_bytes"`
	Image      string `json:"image,omitempty"` // in a VM directory: the disk's image file
}

// Info reads an archive's ova.xml and walks its members, without decoding
// them, to report the VM and how each disk is stored. Given a VM directory
// (what Unpack writes), it reports the VM and each disk's image instead.
func Info(ctx context.Context, path string, opts ...Option) (*InfoResult, error) {
	o, err := makeOptions(opts)
	if err != nil {
		return nil, err
	}
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		if m, paths, err := readVMDir(path); err == nil {
			return vmDirInfo(path, m, paths)
		}
	}
	if IsOVF(path) {
		return ovfInfo(path)
	}
	a, err := openArchive(path, o)
	if err != nil {
		return nil, err
	}
	defer a.close()
	res := newInfoResult(path, a.c.form(), a.meta)
	if tc, ok := a.c.(*tarContainer); ok && tc.compression != "" {
		res.Compression = tc.compression
	}
	sums := map[chunk.Checksum]bool{}
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		d, err := a.nextDisk()
		if err == io.EOF {
			switch {
			case len(sums) > 1:
				res.Checksum = "mixed"
			case sums[chunk.SHA1]:
				res.Checksum = chunk.SHA1.String()
			case sums[chunk.XXHash]:
				res.Checksum = chunk.XXHash.String()
			}
			return res, nil
		}
		if err != nil {
			return nil, err
		}
		s, err := a.skipDisk(d)
		if err != nil {
			return nil, err
		}
		for c := range s.Checksums {
			sums[c] = true
		}
		res.Disks = append(res.Disks, DiskInfo{
			Device: d.Device, ID: d.ID, Size: d.Size, Bootable: d.Bootable,
			Members: s.Members, Compressed: s.Compressed,
		})
	}
}

// newInfoResult describes the VM of m, found at path in the given form,
// with no disks yet.
func newInfoResult(path, form string, m *Metadata) *InfoResult {
	vm := m.VM
	res := &InfoResult{
		Archive:     path,
		Form:        form,
		Generation:  m.Generation,
		Compression: "none",
		VM: VMInfo{
			Name:          vm.Label,
			Description:   vm.Description,
			Memory:        vm.Memory,
			VCPUs:         vm.VCPUs,
			BootMode:      map[bool]string{true: "HVM", false: "PV"}[vm.HVM],
			KernelCmdline: vm.KernelCmdline,
		},
		Disks:    []DiskInfo{},
		Networks: []NetInfo{},
	}
	if e := m.Export; e != nil {
		res.ExportVsn = e.ExportVersion()
		vmo, _ := e.VMObject()
		for _, i := range e.Interfaces(vmo) {
			res.Networks = append(res.Networks, NetInfo{i.Device, i.MAC, i.Network.NameLabel, i.Network.Bridge})
		}
	}
	return res
}

// vmDirInfo describes a VM directory: its ova.xml and, per disk, its
// image's size and the bytes it occupies.
func vmDirInfo(path string, m *Metadata, paths map[string]string) (*InfoResult, error) {
	res := newInfoResult(path, "vm directory", m)
	for _, d := range m.Disks {
		img := paths[d.Device]
		src, err := openImage(img)
		if err != nil {
			return nil, err
		}
		size := src.Size()
		src.Close()
		var used int64
		if st, err := os.Stat(img); err == nil {
			used = fsutil.DiskUsage(st)
		}
		res.Disks = append(res.Disks, DiskInfo{Device: d.Device, ID: d.ID, Size: size, Bootable: d.Bootable,
			Compressed: used, Image: img})
	}
	return res, nil
}

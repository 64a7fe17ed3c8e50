package xva_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/xva-tools/xva"
)

// exampleVM makes a temporary directory holding root.img: a 4 MiB sparse
// raw disk with a boot sector and a little data at 1 MiB.
func exampleVM() (dir, img string) {
	dir, err := os.MkdirTemp("", "xva-example-")
	if err != nil {
		panic(err)
	}
	img = filepath.Join(dir, "root.img")
	f, err := os.Create(img)
	if err != nil {
		panic(err)
	}
	defer f.Close()
	f.Truncate(4 << 20)
	f.WriteAt([]byte("boot sector"), 0)
	f.WriteAt(bytes.Repeat([]byte("data"), 1024), 1<<20)
	return dir, img
}

// packExample packs root.img as web.xva for current hosts.
func packExample(dir, img string) string {
	spec := &xva.VMSpec{Name: "web", Memory: 512 << 20, VCPUs: 1, HVM: true,
		Disks: []xva.DiskSpec{{Device: "xvda", Path: img}}}
	out := filepath.Join(dir, "web.xva")
	if _, err := xva.Pack(context.Background(), spec, out, xva.WithFormat(xva.XAPI), xva.WithUUIDSeed("example")); err != nil {
		panic(err)
	}
	return out
}

// Pack a VM with one raw disk into an archive any current host imports.
func ExamplePack() {
	dir, img := exampleVM()
	defer os.RemoveAll(dir)
	spec := &xva.VMSpec{
		Name:   "web",
		Memory: 512 << 20,
		VCPUs:  1,
		HVM:    true,
		Disks:  []xva.DiskSpec{{Device: "xvda", Path: img}},
	}
	res, err := xva.Pack(context.Background(), spec, filepath.Join(dir, "web.xva"),
		xva.WithFormat(xva.XAPI), xva.WithUUIDSeed("example"))
	if err != nil {
		fmt.Println(err)
		return
	}
	d := res.Disks[0]
	// Four 1 MiB blocks, two of them all zero and left out: the first and
	// the last are always there.
	fmt.Println(res.Generation, d.Device, d.Size, "bytes,", d.Members, "blocks")
	// Output: xapi xvda 4194304 bytes, 3 blocks
}

// Unpack an archive into a VM directory: ova.xml plus a sparse raw image
// per disk, every block's hash checked on the way.
func ExampleUnpack() {
	dir, img := exampleVM()
	defer os.RemoveAll(dir)
	archive := packExample(dir, img)

	res, err := xva.Unpack(context.Background(), archive, filepath.Join(dir, "vm"))
	if err != nil {
		fmt.Println(err)
		return
	}
	d := res.Disks[0]
	got, _ := os.ReadFile(d.Path)
	want, _ := os.ReadFile(img)
	fmt.Println(filepath.Base(d.Path), d.Size, "bytes, the same as root.img:", bytes.Equal(got, want))
	// Output: xvda.raw 4194304 bytes, the same as root.img: true
}

// Convert an archive for a host from before 2021, which imports only the
// legacy generation.
func ExampleConvert() {
	dir, img := exampleVM()
	defer os.RemoveAll(dir)
	archive := packExample(dir, img)

	res, err := xva.Convert(context.Background(), archive, filepath.Join(dir, "web-legacy.xva"), xva.WithFormat(xva.Legacy))
	if err != nil {
		fmt.Println(err)
		return
	}
	// A disk under 1e9 bytes is one gzip chunk.
	fmt.Println(res.Generation, res.Disks[0].Device, res.Disks[0].Members, "chunk")
	// Output: legacy xvda 1 chunk
}

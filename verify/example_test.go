package verify_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/xva-tools/xva"
	"github.com/xva-tools/xva/verify"
)

// Check an archive end to end, then a copy with one byte of a disk block
// flipped: the report names the member, the disk and the offset.
func ExampleArchive() {
	dir, err := os.MkdirTemp("", "xva-example-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	img := filepath.Join(dir, "root.img")
	os.WriteFile(img, []byte("a disk of a single sector, with a boot sector in it"+string(make([]byte, 461))), 0o600)
	archive := filepath.Join(dir, "web.xva")
	spec := &xva.VMSpec{Name: "web", Memory: 512 << 20, VCPUs: 1, HVM: true, Disks: []xva.DiskSpec{{Device: "xvda", Path: img}}}
	if _, err := xva.Pack(context.Background(), spec, archive, xva.WithFormat(xva.XAPI), xva.WithUUIDSeed("example")); err != nil {
		panic(err)
	}

	r := verify.Archive(context.Background(), archive, verify.Options{})
	fmt.Println(r.OK, r.Format, r.Disks[0].Device, r.Disks[0].Verified, "bytes checked")

	// Flip the first byte of the disk's block: its hash, in the member
	// that follows it, no longer matches.
	b, _ := os.ReadFile(archive)
	at := bytes.Index(b, []byte("a disk of a single sector"))
	b[at] ^= 0xff
	os.WriteFile(archive, b, 0o600)
	r = verify.Archive(context.Background(), archive, verify.Options{})
	for _, p := range r.Problems {
		fmt.Println(r.OK, p.Kind, p.Member, p.Disk, p.Offset)
	}
	// Output:
	// true xapi xvda 512 bytes checked
	// false checksum Ref:101/00000000.xxhash xvda 0
}

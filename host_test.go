package xva_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/xva-tools/xva"
	"github.com/xva-tools/xva/chunk"
	"github.com/xva-tools/xva/fixtures"
	"github.com/xva-tools/xva/xapi/xapitest"
)

// hostVMs are the VMs every producer's archive must bring to a host intact:
// one to four disks, sizes 0, 1, 511 and 512 bytes to several MiB, sparse,
// and read-only data disks.
var hostVMs = []fixtures.VM{
	{Name: "one", Memory: 1 << 30, VCPUs: 2, Disks: []fixtures.Disk{{Size: 5<<20 + 4096, Seed: 601, Data: 0.3, MaxRegion: 1 << 20}}},
	{Name: "two", Memory: 1 << 29, VCPUs: 1, Disks: []fixtures.Disk{
		{Size: 1, Seed: 602, Data: 1},
		{Size: 3<<20 + 100, Seed: 603, Data: 0.5, MaxRegion: 1 << 20, ReadOnly: true},
	}},
	{Name: "three", Memory: 1 << 29, VCPUs: 4, Disks: []fixtures.Disk{
		{Size: 511, Seed: 604, Data: 1},
		{Size: 512, Seed: 605, Data: 1, ReadOnly: true},
		{Size: 0, Seed: 606},
	}},
	{Name: "four", Memory: 1 << 31, VCPUs: 2, Disks: []fixtures.Disk{
		{Size: 2 << 20, Seed: 607, Data: 0.9},
		{Size: 0, Seed: 608},
		{Size: 1, Seed: 609, Data: 1, ReadOnly: true},
		{Size: 6 << 20, Seed: 610, Data: 0.1, MaxRegion: 1 << 20},
	}},
}

// paddedSums returns each device's SHA-256 once padded to whole sectors,
// as a host holds it.
func paddedSums(t *testing.T, vmdir string, vm fixtures.VM) map[string]string {
	t.Helper()
	sums := map[string]string{}
	for i := range vm.Disks {
		b, err := os.ReadFile(filepath.Join(vmdir, fixtures.Device(i)+".raw"))
		if err != nil {
			t.Fatal(err)
		}
		b = append(b, make([]byte, -len(b)&511)...)
		h := sha256.Sum256(b)
		sums[fixtures.Device(i)] = hex.EncodeToString(h[:])
	}
	return sums
}

// checkOnHost imports archive into the model of a host and checks the VM
// it makes: its disks equal the sources (padded), a read-only disk is a
// read-only VBD on a writable VDI, NX and the rest of a current host's
// platform are there.
func checkOnHost(t *testing.T, s *xapitest.Server, archive string, vm fixtures.VM, sums map[string]string) *xapitest.VM {
	t.Helper()
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, err := s.Import(f, 0, false, false)
	if err != nil {
		t.Fatalf("the host refuses %s: %v", filepath.Base(archive), err)
	}
	if got.VCPUsMax != int64(vm.VCPUs) || got.MemoryMax != vm.Memory || got.Name != vm.Name {
		t.Fatalf("VM on the host: %d vCPUs, %d bytes, %q", got.VCPUsMax, got.MemoryMax, got.Name)
	}
	for k, v := range map[string]string{"nx": "true", "acpi": "1", "apic": "true", "pae": "true"} {
		if got.Platform[k] != v {
			t.Errorf("platform %s=%q, want %q", k, got.Platform[k], v)
		}
	}
	if len(got.VBDs) != len(vm.Disks) {
		t.Fatalf("%d VBDs for %d disks", len(got.VBDs), len(vm.Disks))
	}
	disks := map[string]xapitest.Disk{}
	for _, d := range got.Disks {
		disks[d.VDI] = d
	}
	for _, b := range got.VBDs {
		i, _ := strconv.Atoi(b.Userdevice)
		dev := fixtures.Device(i)
		if want := map[bool]string{false: "RW", true: "RO"}[vm.Disks[i].ReadOnly]; b.Mode != want {
			t.Errorf("%s: VBD mode %s, want %s", dev, b.Mode, want)
		}
		d, ok := disks[b.VDI]
		if !ok && vm.Disks[i].Size > 0 {
			t.Fatalf("%s: no data reached the host", dev)
		}
		if ok && (d.SHA256 != sums[dev] || d.ReadOnly) {
			t.Errorf("%s: the host's disk differs from the source (read-only VDI %v)", dev, d.ReadOnly)
		}
	}
	return got
}

// Every archive pack, convert and upload's conversion make is imported by
// the host model, with every disk intact: both checksums, every
// compression, every VM of hostVMs.
func TestArchivesWeWriteImportOnAHost(t *testing.T) {
	s := xapitest.New()
	defer s.Close()
	for _, vm := range hostVMs {
		vmdir := filepath.Join(t.TempDir(), "vm")
		if _, err := vm.WriteDir(vmdir); err != nil {
			t.Fatal(err)
		}
		sums := paddedSums(t, vmdir, vm)
		legacy := filepath.Join(t.TempDir(), "legacy.xva")
		if _, err := xva.PackDir(ctx, vmdir, legacy); err != nil {
			t.Fatal(err)
		}
		for _, sum := range []chunk.Checksum{chunk.XXHash, chunk.SHA1} {
			for _, comp := range []string{"none", "gzip", "zstd"} {
				opts := []xva.Option{xva.WithFormat(xva.XAPI), xva.WithChecksum(sum), xva.WithCompression(comp)}
				name := fmt.Sprintf("%s-%s-%s", vm.Name, sum, comp)
				t.Run(name, func(t *testing.T) {
					dir := t.TempDir()
					packed := filepath.Join(dir, "packed.xva")
					if _, err := xva.PackDir(ctx, vmdir, packed, opts...); err != nil {
						t.Fatal(err)
					}
					converted := filepath.Join(dir, "converted.xva")
					if _, err := xva.Convert(ctx, legacy, converted, opts...); err != nil {
						t.Fatal(err)
					}
					var stream bytes.Buffer
					if _, err := xva.StreamXapi(ctx, vmdir, &stream, xva.WithChecksum(sum)); err != nil {
						t.Fatal(err)
					}
					streamed := filepath.Join(dir, "streamed.xva")
					if err := os.WriteFile(streamed, stream.Bytes(), 0o600); err != nil {
						t.Fatal(err)
					}
					for _, a := range []string{packed, converted, streamed} {
						checkOnHost(t, s, a, vm, sums)
					}
				})
			}
		}
	}
}

// A host older than xapi 1.250 says it is 1.20, and before 1.170 it read
// only SHA-1 .checksum members: an archive with .xxhash fails there, one
// with SHA-1 imports.
func TestOldHostsReadOnlySHA1(t *testing.T) {
	s := xapitest.New()
	defer s.Close()
	s.Versions = [2]string{"1.20", "1.20"}
	vm := hostVMs[1]
	vmdir := filepath.Join(t.TempDir(), "vm")
	if _, err := vm.WriteDir(vmdir); err != nil {
		t.Fatal(err)
	}
	for sum, ok := range map[chunk.Checksum]bool{chunk.SHA1: true, chunk.XXHash: false} {
		out := filepath.Join(t.TempDir(), "a.xva")
		if _, err := xva.PackDir(ctx, vmdir, out, xva.WithFormat(xva.XAPI), xva.WithChecksum(sum)); err != nil {
			t.Fatal(err)
		}
		f, _ := os.Open(out)
		_, err := s.Import(f, 0, false, false)
		f.Close()
		var ie *xapitest.ImportError
		if ok && err != nil || !ok && (!errors.As(err, &ie) || !bytes.Contains([]byte(err.Error()), []byte("inline checksum"))) {
			t.Fatalf("%s on an old host: %v", sum, err)
		}
	}
}

package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/xva-tools/xva/fixtures"
	"github.com/xva-tools/xva/internal/testutil"
	"github.com/xva-tools/xva/xapi/xapitest"
)

// OVF/OVA through the binary, checked with the tools the other side uses:
// GNU tar, sha256sum/sha1sum and qemu-img read every byte xva writes, and
// xva reads what qemu-img and tar make.

// ovfVM has three disks of different sizes, one not a multiple of 1 MiB
// (nor of 512 bytes: the archive pads it to whole sectors), one all holes.
var ovfVM = fixtures.VM{Name: "web", Memory: 768 << 20, VCPUs: 3, Disks: []fixtures.Disk{
	{Size: 3<<20 + 7, Seed: 901, Data: 0.6, MaxRegion: 256 << 10},
	{Size: 1 << 20, Seed: 902, Data: 0.9},
	{Size: 2<<20 + 4096, Seed: 903, Data: 0.3, MaxRegion: 128 << 10},
}}

// ovfSetup writes ovfVM as the VM directory vm/ and packs it as a.xva. It
// returns the raw images (vm/sdX.raw) and the SHA-256 of each padded to
// whole sectors, as an archive holds it.
func ovfSetup(t *testing.T) (dir string, raws []string, sums []string) {
	t.Helper()
	testutil.NeedTools(t, "qemu-img", "tar", "sha256sum", "sha1sum")
	dir = t.TempDir()
	if _, err := ovfVM.WriteDir(filepath.Join(dir, "vm")); err != nil {
		t.Fatal(err)
	}
	mustRun(t, dir, nil, "pack", "vm", "a.xva")
	for i := range ovfVM.Disks {
		raw := filepath.Join(dir, "vm", fixtures.Device(i)+".raw")
		raws = append(raws, raw)
		sums = append(sums, paddedSum(t, raw))
	}
	return dir, raws, sums
}

// paddedSum is the SHA-256 of the file padded with zeros to 512 bytes.
func paddedSum(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b = append(b, make([]byte, (512-len(b)%512)%512)...)
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// sh runs a tool in dir and fails the test on a non-zero exit.
func sh(t *testing.T, dir, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// envelope is what the tests read of a descriptor. Tags without
// namespaces match ovf:… attributes and elements of OVF 1.x and 2.x alike.
type envelope struct {
	XMLName xml.Name
	Files   []struct {
		Href        string `xml:"href,attr"`
		ID          string `xml:"id,attr"`
		Size        string `xml:"size,attr"`
		ChunkSize   string `xml:"chunkSize,attr"`
		Compression string `xml:"compression,attr"`
	} `xml:"References>File"`
	Disks []struct {
		ID        string `xml:"diskId,attr"`
		Capacity  string `xml:"capacity,attr"`
		Units     string `xml:"capacityAllocationUnits,attr"`
		FileRef   string `xml:"fileRef,attr"`
		Populated string `xml:"populatedSize,attr"`
	} `xml:"DiskSection>Disk"`
	Name  string `xml:"VirtualSystem>Name"`
	Items []struct {
		ResourceType    int    `xml:"ResourceType"`
		VirtualQuantity int64  `xml:"VirtualQuantity"`
		AllocationUnits string `xml:"AllocationUnits"`
	} `xml:"VirtualSystem>VirtualHardwareSection>Item"`
}

func readEnvelope(t *testing.T, path string) envelope {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var env envelope
	if err := xml.Unmarshal(b, &env); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return env
}

// capacity is a Disk's capacity in bytes: "byte" or "byte * 2^N" units.
func (env envelope) capacity(t *testing.T, i int) int64 {
	t.Helper()
	d := env.Disks[i]
	n, err := strconv.ParseInt(d.Capacity, 10, 64)
	if err != nil {
		t.Fatalf("capacity %q: %v", d.Capacity, err)
	}
	switch u := strings.ReplaceAll(d.Units, " ", ""); {
	case u == "" || u == "byte":
	case strings.HasPrefix(u, "byte*2^"):
		e, err := strconv.Atoi(strings.TrimPrefix(u, "byte*2^"))
		if err != nil {
			t.Fatalf("units %q", d.Units)
		}
		n <<= e
	default:
		t.Fatalf("units %q", d.Units)
	}
	return n
}

type tarEntry struct {
	name string
	size int64
}

// tarList is what `tar -tvf` lists, in order.
func tarList(t *testing.T, path string) []tarEntry {
	t.Helper()
	var list []tarEntry
	for _, line := range strings.Split(strings.TrimSpace(sh(t, filepath.Dir(path), "tar", "-tvf", path)), "\n") {
		f := strings.Fields(line)
		if len(f) < 6 {
			t.Fatalf("tar -tv line %q", line)
		}
		size, err := strconv.ParseInt(f[2], 10, 64)
		if err != nil {
			t.Fatalf("tar -tv line %q: %v", line, err)
		}
		list = append(list, tarEntry{strings.Join(f[5:], " "), size})
	}
	return list
}

// qemuSame checks with qemu-img that the image (in format) is clean and
// holds the raw image's bytes (zeros beyond its end).
func qemuSame(t *testing.T, format, image, raw string) {
	t.Helper()
	if format == "vmdk" || format == "qcow2" {
		sh(t, "", "qemu-img", "check", "-f", format, image)
	}
	sh(t, "", "qemu-img", "compare", "-f", format, "-F", "raw", image, raw)
}

// infoVM is the VM of `xva info --json`.
type infoVM struct {
	VM struct {
		Name   string `json:"name"`
		Memory int64  `json:"memory_bytes"`
		VCPUs  int    `json:"vcpus"`
	} `json:"vm"`
	Disks []struct {
		Device string `json:"device"`
		Size   int64  `json:"size_bytes"`
	} `json:"disks"`
	OVF struct {
		Firmware string   `json:"firmware"`
		Notes    []string `json:"notes"`
	} `json:"ovf"`
}

func infoJSON(t *testing.T, dir, path string) infoVM {
	t.Helper()
	out := mustRun(t, dir, nil, "info", "--json", path)
	validateSchema(t, "info", out)
	var v infoVM
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("info --json %s: %v\n%s", path, err, out)
	}
	return v
}

// unpackedSums unpacks the archive into out and returns the SHA-256 of
// each disk, in device order.
func unpackedSums(t *testing.T, dir, archive, out string) []string {
	t.Helper()
	mustRun(t, dir, nil, "unpack", archive, out)
	raws, _ := filepath.Glob(filepath.Join(dir, out, "*.raw"))
	slices.Sort(raws)
	var sums []string
	for _, r := range raws {
		s, err := fixtures.HashFile(r)
		if err != nil {
			t.Fatal(err)
		}
		sums = append(sums, s)
	}
	return sums
}

// An archive converted to an OVA is a tar GNU tar reads, .ovf first and
// .mf last, each member the size the envelope says; the manifest is what
// sha256sum computes; every disk is a clean streamOptimized VMDK holding
// the source's bytes (qemu-img); and the OVA converts back to an archive
// with the same disks, name, vCPUs and memory, and verifies.
func TestOVARoundTripThroughRealTools(t *testing.T) {
	dir, raws, sums := ovfSetup(t)
	mustRun(t, dir, nil, "convert", "a.xva", "a.ova")

	list := tarList(t, filepath.Join(dir, "a.ova"))
	if len(list) != 2+len(raws) || list[0].name != "a.ovf" || list[len(list)-1].name != "a.mf" {
		t.Fatalf("tar -tv: %+v, want a.ovf, %d disks, a.mf", list, len(raws))
	}
	sh(t, dir, "mkdir", "x")
	sh(t, filepath.Join(dir, "x"), "tar", "-xf", "../a.ova")
	sh(t, filepath.Join(dir, "x"), "sha256sum", "--strict", "-c", "a.mf")
	env := readEnvelope(t, filepath.Join(dir, "x", "a.ovf"))
	if env.Name != ovfVM.Name || len(env.Files) != len(raws) || len(env.Disks) != len(raws) {
		t.Fatalf("envelope: name %q, %d files, %d disks", env.Name, len(env.Files), len(env.Disks))
	}
	for i, f := range env.Files {
		m := list[1+i]
		if f.Href != m.name || f.Size != strconv.FormatInt(m.size, 10) {
			t.Errorf("File %s: href %q size %q, tar member %q of %d bytes", f.ID, f.Href, f.Size, m.name, m.size)
		}
		d := env.Disks[i]
		if d.FileRef != f.ID || d.Populated == "" {
			t.Errorf("Disk %s: fileRef %q, populatedSize %q", d.ID, d.FileRef, d.Populated)
		}
		fi, _ := os.Stat(raws[i])
		if c := env.capacity(t, i); c != (fi.Size()+511)/512*512 {
			t.Errorf("Disk %s: capacity %d for a %d-byte image", d.ID, c, fi.Size())
		}
		vmdk := filepath.Join(dir, "x", f.Href)
		qemuSame(t, "vmdk", vmdk, raws[i])
		info := sh(t, "", "qemu-img", "info", vmdk)
		if !strings.Contains(info, "file format: vmdk") || !strings.Contains(info, "create type: streamOptimized") {
			t.Errorf("qemu-img info %s:\n%s", f.Href, info)
		}
	}

	mustRun(t, dir, nil, "verify", "a.ova")
	mustRun(t, dir, nil, "convert", "a.ova", "b.xva")
	if got := unpackedSums(t, dir, "b.xva", "b"); !slices.Equal(got, sums) {
		t.Fatalf("disks after XVA → OVA → XVA:\n%v\nwant\n%v", got, sums)
	}
	v := infoJSON(t, dir, "b.xva")
	if v.VM.Name != ovfVM.Name || v.VM.VCPUs != ovfVM.VCPUs || v.VM.Memory != ovfVM.Memory {
		t.Fatalf("b.xva's VM: %+v", v.VM)
	}
}

// An OVA streamed to standard output cuts each disk into ovf:chunkSize
// pieces NAME-DEV.vmdk.000000000, … in order, each in the manifest; the
// pieces joined are a VMDK with the source's bytes, and the stream
// converts back to the same disks. A qcow2 disk cannot be streamed: exit 2.
func TestOVAStreamedInChunks(t *testing.T) {
	dir, raws, sums := ovfSetup(t)
	r := run(t, dir, nil, "convert", "--format", "ova", "--ovf-chunk-size", "1MiB", "a.xva", "-")
	if r.code != 0 {
		t.Fatalf("convert to -: exit %d\n%s", r.code, r.stderr)
	}
	os.WriteFile(filepath.Join(dir, "stream.ova"), []byte(r.stdout), 0o644)
	list := tarList(t, filepath.Join(dir, "stream.ova"))
	if list[0].name != "web.ovf" || list[len(list)-1].name != "web.mf" {
		t.Fatalf("tar -tv: %+v", list)
	}
	sh(t, dir, "mkdir", "x")
	x := filepath.Join(dir, "x")
	sh(t, x, "tar", "-xf", "../stream.ova")
	sh(t, x, "sha256sum", "--strict", "-c", "web.mf")
	mf, _ := os.ReadFile(filepath.Join(x, "web.mf"))
	env := readEnvelope(t, filepath.Join(x, "web.ovf"))
	next := 1
	for i, f := range env.Files {
		if f.ChunkSize != "1048576" || f.Href != "web-"+fixtures.Device(i)+".vmdk" {
			t.Fatalf("File %+v", f)
		}
		var chunks []string
		for ; next < len(list)-1 && strings.HasPrefix(list[next].name, f.Href+"."); next++ {
			want := fmt.Sprintf("%s.%09d", f.Href, len(chunks))
			if list[next].name != want {
				t.Fatalf("member %d is %s, want %s", next, list[next].name, want)
			}
			if !strings.Contains(string(mf), "SHA256("+want+")= ") {
				t.Fatalf("the manifest lacks %s:\n%s", want, mf)
			}
			chunks = append(chunks, want)
		}
		if len(chunks) == 0 {
			t.Fatalf("no chunks of %s in %+v", f.Href, list)
		}
		for _, c := range chunks[:len(chunks)-1] {
			if fi, _ := os.Stat(filepath.Join(x, c)); fi.Size() != 1<<20 {
				t.Fatalf("%s: %d bytes, not the chunk size", c, fi.Size())
			}
		}
		joined := filepath.Join(x, f.Href)
		sh(t, x, "sh", "-c", "cat "+strings.Join(chunks, " ")+" > "+f.Href)
		qemuSame(t, "vmdk", joined, raws[i])
	}
	if next != len(list)-1 {
		t.Fatalf("members after the chunks: %+v", list[next:])
	}
	mustRun(t, dir, nil, "convert", "stream.ova", "c.xva")
	if got := unpackedSums(t, dir, "c.xva", "c"); !slices.Equal(got, sums) {
		t.Fatal("the streamed OVA converts back to other disks")
	}
	if r := run(t, dir, nil, "convert", "--format", "ova", "--ovf-disk-format", "qcow2", "a.xva", "-"); r.code != exitUsage || r.stdout != "" {
		t.Fatalf("qcow2 disks to -: exit %d, %d bytes out\n%s", r.code, len(r.stdout), r.stderr)
	}
}

// The directory form with VHD and qcow2 disks: the manifest checks, each
// disk holds the source (qemu-img reads it as vpc/qcow2), and the .ovf
// converts back. --ovf-version 2.0 writes the 2.x namespace;
// --manifest-sha1 writes SHA1 lines sha1sum checks; both at once: exit 2.
func TestOVFDirectoryFormsAndOptions(t *testing.T) {
	dir, raws, sums := ovfSetup(t)
	for _, c := range []struct{ flag, ext, qemu string }{{"vhd", ".vhd", "vpc"}, {"qcow2", ".qcow2", "qcow2"}} {
		out := "d-" + c.flag
		mustRun(t, dir, nil, "convert", "--format", "ovf", "--ovf-disk-format", c.flag, "a.xva", out)
		od := filepath.Join(dir, out)
		sh(t, od, "sha256sum", "--strict", "-c", out+".mf")
		for i := range raws {
			qemuSame(t, c.qemu, filepath.Join(od, out+"-"+fixtures.Device(i)+c.ext), raws[i])
		}
		mustRun(t, dir, nil, "verify", out+"/"+out+".ovf")
		mustRun(t, dir, nil, "convert", out+"/"+out+".ovf", out+".xva")
		if got := unpackedSums(t, dir, out+".xva", out+"-back"); !slices.Equal(got, sums) {
			t.Fatalf("%s disks convert back to other bytes", c.flag)
		}
	}

	mustRun(t, dir, nil, "convert", "--format", "ovf", "--ovf-version", "2.0", "a.xva", "v2")
	if env := readEnvelope(t, filepath.Join(dir, "v2", "v2.ovf")); env.XMLName.Space != "http://schemas.dmtf.org/ovf/envelope/2" {
		t.Fatalf("--ovf-version 2.0 wrote an Envelope in %q", env.XMLName.Space)
	}
	sh(t, filepath.Join(dir, "v2"), "sha256sum", "--strict", "-c", "v2.mf")

	mustRun(t, dir, nil, "convert", "--format", "ovf", "--manifest-sha1", "a.xva", "s1")
	mf, _ := os.ReadFile(filepath.Join(dir, "s1", "s1.mf"))
	if lines := strings.Split(strings.TrimSpace(string(mf)), "\n"); len(lines) != 1+len(raws) || !strings.HasPrefix(lines[0], "SHA1(") {
		t.Fatalf("--manifest-sha1 wrote:\n%s", mf)
	}
	sh(t, filepath.Join(dir, "s1"), "sha1sum", "--strict", "-c", "s1.mf")
	mustRun(t, dir, nil, "verify", "s1/s1.ovf")

	if r := run(t, dir, nil, "convert", "--format", "ovf", "--manifest-sha1", "--ovf-version", "2.0", "a.xva", "bad"); r.code != exitUsage {
		t.Fatalf("--manifest-sha1 --ovf-version 2.0: exit %d\n%s", r.code, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "bad")); !os.IsNotExist(err) {
		t.Fatal("a refused convert left its output directory")
	}
}

// makeVMDK writes size bytes of random data with zero runs as raw file
// NAME.raw and converts it with qemu-img to the streamOptimized VMDK
// vmdk (a path relative to dir). It returns the raw file's path.
func makeVMDK(t *testing.T, dir, vmdk string, size int64, seed uint64) string {
	t.Helper()
	os.MkdirAll(dir, 0o755)
	raw := filepath.Join(dir, fmt.Sprintf("seed%d.raw", seed))
	if err := os.WriteFile(raw, testutil.Image(size, seed, 64<<10), 0o644); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Dir(filepath.Join(dir, vmdk)), 0o755)
	sh(t, dir, "qemu-img", "convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=streamOptimized", raw, vmdk)
	return raw
}

// tarOVA makes an OVA in dir with GNU tar, of dir's files in this order.
func tarOVA(t *testing.T, dir, ova string, members ...string) {
	t.Helper()
	sh(t, dir, "tar", append([]string{"--format=ustar", "-cf", ova}, members...)...)
}

// A field descriptor: govmomi's fixtures are OVF documents VMware tools
// wrote. Each is packed as an OVA with disks qemu-img makes, of the
// capacity and under the href the descriptor names; xva reads the VM it
// describes and the disks' bytes.
func TestOVFFieldDescriptors(t *testing.T) {
	testutil.NeedTools(t, "qemu-img", "tar")
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/vmware/govmomi").Output()
	modDir := strings.TrimSpace(string(out))
	if err != nil || modDir == "" {
		t.Skip("github.com/vmware/govmomi is not a module dependency here: its ovf/fixtures cannot be found")
	}
	cases := []struct {
		file         string
		name         string
		vcpus        int
		memory       int64
		firmware     string
		diskCapacity int64
	}{
		// ttylinux.ovf:26 <Name>ttylinux-pc_i486-16.1</Name>; :44 1 vCPU;
		// :47,52 byte * 2^20, 32; :15 capacity 30, byte * 2^20; no firmware.
		{"ttylinux.ovf", "ttylinux-pc_i486-16.1", 1, 32 << 20, "", 30 << 20},
		// photon5.ovf:37 <Name>Photon OS</Name>; :73 1 vCPU; :89 2048 MiB;
		// :227 firmware efi (XenServer's uefi); :17 capacity 16, byte * 2^30.
		{"photon5.ovf", "Photon OS", 1, 2048 << 20, "uefi", 16 << 30},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			src := filepath.Join(modDir, "ovf", "fixtures", c.file)
			if _, err := os.Stat(src); err != nil {
				t.Skipf("govmomi has no %s: %v", c.file, err)
			}
			dir := t.TempDir()
			doc, err := os.ReadFile(src)
			if err != nil {
				t.Fatal(err)
			}
			os.WriteFile(filepath.Join(dir, "field.ovf"), doc, 0o644)
			env := readEnvelope(t, filepath.Join(dir, "field.ovf"))
			// The descriptor's own File sizes are of VMware's disks, not
			// of the ones made here, and it comes without its manifest:
			// the OVA has none, and the sizes are only noted.
			members := []string{"field.ovf"}
			var raws []string
			for i, d := range env.Disks {
				capacity := env.capacity(t, i)
				if capacity != c.diskCapacity {
					t.Fatalf("the descriptor's disk %s holds %d bytes, the test expects %d", d.ID, capacity, c.diskCapacity)
				}
				href := ""
				for _, f := range env.Files {
					if f.ID == d.FileRef {
						href = f.Href
					}
				}
				if href == "" {
					t.Fatalf("disk %s: no File %q", d.ID, d.FileRef)
				}
				// Data in the first 4 MiB, the rest of the capacity zeros.
				raw := makeVMDK(t, dir, href, 4<<20, uint64(100+i))
				sh(t, dir, "truncate", "-s", strconv.FormatInt(capacity, 10), raw)
				sh(t, dir, "qemu-img", "convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=streamOptimized", raw, href)
				raws = append(raws, filepath.Join(dir, href))
				members = append(members, href)
			}
			tarOVA(t, dir, "field.ova", members...)

			v := infoJSON(t, dir, "field.ova")
			if v.VM.Name != c.name || v.VM.VCPUs != c.vcpus || v.VM.Memory != c.memory || v.OVF.Firmware != c.firmware {
				t.Fatalf("info of %s: %+v, firmware %q", c.file, v.VM, v.OVF.Firmware)
			}
			if len(v.Disks) != len(raws) || v.Disks[0].Size != c.diskCapacity {
				t.Fatalf("info of %s: disks %+v", c.file, v.Disks)
			}
			r := run(t, dir, nil, "verify", "--json", "field.ova")
			if r.code != 0 {
				t.Fatalf("verify: exit %d\n%s%s", r.code, r.stdout, r.stderr)
			}
			validateSchema(t, "verify", r.stdout)
			mustRun(t, dir, nil, "convert", "field.ova", "x.xva")
			mustRun(t, dir, nil, "unpack", "x.xva", "x")
			for i, vmdk := range raws {
				sh(t, dir, "qemu-img", "compare", "-f", "raw", "-F", "vmdk", filepath.Join("x", "xvd"+string(rune('a'+i))+".raw"), vmdk)
			}
		})
	}
}

// miniOVF is a small hand-written OVF 1.0 descriptor of one disk (file1,
// capacity bytes) with 2 vCPUs, 256 MiB, a NIC on network "storage" and
// the firmware named, as VMware writes it. doctype goes before the
// Envelope; fileAttrs after File's ovf:href.
func miniOVF(doctype, href, fileAttrs string, capacity int64, name, firmware string) []byte {
	return fmt.Appendf(nil, `<?xml version="1.0" encoding="UTF-8"?>
%s<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1"
  xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData"
  xmlns:vssd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData"
  xmlns:vmw="http://www.vmware.com/schema/ovf">
  <References>
    <File ovf:href="%s" ovf:id="file1"%s/>
  </References>
  <DiskSection>
    <Info>Virtual disk information</Info>
    <Disk ovf:capacity="%d" ovf:capacityAllocationUnits="byte" ovf:diskId="vmdisk1" ovf:fileRef="file1" ovf:format="http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"/>
  </DiskSection>
  <NetworkSection>
    <Info>The list of logical networks</Info>
    <Network ovf:name="storage"><Description>The storage network</Description></Network>
  </NetworkSection>
  <VirtualSystem ovf:id="vm">
    <Info>A virtual machine</Info>
    <Name>%s</Name>
    <VirtualHardwareSection>
      <Info>Virtual hardware requirements</Info>
      <System>
        <vssd:ElementName>Virtual Hardware Family</vssd:ElementName>
        <vssd:InstanceID>0</vssd:InstanceID>
        <vssd:VirtualSystemType>vmx-13</vssd:VirtualSystemType>
      </System>
      <Item>
        <rasd:AllocationUnits>hertz * 10^6</rasd:AllocationUnits>
        <rasd:ElementName>2 virtual CPU(s)</rasd:ElementName>
        <rasd:InstanceID>1</rasd:InstanceID>
        <rasd:ResourceType>3</rasd:ResourceType>
        <rasd:VirtualQuantity>2</rasd:VirtualQuantity>
      </Item>
      <Item>
        <rasd:AllocationUnits>byte * 2^20</rasd:AllocationUnits>
        <rasd:ElementName>256MB of memory</rasd:ElementName>
        <rasd:InstanceID>2</rasd:InstanceID>
        <rasd:ResourceType>4</rasd:ResourceType>
        <rasd:VirtualQuantity>256</rasd:VirtualQuantity>
      </Item>
      <Item>
        <rasd:Address>0</rasd:Address>
        <rasd:ElementName>SCSI controller 0</rasd:ElementName>
        <rasd:InstanceID>3</rasd:InstanceID>
        <rasd:ResourceSubType>lsilogic</rasd:ResourceSubType>
        <rasd:ResourceType>6</rasd:ResourceType>
      </Item>
      <Item>
        <rasd:AddressOnParent>0</rasd:AddressOnParent>
        <rasd:ElementName>Hard disk 1</rasd:ElementName>
        <rasd:HostResource>ovf:/disk/vmdisk1</rasd:HostResource>
        <rasd:InstanceID>4</rasd:InstanceID>
        <rasd:Parent>3</rasd:Parent>
        <rasd:ResourceType>17</rasd:ResourceType>
      </Item>
      <Item>
        <rasd:AddressOnParent>7</rasd:AddressOnParent>
        <rasd:AutomaticAllocation>true</rasd:AutomaticAllocation>
        <rasd:Connection>storage</rasd:Connection>
        <rasd:ElementName>Network adapter 1</rasd:ElementName>
        <rasd:InstanceID>5</rasd:InstanceID>
        <rasd:ResourceSubType>VmxNet3</rasd:ResourceSubType>
        <rasd:ResourceType>10</rasd:ResourceType>
      </Item>
      <vmw:Config ovf:required="false" vmw:key="firmware" vmw:value="%s"/>
    </VirtualHardwareSection>
  </VirtualSystem>
</Envelope>
`, doctype, href, fileAttrs, capacity, name, firmware)
}

// listDir is the names in dir, to see that a failed command left nothing.
func listDir(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

// Hostile and damaged packages: a damaged one is exit 3 (integrity), named
// in the message, with a verify --json document that matches its schema;
// a failed convert leaves no output file; nothing panics. A gzip-compressed
// disk (ovf:compression="gzip") is read correctly.
func TestOVAHostileAndDamaged(t *testing.T) {
	testutil.NeedTools(t, "qemu-img", "tar", "gzip")
	dir, _, _ := ovfSetup(t)
	mustRun(t, dir, nil, "convert", "a.xva", "a.ova")
	sh(t, dir, "mkdir", "x")
	x := filepath.Join(dir, "x")
	sh(t, x, "tar", "-xf", "../a.ova")
	members := []string{"a.ovf", "a-sda.vmdk", "a-sdb.vmdk", "a-sdc.vmdk", "a.mf"}
	// A small hand-made disk for the hand-written descriptors.
	mini := filepath.Join(dir, "mini")
	miniRaw := makeVMDK(t, mini, "disk.vmdk", 2<<20, 42)

	// variant makes a copy of the extracted OVA's files in a new
	// directory, lets edit change them and tars them as NAME.ova.
	variant := func(name string, edit func(d string), keep ...string) string {
		d := filepath.Join(dir, "v-"+name)
		sh(t, dir, "cp", "-r", x, d)
		edit(d)
		if keep == nil {
			keep = members
		}
		tarOVA(t, d, "../"+name+".ova", keep...)
		return name + ".ova"
	}
	miniOVA := func(name string, ovfText []byte, files ...string) string {
		d := filepath.Join(dir, "m-"+name)
		sh(t, dir, "cp", "-r", mini, d)
		os.WriteFile(filepath.Join(d, "mini.ovf"), ovfText, 0o644)
		tarOVA(t, d, "../"+name+".ova", append([]string{"mini.ovf"}, files...)...)
		return name + ".ova"
	}
	flip := func(path string, at int64) {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		b[at] ^= 0xff
		os.WriteFile(path, b, 0o644)
	}

	// Inside the first grain: 64 KiB into the VMDK (header, then grains).
	flipped := variant("flipped", func(d string) { flip(filepath.Join(d, "a-sda.vmdk"), 70000) })
	badDigest := variant("digest", func(d string) {
		mf := filepath.Join(d, "a.mf")
		b, _ := os.ReadFile(mf)
		i := strings.Index(string(b), "SHA256(a-sdb.vmdk)= ") + len("SHA256(a-sdb.vmdk)= ")
		if b[i] == '0' { // another hex digit
			b[i] = '1'
		} else {
			b[i] = '0'
		}
		os.WriteFile(mf, b, 0o644)
	})
	// Stream the OVA with 1 MiB chunks and leave sda's first chunk out,
	// and the manifest, which would name it. (Its last chunk left out
	// would be seen only by the VMDK reader: a streamed OVA has no
	// ovf:size.)
	r := run(t, dir, nil, "convert", "--format", "ova", "--ovf-chunk-size", "1MiB", "a.xva", "-")
	if r.code != 0 {
		t.Fatalf("convert to -: exit %d\n%s", r.code, r.stderr)
	}
	sh(t, dir, "mkdir", "chunked")
	os.WriteFile(filepath.Join(dir, "chunked", "s.ova"), []byte(r.stdout), 0o644)
	sh(t, filepath.Join(dir, "chunked"), "tar", "-xf", "s.ova")
	var chunkMembers []string
	for _, e := range tarList(t, filepath.Join(dir, "chunked", "s.ova")) {
		if e.name != "web-sda.vmdk.000000000" && e.name != "web.mf" {
			chunkMembers = append(chunkMembers, e.name)
		}
	}
	tarOVA(t, filepath.Join(dir, "chunked"), "missing-chunk.ova", chunkMembers...)
	// Cut inside the second member, the first disk.
	whole, _ := os.ReadFile(filepath.Join(dir, "a.ova"))
	os.WriteFile(filepath.Join(dir, "truncated.ova"), whole[:len(whole)/3], 0o644)
	// The 2 MiB VMDK under a descriptor that says 1 MiB.
	tooBig := miniOVA("too-big", miniOVF("", "disk.vmdk", "", 1<<20, "small", "bios"), "disk.vmdk")

	// Every case is refused by verify, and by convert and unpack (which
	// check the manifest's digests too), exit 3, leaving nothing.
	cases := []struct {
		name, ova, kind, member string
	}{
		{"flipped VMDK grain", flipped, "image", "a-sda.vmdk"},
		{"wrong manifest digest", badDigest, "checksum", "a-sdb.vmdk"},
		{"href ../x", miniOVA("dotdot", miniOVF("", "../disk.vmdk", "", 2<<20, "m", "bios"), "disk.vmdk"), "metadata", ""},
		{"href http://", miniOVA("http", miniOVF("", "http://example.com/disk.vmdk", "", 2<<20, "m", "bios"), "disk.vmdk"), "metadata", ""},
		{"DOCTYPE with an entity", miniOVA("doctype", miniOVF(`<!DOCTYPE Envelope [<!ENTITY n "x">]>`+"\n", "disk.vmdk", "", 2<<20, "&n;", "bios"), "disk.vmdk"), "metadata", ""},
		{"missing chunk", "chunked/missing-chunk.ova", "", "missing chunk 0 of web-sda.vmdk"},
		{"truncated OVA", "truncated.ova", "tar", ""},
		{"VMDK larger than the capacity", tooBig, "image", "disk.vmdk"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := run(t, dir, nil, "verify", "--json", c.ova)
			if r.code != exitCorrupt || strings.Contains(r.stderr, "panic") {
				t.Fatalf("verify: exit %d, want 3\n%s%s", r.code, r.stdout, r.stderr)
			}
			validateSchema(t, "verify", r.stdout)
			var doc struct {
				OK       bool
				Archives []struct {
					Problems []struct{ Kind, Member, Message string }
				}
			}
			if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil || doc.OK || len(doc.Archives) != 1 {
				t.Fatalf("verify --json: %v\n%s", err, r.stdout)
			}
			found := false
			for _, p := range doc.Archives[0].Problems {
				found = found || (c.kind == "" || p.Kind == c.kind) &&
					(c.member == "" || p.Member == c.member || strings.Contains(p.Message, c.member))
			}
			if !found {
				t.Fatalf("no problem of kind %q naming %q:\n%s", c.kind, c.member, r.stdout)
			}
			if plain := run(t, dir, nil, "verify", c.ova); plain.code != exitCorrupt || !strings.Contains(plain.stdout, "CORRUPT") ||
				c.member != "" && !strings.Contains(plain.stdout+plain.stderr, c.member) {
				t.Fatalf("verify: exit %d\n%s%s", plain.code, plain.stdout, plain.stderr)
			}
			before := listDir(t, dir)
			for _, args := range [][]string{{"convert", c.ova, "out.xva"}, {"unpack", c.ova, "out"}} {
				r := run(t, dir, nil, args...)
				if r.code != exitCorrupt || strings.Contains(r.stderr, "panic") {
					t.Fatalf("xva %v: exit %d, want 3\n%s", args, r.code, r.stderr)
				}
				if after := listDir(t, dir); !slices.Equal(after, before) {
					t.Fatalf("xva %v failed and left %v (before: %v)", args, after, before)
				}
			}
		})
	}

	// ovf:compression="gzip": the href names the compressed file, and
	// ovf:size is its size, as XenCenter writes it.
	t.Run("gzip-compressed disk", func(t *testing.T) {
		d := filepath.Join(dir, "m-gzip")
		sh(t, dir, "cp", "-r", mini, d)
		sh(t, d, "gzip", "-n", "-k", "disk.vmdk")
		fi, err := os.Stat(filepath.Join(d, "disk.vmdk.gz"))
		if err != nil {
			t.Fatal(err)
		}
		attrs := fmt.Sprintf(` ovf:size="%d" ovf:compression="gzip"`, fi.Size())
		os.WriteFile(filepath.Join(d, "mini.ovf"), miniOVF("", "disk.vmdk.gz", attrs, 2<<20, "zipped", "bios"), 0o644)
		tarOVA(t, d, "../gzip.ova", "mini.ovf", "disk.vmdk.gz")
		mustRun(t, dir, nil, "verify", "gzip.ova")
		mustRun(t, dir, nil, "convert", "gzip.ova", "gzip.xva")
		mustRun(t, dir, nil, "unpack", "gzip.xva", "gzip")
		qemuSame(t, "raw", filepath.Join(dir, "gzip", "xvda.raw"), miniRaw)
		sh(t, dir, "qemu-img", "compare", "-f", "raw", "-F", "vmdk", filepath.Join(dir, "gzip", "xvda.raw"), filepath.Join(d, "disk.vmdk"))
	})

	// The disk formats other tools put in packages, made by qemu-img: a
	// monolithicSparse VMDK, a dynamic VHD (XenCenter), a qcow2 (oVirt), a
	// raw image; each is recognised by content and read where it lies.
	for _, f := range []struct{ name, qemu, opts string }{
		{"sparse.vmdk", "vmdk", "subformat=monolithicSparse"},
		{"disk.vhd", "vpc", "subformat=dynamic"},
		{"disk.qcow2", "qcow2", "compat=1.1"},
		{"disk.img", "raw", ""},
	} {
		t.Run("a "+f.name+" in the package", func(t *testing.T) {
			d := filepath.Join(dir, "m-"+f.name)
			sh(t, dir, "cp", "-r", mini, d)
			args := []string{"convert", "-f", "raw", "-O", f.qemu}
			if f.opts != "" {
				args = append(args, "-o", f.opts)
			}
			sh(t, d, "qemu-img", append(args, miniRaw, f.name)...)
			os.WriteFile(filepath.Join(d, "mini.ovf"), miniOVF("", f.name, "", 2<<20, "formats", "bios"), 0o644)
			tarOVA(t, d, "../"+f.name+".ova", "mini.ovf", f.name)
			mustRun(t, dir, nil, "verify", f.name+".ova")
			mustRun(t, dir, nil, "convert", f.name+".ova", f.name+".xva")
			mustRun(t, dir, nil, "unpack", f.name+".xva", f.name+"-out")
			qemuSame(t, "raw", filepath.Join(dir, f.name+"-out", "xvda.raw"), miniRaw)
			sh(t, dir, "qemu-img", "compare", "-f", "raw", "-F", f.qemu, filepath.Join(dir, f.name+"-out", "xvda.raw"), filepath.Join(d, f.name))
		})
	}
}

// upload sends an OVA to the pool model converted on the way: the VM it
// makes has the source's disks, and the firmware and network of a
// descriptor that states EFI and a NIC on "storage".
func TestUploadOVA(t *testing.T) {
	dir, _, sums := ovfSetup(t)
	mustRun(t, dir, nil, "convert", "a.xva", "a.ova")
	s, ca := pool(t)
	if r := remote(t, dir, "secret", "upload", "a.ova", "--url", s.URL, "--ca-cert", ca); r.code != 0 {
		t.Fatalf("upload a.ova: exit %d\n%s", r.code, r.stderr)
	}
	vms := s.VMs()
	if len(vms) != 1 || vms[0].Name != ovfVM.Name || vms[0].VCPUsMax != int64(ovfVM.VCPUs) || len(vms[0].Disks) != len(sums) {
		t.Fatalf("the pool made %+v", vms)
	}
	for i, d := range vms[0].Disks {
		if d.SHA256 != sums[i] {
			t.Fatalf("disk %d arrived with other bytes", i)
		}
	}

	mini := filepath.Join(dir, "mini")
	raw := makeVMDK(t, mini, "disk.vmdk", 3<<20, 77)
	os.WriteFile(filepath.Join(mini, "efi.ovf"), miniOVF("", "disk.vmdk", "", 3<<20, "efi-vm", "efi"), 0o644)
	tarOVA(t, mini, "../efi.ova", "efi.ovf", "disk.vmdk")
	if r := remote(t, dir, "secret", "upload", "efi.ova", "--url", s.URL, "--ca-cert", ca); r.code != 0 {
		t.Fatalf("upload efi.ova: exit %d\n%s", r.code, r.stderr)
	}
	vms = s.VMs()
	if len(vms) != 2 {
		t.Fatalf("%d VMs after two uploads", len(vms))
	}
	vm := vms[1]
	if vm.Name != "efi-vm" || vm.HVMBootParams["firmware"] != "uefi" || vm.VCPUsMax != 2 || vm.MemoryMax != 256<<20 {
		t.Fatalf("the EFI VM: %+v", vm)
	}
	if len(vm.Disks) != 1 || vm.Disks[0].SHA256 != paddedSum(t, raw) {
		t.Fatalf("the EFI VM's disks: %+v", vm.Disks)
	}
	if len(vm.VIFs) != 1 {
		t.Fatalf("the EFI VM's VIFs: %+v", vm.VIFs)
	}
	i := slices.IndexFunc(s.Networks(), func(n xapitest.Network) bool { return n.Ref == vm.VIFs[0].Network })
	if i < 0 || s.Networks()[i].Name != "storage" {
		t.Fatalf("the VIF is on %s, networks %+v", vm.VIFs[0].Network, s.Networks())
	}
	clean(t, s)
}

// Outputs that cannot be what was asked are refused before anything is
// written (exit 2): an .ovf file (its disks need a directory), an OVA from
// an OVA, OVF flags for an XVA, image flags for a package, stdout for the
// directory form.
func TestOVFUsageErrors(t *testing.T) {
	dir, _ := setup(t)
	mustRun(t, dir, nil, "pack", "--disk", "sda=sda.img", "a.xva")
	mustRun(t, dir, nil, "convert", "a.xva", "a.ova")
	for _, args := range [][]string{
		{"convert", "a.xva", "a.ovf"},
		{"convert", "a.ova", "b.ova"},
		{"convert", "--ovf-version", "2.0", "a.xva", "b.xva"},
		{"convert", "--disk-format", "qcow2", "a.xva", "b.ova"},
		{"convert", "--compress", "zstd", "a.xva", "b.ova"},
		{"convert", "--format", "ovf", "a.xva", "-"},
		{"convert", "--ovf-version", "3.0", "a.xva", "b.ova"},
		{"convert", "--ovf-disk-format", "vhdx", "a.xva", "b.ova"},
	} {
		before := listDir(t, dir)
		r := run(t, dir, nil, args...)
		if r.code != exitUsage || r.stdout != "" {
			t.Errorf("xva %v: exit %d, want 2 and no output\n%s%s", args, r.code, r.stdout, r.stderr)
		}
		if after := listDir(t, dir); !slices.Equal(after, before) {
			t.Errorf("xva %v left %v", args, after)
		}
	}
}

// What a review found, each fixed and held here:
//   - an upload, or a stream, of a package whose manifest digest fails
//     sends nothing: the digests are checked before a stream starts;
//   - the manifest is judged on the descriptor and its References files:
//     another file beside an .ovf, or in an OVA, is none of its business,
//     and an href in a subdirectory is found;
//   - "--format ovf a.xva out/" writes the directory out;
//   - a name too long for a tar member is shortened, spaces replaced;
//   - a gzip-compressed disk that inflates past any image of its capacity
//     is refused before it fills the disk;
//   - a FIFO beside an .ovf is refused, not waited on.
func TestOVFReviewCases(t *testing.T) {
	dir, _, _ := ovfSetup(t)
	mustRun(t, dir, nil, "convert", "a.xva", "a.ova")
	x := filepath.Join(dir, "x")
	os.Mkdir(x, 0o755)
	sh(t, x, "tar", "-xf", "../a.ova")
	mf, _ := os.ReadFile(filepath.Join(x, "a.mf"))
	i := strings.Index(string(mf), "SHA256(a-sdb.vmdk)= ") + len("SHA256(a-sdb.vmdk)= ")
	if mf[i] == '0' {
		mf[i] = '1'
	} else {
		mf[i] = '0'
	}
	os.WriteFile(filepath.Join(x, "a.mf"), mf, 0o644)
	tarOVA(t, x, "../bad.ova", "a.ovf", "a-sda.vmdk", "a-sdb.vmdk", "a-sdc.vmdk", "a.mf")

	t.Run("bad digest, upload and stream", func(t *testing.T) {
		s, ca := pool(t)
		r := remote(t, dir, "secret", "upload", "bad.ova", "--url", s.URL, "--ca-cert", ca)
		if r.code != exitCorrupt || len(s.VMs()) != 0 {
			t.Fatalf("upload: exit %d, %d VMs on the pool\n%s", r.code, len(s.VMs()), r.stderr)
		}
		if r := run(t, dir, nil, "convert", "bad.ova", "-"); r.code != exitCorrupt || r.stdout != "" {
			t.Fatalf("convert to stdout: exit %d, %d bytes out", r.code, len(r.stdout))
		}
	})

	t.Run("other files and subdirectories", func(t *testing.T) {
		mustRun(t, dir, nil, "convert", "--format", "ovf", "a.xva", "d/")
		os.WriteFile(filepath.Join(dir, "d", "README"), []byte("not in the manifest\n"), 0o644)
		mustRun(t, dir, nil, "verify", "d/d.ovf")
		mustRun(t, dir, nil, "convert", "d/d.ovf", "d/back.xva")
		mustRun(t, dir, nil, "verify", "d/d.ovf") // with an XVA beside it
		os.WriteFile(filepath.Join(x, "README"), []byte("hello\n"), 0o644)
		tarOVA(t, x, "../extra.ova", "a.ovf", "a-sda.vmdk", "README", "a-sdb.vmdk", "a-sdc.vmdk", "a.mf")
		os.Remove(filepath.Join(x, "README"))
		// a-sdb's digest is still the wrong one: that is the only problem.
		r := run(t, dir, nil, "verify", "--json", "extra.ova")
		if r.code != exitCorrupt || strings.Count(r.stdout, `"kind":`) != 1 || !strings.Contains(r.stdout, `"member": "a-sdb.vmdk"`) {
			t.Fatalf("verify extra.ova: exit %d\n%s", r.code, r.stdout)
		}
		// An href in a subdirectory, listed in the manifest.
		sub := filepath.Join(dir, "sub")
		os.MkdirAll(filepath.Join(sub, "disks"), 0o755)
		raw := makeVMDK(t, filepath.Join(sub, "disks"), "d.vmdk", 1<<20, 5)
		os.Remove(raw)
		os.WriteFile(filepath.Join(sub, "vm.ovf"), miniOVF("", "disks/d.vmdk", "", 1<<20, "sub", "bios"), 0o644)
		sum := sh(t, sub, "sha256sum", "vm.ovf", "disks/d.vmdk")
		var lines []string
		for _, l := range strings.Split(strings.TrimSpace(sum), "\n") {
			h, name, _ := strings.Cut(l, "  ")
			lines = append(lines, fmt.Sprintf("SHA256(%s)= %s", name, h))
		}
		os.WriteFile(filepath.Join(sub, "vm.mf"), []byte(strings.Join(lines, "\n")+"\n"), 0o644)
		mustRun(t, dir, nil, "verify", "sub/vm.ovf")
	})

	t.Run("long names and spaces", func(t *testing.T) {
		long := strings.Repeat("x", 97) + " y.ova"
		mustRun(t, dir, nil, "convert", "a.xva", long)
		list := sh(t, dir, "tar", "-tf", long)
		for _, name := range strings.Fields(list) {
			if len(name) > 100 || strings.Contains(name, " ") {
				t.Errorf("member %q", name)
			}
		}
		mustRun(t, dir, nil, "verify", long)
	})

	t.Run("gzip bomb", func(t *testing.T) {
		g := filepath.Join(dir, "bomb")
		os.Mkdir(g, 0o755)
		f, err := os.Create(filepath.Join(g, "disk.vmdk"))
		if err != nil {
			t.Fatal(err)
		}
		f.Truncate(200 << 20)
		f.Close()
		sh(t, g, "gzip", "-n", "disk.vmdk")
		os.WriteFile(filepath.Join(g, "vm.ovf"), miniOVF("", "disk.vmdk.gz", ` ovf:compression="gzip"`, 1<<20, "bomb", "bios"), 0o644)
		tarOVA(t, g, "../bomb.ova", "vm.ovf", "disk.vmdk.gz")
		r := run(t, dir, nil, "convert", "bomb.ova", "bomb.xva")
		if r.code != exitCorrupt || !strings.Contains(r.stderr, "inflates to more than") {
			t.Fatalf("convert bomb.ova: exit %d\n%s", r.code, r.stderr)
		}
	})

	t.Run("a FIFO beside the .ovf", func(t *testing.T) {
		ff := filepath.Join(dir, "fifo")
		os.Mkdir(ff, 0o755)
		os.WriteFile(filepath.Join(ff, "vm.ovf"), miniOVF("", "disk.vmdk", "", 1<<20, "fifo", "bios"), 0o644)
		if out, err := exec.Command("mkfifo", filepath.Join(ff, "disk.vmdk")).CombinedOutput(); err != nil {
			t.Skipf("no FIFOs here: %v %s", err, out)
		}
		if r := run(t, dir, nil, "verify", "fifo/vm.ovf"); r.code != exitCorrupt {
			t.Fatalf("verify: exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
	})
}

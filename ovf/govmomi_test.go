package ovf

// Checks against govmomi, VMware's Go library (a test-only dependency):
// its OVF reader must read what Marshal writes into the same VM, its
// ConfigSpec conversion must accept it, and the real OVF files its
// module ships must read as they say. Those files are read from the
// module cache, never copied into this repository.

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	govovf "github.com/vmware/govmomi/ovf"
	"github.com/vmware/govmomi/vim25/types"
)

func TestGovmomiReadsOurs(t *testing.T) {
	for name, b := range marshalAll(t) {
		t.Run(name, func(t *testing.T) {
			d := mustParse(t, b)
			e, err := govovf.Unmarshal(bytes.NewReader(b))
			if err != nil {
				t.Fatal(err)
			}
			checkGovEnvelope(t, d, e)
			checkGovConfigSpec(t, d, e)
		})
	}
}

// checkGovEnvelope compares govmomi's reading of a document with ours.
func checkGovEnvelope(t *testing.T, d *Descriptor, e *govovf.Envelope) {
	vs := e.VirtualSystem
	if vs == nil || vs.ID != d.System.ID || vs.Name == nil || *vs.Name != d.System.Name {
		t.Fatalf("govmomi's virtual system %+v, ours %q %q", vs, d.System.ID, d.System.Name)
	}
	if len(e.References) != len(d.Files) {
		t.Errorf("govmomi reads %d files, we %d", len(e.References), len(d.Files))
	}
	var govDisks []govovf.VirtualDiskDesc
	if e.Disk != nil {
		govDisks = e.Disk.Disks
	}
	if len(govDisks) != len(d.Disks) {
		t.Fatalf("govmomi reads %d disks, we %d", len(govDisks), len(d.Disks))
	}
	for i, g := range govDisks {
		units := ""
		if g.CapacityAllocationUnits != nil {
			units = *g.CapacityAllocationUnits
		}
		c, err := strconv.ParseInt(g.Capacity, 10, 64)
		if err != nil || c*govovf.ParseCapacityAllocationUnits(units) != d.Disks[i].Capacity || g.DiskID != d.Disks[i].ID {
			t.Errorf("disk %d: govmomi %s %s x %q, ours %+v", i, g.DiskID, g.Capacity, units, d.Disks[i])
		}
	}
	var cpus, mem uint
	var nets []string
	hw := vs.VirtualHardware[0]
	for _, it := range hw.Item {
		switch *it.ResourceType {
		case govovf.Processor:
			cpus += *it.VirtualQuantity
		case govovf.Memory:
			mem += *it.VirtualQuantity
		case govovf.EthernetAdapter:
			nets = append(nets, strings.Join(it.Connection, ","))
		}
	}
	if int(cpus) != d.System.VCPUs {
		t.Errorf("govmomi reads %d vCPUs, we %d", cpus, d.System.VCPUs)
	}
	if d.System.Memory%(1<<20) == 0 && int64(mem) != d.System.Memory>>20 {
		t.Errorf("govmomi reads %d MiB, we %d bytes", mem, d.System.Memory)
	}
	var ours []string
	for _, n := range d.System.NICs {
		ours = append(ours, n.Network)
	}
	if strings.Join(nets, "|") != strings.Join(ours, "|") {
		t.Errorf("NIC networks: govmomi %q, ours %q", nets, ours)
	}
	if d.Networks != nil && (e.Network == nil || len(e.Network.Networks) != len(d.Networks)) {
		t.Errorf("govmomi's NetworkSection %+v, ours %+v", e.Network, d.Networks)
	}
}

// checkGovConfigSpec converts the envelope as vSphere clients do and
// counts what it makes.
func checkGovConfigSpec(t *testing.T, d *Descriptor, e *govovf.Envelope) {
	spec, err := e.ToConfigSpec()
	if err != nil {
		t.Fatalf("ToConfigSpec: %v", err)
	}
	if int(spec.NumCPUs) != d.System.VCPUs {
		t.Errorf("ConfigSpec NumCPUs %d, ours %d", spec.NumCPUs, d.System.VCPUs)
	}
	if d.System.Memory%(1<<20) == 0 && spec.MemoryMB != d.System.Memory>>20 {
		t.Errorf("ConfigSpec MemoryMB %d, ours %d bytes", spec.MemoryMB, d.System.Memory)
	}
	want := map[string]string{"uefi": "efi", "bios": "bios", "": ""}[d.System.Firmware]
	if spec.Firmware != want {
		t.Errorf("ConfigSpec firmware %q, ours %q", spec.Firmware, d.System.Firmware)
	}
	var disks, cds, nics int
	var capacity int64
	for _, c := range spec.DeviceChange {
		switch dev := c.GetVirtualDeviceConfigSpec().Device.(type) {
		case *types.VirtualDisk:
			disks++
			capacity += dev.CapacityInBytes
		case *types.VirtualCdrom:
			cds++
		case types.BaseVirtualEthernetCard:
			nics++
		}
	}
	var ours int64
	for _, r := range d.System.Disks {
		for _, k := range d.Disks {
			if k.ID == r.DiskID {
				ours += k.Capacity
			}
		}
	}
	if disks != len(d.System.Disks) || cds != d.System.CDs || nics != len(d.System.NICs) || capacity != ours {
		t.Errorf("ConfigSpec has %d disks (%d bytes), %d CDs, %d NICs; ours %d (%d bytes), %d, %d",
			disks, capacity, cds, nics, len(d.System.Disks), ours, d.System.CDs, len(d.System.NICs))
	}
}

// govmomiFixtures is the directory of the OVF files govmomi's module
// ships (ovf/fixtures), found in the module cache.
func govmomiFixtures(t *testing.T) string {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/vmware/govmomi").Output()
	if err != nil {
		t.Fatalf("go list govmomi: %v", err)
	}
	return filepath.Join(strings.TrimSpace(string(out)), "ovf", "fixtures")
}

func readFixture(t *testing.T, name string) []byte {
	b, err := os.ReadFile(filepath.Join(govmomiFixtures(t), name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The VMs the field documents describe, value by value; the comments
// give the fixture's lines in govmomi v0.53.0.
func TestGovmomiFixtures(t *testing.T) {
	t.Run("photon5", func(t *testing.T) {
		d := mustParse(t, readFixture(t, "photon5.ovf"))
		s := d.System
		check(t, "name", s.Name, "Photon OS")                                                                  // line 37
		check(t, "vCPUs", s.VCPUs, 1)                                                                          // line 73
		check(t, "memory", s.Memory, int64(2048<<20))                                                          // line 79 byte * 2^20, line 89 2048
		check(t, "capacity", d.Disks[0].Capacity, int64(16<<30))                                               // line 17: 16 x byte * 2^30
		check(t, "populated", d.Disks[0].PopulatedSize, int64(858521600))                                      // line 17
		check(t, "href", d.Files[0].Href, "photon-ova-disk1.vmdk")                                             // line 9
		check(t, "file size", d.Files[0].Size, int64(322319360))                                               // line 9
		check(t, "disks", s.Disks, []DiskRef{{DiskID: "vmdisk1", Controller: "scsi", Address: 0, Device: -1}}) // lines 121, 145-155
		check(t, "NICs", s.NICs, []NIC{{Network: "None", Model: "VmxNet3"}})                                   // lines 165, 173
		check(t, "firmware", s.Firmware, "uefi")                                                               // line 227
		check(t, "OS", s.OSType, 36)                                                                           // line 39
		check(t, "OS description", s.OSDescription, "vmwarePhoton64Guest")                                     // line 39 vmw:osType
		check(t, "system type", s.SystemType, "vmx-15")                                                        // line 57
		check(t, "CDs", s.CDs, 1)                                                                              // line 221
		if !strings.HasPrefix(s.Description, "This OVA provides a minimal installed profile of PhotonOS.") {   // line 479
			t.Errorf("description %q", s.Description)
		}
	})
	t.Run("ubuntu24.10", func(t *testing.T) {
		d := mustParse(t, readFixture(t, "ubuntu24.10.ovf"))
		s := d.System
		check(t, "name", s.Name, "ubuntu-oracular-24.10-cloudimg-20241109")                                      // line 18
		check(t, "vCPUs", s.VCPUs, 2)                                                                            // line 69
		check(t, "memory", s.Memory, int64(1024<<20))                                                            // lines 72, 77
		check(t, "capacity", d.Disks[0].Capacity, int64(10737418240))                                            // line 8, units "byte"
		check(t, "populated", d.Disks[0].PopulatedSize, int64(0))                                                // line 8
		check(t, "href", d.Files[0].Href, "ubuntu-oracular-24.10-cloudimg.vmdk")                                 // line 4
		check(t, "disks", s.Disks, []DiskRef{{DiskID: "vmdisk1", Controller: "scsi", Address: 0, Device: -1}})   // lines 85, 139-144
		check(t, "NICs", s.NICs, []NIC{{Network: "VM Network", Model: "VmxNet3"}})                               // lines 159, 163
		check(t, "firmware", s.Firmware, "bios")                                                                 // line 169
		check(t, "OS", s.OSType, 94)                                                                             // line 19
		check(t, "description", s.Description, "Ubuntu 24.10 Server (20241109)")                                 // line 26, ProductSection/Product
		check(t, "CDs", s.CDs, 1)                                                                                // line 135
		check(t, "networks", d.Networks, []Network{{Name: "VM Network", Description: "The VM Network network"}}) // line 12
	})
	t.Run("ttylinux", func(t *testing.T) {
		d := mustParse(t, readFixture(t, "ttylinux.ovf"))
		s := d.System
		check(t, "name", s.Name, "ttylinux-pc_i486-16.1")                                                     // line 26
		check(t, "vCPUs", s.VCPUs, 1)                                                                         // line 44
		check(t, "memory", s.Memory, int64(32<<20))                                                           // lines 47, 52
		check(t, "capacity", d.Disks[0].Capacity, int64(30<<20))                                              // line 15: 30 x byte * 2^20
		check(t, "href", d.Files[0].Href, "ttylinux-pc_i486-16.1-disk1.vmdk")                                 // line 11
		check(t, "disks", s.Disks, []DiskRef{{DiskID: "vmdisk1", Controller: "ide", Address: 0, Device: -1}}) // lines 55-67
		check(t, "NICs", s.NICs, []NIC{{Network: "nat", Model: "E1000"}})                                     // line 72
		check(t, "firmware", s.Firmware, "")                                                                  // no firmware key
		check(t, "system type", s.SystemType, "vmx-09")                                                       // line 36
	})
	t.Run("virtualsystemcollection", func(t *testing.T) {
		d := mustParse(t, readFixture(t, "virtualsystemcollection.ovf"))
		s := d.System
		check(t, "version", d.Version, "2.0")                                                          // line 7, namespace envelope/2
		check(t, "id", s.ID, "storage server")                                                         // line 38
		check(t, "name", s.Name, "Virtual Appliance One")                                              // line 40
		check(t, "vCPUs", s.VCPUs, 1)                                                                  // line 73
		check(t, "memory", s.Memory, int64(1<<30))                                                     // lines 76, 81: 1 x byte*2^30
		check(t, "NICs", s.NICs, []NIC{{Network: "VS Network", MAC: "00:16:8b:db:00:5e"}})             // lines 84-85
		check(t, "disk files", d.Files, []File{{ID: "file1", Href: "vmdisk1.vmdk", Size: 2000000000}}) // line 15
		check(t, "disks", d.Disks, []Disk{
			{ID: "vmdisk1", FileRef: "file1", Capacity: 4294967296, PopulatedSize: -1, // lines 20-21
				Format: "http://www.examplecompany.com/interfaces/specifications/vmdk.html#sparse"},
			{ID: "blank-4", Capacity: 1 << 30, PopulatedSize: -1}, // lines 98-105: StorageItem, no HostResource, 1 x byte*2^30
		})
		check(t, "disk refs", s.Disks, []DiskRef{{DiskID: "blank-4", Address: -1, Device: -1}})
		check(t, "firmware", s.Firmware, "")
		check(t, "OS", s.OSType, 58) // line 108
		check(t, "description", s.Description, "Contact customer support if you have any problems")
		if len(d.Dropped) == 0 || d.Dropped[0] != "VirtualSystemCollection: only the first of 2 virtual systems (storage server) is read" {
			t.Errorf("dropped %q", d.Dropped)
		}
	})
}

func check[T any](t *testing.T, what string, got, want T) {
	t.Helper()
	if g, w := any(got), any(want); !deepEqual(g, w) {
		t.Errorf("%s: got %+v, want %+v", what, got, want)
	}
}

// Every fixture parses, and Marshal/Parse round-trips it.
func TestGovmomiFixturesRoundTrip(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(govmomiFixtures(t), "*.ovf"))
	if err != nil || len(files) < 4 {
		t.Fatalf("fixtures: %v, %v", files, err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		d, err := Parse(b)
		if err != nil {
			t.Errorf("%s: %v", filepath.Base(f), err)
			continue
		}
		checkRoundTrip(t, d)
	}
}

package xva

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/xva-tools/xva/chunk"
	"github.com/xva-tools/xva/internal/fuzzutil"
)

// FuzzParseMetadata checks what the unpacker relies on in any ova.xml it
// accepts, of either generation: every member a disk reads lies inside the
// archive, every image name is one plain file name, sizes are bounded, and
// no two disks share a name.
func FuzzParseMetadata(f *testing.F) {
	f.Add([]byte(`<appliance version="0.1"><vm name="vm"><label>x</label><config mem_set="1" vcpus="1"/>` +
		`<vbd device="sda" function="root" mode="w" vdi="v"/></vm><vdi name="v" size="5" source="file://sda" type="dir-gzipped-chunks"/></appliance>`))
	f.Fuzz(func(t *testing.T, doc []byte) {
		var m *Metadata
		var err error
		fuzzutil.Bounded(t, 1<<20+512*uint64(len(doc)), func() { m, err = ParseMetadata(doc) })
		if err != nil {
			return
		}
		devices := map[string]bool{}
		for _, d := range m.Disks {
			if d.Size < 0 || d.Size > MaxDiskSize {
				t.Fatalf("disk %s: size %d", d.Device, d.Size)
			}
			if !filepath.IsLocal(d.Device) || strings.ContainsAny(d.Device, "/\\") || devices[d.Device] {
				t.Fatalf("disk device %q cannot name a new file", d.Device)
			}
			devices[d.Device] = true
			for _, member := range []string{chunk.BlockName(d.ID, 0), d.ID + "/chunk-000000000.gz"} {
				if !filepath.IsLocal(member) || m.diskOf(member) != &m.Disks[indexOf(m, d.ID)] {
					t.Fatalf("member %q of disk %q escapes or belongs elsewhere", member, d.ID)
				}
			}
		}
	})
}

func indexOf(m *Metadata, id string) int {
	for i, d := range m.Disks {
		if d.ID == id {
			return i
		}
	}
	return -1
}

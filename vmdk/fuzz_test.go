package vmdk

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/xva-tools/xva/internal/fuzzutil"
)

// FuzzOpen checks the sparse reader on any file: opening allocates in
// proportion to the file, extents lie inside the disk in order, bytes
// outside them read as zero, and a small disk written again with our
// writers reads back the same.
func FuzzOpen(f *testing.F) {
	data := make([]byte, 200<<10)
	copy(data, bytes.Repeat([]byte("A"), GrainSize))
	copy(data[130<<10:], "grain two")
	for _, k := range kinds {
		path := filepath.Join(f.TempDir(), k.name+".vmdk")
		write(f, path, memSource(data), k.create)
		b, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		var img *Image
		var err error
		// The directory and each distinct grain table are read whole, each
		// from inside the file: at most a few times the file's size.
		fuzzutil.Bounded(t, 1<<20+64*uint64(len(in)), func() { img, err = OpenOn(bytes.NewReader(in), int64(len(in)), "fuzz.vmdk") })
		if err != nil {
			return
		}
		if _, err := img.Info(context.Background()); err != nil {
			t.Fatalf("Info of an opened image: %v", err)
		}
		size := img.Size()
		if size > 4<<20 {
			return
		}
		got := make([]byte, size)
		if _, err := img.ReadAt(got, 0); err != nil && size > 0 {
			return // a bad compressed grain is found when read
		}
		checkExtents(t, img, got)
		k := kinds[len(in)%2]
		path := filepath.Join(t.TempDir(), "again.vmdk")
		write(t, path, memSource(got), k.create)
		if again := readAll(t, path); !bytes.Equal(again, got) {
			t.Fatalf("written again as %s, reads differently", k.name)
		}
	})
}

// FuzzParseDescriptor checks the descriptor parser on any text: what it
// accepts names only local extent files of a positive size, and parses
// back to the same descriptor once rendered.
func FuzzParseDescriptor(f *testing.F) {
	f.Add([]byte(descriptorText(0x1234abcd, "monolithicSparse", "disk.vmdk", 2048, "ide")))
	f.Add([]byte("# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\ncreateType=\"twoGbMaxExtentFlat\"\n" +
		"RW 4194304 FLAT \"d-f001.vmdk\" 0\nRDONLY 100 FLAT \"sub/d-f002.vmdk\" 7\nRW 8 ZERO\nRW 8 SPARSE \"d-s003.vmdk\"\n" +
		"ddb.uuid = \"60 00 C2 9b\"\nddb.adapterType = lsilogic\n"))
	f.Add([]byte("version=1\ncreateType=\"x\"\nRW 8 FLAT \"../../etc/passwd\" 0\n"))
	f.Fuzz(func(t *testing.T, text []byte) {
		d, err := ParseDescriptor(text)
		if err != nil {
			return
		}
		for _, e := range d.Extents {
			if e.Sectors == 0 || e.Type != "ZERO" && checkName(e.File) != nil {
				t.Fatalf("accepted extent %+v", e)
			}
			if name := strings.ReplaceAll(e.File, `\`, "/"); e.Type != "ZERO" && !filepath.IsLocal(filepath.FromSlash(name)) {
				t.Fatalf("accepted extent file %q, not local", e.File)
			}
		}
		again, err := ParseDescriptor([]byte(d.String()))
		if err != nil {
			t.Fatalf("rendered descriptor does not parse: %v\n%s", err, d)
		}
		if !reflect.DeepEqual(again, d) {
			t.Fatalf("parsed %+v, rendered and parsed again %+v", d, again)
		}
	})
}

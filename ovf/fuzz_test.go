package ovf

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/xva-tools/xva/internal/fuzzutil"
)

func deepEqual(a, b any) bool { return reflect.DeepEqual(a, b) }

// descBound is how much Parse may allocate for a document: the tree is
// a bounded multiple of the input, as for ova's XML.
func descBound(doc []byte) uint64 { return 1<<20 + 512*uint64(len(doc)) }

// checkRoundTrip holds the writer to its promise for a descriptor Parse
// gave: Marshal accepts it in both versions, every href is local and
// every capacity within MaxCapacity, Parse of the output is the
// descriptor with Marshal's defaults filled in (Version and Dropped
// aside), and a second round is byte for byte the same document. The
// exception: Marshal refuses a document over MaxDescriptorSize.
func checkRoundTrip(t *testing.T, d *Descriptor) {
	t.Helper()
	for _, f := range d.Files {
		if h, err := cleanHref(f.Href); err != nil || h != f.Href {
			t.Fatalf("accepted href %q is not a plain local name", f.Href)
		}
	}
	for _, k := range d.Disks {
		if k.Capacity < 0 || k.Capacity > MaxCapacity {
			t.Fatalf("accepted capacity %d", k.Capacity)
		}
	}
	for _, v := range []string{"1.0", "2.0"} {
		out, err := d.Marshal(WriteOptions{Version: v})
		if errors.Is(err, errTooLarge) {
			continue // the one refusal allowed: Parse would refuse the output
		}
		if err != nil {
			t.Fatalf("accepted descriptor does not marshal as %s: %v\n%+v", v, err, d)
		}
		got, err := Parse(out)
		if err != nil {
			t.Fatalf("written %s document does not parse: %v\n%s", v, err, out)
		}
		if want := filled(d, got); !reflect.DeepEqual(got, want) {
			t.Fatalf("round trip as %s changed the descriptor:\n got %+v\nwant %+v\n%s", v, got, want, out)
		}
		again, err := got.Marshal(WriteOptions{Version: v})
		if err != nil || !bytes.Equal(out, again) {
			t.Fatalf("written %s document is not a fixed point (%v):\n%s\n%s", v, err, out, again)
		}
	}
}

// seeds are the documents of testdata and what Marshal writes of the
// samples.
func seeds(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.ovf")
	for _, name := range files {
		if b, err := os.ReadFile(name); err == nil {
			f.Add(b)
		}
	}
	for _, d := range samples() {
		for _, v := range []string{"1.0", "2.0"} {
			if b, err := d.Marshal(WriteOptions{Version: v}); err == nil {
				f.Add(b)
			}
		}
	}
	f.Add(envelope(oneDisk, hardware(item("17", `<rasd:HostResource>/disk/d1</rasd:HostResource><rasd:Connection>x,device=2</rasd:Connection>`))))
}

// FuzzParse: Parse never panics and allocates in proportion to its
// input; what it accepts round-trips through Marshal (checkRoundTrip).
func FuzzParse(f *testing.F) {
	seeds(f)
	f.Fuzz(func(t *testing.T, doc []byte) {
		var d *Descriptor
		var err error
		fuzzutil.Bounded(t, descBound(doc), func() { d, err = Parse(doc) })
		if err != nil {
			if !strings.HasPrefix(err.Error(), "ovf: ") {
				t.Fatalf("error without the package prefix: %v", err)
			}
			return
		}
		checkRoundTrip(t, d)
	})
}

// FuzzParseManifest: what ParseManifest accepts marshals and parses
// back to the same entries.
func FuzzParseManifest(f *testing.F) {
	f.Add([]byte("SHA1(input.ovf)= 2c56f8290e1c39d8e6e1e9b1a2a4b5c6d7e8f901\n"))
	f.Add([]byte("SHA256(a (32-bit).vmdk)=  " + strings.Repeat("ab", 32) + "\r\n\r\nsha512(x)=" + strings.Repeat("0", 128)))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseManifest(data)
		if err != nil {
			return
		}
		out := m.Marshal()
		m2, err := ParseManifest(out)
		if err != nil {
			t.Fatalf("marshalled manifest does not parse: %v\n%q", err, out)
		}
		if len(m.Entries) != len(m2.Entries) || (len(m.Entries) > 0 && !reflect.DeepEqual(m, m2)) {
			t.Fatalf("manifest changed across a round trip:\n%+v\n%+v", m, m2)
		}
		if again := m2.Marshal(); !bytes.Equal(out, again) {
			t.Fatalf("not a fixed point:\n%q\n%q", out, again)
		}
	})
}

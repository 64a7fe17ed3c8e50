package ova

import (
	"bytes"
	"reflect"
	"testing"

	"github.com/xva-tools/xva/internal/fuzzutil"
)

// The seed corpora live in testdata/fuzz/<target>: the shared samples and
// what our own writers produce (see internal/cmd/fuzzseed).

// FuzzParseLegacy checks that any legacy ova.xml we accept holds at most
// MaxNodes elements and attributes, cost allocation proportional to its
// size, re-emits as a document that parses to the same model, and that the
// emitted form is a fixed point.
func FuzzParseLegacy(f *testing.F) {
	f.Add([]byte(`<appliance version="0.1"><vm name="vm"><label>x</label><config mem_set="1" vcpus="1"/>` +
		`<vbd device="sda" function="root" mode="w" vdi="v"/></vm><vdi name="v" size="5" source="file://sda" type="dir-gzipped-chunks"/></appliance>`))
	f.Fuzz(func(t *testing.T, doc []byte) {
		var a *Appliance
		var err error
		fuzzutil.Bounded(t, xmlBound(doc), func() { a, err = ParseLegacy(doc) })
		if err != nil {
			return
		}
		checkNodes(t, doc)
		out, err := a.MarshalLegacy()
		if err != nil {
			t.Fatalf("accepted model does not marshal: %v", err)
		}
		b, err := ParseLegacy(out)
		if err != nil {
			t.Fatalf("re-emitted document does not parse: %v\n%s", err, out)
		}
		for i := range a.VDIs {
			a.VDIs[i].Type = TypeGzippedChunks // the writer always spells it so
		}
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("model changed across a round trip:\n%+v\n%+v", a, b)
		}
		again, err := b.MarshalLegacy()
		if err != nil || !bytes.Equal(out, again) {
			t.Fatalf("emitted form is not a fixed point (%v):\n%s\n%s", err, out, again)
		}
	})
}

// FuzzParseExport checks that any XML-RPC ova.xml we accept holds at most
// MaxNodes elements and attributes, re-emits as a document with the same
// value tree, and that the views the unpacker uses
// (VM, disks, interfaces) never panic.
func FuzzParseExport(f *testing.F) {
	f.Add([]byte(`<value><struct><member><name>version</name><value><struct/></value></member>` +
		`<member><name>objects</name><value><array><data/></array></value></member></struct></value>`))
	f.Fuzz(func(t *testing.T, doc []byte) {
		var e *Export
		var err error
		fuzzutil.Bounded(t, xmlBound(doc), func() { e, err = ParseExport(doc) })
		if err != nil {
			return
		}
		checkNodes(t, doc)
		out := e.Marshal()
		e2, err := ParseExport(out)
		if err != nil {
			t.Fatalf("re-emitted document does not parse: %v\n%s", err, out)
		}
		if !reflect.DeepEqual(e.Root, e2.Root) {
			t.Fatalf("value tree changed across a round trip:\n%s\n%s", doc, out)
		}
		if again := e2.Marshal(); !bytes.Equal(out, again) {
			t.Fatalf("emitted form is not a fixed point:\n%s\n%s", out, again)
		}
		e.ExportVersion()
		e.VM()
		if vm, err := e.VMObject(); err == nil {
			e.Disks(vm)
			e.Interfaces(vm)
		}
		checkConverts(t, e)
	})
}

// checkNodes requires an accepted document to hold at most MaxNodes
// elements and attributes.
func checkNodes(t *testing.T, doc []byte) {
	if n := countXMLNodes(doc); n > MaxNodes {
		t.Fatalf("accepted %d elements and attributes, more than the %d allowed", n, MaxNodes)
	}
}

// xmlBound is the allocation a parse of doc may make: tree building costs
// a few hundred bytes per input byte at most.
func xmlBound(doc []byte) uint64 { return 1<<20 + 512*uint64(len(doc)) }

// checkConverts requires that an export the legacy writer accepts
// converts back to an export that parses.
func checkConverts(t *testing.T, e *Export) {
	a, err := e.ToAppliance()
	if err != nil {
		return
	}
	if _, err := a.MarshalLegacy(); err != nil {
		return
	}
	back, err := FromAppliance(a, "")
	if err != nil {
		return
	}
	if _, err := ParseExport(back.Marshal()); err != nil {
		t.Fatalf("converted export does not parse: %v", err)
	}
}

package ova

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/xva-tools/xva/internal/fuzzutil"
)

// countXMLNodes counts the elements and attributes of doc, as the budget
// does.
func countXMLNodes(doc []byte) int {
	d := xml.NewDecoder(bytes.NewReader(doc))
	n := 0
	for {
		tok, err := d.RawToken()
		if err != nil {
			return n
		}
		if t, ok := tok.(xml.StartElement); ok {
			n += 1 + len(t.Attr)
		}
	}
}

// fill repeats unit until the document is about MaxDocSize bytes.
func fill(head, unit, tail string) []byte {
	n := (MaxDocSize - len(head) - len(tail)) / len(unit)
	return []byte(head + strings.Repeat(unit, n) + tail)
}

// TestNodeBudget: 32 MiB of tiny elements, of attributes or of XML-RPC
// values is refused before any tree is built, with allocation bounded by
// the budget, not by the document.
func TestNodeBudget(t *testing.T) {
	for name, doc := range map[string][]byte{
		"elements":   fill(`<appliance version="0.1">`, "<a/>", "</appliance>"),
		"attributes": fill(`<appliance version="0.1"><vm `, `a="" `, "/></appliance>"),
		"values":     fill("<value><array><data>", "<value/>", "</data></array></value>"),
	} {
		var err error
		fuzzutil.Bounded(t, 256<<20, func() {
			if name == "values" {
				_, err = ParseExport(doc)
			} else {
				_, err = ParseLegacy(doc)
			}
		})
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("more than %d elements and attributes", MaxNodes)) {
			t.Fatalf("%s: %v", name, err)
		}
	}
	// Within the budget, a document is read.
	doc := []byte("<value><array><data>" + strings.Repeat("<value/>", MaxNodes-3) + "</data></array></value>")
	v, err := ParseValue(doc)
	if err != nil || len(v.Items) != MaxNodes-3 || countXMLNodes(doc) != MaxNodes {
		t.Fatalf("%d nodes: %v", countXMLNodes(doc), err)
	}
}

// TestManyDisksRefusedFast: counts are checked before cross references are
// resolved, and references are resolved by index, so a document with tens
// of thousands of VBDs and VDIs is refused in linear time.
func TestManyDisksRefusedFast(t *testing.T) {
	const n = 20000
	var legacy strings.Builder
	legacy.WriteString(`<appliance version="0.1"><vm name="vm"><label>x</label><config mem_set="1" vcpus="1"/>`)
	for i := range n {
		fmt.Fprintf(&legacy, `<vbd device="d%d" function="user" mode="w" vdi="v%d"/>`, i, i)
	}
	legacy.WriteString(`</vm>`)
	for i := range n {
		fmt.Fprintf(&legacy, `<vdi name="v%d" size="1" source="file://d%d"/>`, i, i)
	}
	legacy.WriteString(`</appliance>`)
	start := time.Now()
	if _, err := ParseLegacy([]byte(legacy.String())); err == nil || !strings.Contains(err.Error(), "more than the 256") {
		t.Fatalf("legacy: %v", err)
	}
	e := manyVBDs(n / 2) // the node budget allows no more
	vm, err := e.VMObject()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Disks(vm); err == nil || !strings.Contains(err.Error(), "more than the 256") {
		t.Fatalf("xapi: %v", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("took %v", took)
	}
}

// manyVBDs is an export whose VM has n VBDs, each with a VDI.
func manyVBDs(n int) *Export {
	var b strings.Builder
	WriteManyVBDs(&b, n)
	e, err := ParseExport([]byte(b.String()))
	if err != nil {
		panic(err)
	}
	return e
}

// TestObjectIndex: Object finds by index, and still finds objects added to
// an Export after parsing.
func TestObjectIndex(t *testing.T) {
	e := manyVBDs(3)
	if o := e.Object("VDI:2"); o == nil || o.Class != "VDI" || e.Object("nothing") != nil {
		t.Fatalf("%v", o)
	}
	e.Objects = append(e.Objects, &Object{Class: "SR", ID: "SR:1", Snapshot: NewStruct()})
	if o := e.Object("SR:1"); o == nil || o.Class != "SR" {
		t.Fatalf("%v", o)
	}
}

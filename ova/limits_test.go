package ova

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"strings"
	"testing"

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

package ova

import (
	"fmt"
	"io"
)

// WriteManyVBDs writes an xapi ova.xml whose VM has n VBDs, each with a
// VDI of one byte: a hostile document for tests of the disk limits.
func WriteManyVBDs(w io.Writer, n int) {
	member := func(name, value string) string {
		return "<member><name>" + name + "</name><value>" + value + "</value></member>"
	}
	object := func(class, id, fields string) {
		fmt.Fprintf(w, "<value><struct>%s%s%s</struct></value>", member("class", class), member("id", id),
			member("snapshot", "<struct>"+fields+"</struct>"))
	}
	fmt.Fprintf(w, "<value><struct>%s<member><name>objects</name><value><array><data>",
		member("version", "<struct>"+member("export_vsn", "2")+"</struct>"))
	object("VM", "VM:0", member("memory_static_max", "1")+member("VCPUs_max", "1"))
	for i := range n {
		object("VBD", fmt.Sprintf("VBD:%d", i), member("VM", "VM:0")+member("VDI", fmt.Sprintf("VDI:%d", i)))
		object("VDI", fmt.Sprintf("VDI:%d", i), member("virtual_size", "1"))
	}
	fmt.Fprint(w, "</data></array></value></member></struct></value>")
}

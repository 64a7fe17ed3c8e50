package ova

import (
	"os"
	"reflect"
	"strings"
	"testing"
)

func TestParseRBuilderSample(t *testing.T) {
	b, err := os.ReadFile("../../shared/samples/rbuilder-legacy-ova-filled.xml")
	if err != nil {
		t.Skipf("shared samples not available: %v", err)
	}
	a, err := ParseLegacy(b)
	if err != nil {
		t.Fatal(err)
	}
	want := &Appliance{
		VMs: []VM{{
			Label:         "Foo Bar",
			Description:   "Created by rPath rBuilder",
			Memory:        0,
			VCPUs:         1,
			HVM:           false,
			KernelCmdline: "root=/dev/xvda1 ro ",
			VBDs:          []VBD{{Device: "xvda", Function: "root", VDI: "vdi_xvda"}},
		}},
		VDIs: []VDI{{Name: "vdi_xvda", Size: 1500000000, Source: "file://xvda", Type: TypeGzippedChunks, Variety: "system"}},
	}
	if !reflect.DeepEqual(a, want) {
		t.Fatalf("parsed\n%+v\nwant\n%+v", a, want)
	}
	roundTrip(t, a)
}

func roundTrip(t *testing.T, a *Appliance) {
	t.Helper()
	out, err := a.MarshalLegacy()
	if err != nil {
		t.Fatal(err)
	}
	b, err := ParseLegacy(out)
	if err != nil {
		t.Fatalf("re-parsing our own output: %v\n%s", err, out)
	}
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("emit → parse changed the model:\n%+v\n%+v\n%s", a, b, out)
	}
}

func TestLenientReading(t *testing.T) {
	doc := `<appliance version="0.1">
  <vm name="x">
    <label>
       web server
    </label>
    <shortdesc>  a VM </shortdesc>
    <config mem_set="536870912" vcpus="2" distrib="windows" distrib_version="win2k"/>
    <vbd device="sda" function="root" mode="rw" vdi="a"/>
    <vbd device="sdb" function="user" mode="ro" vdi="b"/>
  </vm>
  <vdi name="a" size="1024" source="file://sda" type="dir-gzippedchunks"/>
  <vdi name="b" size="0" source="file://sdb" type="dir-gzipped-chunks"/>
</appliance>`
	a, err := ParseLegacy([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	vm := a.VMs[0]
	if vm.Label != "web server" || vm.Description != "a VM" {
		t.Errorf("label %q, description %q: whitespace not trimmed", vm.Label, vm.Description)
	}
	if !vm.HVM {
		t.Error("missing <hacks> must default to is_hvm=true as xapi does")
	}
	if vm.VBDs[0].ReadOnly || !vm.VBDs[1].ReadOnly {
		t.Errorf("modes parsed as %+v", vm.VBDs)
	}
	if a.VDIs[0].Variety != "system" || a.VDIs[1].Variety != "user" {
		t.Errorf("default varieties %q, %q", a.VDIs[0].Variety, a.VDIs[1].Variety)
	}
	if a.VDIs[0].Type != TypeGzippedChunks {
		t.Errorf("misspelt type not normalised: %q", a.VDIs[0].Type)
	}
	roundTrip(t, a)

	out, _ := a.MarshalLegacy()
	s := string(out)
	for _, want := range []string{`<hacks is_hvm="true" kernel_boot_cmdline=""/>`, `mode="w"`, `mode="r"`,
		`type="dir-gzipped-chunks" variety="system"`, `distrib="windows"`, `<?xml version="1.0"?>`} {
		if !strings.Contains(s, want) {
			t.Errorf("strict output lacks %s:\n%s", want, s)
		}
	}
	if strings.Contains(s, `"rw"`) || strings.Contains(s, `"ro"`) || strings.Contains(s, "gzippedchunks") {
		t.Errorf("strict output kept a lenient spelling:\n%s", s)
	}
}

func TestLegacyErrors(t *testing.T) {
	const vbd = `<vbd device="sda" function="root" mode="w" vdi="a"/>`
	const vdi = `<vdi name="a" size="10" source="file://sda" type="dir-gzipped-chunks" variety="system"/>`
	doc := func(version, config, vbd, vdis string) string {
		return `<appliance version="` + version + `"><vm><label>x</label><shortdesc/>` + config +
			`<hacks/>` + vbd + `</vm>` + vdis + `</appliance>`
	}
	const config = `<config mem_set="1" vcpus="1"/>`
	cases := []struct{ name, doc, want string }{
		{"good", doc("0.1", config, vbd, vdi), ""},
		{"version", doc("0.2", config, vbd, vdi), "version"},
		{"not appliance", `<value/>`, "appliance"},
		{"malformed xml", `<appliance version="0.1"><vm>`, "parsing"},
		{"no vm", `<appliance version="0.1"/>`, "no <vm>"},
		{"no config", doc("0.1", "", vbd, vdi), "config"},
		{"bad memory", doc("0.1", `<config mem_set="lots" vcpus="1"/>`, vbd, vdi), "mem_set"},
		{"bad mode", doc("0.1", config, strings.Replace(vbd, `"w"`, `"x"`, 1), vdi), "mode"},
		{"vbd without vdi", doc("0.1", config, `<vbd device="sda" function="root" mode="w"/>`, vdi), `"vdi"`},
		{"dangling vdi", doc("0.1", config, strings.Replace(vbd, `vdi="a"`, `vdi="zz"`, 1), vdi), "not defined"},
		{"no size", doc("0.1", config, vbd, strings.Replace(vdi, `size="10" `, ``, 1)), `"size"`},
		{"bad size", doc("0.1", config, vbd, strings.Replace(vdi, `"10"`, `"ten"`, 1)), "integer"},
		{"negative size", doc("0.1", config, vbd, strings.Replace(vdi, `"10"`, `"-1"`, 1)), "negative"},
		{"no source", doc("0.1", config, vbd, strings.Replace(vdi, `source="file://sda" `, ``, 1)), `"source"`},
		{"bad type", doc("0.1", config, vbd, strings.Replace(vdi, `dir-gzipped-chunks`, `vhd`, 1)), "type"},
		{"bad variety", doc("0.1", config, vbd, strings.Replace(vdi, `system`, `bogus`, 1)), "variety"},
		{"duplicate vdi", doc("0.1", config, vbd, vdi+vdi), "two vdis"},
	}
	for _, c := range cases {
		_, err := ParseLegacy([]byte(c.doc))
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.want != "" && err == nil:
			t.Errorf("%s: accepted\n%s", c.name, c.doc)
		case c.want != "" && !strings.Contains(err.Error(), c.want):
			t.Errorf("%s: error %q does not mention %s", c.name, err, c.want)
		}
	}
}

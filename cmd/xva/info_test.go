package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xva-tools/xva/fixtures"
)

// info works on an archive directory and on a VM directory, and so does
// --json, against its schema.
func TestInfoOnDirectories(t *testing.T) {
	dir, _ := setupSectors(t)
	mustRun(t, dir, nil, "pack", "--format", "legacy", "--disk", "sda=sda.img", "--disk", "sdb=sdb.img", "arch/")
	mustRun(t, dir, nil, "pack", "--disk", "sda=sda.img", "--disk", "sdb=sdb.img", "a.xva")
	mustRun(t, dir, nil, "unpack", "a.xva", "vm")
	for _, c := range []struct{ path, says string }{
		{"arch", "(directory, legacy format)"},
		{"vm", "(vm directory, xapi format)"},
		{"vm/", "vm/sdb.raw"},
	} {
		out := mustRun(t, dir, nil, "info", c.path)
		if !strings.Contains(out, c.says) || !strings.Contains(out, "sdb") {
			t.Errorf("info %s:\n%s", c.path, out)
		}
		checkDoc(t, "info", mustRun(t, dir, nil, "info", "--json", c.path))
	}
}

// Every --json document matches its schema on an archive without disks and
// on one with many.
func TestJSONWithoutAndWithManyDisks(t *testing.T) {
	dir, _ := setupSectors(t)
	hostileTar(t, filepath.Join(dir, "nodisk.xva"), [][2]string{{"ova.xml",
		`<?xml version="1.0"?><appliance version="0.1"><vm name="vm"><label>empty</label>` +
			`<config mem_set="268435456" vcpus="1"/></vm></appliance>`}})
	var disks []string
	for i := range 12 {
		dev := fmt.Sprintf("xvd%c", 'a'+i)
		img := filepath.Join(dir, dev+".img")
		if _, err := (fixtures.Disk{Size: 64 << 10, Seed: uint64(i + 10)}).Write(img); err != nil {
			t.Fatal(err)
		}
		disks = append(disks, "--disk", dev+"="+img)
	}
	mustRun(t, dir, nil, append(append([]string{"pack"}, disks...), "many.xva")...)
	for _, a := range []string{"nodisk.xva", "many.xva"} {
		info := mustRun(t, dir, nil, "info", "--json", a)
		checkDoc(t, "info", info)
		if strings.Contains(info, "null") {
			t.Errorf("info --json %s has a null:\n%s", a, info)
		}
		checkDoc(t, "verify", mustRun(t, dir, nil, "verify", "--json", a))
		checkDoc(t, "unpack", mustRun(t, dir, nil, "unpack", "--json", a, "out-"+a))
		checkDoc(t, "pack", mustRun(t, dir, nil, "convert", "--json", "--format", "legacy", a, "legacy-"+a))
		checkDoc(t, "pack", mustRun(t, dir, nil, "pack", "--json", "out-"+a, "re-"+a))
	}
	if out := mustRun(t, dir, nil, "info", "many.xva"); strings.Count(out, "\nxvd") != 12 {
		t.Errorf("info of 12 disks:\n%s", out)
	}
}

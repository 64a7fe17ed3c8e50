package xva

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/xva-tools/xva/disk"
	"github.com/xva-tools/xva/qcow2"
	"github.com/xva-tools/xva/vhd"
	"github.com/xva-tools/xva/vhdx"
	"github.com/xva-tools/xva/vmdk"
)

// TestFormatTableIsConsistent holds every row, today's and the next
// format's, to what the code that reads the table assumes.
func TestFormatTableIsConsistent(t *testing.T) {
	var names []string
	fallbacks := 0
	for _, f := range imageFormats {
		if f.name == "" || f.ext == "" || f.ext[0] != '.' || f.help == "" {
			t.Errorf("row %q: name, extension (with its dot) and help are required", f.name)
		}
		if slices.Contains(names, f.name) {
			t.Errorf("two rows named %q", f.name)
		}
		names = append(names, f.name)
		if f.open == nil && f.create == nil {
			t.Errorf("row %q neither reads nor writes", f.name)
		}
		if f.open != nil && f.openOn == nil {
			t.Errorf("row %q reads files but not media", f.name)
		}
		if f.open != nil && f.variantOf == "" && f.detect == nil {
			fallbacks++
		}
		if f.variantOf != "" {
			i := slices.IndexFunc(imageFormats, func(g imageFormat) bool { return g.name == f.variantOf })
			if i < 0 || imageFormats[i].open == nil {
				t.Errorf("row %q is read as %q, which does not read", f.name, f.variantOf)
			}
			if f.ext != imageFormats[max(i, 0)].ext {
				t.Errorf("row %q has another extension than %q, which reads it", f.name, f.variantOf)
			}
		}
	}
	if fallbacks != 1 || imageFormats[0].name != "raw" || imageFormats[0].detect != nil {
		t.Errorf("want one fallback of detection, raw, first (the default); have %d", fallbacks)
	}
	if got := DiskFormatNames(); got != "raw, vhd, vhd-fixed, vmdk, vmdk-stream, qcow2, vhdx or vhdx-fixed" {
		t.Errorf("DiskFormatNames = %q", got)
	}
	if got := imageExts(); !slices.Equal(got, []string{".raw", ".vhd", ".vmdk", ".qcow2", ".vhdx"}) {
		t.Errorf("imageExts = %q", got)
	}
	for _, name := range []string{"", "raw", "vhd", "vhd-fixed", "vmdk", "vmdk-stream", "qcow2", "vhdx", "vhdx-fixed"} {
		if _, ok := formatNamed(name); !ok {
			t.Errorf("formatNamed(%q) fails", name)
		}
	}
	if _, ok := formatNamed("qcow"); ok {
		t.Error("formatNamed accepts qcow")
	}
}

// TestDetectionByContent: a VHD or VHDX of either kind is read as one
// whatever its name; anything else is raw.
func TestDetectionByContent(t *testing.T) {
	dir := t.TempDir()
	data := bytes.Repeat([]byte("xva!"), 1<<10)
	for _, c := range []struct {
		name, format string
		create       func(string, int64) (disk.Sink, error)
	}{
		{"dynamic.img", "vhd", func(p string, n int64) (disk.Sink, error) { return asSink(vhd.Create(p, n)) }},
		{"fixed.raw", "vhd", func(p string, n int64) (disk.Sink, error) { return asSink(vhd.CreateFixed(p, n)) }},
		{"dynamic-x.vhd", "vhdx", func(p string, n int64) (disk.Sink, error) { return asSink(vhdx.Create(p, n)) }},
		{"fixed-x.img", "vhdx", func(p string, n int64) (disk.Sink, error) { return asSink(vhdx.CreateFixed(p, n)) }},
	} {
		p := filepath.Join(dir, c.name)
		s, err := c.create(p, int64(len(data)))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.WriteAt(data, 0); err != nil {
			t.Fatal(err)
		}
		if err := s.Commit(); err != nil {
			t.Fatal(err)
		}
		if f, err := fileFormat(p); err != nil || f.name != c.format {
			t.Fatalf("%s: detected as %v (%v)", c.name, f, err)
		}
		src, err := openSource(p)
		if err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(data))
		_, err = src.ReadAt(got, 0)
		src.Close()
		if err != nil || src.Size() != int64(len(data)) || !bytes.Equal(got, data) {
			t.Fatalf("%s: read back %d bytes of %d, equal %v (%v)", c.name, src.Size(), len(data), bytes.Equal(got, data), err)
		}
		if !IsImage(p) {
			t.Errorf("%s: IsImage false", c.name)
		}
		if info, err := InspectImage(context.Background(), p); err != nil || info.Format != c.format {
			t.Errorf("%s: InspectImage %+v, %v", c.name, info, err)
		}
	}
	// A qcow2 named as anything.
	p := filepath.Join(dir, "disk.img")
	s, err := qcow2.Create(p, int64(len(data)))
	if err == nil {
		_, err = s.WriteAt(data, 0)
	}
	if err == nil {
		err = s.Commit()
	}
	if err != nil {
		t.Fatal(err)
	}
	if f, err := fileFormat(p); err != nil || f.name != "qcow2" {
		t.Fatalf("a qcow2 named .img: detected as %v (%v)", f, err)
	}
	if info, err := InspectImage(context.Background(), p); err != nil || info.Format != "qcow2" || info.Size != int64(len(data)) || info.AllocatedBytes != int64(len(data)) {
		t.Errorf("InspectImage of a qcow2: %+v, %v", info, err)
	}
	// A VHDX of a disk whose last sector is a VHD footer (a fixed VHD
	// copied onto a disk) is a VHDX.
	guest := make([]byte, 32<<20)
	copy(guest[len(guest)-512:], "conectix")
	p = filepath.Join(dir, "footer-inside.vhdx")
	xs, err := vhdx.Create(p, int64(len(guest)))
	if err != nil {
		t.Fatal(err)
	}
	xs.WriteAt(guest, 0)
	if err := xs.Commit(); err != nil {
		t.Fatal(err)
	}
	if f, err := fileFormat(p); err != nil || f.name != "vhdx" {
		t.Fatalf("a VHDX ending in a VHD footer: detected as %v (%v)", f, err)
	}
	p = filepath.Join(dir, "disk.vhd")
	os.WriteFile(p, data, 0o600)
	if f, err := fileFormat(p); err != nil || f.name != "raw" {
		t.Fatalf("raw bytes named .vhd: detected as %v (%v)", f, err)
	}
	if IsImage(p) {
		t.Error("raw bytes taken for a describable image")
	}
}

// A VHD is recognised by a footer in the last sector, which the disk in a
// VMDK can end with: the formats with a signature at their start are tried
// first, so the VMDK is a VMDK.
func TestSignaturesAtTheStartComeFirst(t *testing.T) {
	dir := t.TempDir()
	fixed := filepath.Join(dir, "f.vhd")
	s, err := vhd.CreateFixed(fixed, 4096)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(fixed)
	footer := b[len(b)-512:]
	guest := make([]byte, 1<<20)
	copy(guest[len(guest)-512:], footer)
	p := filepath.Join(dir, "d.vmdk")
	ms, err := vmdk.Create(p, int64(len(guest)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ms.WriteAt(guest, 0); err != nil {
		t.Fatal(err)
	}
	if err := ms.Commit(); err != nil {
		t.Fatal(err)
	}
	if raw, _ := os.ReadFile(p); !bytes.Equal(raw[len(raw)-512:], footer) {
		t.Fatal("the VMDK does not end with the guest's last sector; the test proves nothing")
	}
	if f, err := fileFormat(p); err != nil || f.name != "vmdk" {
		t.Fatalf("a VMDK ending in a VHD footer: detected as %v (%v)", f, err)
	}
}

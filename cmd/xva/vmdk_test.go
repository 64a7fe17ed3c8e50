package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// VMDKs through the command line: unpack writes DEVICE.vmdk in either
// subformat, which qemu-img checks clean and finds equal to the disk; info
// describes it; pack reads it, from --disk and from a VM directory; a
// damaged one, or a descriptor reaching out of its directory, is an
// integrity failure that leaves nothing behind.
func TestVMDKThroughTheCLI(t *testing.T) {
	dir, sums := setup(t)
	_, noQemu := exec.LookPath("qemu-img")
	mustRun(t, dir, nil, "pack", "--format", "legacy", "--disk", "sda=sda.img", "--disk", "sdb=sdb.img", "a.xva")
	for format, createType := range map[string]string{"vmdk": "monolithicSparse", "vmdk-stream": "streamOptimized"} {
		out := "out-" + format
		mustRun(t, dir, nil, "unpack", "--disk-format", format, "a.xva", out)
		for dev := range sums {
			img := filepath.Join(dir, out, dev+".vmdk")
			orig, _ := os.ReadFile(filepath.Join(dir, dev+".img"))
			padded := int64(len(orig)+511) / 512 * 512
			var info struct {
				Format    string `json:"format"`
				Type      string `json:"type"`
				Size      int64  `json:"size_bytes"`
				Grain     int64  `json:"block_size"`
				Allocated int64  `json:"allocated_bytes"`
			}
			js := mustRun(t, dir, nil, "info", "--json", img)
			checkDoc(t, "info", js)
			if err := json.Unmarshal([]byte(js), &info); err != nil || info.Format != "vmdk" || info.Type != createType ||
				info.Size != padded || info.Grain != 64<<10 || info.Allocated == 0 || info.Allocated > padded+64<<10 {
				t.Fatalf("info --json %s: %s (%v)", img, js, err)
			}
			if text := mustRun(t, dir, nil, "info", img); !strings.Contains(text, createType+" vmdk") || !strings.Contains(text, "64 KiB") {
				t.Fatalf("info %s:\n%s", img, text)
			}
			if noQemu == nil {
				for _, args := range [][]string{{"check", img}, {"compare", "-f", "vmdk", "-F", "raw", img, filepath.Join(dir, dev+".img")}} {
					if b, err := exec.Command("qemu-img", args...).CombinedOutput(); err != nil {
						t.Fatalf("qemu-img %v: %v\n%s", args, err, b)
					}
				}
			}
		}
		// Pack them again, from --disk flags and as a VM directory.
		mustRun(t, dir, nil, "pack", "--format", "legacy", "--disk", "sda="+out+"/sda.vmdk", "--disk", "sdb="+out+"/sdb.vmdk", format+"-flags.xva")
		mustRun(t, dir, nil, "pack", out, format+"-dir.xva")
		for _, a := range []string{format + "-flags.xva", format + "-dir.xva"} {
			mustRun(t, dir, nil, "unpack", a, "back-"+a)
			for dev := range sums {
				orig, _ := os.ReadFile(filepath.Join(dir, dev+".img"))
				got, _ := os.ReadFile(filepath.Join(dir, "back-"+a, dev+".raw"))
				if len(got) < len(orig) || !bytes.Equal(got[:len(orig)], orig) || !bytes.Equal(got[len(orig):], make([]byte, len(got)-len(orig))) {
					t.Fatalf("%s: %s packed from a VMDK reads back differently", a, dev)
				}
			}
		}
	}
	if noQemu != nil {
		t.Log("qemu-img not installed: its checks are skipped")
	} else {
		// qemu-img's descriptor-and-extents subformats pack as the disk.
		for _, sub := range []string{"monolithicFlat", "twoGbMaxExtentSparse"} {
			os.Mkdir(filepath.Join(dir, sub), 0o755)
			img := filepath.Join(sub, "disk.vmdk")
			if b, err := exec.Command("qemu-img", "convert", "-f", "raw", "-O", "vmdk", "-o", "subformat="+sub, filepath.Join(dir, "sdb.img"), filepath.Join(dir, img)).CombinedOutput(); err != nil {
				t.Fatalf("qemu-img convert: %v\n%s", err, b)
			}
			if text := mustRun(t, dir, nil, "info", img); !strings.Contains(text, sub+" vmdk") {
				t.Fatalf("info %s:\n%s", img, text)
			}
			mustRun(t, dir, nil, "pack", "--format", "legacy", "--disk", "sda="+img, sub+".xva")
			mustRun(t, dir, nil, "unpack", sub+".xva", "back-"+sub)
			orig, _ := os.ReadFile(filepath.Join(dir, "sdb.img"))
			if got, _ := os.ReadFile(filepath.Join(dir, "back-"+sub, "sda.raw")); !bytes.Equal(got, orig) {
				t.Fatalf("%s packed from qemu-img's %s reads back differently", sub, img)
			}
		}
	}

	// A grain table entry pointing past the end of the file.
	img := filepath.Join(dir, "out-vmdk", "sdb.vmdk")
	b, _ := os.ReadFile(img)
	gd := binary.LittleEndian.Uint64(b[56:])
	gt := binary.LittleEndian.Uint32(b[gd*512:])
	binary.LittleEndian.PutUint32(b[gt*512:], 1<<30)
	os.WriteFile(img, b, 0o644)
	// A descriptor naming a file outside its directory.
	evil := "# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\ncreateType=\"monolithicFlat\"\nRW 8 FLAT \"../../etc/passwd\" 0\n"
	os.WriteFile(filepath.Join(dir, "evil.vmdk"), []byte(evil), 0o644)
	for _, c := range []struct{ path, want string }{{"out-vmdk/sdb.vmdk", "past the end of the file"}, {"evil.vmdk", "reaches out"}} {
		for _, args := range [][]string{{"info", c.path}, {"pack", "--disk", "sda=" + c.path, "bad.xva"}} {
			r := run(t, dir, nil, args...)
			if r.code != exitCorrupt || !strings.Contains(r.stderr, c.want) || !strings.Contains(r.stderr, c.path) {
				t.Fatalf("xva %v: exit %d, want 3 naming the image and %q\n%s", args, r.code, c.want, r.stderr)
			}
		}
		if _, err := os.Stat(filepath.Join(dir, "bad.xva")); err == nil {
			t.Fatal("a failed pack left its output")
		}
	}
	// A compressed grain whose bytes are damaged is found when pack reads
	// it: an integrity failure too.
	stream := filepath.Join(dir, "out-vmdk-stream", "sdb.vmdk")
	b, _ = os.ReadFile(stream)
	b[64<<10+12+40] ^= 0xff // inside the first grain's zlib data
	os.WriteFile(stream, b, 0o644)
	r := run(t, dir, nil, "pack", "--disk", "sda=out-vmdk-stream/sdb.vmdk", "bad.xva")
	if r.code != exitCorrupt || !strings.Contains(r.stderr, "compressed grain at byte 65536") {
		t.Fatalf("pack of a damaged grain: exit %d\n%s", r.code, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "bad.xva")); err == nil {
		t.Fatal("a failed pack left its output")
	}
}

package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// unpack --disk-format vhdx and vhdx-fixed write DEVICE.vhdx that qemu-img
// checks clean and finds equal to the disk; info describes them; pack
// reads them back, from --disk flags and as a VM directory.
func TestVHDXThroughTheBinary(t *testing.T) {
	dir, sums := setupSectors(t)
	_, qemuErr := exec.LookPath("qemu-img")
	mustRun(t, dir, nil, "pack", "--disk", "sda=sda.img", "--disk", "sdb=sdb.img", "a.xva")
	for format, typ := range map[string]string{"vhdx": "dynamic", "vhdx-fixed": "fixed"} {
		mustRun(t, dir, nil, "unpack", "--disk-format", format, "a.xva", format)
		for dev := range sums {
			img := filepath.Join(dir, format, dev+".vhdx")
			if qemuErr == nil {
				if out, err := exec.Command("qemu-img", "check", "-f", "vhdx", img).CombinedOutput(); err != nil {
					t.Fatalf("qemu-img check %s: %v\n%s", img, err, out)
				}
				if out, err := exec.Command("qemu-img", "compare", "-f", "vhdx", "-F", "raw", img, filepath.Join(dir, dev+".img")).CombinedOutput(); err != nil {
					t.Fatalf("qemu-img compare %s: %v\n%s", img, err, out)
				}
			}
			out := mustRun(t, dir, nil, "info", "--json", img)
			checkDoc(t, "info", out)
			var info struct {
				Format    string `json:"format"`
				Type      string `json:"type"`
				Size      int64  `json:"size_bytes"`
				BlockSize int64  `json:"block_size"`
				Allocated int64  `json:"allocated_bytes"`
				Creator   string `json:"creator"`
			}
			st, _ := os.Stat(filepath.Join(dir, dev+".img"))
			if err := json.Unmarshal([]byte(out), &info); err != nil || info.Format != "vhdx" || info.Type != typ ||
				info.Size != st.Size() || info.BlockSize != 32<<20 || info.Allocated != st.Size() || info.Creator != "xva" {
				t.Fatalf("info --json of %s: %s (%v)", img, out, err)
			}
		}
		text := mustRun(t, dir, nil, "info", filepath.Join(format, "sda.vhdx"))
		for _, want := range []string{"(" + typ + " vhdx)", "3.0 MiB", "1 of 32 MiB, 1 allocated"} {
			if !strings.Contains(text, want) {
				t.Fatalf("info of %s/sda.vhdx lacks %q:\n%s", format, want, text)
			}
		}
		// Packed again from --disk flags and as the VM directory.
		mustRun(t, dir, nil, "pack", "--disk", "sda="+format+"/sda.vhdx", "--disk", "sdb="+format+"/sdb.vhdx", format+"-flags.xva")
		mustRun(t, dir, nil, "pack", format, format+"-dir.xva")
		for _, a := range []string{format + "-flags", format + "-dir"} {
			mustRun(t, dir, nil, "unpack", a+".xva", a)
			checkDisks(t, filepath.Join(dir, a), sums)
		}
	}
}

// pack reads VHDX images qemu-img writes, dynamic and fixed, to the
// bytes of the disk they were made from.
func TestPackQemuVHDX(t *testing.T) {
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Skip("qemu-img not installed")
	}
	dir, sums := setupSectors(t)
	for _, sub := range []string{"dynamic", "fixed"} {
		for dev := range sums {
			out := filepath.Join(dir, sub, dev+".vhdx")
			os.MkdirAll(filepath.Dir(out), 0o755)
			if b, err := exec.Command("qemu-img", "convert", "-f", "raw", "-O", "vhdx", "-o", "subformat="+sub, filepath.Join(dir, dev+".img"), out).CombinedOutput(); err != nil {
				t.Fatalf("qemu-img convert: %v\n%s", err, b)
			}
		}
		mustRun(t, dir, nil, "pack", "--disk", "sda="+sub+"/sda.vhdx", "--disk", "sdb="+sub+"/sdb.vhdx", sub+".xva")
		mustRun(t, dir, nil, "unpack", sub+".xva", sub+"-out")
		checkDisks(t, filepath.Join(dir, sub+"-out"), sums)
		if info := mustRun(t, dir, nil, "info", sub+"/sda.vhdx"); !strings.Contains(info, "vhdx)") || !strings.Contains(info, "QEMU") {
			t.Fatalf("info of qemu's %s VHDX:\n%s", sub, info)
		}
	}
}

// A disk whose size is not a whole number of sectors becomes a VHDX of the
// next multiple of 512, the rest zeros; a VHDX with both headers damaged
// is a corrupt image (exit 3), naming them.
func TestVHDXOddSizeAndCorruption(t *testing.T) {
	dir, _ := setup(t) // sda is 3 MiB + 7 bytes
	mustRun(t, dir, nil, "pack", "--disk", "sda=sda.img", "a.xva")
	mustRun(t, dir, nil, "unpack", "--disk-format", "vhdx", "a.xva", "vm")
	out := mustRun(t, dir, nil, "info", "--json", "vm/sda.vhdx")
	var info struct {
		Size int64 `json:"size_bytes"`
	}
	if err := json.Unmarshal([]byte(out), &info); err != nil || info.Size != 3<<20+512 {
		t.Fatalf("info --json of an odd-sized disk's VHDX: %s (%v)", out, err)
	}
	if _, err := exec.LookPath("qemu-img"); err == nil {
		if out, err := exec.Command("qemu-img", "compare", "-f", "vhdx", "-F", "raw", filepath.Join(dir, "vm", "sda.vhdx"), filepath.Join(dir, "sda.img")).CombinedOutput(); err != nil {
			t.Fatalf("qemu-img compare: %v\n%s", err, out)
		}
	}
	p := filepath.Join(dir, "vm", "sda.vhdx")
	b, _ := os.ReadFile(p)
	b[64<<10+200] ^= 1
	b[128<<10+200] ^= 1
	os.WriteFile(p, b, 0o644)
	for _, args := range [][]string{{"info", "vm/sda.vhdx"}, {"pack", "vm", "b.xva"}} {
		if r := run(t, dir, nil, args...); r.code != exitCorrupt || !strings.Contains(r.stderr, "header") {
			t.Fatalf("xva %v on a corrupt VHDX: exit %d\n%s", args, r.code, r.stderr)
		}
	}
}

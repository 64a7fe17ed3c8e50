package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// notArchives writes, in dir, one file of each kind people give xva
// instead of an archive, made by the tools that make them where they are
// installed, and returns file name → what xva must call it.
func notArchives(t *testing.T, dir string) map[string]string {
	t.Helper()
	files := map[string]string{"empty.xva": "an empty file"}
	os.WriteFile(filepath.Join(dir, "empty.xva"), nil, 0o644)
	if _, err := exec.LookPath("qemu-img"); err == nil {
		for f, what := range map[string]string{"disk.qcow2": "qcow2", "disk.vmdk": "VMDK", "disk.vhdx": "VHDX", "disk.vpc": "VHD"} {
			format := strings.TrimPrefix(filepath.Ext(f), ".")
			if out, err := exec.Command("qemu-img", "create", "-q", "-f", format, filepath.Join(dir, f), "8M").CombinedOutput(); err != nil {
				t.Fatalf("qemu-img create %s: %v %s", f, err, out)
			}
			files[f] = "a " + what + " image"
		}
	} else {
		t.Log("qemu-img not installed: its formats are not tried")
	}
	// A fixed VHD: the footer only at the end.
	mustRun(t, dir, nil, "pack", "--disk", "sda="+filepath.Join(dir, "sda.img"), filepath.Join(dir, "for-vhd.xva"))
	mustRun(t, dir, nil, "unpack", "--disk-format", "vhd-fixed", "for-vhd.xva", "fixedvm")
	os.Rename(filepath.Join(dir, "fixedvm", "sda.vhd"), filepath.Join(dir, "fixed.vhd"))
	files["fixed.vhd"] = "a VHD image"
	// Partition tables and an ISO 9660 volume descriptor.
	mbr := make([]byte, 1<<20)
	mbr[510], mbr[511] = 0x55, 0xaa
	gpt := bytes.Clone(mbr)
	copy(gpt[512:], "EFI PART")
	iso := make([]byte, 64<<10)
	copy(iso[16*2048:], "\x01CD001\x01")
	for f, b := range map[string][]byte{"mbr.img": mbr, "gpt.img": gpt, "cd.iso": iso} {
		os.WriteFile(filepath.Join(dir, f), b, 0o644)
	}
	files["mbr.img"], files["gpt.img"] = "a raw disk image (MBR partition table)", "a raw disk image (GPT partition table)"
	files["cd.iso"] = "an ISO 9660 (CD/DVD) image"
	// OVF packages (an OVA, an .ovf) are read: ovf_test.go.
	return files
}

// Files that are not archives are named for what they are, with exit 1
// (not the 3 of a damaged archive) and a hint, by every command that
// reads an archive.
func TestNotAnArchive(t *testing.T) {
	dir, _ := setupSectors(t)
	for f, what := range notArchives(t, dir) {
		for _, args := range [][]string{{"unpack", f, "out"}, {"info", f}, {"convert", f, "c.xva"}, {"verify", f}} {
			if args[0] == "info" && (strings.HasSuffix(what, "VHD image") || strings.HasSuffix(what, "VHDX image") || strings.HasSuffix(what, "VMDK image") || what == "a qcow2 image") {
				continue // info describes a VHD, a VHDX, a VMDK and a qcow2
			}
			r := run(t, dir, nil, args...)
			if r.code != exitFailure || !strings.Contains(r.stderr+r.stdout, what+", not an XVA archive") || !strings.Contains(r.stderr, "xva: hint: ") {
				t.Errorf("xva %v (%s): exit %d, want 1 naming it\n%s%s", args, what, r.code, r.stdout, r.stderr)
			}
		}
	}
	// Random bytes: not an archive either, and the general hint.
	rnd := make([]byte, 1<<16)
	for i := range rnd {
		rnd[i] = byte(i*7 + i>>8)
	}
	os.WriteFile(filepath.Join(dir, "noise.bin"), rnd, 0o644)
	r := run(t, dir, nil, "unpack", "noise.bin", "out")
	if r.code != exitFailure || !strings.Contains(r.stderr, "not an XVA archive") || !strings.Contains(r.stderr, "hint:") {
		t.Errorf("random bytes: exit %d\n%s", r.code, r.stderr)
	}
	// A damaged archive is still a damaged archive: exit 3.
	mustRun(t, dir, nil, "pack", "--disk", "sda=sda.img", "good.xva")
	b, _ := os.ReadFile(filepath.Join(dir, "good.xva"))
	b[2] ^= 0x20 // inside the first header's name: ova.xml becomes ovA.xml
	os.WriteFile(filepath.Join(dir, "bad.xva"), b, 0o644)
	if r := run(t, dir, nil, "unpack", "bad.xva", "out"); r.code != exitCorrupt {
		t.Errorf("an archive with a damaged first header: exit %d\n%s", r.code, r.stderr)
	}
	// Its report is an error, in the documented form.
	r = run(t, dir, nil, "verify", "--json", "empty.xva", "mbr.img")
	if r.code != exitFailure {
		t.Errorf("verify --json of non-archives: exit %d\n%s", r.code, r.stderr)
	}
	checkDoc(t, "verify", r.stdout)
	// verify counts every archive it could not read in its summary.
	r = run(t, dir, nil, "verify", "good.xva", "bad.xva", "disk.qcow2", "empty.xva")
	if r.code != exitCorrupt || !strings.Contains(r.stderr, "1 of 4 archives corrupt, 2 could not be read") {
		t.Errorf("verify of a mix: exit %d\n%s", r.code, r.stderr)
	}
}

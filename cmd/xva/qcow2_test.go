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

// qemuImg runs qemu-img, skipping the test where it is not installed.
func qemuImg(t *testing.T, args ...string) string {
	t.Helper()
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Skip("qemu-img not installed")
	}
	out, err := exec.Command("qemu-img", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("qemu-img %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// qcow2 through the command: unpack writes images qemu-img checks clean
// and reads as the disks; pack reads the guest data of ours and of
// qemu-img's (compressed, and over a backing file); info describes them;
// a damaged one is exit 3 with no output left.
func TestQcow2Images(t *testing.T) {
	qemuImg(t, "--version")
	dir, _ := setupSectors(t)
	mustRun(t, dir, nil, "pack", "--disk", "sda=sda.img", "--disk", "sdb=sdb.img", "a.xva")
	mustRun(t, dir, nil, "unpack", "--disk-format", "qcow2", "a.xva", "vm")
	for _, dev := range []string{"sda", "sdb"} {
		img := filepath.Join(dir, "vm", dev+".qcow2")
		if out := qemuImg(t, "check", img); !strings.Contains(out, "No errors were found") || strings.Contains(out, "leak") {
			t.Fatalf("qemu-img check %s:\n%s", dev, out)
		}
		qemuImg(t, "compare", "-f", "raw", "-F", "qcow2", filepath.Join(dir, dev+".img"), img)
	}
	out := mustRun(t, dir, nil, "info", "--json", "vm/sdb.qcow2")
	checkDoc(t, "info", out)
	var info struct {
		Format string `json:"format"`
		Type   string `json:"type"`
		Size   int64  `json:"size_bytes"`
	}
	if err := json.Unmarshal([]byte(out), &info); err != nil || info.Format != "qcow2" || info.Type != "dynamic" || info.Size != 1<<20+4096 {
		t.Fatalf("info --json of a qcow2: %s (%v)", out, err)
	}
	if out := mustRun(t, dir, nil, "info", "vm/sda.qcow2"); !strings.Contains(out, "dynamic qcow2") || !strings.Contains(out, "3.0 MiB (3145728 bytes)") {
		t.Fatalf("info of a qcow2:\n%s", out)
	}
	// The VM directory of qcow2 images packs to the same disks.
	mustRun(t, dir, nil, "pack", "vm", "b.xva")
	mustRun(t, dir, nil, "unpack", "b.xva", "back")
	for _, dev := range []string{"sda", "sdb"} {
		sameFile(t, filepath.Join(dir, dev+".img"), filepath.Join(dir, "back", dev+".raw"))
	}
	// qemu-img's own: zstd-compressed, and a child over a backing file.
	qemuImg(t, "convert", "-c", "-O", "qcow2", "-o", "compression_type=zstd", filepath.Join(dir, "sda.img"), filepath.Join(dir, "z.qcow2"))
	qemuImg(t, "create", "-f", "qcow2", "-b", "z.qcow2", "-F", "qcow2", filepath.Join(dir, "child.qcow2"))
	mustRun(t, dir, nil, "pack", "--disk", "sda=z.qcow2", "--disk", "sdb=child.qcow2", "c.xva")
	mustRun(t, dir, nil, "unpack", "c.xva", "c")
	sameFile(t, filepath.Join(dir, "sda.img"), filepath.Join(dir, "c", "sda.raw"))
	sameFile(t, filepath.Join(dir, "sda.img"), filepath.Join(dir, "c", "sdb.raw"))
	if out := mustRun(t, dir, nil, "info", "child.qcow2"); !strings.Contains(out, "differencing qcow2") || !strings.Contains(out, "z.qcow2") {
		t.Fatalf("info of a qcow2 over a backing file:\n%s", out)
	}
	// An L1 entry past the end of the file.
	p := filepath.Join(dir, "vm", "sda.qcow2")
	b, _ := os.ReadFile(p)
	l1 := binary.BigEndian.Uint64(b[40:])
	binary.BigEndian.PutUint64(b[l1:], uint64(len(b))<<1|1<<63)
	os.WriteFile(p, b, 0o644)
	for _, args := range [][]string{{"info", "vm/sda.qcow2"}, {"pack", "--disk", "sda=vm/sda.qcow2", "d.xva"}, {"pack", "vm", "e.xva"}} {
		if r := run(t, dir, nil, args...); r.code != 3 || !strings.Contains(r.stderr, "past the end of the file") || !strings.Contains(r.stderr, "sda.qcow2") {
			t.Errorf("xva %v on a damaged qcow2: exit %d\n%s", args, r.code, r.stderr)
		}
	}
	for _, f := range []string{"d.xva", "e.xva"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			t.Errorf("%s left behind", f)
		}
	}
}

func sameFile(t *testing.T, a, b string) {
	t.Helper()
	x, err1 := os.ReadFile(a)
	y, err2 := os.ReadFile(b)
	if err1 != nil || err2 != nil || !bytes.Equal(x, y) {
		t.Fatalf("%s and %s differ (%v, %v)", a, b, err1, err2)
	}
}

// --compress and --cluster-size shape the qcow2 images unpack writes,
// and are refused (exit 2, nothing written) where they mean nothing.
func TestQcow2CompressAndClusterSize(t *testing.T) {
	qemuImg(t, "--version")
	dir, _ := setupSectors(t)
	mustRun(t, dir, nil, "pack", "--disk", "sda=sda.img", "--disk", "sdb=sdb.img", "a.xva")
	for _, c := range []struct{ name, compress, cluster, want string }{
		{"z", "zstd", "4KiB", "compression type: zstd"}, {"d", "zlib", "", "cluster_size: 65536"}, {"c", "", "2MiB", "cluster_size: 2097152"},
	} {
		args := []string{"unpack", "--disk-format", "qcow2", "a.xva", c.name}
		if c.compress != "" {
			args = append(args, "--compress", c.compress)
		}
		if c.cluster != "" {
			args = append(args, "--cluster-size", c.cluster)
		}
		mustRun(t, dir, nil, args...)
		for _, dev := range []string{"sda", "sdb"} {
			img := filepath.Join(dir, c.name, dev+".qcow2")
			out := qemuImg(t, "check", img)
			if !strings.Contains(out, "No errors were found") || strings.Contains(out, "leak") || (c.compress != "" && strings.Contains(out, " 0.00% compressed")) {
				t.Fatalf("qemu-img check %s:\n%s", img, out)
			}
			if info := qemuImg(t, "info", img); !strings.Contains(info, c.want) {
				t.Fatalf("qemu-img info %s:\n%s", img, info)
			}
			qemuImg(t, "compare", "-f", "raw", "-F", "qcow2", filepath.Join(dir, dev+".img"), img)
		}
	}
	for _, args := range [][]string{
		{"--disk-format", "vhd", "--compress", "zstd"}, {"--cluster-size", "64KiB"},
		{"--disk-format", "qcow2", "--cluster-size", "1000"}, {"--disk-format", "qcow2", "--compress", "lz4"},
	} {
		r := run(t, dir, nil, append(append([]string{"unpack"}, args...), "a.xva", "bad")...)
		if r.code != 2 {
			t.Errorf("unpack %v: exit %d, want 2\n%s", args, r.code, r.stderr)
		}
		if _, err := os.Stat(filepath.Join(dir, "bad")); err == nil {
			t.Errorf("unpack %v left its output", args)
		}
	}
}

// --disk DEVICE=PATH.qcow2 writes a qcow2 there with --disk-format qcow2,
// and is refused (exit 2) rather than written raw under a qcow2 name.
func TestQcow2DiskTarget(t *testing.T) {
	qemuImg(t, "--version")
	dir, _ := setupSectors(t)
	mustRun(t, dir, nil, "pack", "--disk", "sda=sda.img", "--disk", "sdb=sdb.img", "a.xva")
	if r := run(t, dir, nil, "unpack", "--disk", "sda=boot.qcow2", "a.xva", "vm"); r.code != 2 || !strings.Contains(r.stderr, "--disk-format qcow2") {
		t.Fatalf("a .qcow2 target written raw: exit %d\n%s", r.code, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "boot.qcow2")); err == nil {
		t.Fatal("the refused target was written")
	}
	mustRun(t, dir, nil, "unpack", "--disk-format", "qcow2", "--disk", "sda=boot.qcow2", "a.xva", "vm")
	qemuImg(t, "compare", "-f", "raw", "-F", "qcow2", filepath.Join(dir, "sda.img"), filepath.Join(dir, "boot.qcow2"))
	qemuImg(t, "compare", "-f", "raw", "-F", "qcow2", filepath.Join(dir, "sdb.img"), filepath.Join(dir, "vm", "sdb.qcow2"))
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xva-tools/xva/internal/testutil"
)

// startServe runs xva serve --json on archive in dir and returns the
// exports' URIs by device, and stop, which stops the server (SIGINT),
// requires it to exit 0 and returns what it logged; stop runs at the test's
// end if not before.
func startServe(t *testing.T, dir, archive string, extra ...string) (map[string]string, func() string) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "s.sock")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	cmd := exec.CommandContext(ctx, xvaBin, append([]string{"serve", "--json", "--listen", "unix:" + sock, archive}, extra...)...)
	cmd.Dir = dir
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var raw json.RawMessage
	err = json.NewDecoder(out).Decode(&raw)
	var once sync.Once
	stop := func() string {
		once.Do(func() {
			cmd.Process.Signal(os.Interrupt)
			if err := cmd.Wait(); err != nil {
				t.Errorf("xva serve: %v\n%s", err, stderr.String())
			}
			cancel()
		})
		return stderr.String()
	}
	t.Cleanup(func() { stop() })
	if err != nil {
		t.Fatalf("xva serve printed no document: %v\n%s", err, stderr.String())
	}
	line := string(raw)
	var doc struct {
		Exports []struct{ Device, URI string }
	}
	json.Unmarshal(raw, &doc)
	validateSchema(t, "serve", line)
	uris := map[string]string{}
	for _, e := range doc.Exports {
		uris[e.Device] = e.URI
	}
	return uris, stop
}

// Every disk of archives of both generations and forms, served over NBD,
// reads as its image to qemu-img and nbdcopy, with holes where the image
// has zeros (nbdinfo --map); exports are listed, a wrong name and writes
// refused.
func TestServe(t *testing.T) {
	testutil.NeedTools(t, "nbdinfo", "nbdcopy", "qemu-img", "qemu-io")
	dir, _ := setup(t)
	// A disk with all-zero MiBs: 1 to 3 and the start of 5.
	img := testutil.Image(6<<20, 9, 64<<10)
	clear(img[1<<20 : 4<<20])
	clear(img[5<<20 : 5<<20+4096])
	os.WriteFile(filepath.Join(dir, "sdc.img"), img, 0o644)
	disks := []string{"--disk", "sda=sda.img", "--disk", "sdb=sdb.img", "--disk", "sdc=sdc.img"}
	mustRun(t, dir, nil, append([]string{"pack", "--format", "xapi"}, append(disks, "x.xva")...)...)
	mustRun(t, dir, nil, append([]string{"pack", "--format", "xapi", "--checksum", "sha1"}, append(disks, "s.xva")...)...)
	mustRun(t, dir, nil, append([]string{"pack", "--format", "legacy"}, append(disks, "l.xva")...)...)
	mustRun(t, dir, nil, append([]string{"pack", "--format", "legacy", "--dir"}, append(disks, "ldir")...)...)
	mustRun(t, dir, nil, "convert", "x.xva", "g.xva.gz")
	mustRun(t, dir, nil, "convert", "x.xva", "z.xva.zst")
	// One zstd stream, as the zstd program writes it from a pipe (and a
	// host's /export?compress=zstd sends it): read through restart points.
	testutil.NeedTools(t, "zstd")
	sh(t, dir, "sh", "-c", "zstd -q -3 < x.xva > zs.xva.zst")
	// A legacy archive as split and gzip make it: chunks with no index.
	sh(t, dir, "cp", "-r", "ldir", "gzdir")
	sh(t, dir, "sh", "-c", "for c in gzdir/sd*/chunk-*.gz; do gzip -dc $c | gzip -c > $c.new && mv $c.new $c; done")
	t.Setenv("XDG_CACHE_HOME", filepath.Join(dir, "cache"))
	for _, a := range []string{"x.xva", "s.xva", "l.xva", "ldir", "g.xva.gz", "z.xva.zst", "zs.xva.zst", "gzdir"} {
		t.Run(a, func(t *testing.T) {
			var extra []string
			if a == "x.xva" {
				// The smallest memory budget serves the same bytes.
				extra = []string{"--max-memory", "32MiB"}
			}
			uris, _ := startServe(t, dir, a, extra...)
			list := sh(t, dir, "nbdinfo", "--list", "--json", strings.Replace(uris["sda"], "/sda?", "/?", 1))
			if !strings.Contains(list, `"sda"`) || !strings.Contains(list, `"sdb"`) {
				t.Fatalf("nbdinfo --list: %s", list)
			}
			for _, dev := range []string{"sda", "sdb", "sdc"} {
				img := filepath.Join(dir, dev+".img")
				sh(t, dir, "qemu-img", "compare", "-f", "raw", "-F", "raw", uris[dev], img)
				out := filepath.Join(t.TempDir(), dev+".raw")
				sh(t, dir, "nbdcopy", uris[dev], out)
				sh(t, dir, "qemu-img", "compare", "-f", "raw", "-F", "raw", out, img)
				checkMap(t, dir, uris[dev], img, a)
				if dev == "sdc" && a != "gzdir" {
					// nbdcopy skips what block status calls holes: 3 of the 6 MiB.
					if kib, _ := strconv.Atoi(strings.Fields(sh(t, dir, "du", "-k", out))[0]); kib > 4096 {
						t.Errorf("%s: nbdcopy's copy of sdc takes %d KiB, not sparse", a, kib)
					}
				}
			}
			if _, err := exec.Command("nbdinfo", strings.Replace(uris["sda"], "/sda?", "/nope?", 1)).CombinedOutput(); err == nil {
				t.Error("a wrong export name was served")
			}
			if out, _ := exec.Command("qemu-io", "-f", "raw", "-c", "write 0 4096", uris["sda"]).CombinedOutput(); !strings.Contains(string(out), "Permission denied") && !strings.Contains(string(out), "failed") {
				t.Errorf("a write was not refused: %s", out)
			}
		})
	}
}

// A memory budget under the longest read a client may ask for is a usage
// error.
func TestServeMaxMemoryTooSmall(t *testing.T) {
	dir, _ := setup(t)
	mustRun(t, dir, nil, "pack", "--format", "xapi", "--disk", "sda=sda.img", "x.xva")
	for _, v := range []string{"16MiB", "lots", "0"} {
		if r := run(t, dir, nil, "serve", "--max-memory", v, "x.xva"); r.code != 2 || !strings.Contains(r.stderr, "--max-memory") {
			t.Errorf("--max-memory %s: exit %d\n%s", v, r.code, r.stderr)
		}
	}
}

// A damaged block: reading its range fails (the client sees EIO), other
// ranges of the same disk are still served, and the server logs the
// member and offset.
func TestServeDamagedBlock(t *testing.T) {
	testutil.NeedTools(t, "qemu-io")
	dir, _ := setup(t)
	mustRun(t, dir, nil, "pack", "--format", "xapi", "--disk", "sda=sda.img", "x.xva")
	b, _ := os.ReadFile(filepath.Join(dir, "x.xva"))
	at := bytes.Index(b, []byte("/00000001\x00")) + 512 + 4096
	b[at] ^= 0xff
	os.WriteFile(filepath.Join(dir, "bad.xva"), b, 0o644)
	uris, stop := startServe(t, dir, "bad.xva")
	out, _ := exec.Command("qemu-io", "-r", "-f", "raw", "-c", "read 1M 4096", uris["sda"]).CombinedOutput()
	if !strings.Contains(string(out), "Input/output error") {
		t.Errorf("reading the damaged block: %s", out)
	}
	out, err := exec.Command("qemu-io", "-r", "-f", "raw", "-c", "read 0 4096", "-c", "read 2M 4096", uris["sda"]).CombinedOutput()
	if err != nil || strings.Contains(string(out), "error") {
		t.Errorf("reading other blocks: %v %s", err, out)
	}
	if log := stop(); !strings.Contains(log, "00000001") || !strings.Contains(log, "sda") {
		t.Errorf("the log does not name the member and disk:\n%s", log)
	}
}

// A zstd stream damaged after it was indexed (the cache still matching
// its size and mtime, as after a medium's silent corruption): the reads
// of the span that holds the damage fail (the client sees EIO), the other
// ranges are served, and the server logs the archive.
func TestServeDamagedZstdStream(t *testing.T) {
	testutil.NeedTools(t, "qemu-io", "zstd")
	dir, _ := setup(t)
	os.WriteFile(filepath.Join(dir, "big.img"), testutil.Image(12<<20, 5, 256<<10), 0o644)
	mustRun(t, dir, nil, "pack", "--format", "xapi", "--disk", "sda=big.img", "x.xva")
	// A 256 KiB window: restart points every 4 MiB.
	sh(t, dir, "sh", "-c", "zstd -q --zstd=wlog=18 < x.xva > z.xva.zst")
	t.Setenv("XDG_CACHE_HOME", filepath.Join(dir, "cache"))
	_, stop := startServe(t, dir, "z.xva.zst")
	stop()
	zst := filepath.Join(dir, "z.xva.zst")
	st, _ := os.Stat(zst)
	b, _ := os.ReadFile(zst)
	b[len(b)*9/10] ^= 0xff
	os.WriteFile(zst, b, 0o644)
	os.Chtimes(zst, st.ModTime(), st.ModTime())
	uris, stop := startServe(t, dir, "z.xva.zst")
	var cmds []string
	for off := 0; off < 12; off++ {
		cmds = append(cmds, "-c", "read "+strconv.Itoa(off)+"M 1M")
	}
	out, _ := exec.Command("qemu-io", append(append([]string{"-r", "-f", "raw"}, cmds...), uris["sda"])...).CombinedOutput()
	failed, read := strings.Count(string(out), "Input/output error"), strings.Count(string(out), "read 1048576/1048576 bytes")
	if failed == 0 || read == 0 || failed+read != 12 {
		t.Errorf("%d MiB failed and %d read; want the damaged span's to fail and the rest to read:\n%s", failed, read, out)
	}
	if log := stop(); !strings.Contains(log, "z.xva.zst") || !strings.Contains(log, "CRC-32") {
		t.Errorf("the log does not name the archive and the check:\n%s", log)
	}
}

// checkMap requires nbdinfo --map to report holes only where the image is
// zero, and, for an archive that leaves all-zero 1 MiB blocks or pieces
// out (all but a split+gzip one), every such unit of the image as a hole.
func checkMap(t *testing.T, dir, uri, img, archive string) {
	t.Helper()
	b, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	var extents []struct {
		Offset, Length int64
		Type           int
	}
	if err := json.Unmarshal([]byte(sh(t, dir, "nbdinfo", "--map", "--json", uri)), &extents); err != nil {
		t.Fatal(err)
	}
	hole := make([]bool, len(b))
	for _, e := range extents {
		if e.Type&1 == 0 {
			continue
		}
		for i := e.Offset; i < min(e.Offset+e.Length, int64(len(b))); i++ {
			if b[i] != 0 {
				t.Fatalf("%s: nbdinfo --map says %d+%d is a hole, but byte %d is not zero", archive, e.Offset, e.Length, i)
			}
			hole[i] = true
		}
	}
	if archive == "gzdir" {
		return // another tool's chunks: no unit is known to be zero without inflating
	}
	for off := 0; off+1<<20 <= len(b); off += 1 << 20 {
		if isZero(b[off:off+1<<20]) && !hole[off] {
			t.Errorf("%s: the all-zero MiB at %d is reported as data", archive, off)
		}
	}
	if strings.HasSuffix(img, "sdc.img") && !(hole[1<<20] && hole[2<<20] && hole[3<<20]) {
		t.Errorf("%s: sdc's zero MiBs 1 to 3 are not all holes", archive)
	}
}

func isZero(p []byte) bool {
	for _, c := range p {
		if c != 0 {
			return false
		}
	}
	return true
}

package main

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xva-tools/xva/internal/procmem"
	"github.com/xva-tools/xva/lvm"
	"github.com/xva-tools/xva/ova"
)

// Hostile inputs must be refused (or read correctly) within these.
const (
	hostileTime = 5 * time.Second
	hostileRSS  = 512 << 20
)

// runHostile runs xva on a crafted input, measuring its peak memory, and
// fails t if it took more than hostileTime or hostileRSS.
func runHostile(t *testing.T, dir string, args ...string) result {
	t.Helper()
	// A hang (the hole some of these tests are about) fails rather than
	// stalls the run.
	ctx, cancel := context.WithTimeout(context.Background(), 6*hostileTime)
	defer cancel()
	cmd := exec.CommandContext(ctx, xvaBin, args...)
	cmd.Dir = dir
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	rss, err := procmem.Run(cmd)
	took := time.Since(start)
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	t.Logf("xva %s: exit %d in %v, peak RSS %d MiB", strings.Join(args, " "), code, took.Round(time.Millisecond), rss>>20)
	if took > hostileTime || rss > hostileRSS {
		t.Errorf("xva %s took %v and %d MiB; the limits are %v and %d MiB", strings.Join(args, " "), took, rss>>20, hostileTime, hostileRSS>>20)
	}
	return result{out.String(), errb.String(), code}
}

// TestLVMMetadataBomb: a PV whose checksum-valid metadata area holds 127
// MiB of empty sections, or of list items, is refused as corrupt, naming
// the PV and the offset, in bounded time and memory.
func TestLVMMetadataBomb(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 2 × 128 MiB PV images")
	}
	dir := t.TempDir()
	const mdaOff, mdaSize = 4096, 128 << 20
	for name, unit := range map[string]string{"sections": "a{}", "list": "1,"} {
		n := (mdaSize - 1024) / len(unit)
		text := "vg {\n" + strings.Repeat(unit, n) + "\n}\n"
		if name == "list" {
			text = "vg {\nx = [" + strings.Repeat(unit, n) + "]\n}\n"
		}
		img := lvm.MakePV(text, mdaOff+mdaSize+4096, mdaOff, mdaSize, uint64(len(text)+1))
		pv := filepath.Join(dir, name+".img")
		if err := os.WriteFile(pv, img, 0o600); err != nil {
			t.Fatal(err)
		}
		img, text = nil, ""
		r := runHostile(t, dir, "info", name+".img")
		if r.code != exitCorrupt || !strings.Contains(r.stderr, name+".img") || !strings.Contains(r.stderr, "of the PV") {
			t.Fatalf("%s: exit %d\n%s", name, r.code, r.stderr)
		}
		t.Log(strings.TrimSpace(r.stderr))
		os.Remove(pv)
	}
}

// writeArchive writes a tar archive holding ova.xml and nothing else.
func writeArchive(t *testing.T, path string, doc []byte) {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	tw.WriteHeader(&tar.Header{Name: "ova.xml", Mode: 0o644, Size: int64(len(doc))})
	tw.Write(doc)
	tw.Close()
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
}

// fillDoc repeats unit between head and tail up to ova.xml's size limit.
func fillDoc(head, unit, tail string) []byte {
	n := (ova.MaxDocSize - len(head) - len(tail)) / len(unit)
	return []byte(head + strings.Repeat(unit, n) + tail)
}

// TestOVAXMLBombs: ova.xml documents of millions of elements, attributes
// or XML-RPC values, tens of thousands of disks, and the largest document
// the node budget lets through are all refused as corrupt within the time
// and memory limits.
func TestOVAXMLBombs(t *testing.T) {
	dir := t.TempDir()
	var legacy strings.Builder
	legacy.WriteString(`<appliance version="0.1"><vm name="vm"><label>x</label><config mem_set="1" vcpus="1"/>`)
	const pairs = 20000 // within the node budget
	for i := range pairs {
		fmt.Fprintf(&legacy, `<vbd device="d%d" function="user" mode="w" vdi="v%d"/>`, i, i)
	}
	legacy.WriteString(`</vm>`)
	for i := range pairs {
		fmt.Fprintf(&legacy, `<vdi name="v%d" size="1" source="file://d%d"/>`, i, i)
	}
	legacy.WriteString(`</appliance>`)
	var vbds bytes.Buffer
	ova.WriteManyVBDs(&vbds, 10000)
	for name, c := range map[string]struct {
		doc  []byte
		want string
	}{
		"elements":   {fillDoc(`<appliance version="0.1">`, "<a/>", "</appliance>"), "elements and attributes"},
		"attributes": {fillDoc(`<appliance version="0.1"><vm `, `a="" `, "/></appliance>"), "elements and attributes"},
		"values":     {fillDoc("<value><array><data>", "<value/>", "</data></array></value>"), "elements and attributes"},
		"largest":    {[]byte("<value><array><data>" + strings.Repeat("<value/>", ova.MaxNodes-3) + "</data></array></value>"), "not an XML-RPC struct"},
		"legacy":     {[]byte(legacy.String()), "more than the 256 allowed"},
		"xapi":       {vbds.Bytes(), "more than the 256 allowed"},
	} {
		writeArchive(t, filepath.Join(dir, name+".xva"), c.doc)
		r := runHostile(t, dir, "info", name+".xva")
		if r.code != exitCorrupt || !strings.Contains(r.stderr, c.want) {
			t.Errorf("%s: exit %d\n%s", name, r.code, r.stderr)
		}
	}
}

// TestRedirectsKeepCredentials: a master that redirects the login, or the
// export, to plain http gets neither the password nor the session in
// clear text: xva refuses the redirect, nothing reaches the http server,
// and no output is written.
func TestRedirectsKeepCredentials(t *testing.T) {
	s, _ := pool(t)
	var hits atomic.Int32
	plain := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hits.Add(1) }))
	defer plain.Close()
	target, _ := url.Parse(s.URL)
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.Transport = &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}
	dir := t.TempDir()
	for _, path := range []string{"/", "/export"} {
		f := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == path {
				http.Redirect(w, r, plain.URL+r.URL.RequestURI(), http.StatusTemporaryRedirect)
				return
			}
			proxy.ServeHTTP(w, r)
		}))
		r := remote(t, dir, "secret", "export", "--url", f.URL, "--insecure", "--vm", "00000000-0000-0000-0000-000000000000", "out.xva")
		f.Close()
		if r.code != exitFailure || !strings.Contains(r.stderr, "from https to http") || hits.Load() != 0 || entries(t, dir) != "" {
			t.Fatalf("redirect of %s: exit %d, %d requests reached http, left %q\n%s", path, r.code, hits.Load(), entries(t, dir), r.stderr)
		}
	}
}

// TestZstdSkippableFrame: a zstd stream may start with a skippable frame
// (RFC 8878 §3.1.2; zstd -t accepts it); the archive is recognised as
// zstd by that magic too, and read.
func TestZstdSkippableFrame(t *testing.T) {
	dir, _ := setup(t)
	mustRun(t, dir, nil, "pack", "--format", "xapi", "--compress", "zstd", "--disk", "xvda=sda.img", "x.xva")
	z, err := os.ReadFile(filepath.Join(dir, "x.xva"))
	if err != nil {
		t.Fatal(err)
	}
	for _, magic := range []uint32{0x184D2A50, 0x184D2A5F} {
		frame := binary.LittleEndian.AppendUint32(nil, magic)
		frame = binary.LittleEndian.AppendUint32(frame, 5)
		frame = append(frame, "hello"...)
		name := fmt.Sprintf("skip-%x.xva", magic)
		if err := os.WriteFile(filepath.Join(dir, name), append(frame, z...), 0o600); err != nil {
			t.Fatal(err)
		}
		for _, args := range [][]string{{"verify", name}, {"info", name}, {"unpack", name, "vm-" + name}} {
			if out := mustRun(t, dir, nil, args...); args[0] == "info" && !strings.Contains(out, "zst") {
				t.Fatalf("info:\n%s", out)
			}
		}
		if r := run(t, dir, append(frame, z...), "verify", "-"); r.code != 0 {
			t.Fatalf("verify from stdin: exit %d\n%s", r.code, r.stderr)
		}
	}
}

// TestFIFOsAreNotOpened: a FIFO at the top of a directory archive, or as
// a VM directory's ova.xml, is refused at once instead of blocking the
// open until a writer comes.
func TestFIFOsAreNotOpened(t *testing.T) {
	dir, _ := setup(t)
	mustRun(t, dir, nil, "pack", "--format", "legacy", "--dir", "--disk", "xvda=sda.img", "arch")
	mkfifo(t, filepath.Join(dir, "arch", "zz-fifo"))
	for _, args := range [][]string{{"verify", "arch"}, {"unpack", "arch", "out"}, {"info", "arch"}} {
		r := runHostile(t, dir, args...)
		if r.code != exitCorrupt || !strings.Contains(r.stdout+r.stderr, "zz-fifo") {
			t.Fatalf("%v: exit %d\n%s%s", args, r.code, r.stdout, r.stderr)
		}
	}
	// A VM directory whose ova.xml is a FIFO.
	mustRun(t, dir, nil, "pack", "--disk", "xvda=sda.img", "x.xva")
	mustRun(t, dir, nil, "unpack", "x.xva", "vm")
	os.Remove(filepath.Join(dir, "vm", "ova.xml"))
	mkfifo(t, filepath.Join(dir, "vm", "ova.xml"))
	r := runHostile(t, dir, "pack", "vm", "again.xva")
	if r.code != exitFailure || !strings.Contains(r.stderr, "named pipe") {
		t.Fatalf("pack: exit %d\n%s", r.code, r.stderr)
	}
}

// modes returns the permission bits of path and of everything under it.
func modes(t *testing.T, path string) map[string]os.FileMode {
	t.Helper()
	m := map[string]os.FileMode{}
	filepath.Walk(path, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		m[p] = fi.Mode().Perm()
		return nil
	})
	return m
}

// TestOutputModes: archives, disk images and VM directories are written
// 0600 (directories 0700) whatever the umask, as are exports; --mode
// chooses otherwise; a bad --mode is a usage error.
func TestOutputModes(t *testing.T) {
	s, ca := pool(t)
	dir, _ := setup(t)
	defer umask(t, 0o022)() // the usual one, which gave 0644 before
	mustRun(t, dir, nil, "pack", "--format", "xapi", "--disk", "xvda=sda.img", "x.xva")
	stored, _ := os.ReadFile(filepath.Join(dir, "x.xva"))
	const uuid = "5f1c8a52-7b3e-4a8b-9d27-1b4c5a9e2f10"
	s.Exports[uuid] = stored
	for _, mode := range []string{"", "0644", "0640"} {
		var extra []string
		want := os.FileMode(0o600)
		if mode != "" {
			extra = []string{"--mode", mode}
			m, _ := strconv.ParseUint(mode, 8, 32)
			want = os.FileMode(m)
		}
		wantDir := want | (want&0o444)>>2 | 0o700
		o := "m" + mode
		for _, args := range [][]string{
			{"pack", "--disk", "xvda=sda.img", o + "-legacy.xva"},
			{"pack", "--format", "legacy", "--dir", "--disk", "xvda=sda.img", o + "-dir"},
			{"pack", "--format", "xapi", "--compress", "zstd", "--disk", "xvda=sda.img", o + "-xapi.xva"},
			{"unpack", "x.xva", o + "-vm"},
			{"unpack", "--disk-format", "vhd", "x.xva", o + "-vhd"},
			{"convert", "x.xva", "--format", "legacy", o + "-conv.xva"},
		} {
			mustRun(t, dir, nil, append(args, extra...)...)
		}
		if r := remote(t, dir, "secret", append([]string{"export", "--url", s.URL, "--ca-cert", ca, "--vm", uuid, o + "-exp.xva"}, extra...)...); r.code != 0 {
			t.Fatalf("export: exit %d\n%s", r.code, r.stderr)
		}
		for _, out := range []string{"-legacy.xva", "-dir", "-xapi.xva", "-vm", "-vhd", "-conv.xva", "-exp.xva"} {
			for p, got := range modes(t, filepath.Join(dir, o+out)) {
				st, _ := os.Stat(p)
				if w := map[bool]os.FileMode{false: want, true: wantDir}[st.IsDir()]; got != w {
					t.Errorf("--mode %q: %s is %#o, want %#o", mode, p, got, w)
				}
			}
		}
	}
	for _, bad := range []string{"0800", "1777", "rw-r--r--"} {
		if r := run(t, dir, nil, "pack", "--mode", bad, "--disk", "xvda=sda.img", "bad.xva"); r.code != exitUsage || !strings.Contains(r.stderr, "--mode") {
			t.Fatalf("--mode %s: exit %d\n%s", bad, r.code, r.stderr)
		}
	}
}

// TestTerminalEscapes: names, descriptions, devices and member names from
// an archive are printed with their control characters (C0, C1, bidi
// overrides) escaped; --json carries them exactly.
func TestTerminalEscapes(t *testing.T) {
	dir, _ := setup(t)
	name, desc, dev := "web\u009b2J\u202egpj", "line\u2028two\u0085three", "xvd\u202ea"
	mustRun(t, dir, nil, "pack", "--name", name, "--description", desc, "--disk", dev+"=sda.img", "x.xva")
	// An extra member whose name would set the window title and print a
	// green verdict.
	evil := "\x1b]0;owned\x07\x1b[2J\x1b[32mOK archive verified\x1b[0m"
	in, err := os.Open(filepath.Join(dir, "x.xva"))
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	tr, tw := tar.NewReader(in), tar.NewWriter(&b)
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		tw.WriteHeader(h)
		io.Copy(tw, tr)
	}
	in.Close()
	tw.WriteHeader(&tar.Header{Name: evil, Mode: 0o644, Size: 1})
	tw.Write([]byte("x"))
	tw.Close()
	os.WriteFile(filepath.Join(dir, "evil.xva"), b.Bytes(), 0o600)
	raw := func(s string) bool { return strings.ContainsAny(s, "\x1b\x07\u009b\u202e\u2028\u0085") }
	info := run(t, dir, nil, "info", "x.xva")
	verify := run(t, dir, nil, "verify", "evil.xva")
	unpack := run(t, dir, nil, "unpack", "evil.xva", "out")
	progress := run(t, dir, nil, "unpack", "--progress=plain", "x.xva", "out2")
	for what, r := range map[string]result{"info": info, "verify": verify, "unpack": unpack, "progress": progress} {
		if raw(r.stdout + r.stderr) {
			t.Errorf("%s printed control characters raw: %q", what, r.stdout+r.stderr)
		}
	}
	if !strings.Contains(info.stdout, `web\u009b2J\u202egpj`) || !strings.Contains(info.stdout, `xvd\u202ea`) ||
		!strings.Contains(verify.stdout, `\x1b]0;owned\x07`) || !strings.Contains(progress.stderr, `xvd\u202ea`) {
		t.Fatalf("escapes missing:\n%s\n%s\n%s", info.stdout, verify.stdout, progress.stderr)
	}
	if verify.code != exitCorrupt || unpack.code == 0 {
		t.Fatalf("verify exit %d, unpack exit %d", verify.code, unpack.code)
	}
	// --json carries the exact strings.
	var doc struct {
		VM    struct{ Name, Description string }
		Disks []struct{ Device string }
	}
	if err := json.Unmarshal([]byte(mustRun(t, dir, nil, "info", "--json", "x.xva")), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.VM.Name != name || doc.VM.Description != desc || doc.Disks[0].Device != dev {
		t.Fatalf("--json changed the strings: %+v", doc)
	}
}

// TestOutputAppearedMeanwhile: an output name taken while the output is
// being written is left alone, and the error names it and says what to
// do, not "rename x.xva x.xva: file exists".
func TestOutputAppearedMeanwhile(t *testing.T) {
	dir, _ := setup(t)
	mustRun(t, dir, nil, "pack", "--format", "xapi", "--disk", "xvda=sda.img", "x.xva")
	archive, _ := os.ReadFile(filepath.Join(dir, "x.xva"))
	for _, args := range [][]string{{"convert", "-", "same.xva"}, {"unpack", "-", "same"}} {
		cmd := exec.Command(xvaBin, args...)
		cmd.Dir = dir
		in, _ := cmd.StdinPipe()
		var errb bytes.Buffer
		cmd.Stderr = &errb
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		in.Write(archive[:len(archive)/2])
		deadline := time.Now().Add(10 * time.Second)
		for !hasTemp(dir) && time.Now().Before(deadline) {
			time.Sleep(2 * time.Millisecond)
		}
		out := filepath.Join(dir, args[2])
		if args[0] == "unpack" {
			os.Mkdir(out, 0o700)
			out = filepath.Join(out, "mine")
		}
		os.WriteFile(out, []byte("mine"), 0o600)
		in.Write(archive[len(archive)/2:])
		in.Close()
		cmd.Wait()
		msg := errb.String()
		if cmd.ProcessState.ExitCode() != exitFailure || strings.Contains(msg, "rename") ||
			!strings.Contains(msg, args[2]+" appeared while the output was being written") || hasTemp(dir) {
			t.Fatalf("%v: exit %d\n%s", args, cmd.ProcessState.ExitCode(), msg)
		}
		if b, _ := os.ReadFile(out); string(b) != "mine" {
			t.Fatalf("%v: the file that appeared was changed", args)
		}
	}
}

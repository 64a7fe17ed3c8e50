package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/xva-tools/xva/fixtures"
	"github.com/xva-tools/xva/internal/procmem"
	"github.com/xva-tools/xva/internal/tarx"
)

// xvaBin is the binary under test, built once.
var xvaBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "xva-cli")
	if err != nil {
		panic(err)
	}
	xvaBin = filepath.Join(dir, "xva")
	if out, err := exec.Command("go", "build", "-o", xvaBin, ".").CombinedOutput(); err != nil {
		panic(string(out))
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type result struct {
	stdout, stderr string
	code           int
}

// run runs xva in dir with stdin.
func run(t *testing.T, dir string, stdin []byte, args ...string) result {
	t.Helper()
	return runWith(t, dir, stdin, nil, args...)
}

// runEnv runs xva in dir with more environment variables.
func runEnv(t *testing.T, dir string, env []string, args ...string) result {
	t.Helper()
	return runWith(t, dir, nil, env, args...)
}

func runWith(t *testing.T, dir string, stdin []byte, env []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(xvaBin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return result{out.String(), errb.String(), code}
}

func mustRun(t *testing.T, dir string, stdin []byte, args ...string) string {
	t.Helper()
	r := run(t, dir, stdin, args...)
	if r.code != 0 {
		t.Fatalf("xva %s: exit %d\n%s", strings.Join(args, " "), r.code, r.stderr)
	}
	return r.stdout
}

func setup(t *testing.T) (string, map[string]string) {
	t.Helper()
	dir := t.TempDir()
	sums := map[string]string{}
	for i, d := range []fixtures.Disk{{Size: 3<<20 + 7, Seed: 1}, {Size: 1 << 20, Seed: 2}} {
		sum, err := d.Write(filepath.Join(dir, fixtures.Device(i)+".img"))
		if err != nil {
			t.Fatal(err)
		}
		sums[fixtures.Device(i)] = sum
	}
	return dir, sums
}

func checkDisks(t *testing.T, dir string, sums map[string]string) {
	t.Helper()
	for dev, want := range sums {
		got, err := fixtures.HashFile(filepath.Join(dir, dev+".raw"))
		if err != nil || got != want {
			t.Fatalf("%s: %v, hash matches %v", dev, err, got == want)
		}
	}
}

func TestPackUnpackThroughPipes(t *testing.T) {
	dir, sums := setupSectors(t)
	// pack to stdout, unpack from stdin.
	// A seed makes the uuids, and so the bytes, the same for the same VM.
	archive := mustRun(t, dir, nil, "pack", "--name", "web", "--memory", "1GiB", "--disk", "sda=sda.img", "--disk", "sdb=sdb.img", "--uuid-seed", "web", "-")
	mustRun(t, dir, []byte(archive), "unpack", "-", "vm")
	checkDisks(t, filepath.Join(dir, "vm"), sums)
	// The stream is the same archive a file gets.
	mustRun(t, dir, nil, "pack", "--name", "web", "--memory", "1GiB", "--disk", "sda=sda.img", "--disk", "sdb=sdb.img", "--uuid-seed", "web", "web.xva")
	file, _ := os.ReadFile(filepath.Join(dir, "web.xva"))
	if !bytes.Equal(file, []byte(archive)) {
		t.Fatal("the archive written to stdout differs from the one written to a file")
	}
	// info from stdin.
	if out := mustRun(t, dir, file, "info", "-"); !strings.Contains(out, "web") || !strings.Contains(out, "1.0 GiB") {
		t.Fatalf("info:\n%s", out)
	}
}

func TestExitCodes(t *testing.T) {
	dir, _ := setup(t)
	mustRun(t, dir, nil, "pack", "--format", "legacy", "--disk", "sda=sda.img", "--dir", "arch")
	// Usage errors: 2.
	for _, args := range [][]string{{"pack"}, {"unpack", "x"}, {"pack", "--bogus", "x"}, {"pack", "--disk", "nodevice", "x.xva"},
		{"verify", "-j", "-1", "arch"}, {"info", "-j", "-1", "arch"}, {"unpack", "--jobs", "-1", "arch", "o1"},
		{"unpack", "--disk-format", "qed", "arch", "o2"}, {"convert", "--format", "bogus", "arch", "o3.xva"},
		{"convert", "--format", "legacy", "--compress", "gzip", "arch", "o4.xva"}, {"convert", "--dir", "--format", "xapi", "arch", "o5"}} {
		if r := run(t, dir, nil, args...); r.code != 2 {
			t.Errorf("xva %v: exit %d, want 2\n%s", args, r.code, r.stderr)
		}
	}
	// An existing target or a missing input: 1.
	os.Mkdir(filepath.Join(dir, "full"), 0o755)
	os.WriteFile(filepath.Join(dir, "full", "x"), nil, 0o644)
	for _, args := range [][]string{{"unpack", "arch", "full"}, {"unpack", "nonexistent.xva", "out"}} {
		if r := run(t, dir, nil, args...); r.code != 1 {
			t.Errorf("xva %v: exit %d, want 1\n%s", args, r.code, r.stderr)
		}
	}
	// Corruption: 3, naming the member, nothing left behind.
	chunk := filepath.Join(dir, "arch", "sda", "chunk-000000000.gz")
	b, _ := os.ReadFile(chunk)
	b[len(b)/2] ^= 0xff
	os.WriteFile(chunk, b, 0o644)
	r := run(t, dir, nil, "unpack", "arch", "out")
	if r.code != 3 || !strings.Contains(r.stderr, "sda/chunk-000000000.gz") {
		t.Fatalf("corrupt chunk: exit %d\n%s", r.code, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "out")); !os.IsNotExist(err) {
		t.Fatal("failed unpack left its output")
	}
}

func TestProgressOnlyWhenAsked(t *testing.T) {
	dir, _ := setup(t)
	mustRun(t, dir, nil, "pack", "--disk", "sda=sda.img", "--disk", "sdb=sdb.img", "a.xva")
	// OUT stands for a new output name per run.
	commands := [][]string{
		{"pack", "--disk", "sda=sda.img", "OUT"},
		{"unpack", "a.xva", "OUT"},
		{"verify", "a.xva"},
		{"convert", "--format", "xapi", "a.xva", "OUT"},
	}
	n := 0
	with := func(args []string, flag ...string) []string {
		n++
		out := append([]string{args[0]}, flag...)
		for _, a := range args[1:] {
			out = append(out, strings.ReplaceAll(a, "OUT", fmt.Sprintf("out%d", n)))
		}
		return out
	}
	for _, args := range commands {
		if r := run(t, dir, nil, with(args)...); r.code != 0 || strings.Contains(r.stderr, "%") {
			t.Fatalf("xva %s: exit %d, progress on a pipe: %q", args[0], r.code, r.stderr)
		}
		// Bars when forced: per disk, with the archive bytes.
		r := run(t, dir, nil, with(args, "--progress")...)
		if r.code != 0 || !strings.Contains(r.stderr, "sda") || !strings.Contains(r.stderr, "100 %") || !strings.Contains(r.stderr, "archive") {
			t.Fatalf("xva %s --progress: exit %d, printed %q", args[0], r.code, r.stderr)
		}
		// Plain lines for logs: no cursor movement.
		r = runEnv(t, dir, []string{"XVA_PROGRESS_INTERVAL=1ns"}, with(args, "--progress=plain")...)
		if r.code != 0 || !strings.Contains(r.stderr, "xva: sda: ") || !strings.Contains(r.stderr, "(100%)") || strings.Contains(r.stderr, "\x1b") {
			t.Fatalf("xva %s --progress=plain: exit %d, printed %q", args[0], r.code, r.stderr)
		}
	}
	if r := run(t, dir, nil, "verify", "--progress=sometimes", "a.xva"); r.code != exitUsage {
		t.Fatalf("a bad --progress: exit %d", r.code)
	}
}

// maxRSS runs xva with stdin from a file and returns its peak resident set.
func maxRSS(t *testing.T, dir, stdin string, args ...string) int64 {
	t.Helper()
	cmd := exec.Command(xvaBin, args...)
	cmd.Dir = dir
	f, err := os.Open(stdin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd.Stdin = f
	var errb bytes.Buffer
	cmd.Stderr = &errb
	rss, err := procmem.Run(cmd)
	if err != nil {
		t.Fatalf("xva %v: %v\n%s", args, err, errb.String())
	}
	return rss
}

func TestConvertFromStdinHasBoundedMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-GiB disk")
	}
	dir := t.TempDir()
	d := fixtures.Disk{Size: 4<<30 + 12288, Seed: 7, Data: 0.01, MaxRegion: 8 << 20}
	sum, err := d.Write(filepath.Join(dir, "big.img"))
	if err != nil {
		t.Fatal(err)
	}
	mustRun(t, dir, nil, "pack", "--format", "legacy", "--disk", "xvda=big.img", "legacy.xva")
	os.Remove(filepath.Join(dir, "big.img"))
	rss := maxRSS(t, dir, filepath.Join(dir, "legacy.xva"), "convert", "-", "x.xva", "--format", "xapi")
	t.Logf("converting a 4 GiB disk from stdin peaked at %d MiB", rss>>20)
	if rss > 256<<20 {
		t.Fatalf("peak RSS %d MiB; memory must not grow with the disk", rss>>20)
	}
	mustRun(t, dir, nil, "unpack", "x.xva", "vm")
	got, err := fixtures.HashFile(filepath.Join(dir, "vm", "xvda.raw"))
	if err != nil || got != sum {
		t.Fatalf("disk after legacy → xapi differs: %v", err)
	}
}

func TestXapiCorruptBlockExits3(t *testing.T) {
	dir, _ := setup(t)
	mustRun(t, dir, nil, "pack", "--format", "xapi", "--disk", "xvda=sda.img", "x.xva")
	b, _ := os.ReadFile(filepath.Join(dir, "x.xva"))
	tr := tarx.NewReader(bytes.NewReader(b))
	tr.Next() // ova.xml
	h, err := tr.Next()
	if err != nil || !strings.HasSuffix(h.Name, "/00000000") {
		t.Fatalf("second member %v: %v", h, err)
	}
	b[h.DataOffset+h.Size/2] ^= 0xff
	os.WriteFile(filepath.Join(dir, "x.xva"), b, 0o644)
	r := run(t, dir, nil, "unpack", "x.xva", "out")
	if r.code != 3 || !strings.Contains(r.stderr, ".xxhash") {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
}

func TestVerifyCorpusThroughTheBinary(t *testing.T) {
	dir := t.TempDir()
	intact, cases, err := fixtures.Corpus(dir)
	if err != nil {
		t.Fatal(err)
	}
	// Intact archives alone: exit 0, one OK line each.
	r := run(t, dir, nil, append([]string{"verify"}, intact...)...)
	if r.code != 0 || strings.Count(r.stdout, "OK ") != len(intact) {
		t.Fatalf("intact: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if q := run(t, dir, nil, append([]string{"verify", "--quiet"}, intact...)...); q.code != 0 || q.stdout != "" {
		t.Fatalf("--quiet on intact archives printed %q", q.stdout)
	}
	// Everything at once: exit 3, a report per archive, valid JSON.
	args := []string{"verify", "--json"}
	args = append(args, intact...)
	for _, c := range cases {
		args = append(args, c.Path)
	}
	r = run(t, dir, nil, args...)
	if r.code != 3 {
		t.Fatalf("exit %d, want 3\n%s", r.code, r.stderr)
	}
	validateSchema(t, "verify", r.stdout)
	var doc struct {
		OK       bool
		Archives []struct {
			Archive  string
			OK       bool
			Problems []struct{ Kind, Member, Disk string }
		}
	}
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.OK || len(doc.Archives) != len(intact)+len(cases) {
		t.Fatalf("ok=%v, %d reports", doc.OK, len(doc.Archives))
	}
	for i, rep := range doc.Archives[len(intact):] {
		c := cases[i]
		found := false
		for _, p := range rep.Problems {
			found = found || c.Member != "" && p.Member == c.Member || c.Member == "" && c.Disk != "" && p.Disk == c.Disk ||
				c.Member == "" && c.Disk == "" && slices.Contains(c.Kinds, p.Kind)
		}
		if rep.OK || !found {
			t.Errorf("%s: ok=%v, problems %+v", c.Fault, rep.OK, rep.Problems)
		}
	}
	// A missing file is an I/O error: exit 1.
	if r := run(t, dir, nil, "verify", intact[0], "nonexistent.xva"); r.code != 1 || !strings.Contains(r.stdout, "ERROR") {
		t.Fatalf("missing file: exit %d\n%s", r.code, r.stdout)
	}
}

// validateSchema checks a --json document against docs/json/NAME.schema.json.
func validateSchema(t *testing.T, name, doc string) {
	t.Helper()
	c := jsonschema.NewCompiler()
	sch, err := c.Compile("../../docs/json/" + name + ".schema.json")
	if err != nil {
		t.Fatal(err)
	}
	v, err := jsonschema.UnmarshalJSON(strings.NewReader(doc))
	if err != nil {
		t.Fatalf("%s --json is not JSON: %v\n%s", name, err, doc)
	}
	if err := sch.Validate(v); err != nil {
		t.Fatalf("%s --json does not match docs/json/%s.schema.json: %v\n%s", name, name, err, doc)
	}
}

func TestSalvage(t *testing.T) {
	dir, sums := setup(t)
	mustRun(t, dir, nil, "pack", "--format", "xapi", "--disk", "sda=sda.img", "x.xva")
	b, _ := os.ReadFile(filepath.Join(dir, "x.xva"))
	tr := tarx.NewReader(bytes.NewReader(b))
	tr.Next()
	tr.Next()
	tr.Next()
	h, _ := tr.Next() // the second block: sda/00000001
	b[h.DataOffset+10] ^= 0xff
	os.WriteFile(filepath.Join(dir, "x.xva"), b, 0o644)
	if r := run(t, dir, nil, "unpack", "x.xva", "strict"); r.code != 3 {
		t.Fatalf("plain unpack of a bad block: exit %d", r.code)
	}
	r := run(t, dir, nil, "unpack", "--salvage", "--json", "x.xva", "rescued")
	if r.code != 3 || !strings.Contains(r.stderr, "bad block: "+h.Name+".xxhash") {
		t.Fatalf("salvage: exit %d\n%s", r.code, r.stderr)
	}
	var doc struct {
		BadBlocks []struct{ Member string } `json:"bad_blocks"`
	}
	json.Unmarshal([]byte(r.stdout), &doc)
	if len(doc.BadBlocks) != 1 {
		t.Fatalf("salvage JSON: %s", r.stdout)
	}
	// The disk is there, identical to the original but for the flipped byte.
	orig, _ := os.ReadFile(filepath.Join(dir, "sda.img"))
	got, err := os.ReadFile(filepath.Join(dir, "rescued", "sda.raw"))
	if err != nil {
		t.Fatal(err)
	}
	// (The xapi copy is padded to whole sectors with zeros.)
	if len(got) != (len(orig)+511)/512*512 || !bytes.Equal(got[len(orig):], make([]byte, len(got)-len(orig))) {
		t.Fatalf("salvaged disk is %d bytes", len(got))
	}
	diff := 0
	for i := range orig {
		if orig[i] != got[i] {
			diff++
		}
	}
	if diff != 1 || sums["sda"] == "" {
		t.Fatalf("salvaged disk differs in %d bytes", diff)
	}
}

func TestVHDInfoAndCorruption(t *testing.T) {
	dir, _ := setup(t)
	mustRun(t, dir, nil, "pack", "--format", "legacy", "--disk", "sda=sda.img", "a.xva")
	mustRun(t, dir, nil, "unpack", "--disk-format", "vhd", "a.xva", "vm")
	out := mustRun(t, dir, nil, "info", "--json", "vm/sda.vhd")
	var info struct {
		SchemaVersion int    `json:"schema_version"`
		Type          string `json:"type"`
		Size          int64  `json:"size_bytes"`
	}
	if err := json.Unmarshal([]byte(out), &info); err != nil || info.Type != "dynamic" || info.Size != 3<<20+7+505 || info.SchemaVersion != 1 {
		t.Fatalf("info --json of a VHD: %s (%v)", out, err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "vm", "sda.vhd"))
	b[len(b)-512+64] ^= 1 // the footer checksum
	os.WriteFile(filepath.Join(dir, "vm", "sda.vhd"), b, 0o644)
	for _, args := range [][]string{{"info", "vm/sda.vhd"}, {"pack", "vm", "b.xva"}} {
		if r := run(t, dir, nil, args...); r.code != 3 || !strings.Contains(r.stderr, "checksum") {
			t.Fatalf("xva %v on a corrupt VHD: exit %d\n%s", args, r.code, r.stderr)
		}
	}
}

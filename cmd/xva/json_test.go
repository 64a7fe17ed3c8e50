package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/xva-tools/xva"
)

// Every command that produces a result prints one JSON document with
// --json, carrying schema_version and matching its documented schema.
func TestJSONOutputsMatchTheirSchemas(t *testing.T) {
	s, ca := pool(t)
	dir := t.TempDir()
	if _, err := uploadVM.WriteDir(filepath.Join(dir, "vm")); err != nil {
		t.Fatal(err)
	}
	mustRun(t, dir, nil, "pack", "--format", "xapi", "vm", "stored.xva")
	stored, _ := os.ReadFile(filepath.Join(dir, "stored.xva"))
	const uuid = "5f1c8a52-7b3e-4a8b-9d27-1b4c5a9e2f10"
	s.Exports[uuid] = stored
	local := []struct {
		schema string
		args   []string
	}{
		{"pack", []string{"pack", "--json", "vm", "a.xva"}},
		{"pack", []string{"convert", "--json", "--format", "xapi", "a.xva", "b.xva"}},
		{"unpack", []string{"unpack", "--json", "a.xva", "out"}},
		{"unpack", []string{"unpack", "--json", "--disk-format", "vhd", "b.xva", "out-vhd"}},
		{"info", []string{"info", "--json", "a.xva"}},
		{"info", []string{"info", "--json", "b.xva"}},
		{"info", []string{"info", "--json", "out-vhd/sda.vhd"}},
		{"verify", []string{"verify", "--json", "a.xva", "b.xva"}},
		{"ovf", []string{"convert", "--json", "a.xva", "a.ova"}},
		{"ovf", []string{"convert", "--json", "--format", "ovf", "--ovf-disk-format", "qcow2", "a.xva", "a-ovf"}},
		{"info", []string{"info", "--json", "a.ova"}},
		{"info", []string{"info", "--json", "a-ovf/a-ovf.ovf"}},
		{"verify", []string{"verify", "--json", "a.ova", "a-ovf/a-ovf.ovf"}},
		{"pack", []string{"convert", "--json", "a.ova", "c.xva"}},
		{"unpack", []string{"unpack", "--json", "a.ova", "out-ova"}},
		{"version", []string{"version", "--json"}},
	}
	for _, c := range local {
		out := mustRun(t, dir, nil, c.args...)
		checkDoc(t, c.schema, out)
	}
	for _, c := range []struct {
		schema string
		args   []string
	}{
		{"upload", []string{"upload", "--json", "a.xva"}},
		{"upload", []string{"upload", "--json", "a.ova"}},
		{"export", []string{"export", "--json", "--vm", uuid, "exported.xva"}},
	} {
		r := remote(t, dir, "secret", append(c.args, "--url", s.URL, "--ca-cert", ca)...)
		if r.code != 0 {
			t.Fatalf("%s: exit %d\n%s", c.args[0], r.code, r.stderr)
		}
		checkDoc(t, c.schema, r.stdout)
	}
	var v buildInfo
	json.Unmarshal([]byte(mustRun(t, dir, nil, "version", "--json")), &v)
	if v.GoVersion != runtime.Version() || v.Platform != runtime.GOOS+"/"+runtime.GOARCH {
		t.Fatalf("version: %+v", v)
	}
	if out := mustRun(t, dir, nil, "version"); !strings.Contains(out, runtime.Version()) {
		t.Fatalf("version: %q", out)
	}
}

// checkDoc requires exactly one JSON document with schema_version 1 that
// matches the schema.
func checkDoc(t *testing.T, schema, out string) {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(out))
	var doc map[string]any
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("%s: not JSON: %v\n%s", schema, err, out)
	}
	if dec.More() {
		t.Fatalf("%s: more than one document:\n%s", schema, out)
	}
	if doc["schema_version"] != float64(1) {
		t.Fatalf("%s: schema_version %v", schema, doc["schema_version"])
	}
	validateSchema(t, schema, out)
}

// Uploads report bytes sent and the server task's progress; --verbose
// logs the steps, pool calls included, and never the password.
func TestUploadProgressAndVerbose(t *testing.T) {
	s, ca := pool(t)
	dir := t.TempDir()
	uploadVM.WriteDir(filepath.Join(dir, "vm"))
	r := runWith(t, dir, nil, []string{"XVA_PASSWORD=secret", "XVA_PROGRESS_INTERVAL=1ns"},
		"upload", "--progress=plain", "-v", "vm", "--url", s.URL, "--ca-cert", ca)
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	for _, want := range []string{"xva: upload: started", "xva: upload: ", "task ", "msg=\"logged in\"", "method=VM.get_uuid", "msg=PUT"} {
		if !strings.Contains(r.stderr, want) {
			t.Fatalf("stderr lacks %q:\n%s", want, r.stderr)
		}
	}
	if strings.Contains(r.stderr, "secret") {
		t.Fatal("the password was logged")
	}
	r = run(t, dir, nil, "-v", "pack", "vm", "a.xva")
	for _, want := range []string{"msg=\"image opened\"", "msg=\"disk packed\"", "msg=\"output complete\""} {
		if !strings.Contains(r.stderr, want) {
			t.Fatalf("pack -v lacks %q:\n%s", want, r.stderr)
		}
	}
	r = run(t, dir, nil, "-v", "unpack", "a.xva", "out")
	for _, want := range []string{"msg=\"archive opened\"", "format=legacy", "msg=\"disk written\""} {
		if !strings.Contains(r.stderr, want) {
			t.Fatalf("unpack -v lacks %q:\n%s", want, r.stderr)
		}
	}
}

// --quiet leaves only errors and the results asked for.
func TestQuiet(t *testing.T) {
	dir, _ := setup(t)
	for _, args := range [][]string{
		{"pack", "-q", "--progress", "--disk", "sda=sda.img", "a.xva"},
		{"unpack", "-q", "a.xva", "out"},
		{"verify", "-q", "a.xva"},
		{"convert", "-q", "--format", "xapi", "a.xva", "b.xva"},
	} {
		if r := run(t, dir, nil, args...); r.code != 0 || r.stdout != "" || r.stderr != "" {
			t.Fatalf("xva %s: exit %d, printed %q %q", strings.Join(args, " "), r.code, r.stdout, r.stderr)
		}
	}
	if out := mustRun(t, dir, nil, "pack", "-q", "--json", "--disk", "sda=sda.img", "c.xva"); !strings.Contains(out, "schema_version") {
		t.Fatalf("--quiet --json dropped the document: %q", out)
	}
	os.Truncate(filepath.Join(dir, "b.xva"), 5000)
	if r := run(t, dir, nil, "verify", "-q", "b.xva"); r.code != exitCorrupt || !strings.Contains(r.stdout, "CORRUPT") {
		t.Fatalf("verify -q of a corrupt archive: exit %d %q", r.code, r.stdout)
	}
}

// info.schema.json names the image formats info describes: the rows of the
// library's format table that have a description, no more, no fewer.
func TestImageSchemaFollowsTheFormatTable(t *testing.T) {
	b, err := os.ReadFile("../../docs/json/info.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	var schema struct {
		Defs map[string]struct {
			Properties map[string]struct {
				Enum []string `json:"enum"`
			} `json:"properties"`
		} `json:"$defs"`
	}
	if err := json.Unmarshal(b, &schema); err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, f := range xva.DiskFormats() {
		if f.Describe && !slices.Contains(want, f.Name) {
			want = append(want, f.Name)
		}
	}
	if got := schema.Defs["image"].Properties["format"].Enum; !slices.Equal(got, want) || len(want) == 0 {
		t.Fatalf("info.schema.json: image formats %q, the table describes %q", got, want)
	}
}

// A command given --json that fails prints an error document on stdout,
// matching docs/json/error.schema.json, with the kind of failure, and for
// corruption its kind and place.
func TestJSONErrorDocument(t *testing.T) {
	dir, _ := setup(t)
	mustRun(t, dir, nil, "pack", "--disk", "sda=sda.img", "a.xva")
	b, _ := os.ReadFile(filepath.Join(dir, "a.xva"))
	os.WriteFile(filepath.Join(dir, "short.xva"), b[:len(b)/2], 0o644)
	os.WriteFile(filepath.Join(dir, "text.xva"), []byte("hello, not an archive\n"), 0o644)
	for _, c := range []struct {
		args       []string
		code       int
		kind, corr string
	}{
		{[]string{"unpack", "--json", "--disk-format", "qed", "a.xva", "o1"}, exitUsage, "usage", ""},
		{[]string{"info", "--json", "-j", "-1", "a.xva"}, exitUsage, "usage", ""},
		{[]string{"info", "--json", "--bogus", "a.xva"}, exitUsage, "usage", ""},
		{[]string{"unpack", "--json", "short.xva", "o2"}, exitCorrupt, "corrupt", "truncated"},
		{[]string{"info", "--json", "text.xva"}, exitFailure, "not-archive", ""},
		{[]string{"unpack", "--json", "missing.xva", "o3"}, exitFailure, "failure", ""},
		{[]string{"convert", "--json", "a.xva", "a.xva"}, exitFailure, "failure", ""},
	} {
		r := run(t, dir, nil, c.args...)
		if r.code != c.code {
			t.Errorf("xva %v: exit %d, want %d\n%s", c.args, r.code, c.code, r.stderr)
			continue
		}
		checkDoc(t, "error", r.stdout)
		var doc errorDocument
		json.Unmarshal([]byte(r.stdout), &doc)
		if doc.Error.Kind != c.kind || doc.Error.Corruption != c.corr || doc.Error.Message == "" {
			t.Errorf("xva %v: error document %+v, want kind %q corruption %q", c.args, doc.Error, c.kind, c.corr)
		}
		if c.kind == "corrupt" && doc.Error.Member == "" {
			t.Errorf("xva %v: the corruption names no member: %+v", c.args, doc.Error)
		}
	}
	// A document already printed is not followed by an error document.
	r := run(t, dir, nil, "verify", "--json", "short.xva")
	if r.code != exitCorrupt {
		t.Fatalf("verify: exit %d", r.code)
	}
	checkDoc(t, "verify", r.stdout)
}

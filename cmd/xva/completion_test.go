package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/xva-tools/xva"
)

// The shell completes the values of the flags that take one of a few
// words, through the __complete command every completion script calls.
func TestCompletionOfFlagValues(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		args []string
		want []string
	}{
		{[]string{"pack", "--format", ""}, []string{"xapi", "legacy"}},
		{[]string{"convert", "--compress", ""}, []string{"none", "gzip", "zstd"}},
		{[]string{"pack", "--checksum", ""}, []string{"xxhash", "sha1"}},
		{[]string{"unpack", "--disk-format", ""}, tableFormats(t)},
		{[]string{"verify", "--progress="}, []string{"auto", "bar", "plain", "none"}},
		{[]string{"export", "--compress", ""}, []string{"zstd", "gzip"}},
	} {
		out := mustRun(t, dir, nil, append([]string{"__complete"}, c.args...)...)
		var got []string
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			if !strings.HasPrefix(l, ":") {
				got = append(got, l)
			}
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("completing %v: %q, want %q", c.args, got, c.want)
		}
	}
	if out := mustRun(t, dir, nil, "completion", "bash"); !strings.Contains(out, "__complete") {
		t.Error("the bash script does not ask xva for completions")
	}
}

// The man pages show flags as they are typed: no --flag="default", no
// --switch[=false].
func TestManPagesShowFlagsAsTyped(t *testing.T) {
	pages, _ := filepath.Glob("../../docs/man/*.1")
	if len(pages) == 0 {
		t.Fatal("no man pages")
	}
	for _, p := range pages {
		b, _ := os.ReadFile(p)
		s := string(b)
		for _, bad := range []string{`\fP="`, `\fP[=false]`, `\fP[=true]`, `\fP=[]`, `\fP=0`} {
			if strings.Contains(s, bad) {
				t.Errorf("%s: a flag shown as %s", filepath.Base(p), bad)
			}
		}
	}
	b, _ := os.ReadFile("../../docs/man/xva-pack.1")
	for _, want := range []string{`\fB--format\fP \fIxapi|legacy\fP`, `\fB--disk\fP \fIDEVICE=PATH\fP`,
		`\fB--progress\fP[=\fIauto|bar|plain|none\fP]`, `\fB-q\fP, \fB--quiet\fP` + "\n", "(default: 512MiB)"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("xva-pack.1 lacks %s", want)
		}
	}
}

// tableFormats is every format of the library's table that unpack writes,
// in table order; raw, vhd and vhd-fixed among them.
func tableFormats(t *testing.T) []string {
	var r []string
	for _, f := range xva.DiskFormats() {
		if f.Write {
			r = append(r, f.Name)
		}
	}
	for _, must := range []string{"raw", "vhd", "vhd-fixed"} {
		if !slices.Contains(r, must) {
			t.Errorf("the format table does not write %s: %v", must, r)
		}
	}
	return r
}

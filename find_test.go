package xva_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/xva-tools/xva"
)

// FindArchives lists archive files and directory-form archives, sorted,
// and nothing hidden or beneath a directory-form archive.
func TestFindArchives(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"a.xva", "b/c.xva.zst", "b/d.xva.gz", "b/e.tar", "notes.txt", ".x.xva.xva-tmp-0000abcd",
		"legacy/ova.xml", "legacy/Ref:1/00000000.gz", "b/inner.xva/ova.xml", "deep/er/f.XVA"} {
		p := filepath.Join(dir, filepath.FromSlash(f))
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, nil, 0o644)
	}
	got, err := xva.FindArchives(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	for i := range got {
		got[i] = filepath.ToSlash(strings.TrimPrefix(got[i], dir+string(filepath.Separator)))
	}
	want := []string{"a.xva", "b/c.xva.zst", "b/d.xva.gz", "b/e.tar", "b/inner.xva", "deep/er/f.XVA", "legacy"}
	if !slices.Equal(got, want) {
		t.Fatalf("found %q, want %q", got, want)
	}
	if !xva.IsArchiveTree(dir) || xva.IsArchiveTree(filepath.Join(dir, "legacy")) || xva.IsArchiveTree(filepath.Join(dir, "a.xva")) {
		t.Fatal("IsArchiveTree")
	}
	if xva.JoinOutput("s3://b/p/", "x.xva") != "s3://b/p/x.xva" || xva.JoinOutput("d", "x.xva") != filepath.Join("d", "x.xva") {
		t.Fatal("JoinOutput")
	}
}

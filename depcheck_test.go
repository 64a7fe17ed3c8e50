package xva_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"slices"
	"sort"
	"strings"
	"testing"
)

const module = "github.com/xva-tools/xva"

// formatImports is what a format package (ova, chunk, raw, vhd, lvm, and
// any new top-level package the allow-list does not name: a new image
// format) may import of the module: the disk abstraction and the internal
// helpers. Format packages never import each other; they meet in the root
// package (DESIGN.md §2).
var formatImports = []string{"disk", "internal/pipeline", "internal/fsutil", "internal/blockdev", "internal/tarx"}

// formatPackages are the format packages there are today; a new top-level
// package is one too.
var formatPackages = []string{"ova", "chunk", "raw", "vhd", "qcow2", "lvm", "ovf"}

// allowed is the package map of DESIGN.md §2 and docs/design.md as an
// allow-list: each package of the module and what it may import of the
// module directly ("formats" stands for every format package). Tests are
// not held to it: they may use fixtures and internal/testutil.
var allowed = map[string][]string{
	// The bottom: the disk abstraction and helpers that import nothing.
	"disk":              {},
	"internal/pipeline": {},
	"internal/tarx":     {},
	"internal/procmem":  {},
	"internal/fuzzutil": {},
	"internal/zran":     {},
	"internal/zstdran":  {},
	"internal/zstdseek": {"internal/pipeline"},
	"internal/testutil": {},
	"internal/fsutil":   {"disk"},
	"internal/blockdev": {"internal/fsutil"},

	// OVF descriptors and OVA packages: a format package (the root package
	// meets it) with a narrower list than formatImports.
	"ovf": {"internal/tarx", "internal/fsutil"},

	// The root package is where formats meet, and the only place a format
	// name maps to a package (its format table).
	".": {"formats", "disk", "xapi", "nbd", "s3", "internal/pipeline", "internal/fsutil", "internal/blockdev", "internal/tarx", "internal/zran", "internal/zstdran", "internal/zstdseek"},

	// Libraries of their own, not formats: verify reads through the root
	// package; xapi sends and reads ova's records.
	"verify":        {".", "chunk", "internal/pipeline"},
	"xapi":          {"ova"},
	"xapi/xapitest": {"ova"},
	// The NBD server: generic over disk.Sources, knows no format.
	"nbd": {"disk"},
	// Object storage: objects and prefixes, knows no archive.
	"s3": {},

	// The command reaches formats only through the root package.
	"cmd/xva": {".", "verify", "xapi", "s3", "internal/pipeline"},

	// Test data and programs for make demo, fuzz-seeds and bench: the only
	// non-test importers of fixtures.
	"fixtures":              {".", "chunk", "ova", "internal/tarx"},
	"bench":                 {".", "formats", "disk", "fixtures", "internal/procmem"},
	"internal/cmd/fixture":  {".", "fixtures"},
	"internal/cmd/fuzzseed": {".", "chunk", "fixtures"},
}

// rulesOf is the allow-list entry of pkg, with "formats" expanded; a
// top-level package it does not name is a new format package.
func rulesOf(pkg string, all []string) ([]string, bool) {
	r, ok := allowed[pkg]
	if !ok && isFormat(pkg) {
		r, ok = formatImports, true
	}
	var out []string
	for _, p := range r {
		if p == "formats" {
			for _, q := range all {
				if isFormat(q) {
					out = append(out, q)
				}
			}
			continue
		}
		out = append(out, p)
	}
	return out, ok
}

// isFormat: ova, chunk, raw, vhd, lvm, and any other top-level package the
// allow-list does not name.
func isFormat(pkg string) bool {
	if slices.Contains(formatPackages, pkg) {
		return true
	}
	_, named := allowed[pkg]
	return !named && !strings.Contains(pkg, "/") && pkg != "." && pkg != "cmd" && pkg != "internal"
}

// TestDependencyArrows enforces the package map as an allow-list, from go
// list: every import of the module a package makes directly must be one
// of its arrows, and every package it depends on transitively (go list
// -deps) must be reachable through allowed arrows. A format package
// depends on no other format package, however indirectly.
func TestDependencyArrows(t *testing.T) {
	out, err := exec.Command("go", "list", "-json=ImportPath,Imports,Deps", "./...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	type pkgInfo struct{ imports, deps []string }
	pkgs := map[string]pkgInfo{}
	rel := func(p string) (string, bool) {
		if p == module {
			return ".", true
		}
		r, ok := strings.CutPrefix(p, module+"/")
		return r, ok
	}
	own := func(list []string) []string {
		var r []string
		for _, p := range list {
			if q, ok := rel(p); ok {
				r = append(r, q)
			}
		}
		return r
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for dec.More() {
		var p struct {
			ImportPath    string
			Imports, Deps []string
		}
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		name, _ := rel(p.ImportPath)
		pkgs[name] = pkgInfo{own(p.Imports), own(p.Deps)}
	}
	var all []string
	for p := range pkgs {
		all = append(all, p)
	}
	sort.Strings(all)

	// reach is what pkg may depend on: the closure of its allowed arrows.
	reach := func(pkg string) map[string]bool {
		seen := map[string]bool{}
		var walk func(string)
		walk = func(p string) {
			r, _ := rulesOf(p, all)
			for _, q := range r {
				if !seen[q] {
					seen[q] = true
					walk(q)
				}
			}
		}
		walk(pkg)
		return seen
	}

	for _, pkg := range all {
		rules, ok := rulesOf(pkg, all)
		if !ok {
			t.Errorf("package %s is not in the allow-list of depcheck_test.go: add it, with its arrows, as docs/design.md draws them", pkg)
			continue
		}
		for _, imp := range pkgs[pkg].imports {
			if !slices.Contains(rules, imp) {
				t.Errorf("%s imports %s, which is not one of its arrows (it may import %s)", pkg, imp, strings.Join(rules, ", "))
			}
		}
		ok2 := reach(pkg)
		for _, dep := range pkgs[pkg].deps {
			if !ok2[dep] {
				t.Errorf("%s depends on %s (go list -deps), which no chain of allowed arrows reaches", pkg, dep)
			}
			if isFormat(pkg) && isFormat(dep) {
				t.Errorf("format package %s depends on format package %s; format packages meet only in the root package", pkg, dep)
			}
		}
	}
}

// The allow-list catches what the old direct-import check missed: a new
// format package importing another format, and verify importing a format.
func TestDependencyRulesCatchViolations(t *testing.T) {
	all := []string{".", "disk", "raw", "vhd", "verify", "qcow2"}
	for _, c := range []struct {
		pkg, imp string
	}{{"qcow2", "vhd"}, {"verify", "raw"}, {"disk", "internal/fsutil"}, {"cmd/xva", "vhd"}, {".", "fixtures"}} {
		rules, ok := rulesOf(c.pkg, all)
		if !ok {
			t.Fatalf("%s has no rules", c.pkg)
		}
		if slices.Contains(rules, c.imp) {
			t.Errorf("%s may import %s", c.pkg, c.imp)
		}
	}
	if !isFormat("qcow2") || isFormat("verify") || isFormat("internal/fsutil") {
		t.Error("a new top-level package is a format package, and only that")
	}
}

// docs/design.md describes every package there is, and the README points
// to it rather than to a design document that is not in the repository.
func TestDesignDocumentIsCurrent(t *testing.T) {
	out, err := exec.Command("go", "list", "./...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	design, err := os.ReadFile("docs/design.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, pkg := range strings.Fields(string(out)) {
		rel := strings.TrimPrefix(strings.TrimPrefix(pkg, module), "/")
		if rel == "" {
			continue
		}
		short := rel[strings.LastIndex(rel, "/")+1:]
		if !strings.Contains(string(design), rel) && !strings.Contains(string(design), short+",") && !strings.Contains(string(design), short+"}") {
			t.Errorf("docs/design.md does not mention package %s", rel)
		}
	}
	readme, _ := os.ReadFile("README.md")
	if !strings.Contains(string(readme), "(docs/design.md)") || strings.Contains(string(readme), "DESIGN.md") {
		t.Error("the README must link docs/design.md and not DESIGN.md")
	}
}

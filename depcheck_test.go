package xva_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/xva-tools/xva"

// formatPackages meet only in the root package, through disk; they never
// import each other (DESIGN.md §2).
var formatPackages = []string{"ova", "chunk", "raw", "vhd", "lvm"}

// TestDependencyArrows enforces the package map of DESIGN.md §2.
func TestDependencyArrows(t *testing.T) {
	out, err := exec.Command("go", "list", "-json=ImportPath,Imports", "./...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	imports := map[string][]string{}
	for dec.More() {
		var p struct {
			ImportPath string
			Imports    []string
		}
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		imports[strings.TrimPrefix(strings.TrimPrefix(p.ImportPath, module), "/")] = p.Imports
	}
	own := func(pkg string) []string {
		var r []string
		for _, imp := range imports[pkg] {
			if strings.HasPrefix(imp, module+"/") {
				r = append(r, strings.TrimPrefix(imp, module+"/"))
			}
		}
		return r
	}
	for pkg := range imports {
		for _, imp := range own(pkg) {
			switch {
			case isFormat(pkg) && imp != "disk" && !strings.HasPrefix(imp, "internal/"):
				t.Errorf("format package %s imports %s; format packages meet only in the root package", pkg, imp)
			case pkg == "disk" && !strings.HasPrefix(imp, "internal/"):
				t.Errorf("disk imports %s; it is the bottom of the graph", imp)
			case pkg == "cmd/xva" && isFormat(imp):
				t.Errorf("cmd/xva imports format package %s; it must go through the root package", imp)
			case imp == "fixtures" && !strings.HasPrefix(pkg, "internal/cmd/") && !strings.HasPrefix(pkg, "bench"):
				t.Errorf("%s imports fixtures, which only tests and benchmarks may", pkg)
			case imp == "internal/testutil":
				t.Errorf("%s imports internal/testutil, which only tests may", pkg)
			}
		}
	}
}

func isFormat(pkg string) bool {
	for _, f := range formatPackages {
		if pkg == f {
			return true
		}
	}
	return false
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

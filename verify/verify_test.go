package verify

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/xva-tools/xva"
	"github.com/xva-tools/xva/fixtures"
)

func TestCorpus(t *testing.T) {
	dir := t.TempDir()
	intact, cases, err := fixtures.Corpus(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(cases) < 25 {
		t.Fatalf("the corpus has %d faults; it needs at least 25", len(cases))
	}
	for _, p := range intact {
		rep := Archive(context.Background(), p, Options{})
		if !rep.OK || len(rep.Problems) > 0 || rep.Error != "" {
			t.Errorf("intact %s: %+v %s", filepath.Base(p), rep.Problems, rep.Error)
		}
		for _, d := range rep.Disks {
			if d.Verified == 0 || !d.OK {
				t.Errorf("intact %s: disk %s verified %d bytes", filepath.Base(p), d.Device, d.Verified)
			}
		}
	}
	for _, c := range cases {
		t.Run(c.Fault, func(t *testing.T) {
			rep := Archive(context.Background(), c.Path, Options{Jobs: 3})
			if rep.OK || rep.Error != "" {
				t.Fatalf("OK=%v error=%q problems=%+v", rep.OK, rep.Error, rep.Problems)
			}
			// A problem of an expected kind at the expected place.
			for _, p := range rep.Problems {
				switch {
				case !slices.Contains(c.Kinds, string(p.Kind)):
				case c.Member != "" && p.Member == c.Member,
					c.Member == "" && c.Disk != "" && p.Disk == c.Disk,
					c.Member == "" && c.Disk == "":
					return
				}
			}
			var got []string
			for _, p := range rep.Problems {
				got = append(got, string(p.Kind)+" "+p.Member+" disk="+p.Disk+": "+p.Message)
			}
			t.Fatalf("no problem names member=%q disk=%q kinds=%q; got:\n%s", c.Member, c.Disk, c.Kinds, strings.Join(got, "\n"))
		})
	}
}

// Archives xva reads but a host's importer refuses or misreads: verify
// calls them corrupt with a problem of kind import on the member, and
// unpack still reads them.
func TestImportProblems(t *testing.T) {
	cases, err := fixtures.ImportCases(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		t.Run(c.Fault, func(t *testing.T) {
			rep := Archive(context.Background(), c.Path, Options{})
			if rep.OK || rep.Error != "" {
				t.Fatalf("verify passed it: %+v %s", rep.Problems, rep.Error)
			}
			for _, p := range rep.Problems {
				if p.Kind != Import || c.Member != "" && p.Member != c.Member {
					t.Fatalf("problem %+v; want only import problems naming %s", p, c.Member)
				}
			}
			if _, err := xva.Unpack(context.Background(), c.Path, filepath.Join(t.TempDir(), "out")); err != nil {
				t.Fatalf("xva does not read it: %v", err)
			}
		})
	}
}

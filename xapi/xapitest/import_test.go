package xapitest_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xva-tools/xva"
	"github.com/xva-tools/xva/fixtures"
	"github.com/xva-tools/xva/ova"
	"github.com/xva-tools/xva/xapi/xapitest"
)

// Every archive verify reports an import problem for, which xva itself
// reads, is one the model of the host refuses: verify and the model agree
// on what a host does.
func TestImportCasesAgreeWithVerify(t *testing.T) {
	cases, err := fixtures.ImportCases(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s := xapitest.New()
	defer s.Close()
	for _, c := range cases {
		t.Run(c.Fault, func(t *testing.T) {
			if _, err := xva.Unpack(context.Background(), c.Path, filepath.Join(t.TempDir(), "un")); err != nil {
				t.Fatalf("xva does not read it: %v", err)
			}
			f, err := os.Open(c.Path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			var ie *xapitest.ImportError
			if _, err := s.Import(f, 0, false, false); !errors.As(err, &ie) {
				t.Fatalf("the host imports it: %v", err)
			}
		})
	}
}

// withOVA returns the tar archive at path with its ova.xml replaced.
func withOVA(t *testing.T, path string, doc []byte) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out bytes.Buffer
	tr, tw := tar.NewReader(f), tar.NewWriter(&out)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(tr)
		if h.Name == "ova.xml" {
			data = doc
		}
		tw.WriteHeader(&tar.Header{Name: h.Name, Mode: 0o400, Size: int64(len(data)), Format: tar.FormatUSTAR})
		tw.Write(data)
	}
	tw.Close()
	return out.Bytes()
}

// The model refuses an archive without any one of the fields the datamodel
// table requires, in xapi's words, and takes one without a defaulted field.
func TestModelRefusesEachRequiredFieldsAbsence(t *testing.T) {
	vm := fixtures.VM{Name: "req", Memory: 1 << 28, VCPUs: 1, Disks: []fixtures.Disk{{Size: 4096, Seed: 1, Data: 1}}}
	dir := filepath.Join(t.TempDir(), "vm")
	if _, err := vm.WriteXapiDir(dir, nil); err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(t.TempDir(), "a.xva")
	if _, err := xva.PackDir(context.Background(), dir, archive); err != nil {
		t.Fatal(err)
	}
	doc, _ := os.ReadFile(filepath.Join(dir, "ova.xml"))
	s := xapitest.New()
	defer s.Close()
	dm := ova.XapiDatamodel()
	checked := 0
	for _, class := range []string{"VM", "VBD", "VDI", "SR"} {
		for field, spec := range dm.Fields(class) {
			e, err := ova.ParseExport(doc)
			if err != nil {
				t.Fatal(err)
			}
			var o *ova.Object
			for _, x := range e.Objects {
				if x.Class == class && o == nil {
					o = x
				}
			}
			var kept []ova.Member
			for _, m := range o.Snapshot.Members {
				if m.Name != field {
					kept = append(kept, m)
				}
			}
			o.Snapshot.Members = kept
			_, err = s.Import(bytes.NewReader(withOVA(t, archive, e.Marshal())), 0, false, false)
			want := `Failure("Field ` + field + ` not present in rpc")`
			switch {
			case spec.Required && (err == nil || !strings.Contains(err.Error(), want)):
				t.Errorf("%s without %s: %v", class, field, err)
			case !spec.Required && err != nil:
				t.Errorf("%s without defaulted %s: %v", class, field, err)
			}
			checked++
		}
	}
	if checked < 150 {
		t.Fatalf("only %d fields checked", checked)
	}
}

package xapitest_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xva-tools/xva"
	"github.com/xva-tools/xva/chunk"
	"github.com/xva-tools/xva/fixtures"
	"github.com/xva-tools/xva/ova"
	"github.com/xva-tools/xva/verify"
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

// The model imports a real host's export: the ova.xml of a XenServer 5.5
// export (shared/samples), with its 5 GiB disk's first and last blocks.
func TestModelImportsARealExport(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped with -short: the model hashes the whole 5 GiB disk")
	}
	doc, err := os.ReadFile("../../../shared/samples/xenserver-5.5-modern-ova.xml")
	if err != nil {
		t.Skipf("shared samples not available: %v", err)
	}
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	put := func(name string, data []byte) {
		tw.WriteHeader(&tar.Header{Name: name, Mode: 0o400, Size: int64(len(data)), Format: tar.FormatUSTAR})
		tw.Write(data)
	}
	put("ova.xml", doc)
	block := bytes.Repeat([]byte("xenserver"), 1<<20/9+1)[:1<<20]
	sum := sha1.Sum(block)
	// virtual_size 5368709120: blocks 0 to 5119, the middle ones all zero.
	for _, n := range []string{"00000000", "00005119"} {
		put("Ref:4/"+n, block)
		put("Ref:4/"+n+".checksum", []byte(hex.EncodeToString(sum[:])))
	}
	tw.Close()
	s := xapitest.New()
	defer s.Close()
	vm, err := s.Import(&b, 0, false, false)
	if err != nil {
		t.Fatal(err)
	}
	if vm.Name != "~Unnamed" || len(vm.Disks) != 1 || vm.Disks[0].Size != 5<<30 || len(vm.VIFs) != 1 || len(vm.VBDs) != 2 {
		t.Fatalf("VM %+v", vm)
	}
}

// An export_vsn 1 archive (XenServer 4.1: inline SHA-1 checksums and a
// trailing table of them) imports on the model, and xva reads and verifies
// it.
func TestExportVsn1(t *testing.T) {
	vm := fixtures.VM{Name: "rio", Memory: 1 << 28, VCPUs: 1, Disks: []fixtures.Disk{{Size: 3<<20 + 512, Seed: 5, Data: 0.6, MaxRegion: 1 << 20}}}
	dir := filepath.Join(t.TempDir(), "vm")
	sums, err := vm.WriteXapiDir(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(t.TempDir(), "a.xva")
	if _, err := xva.PackDir(context.Background(), dir, archive, xva.WithChecksum(chunk.SHA1)); err != nil {
		t.Fatal(err)
	}
	doc, _ := os.ReadFile(filepath.Join(dir, "ova.xml"))
	e, err := ova.ParseExport(doc)
	if err != nil {
		t.Fatal(err)
	}
	e.Root.Field("version").Set("export_vsn", ova.NewInt(1))
	b := withOVA(t, archive, e.Marshal())
	// The table: every data member's SHA-1, after the last disk.
	table := ova.NewStruct()
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		if h.Name != "ova.xml" && filepath.Ext(h.Name) == "" {
			data, _ := io.ReadAll(tr)
			sum := sha1.Sum(data)
			table.Members = append(table.Members, ova.Member{Name: h.Name, Value: ova.NewString(hex.EncodeToString(sum[:]))})
		}
	}
	var out bytes.Buffer
	tw := tar.NewWriter(&out)
	tr = tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		data, _ := io.ReadAll(tr)
		tw.WriteHeader(&tar.Header{Name: h.Name, Mode: 0o400, Size: int64(len(data)), Format: tar.FormatUSTAR})
		tw.Write(data)
	}
	doc = table.Marshal()
	tw.WriteHeader(&tar.Header{Name: "checksums", Mode: 0o400, Size: int64(len(doc)), Format: tar.FormatUSTAR})
	tw.Write(doc)
	tw.Close()
	s := xapitest.New()
	defer s.Close()
	got, err := s.Import(bytes.NewReader(out.Bytes()), 0, false, false)
	if err != nil {
		t.Fatal(err)
	}
	if got.Disks[0].SHA256 != sums["sda"] {
		t.Fatal("the host's disk differs")
	}
	path := filepath.Join(t.TempDir(), "vsn1.xva")
	os.WriteFile(path, out.Bytes(), 0o600)
	un := filepath.Join(t.TempDir(), "un")
	if _, err := xva.Unpack(context.Background(), path, un); err != nil {
		t.Fatal(err)
	}
	if h, _ := fixtures.HashFile(filepath.Join(un, "sda.raw")); h != sums["sda"] {
		t.Fatal("xva reads another disk")
	}
	if rep := verify.Archive(context.Background(), path, verify.Options{}); !rep.OK {
		t.Fatalf("verify: %+v %s", rep.Problems, rep.Error)
	}
	// A wrong table entry: the host refuses, unless force.
	bad := bytes.Clone(out.Bytes())
	i := bytes.LastIndex(bad, []byte(table.Members[0].Value.Str())) // in the table, after the inline one
	copy(bad[i:], bytes.Repeat([]byte("0"), 40))
	if _, err := s.Import(bytes.NewReader(bad), 0, false, false); err == nil || !strings.Contains(err.Error(), "SOME_CHECKSUMS_FAILED") {
		t.Fatalf("a wrong table: %v", err)
	}
}

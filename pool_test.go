package xva_test

import (
	"bytes"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/xva-tools/xva"
	"github.com/xva-tools/xva/xapi"
	"github.com/xva-tools/xva/xapi/xapitest"
)

// ExportVMs downloads each VM to its own archive, named by uuid and name,
// at most Parallel at once; a VM that fails (corrupt, refused, broken off,
// its output already there) leaves nothing new and the others complete.
func TestExportVMs(t *testing.T) {
	s := xapitest.New()
	defer s.Close()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.Certificate().Raw}), 0o600)
	vmdir, _ := writeXapiDir(t, xapiVM, nil)
	archive := filepath.Join(t.TempDir(), "a.xva")
	if _, err := xva.PackDir(ctx, vmdir, archive); err != nil {
		t.Fatal(err)
	}
	good, _ := os.ReadFile(archive)
	bad := bytes.Clone(good)
	bad[len(bad)-1024-600] ^= 0xff // inside the last block
	vms := []xapitest.PoolVM{
		{UUID: "11111111-0000-0000-0000-000000000001", Name: "web 01/prod", PowerState: "Halted"},
		{UUID: "11111111-0000-0000-0000-000000000002", Name: "db", PowerState: "Suspended"},
		{UUID: "11111111-0000-0000-0000-000000000003", Name: "bad", PowerState: "Halted"},
		{UUID: "11111111-0000-0000-0000-000000000004", Name: "running", PowerState: "Running"},
		{UUID: "11111111-0000-0000-0000-000000000005", Name: "broken", PowerState: "Halted"},
		{UUID: "11111111-0000-0000-0000-000000000006", Name: "", PowerState: "Halted"},
	}
	for _, v := range vms {
		a := good
		if v.Name == "bad" {
			a = bad
		}
		s.AddPoolVM(v, a)
	}
	s.FailExport[vms[4].UUID] = 10000
	s.ExportDelay = 50 * time.Millisecond
	c, err := xapi.Login(ctx, s.URL, "root", "secret", xapi.WithCACert(ca))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Logout(ctx)
	recs, _ := c.VMRecords(ctx)
	sel, err := xapi.Select(recs, xapi.Selection{All: true})
	if err != nil || len(sel) != 6 {
		t.Fatalf("%d VMs selected, %v", len(sel), err)
	}
	out := filepath.Join(t.TempDir(), "exports")
	if err := xva.MakeOutputDir(out); err != nil {
		t.Fatal(err)
	}
	var done []string
	res := xva.ExportVMs(ctx, c, sel, out, xva.PoolExportOptions{Parallel: 2,
		Done: func(e xva.VMExport) { done = append(done, e.VM.UUID) }})
	if len(done) != 6 || s.ExportPeak() != 2 {
		t.Fatalf("%d told done, %d exports at once", len(done), s.ExportPeak())
	}
	for _, e := range res {
		switch e.VM.Name {
		case "bad":
			if !e.Corrupt() {
				t.Errorf("bad: %v", e.Err)
			}
		case "running":
			if !errors.Is(e.Err, &xapi.Error{Code: xapi.CodeBadPowerState}) {
				t.Errorf("running: %v", e.Err)
			}
		case "broken":
			if e.Err == nil || e.Corrupt() {
				t.Errorf("broken: %v", e.Err)
			}
		default:
			if e.Err != nil {
				t.Errorf("%s: %v", e.VM.Name, e.Err)
			}
			if b, _ := os.ReadFile(e.Output); !bytes.Equal(b, good) {
				t.Errorf("%s: the archive differs from what the host sent", e.Output)
			}
		}
	}
	var names []string
	ents, _ := os.ReadDir(out)
	for _, e := range ents {
		names = append(names, e.Name())
	}
	want := []string{"11111111-0000-0000-0000-000000000001-web_01_prod.xva", "11111111-0000-0000-0000-000000000002-db.xva",
		"11111111-0000-0000-0000-000000000006.xva"}
	if !slices.Equal(names, want) {
		t.Fatalf("left %q, want %q", names, want)
	}
	// Again: the archives there are failures without Force, replaced with.
	web := sel[slices.IndexFunc(sel, func(r xapi.VMRecord) bool { return r.Name == "web 01/prod" }):][:1]
	res = xva.ExportVMs(ctx, c, web, out, xva.PoolExportOptions{})
	if !errors.Is(res[0].Err, xva.ErrExists) {
		t.Fatalf("an existing archive: %v", res[0].Err)
	}
	if res = xva.ExportVMs(ctx, c, web, out, xva.PoolExportOptions{Force: true}); res[0].Err != nil {
		t.Fatalf("Force: %v", res[0].Err)
	}
	res = xva.ExportVMs(ctx, c, web, out, xva.PoolExportOptions{Compression: "zstd"})
	if res[0].Err != nil || !strings.HasSuffix(res[0].Output, "-web_01_prod.xva.zst") {
		t.Fatalf("zstd: %v %s", res[0].Err, res[0].Output)
	}
}

package xva_test

import (
	"bytes"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"

	"github.com/xva-tools/xva"
	"github.com/xva-tools/xva/xapi"
	"github.com/xva-tools/xva/xapi/xapitest"
)

// Export checks the download as it streams: an intact one is returned
// whole; a damaged one is corrupt, with every problem found, by kind.
func TestExportChecksTheDownload(t *testing.T) {
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
	var at [2]int64 // a data block's offset and size
	for name, o := range memberOffsets(t, archive) {
		if name != "ova.xml" && filepath.Ext(name) == "" && o[1] > 100 {
			at = o
		}
	}
	if at[1] == 0 {
		t.Fatal("no data block")
	}
	bad[at[0]+100] ^= 0xff
	s.Exports["good"], s.Exports["bad"] = good, bad
	c, err := xapi.Login(ctx, s.URL, "root", "secret", xapi.WithCACert(ca))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Logout(ctx)
	for _, comp := range []string{"", "zstd", "gzip"} {
		var got bytes.Buffer
		res, err := xva.Export(ctx, c, "good", &got, xva.ExportOptions{Compression: comp})
		if err != nil || res.Received != int64(got.Len()) || len(res.Problems) != 0 {
			t.Fatalf("%q: %v, %+v", comp, err, res)
		}
		if comp == "" && !bytes.Equal(got.Bytes(), good) {
			t.Fatal("the download differs from the export")
		}
	}
	res, err := xva.Export(ctx, c, "bad", &bytes.Buffer{}, xva.ExportOptions{})
	if !xva.IsCorrupt(err) || res == nil || len(res.Problems) == 0 || res.Problems[0].Kind != xva.KindChecksum {
		t.Fatalf("a damaged download: %v, %+v", err, res)
	}
}

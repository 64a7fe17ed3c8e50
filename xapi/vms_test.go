package xapi_test

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/xva-tools/xva/xapi"
	"github.com/xva-tools/xva/xapi/xapitest"
)

// poolOfVMs adds a pool's worth of VMs to s: three user VMs (one running,
// two named alike), a template, a snapshot and the control domain.
func poolOfVMs(s *xapitest.Server) {
	for _, v := range []xapitest.PoolVM{
		{UUID: "00000000-0000-0000-0000-00000000d0d0", Name: "Control domain on host: xs1", PowerState: "Running", ControlDomain: true},
		{UUID: "11111111-0000-0000-0000-000000000001", Name: "web", PowerState: "Halted", Tags: []string{"backup", "prod"}},
		{UUID: "11111111-0000-0000-0000-000000000002", Name: "db", PowerState: "Suspended", Tags: []string{"backup"}},
		{UUID: "11111111-0000-0000-0000-000000000003", Name: "web", PowerState: "Running"},
		{UUID: "22222222-0000-0000-0000-000000000001", Name: "Debian 12", PowerState: "Halted", Template: true, Tags: []string{"backup"}},
		{UUID: "33333333-0000-0000-0000-000000000001", Name: "web before upgrade", PowerState: "Halted", Snapshot: true, Tags: []string{"backup"}},
	} {
		s.AddPoolVM(v, []byte("archive of "+v.UUID))
	}
}

func uuids(vms []xapi.VMRecord) []string {
	var u []string
	for _, v := range vms {
		u = append(u, v.UUID[len(v.UUID)-4:])
	}
	return u
}

// VM.get_all_records returns every VM; Select takes the user VMs (no
// template, snapshot or control domain) by --all, tag, uuid or a name
// that only one VM has.
func TestSelectVMs(t *testing.T) {
	s, ca := fake(t)
	poolOfVMs(s)
	c, err := xapi.Login(ctx, s.URL, "root", "secret", xapi.WithCACert(ca))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Logout(ctx)
	recs, err := c.VMRecords(ctx)
	if err != nil || len(recs) != 6 {
		t.Fatalf("%d records, %v", len(recs), err)
	}
	for _, r := range recs {
		if r.Ref == "" || r.PowerState == "" || r.IsSnapshot && !r.IsTemplate {
			t.Fatalf("record %+v", r)
		}
	}
	for _, c := range []struct {
		sel  xapi.Selection
		want []string
		err  string
	}{
		{xapi.Selection{All: true}, []string{"0002", "0001", "0003"}, ""},
		{xapi.Selection{Tags: []string{"backup"}}, []string{"0002", "0001"}, ""},
		{xapi.Selection{Tags: []string{"prod"}, VMs: []string{"db"}}, []string{"0002", "0001"}, ""},
		{xapi.Selection{VMs: []string{"11111111-0000-0000-0000-000000000003", "22222222-0000-0000-0000-000000000001"}}, []string{"0001", "0003"}, ""},
		{xapi.Selection{VMs: []string{"web"}}, nil, "2 VMs are named \"web\""},
		{xapi.Selection{VMs: []string{"nosuch"}}, nil, "no VM has the uuid or name \"nosuch\""},
		{xapi.Selection{VMs: []string{"Debian 12"}}, nil, "no VM has"},
		{xapi.Selection{Tags: []string{"none"}}, nil, "no VM (other than templates"},
	} {
		got, err := xapi.Select(recs, c.sel)
		if c.err != "" {
			if !errors.Is(err, xapi.ErrSelection) || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%+v: %v, want %q", c.sel, err, c.err)
			}
			continue
		}
		if err != nil || !slices.Equal(uuids(got), c.want) {
			t.Errorf("%+v: %v %v, want %v", c.sel, uuids(got), err, c.want)
		}
	}
}

// The host refuses to export a running VM, in the task's words; an export
// that fails on the host part way is an error, though the stream ended
// cleanly.
func TestExportRefusals(t *testing.T) {
	s, ca := fake(t)
	poolOfVMs(s)
	s.FailExport["11111111-0000-0000-0000-000000000002"] = 5
	c, err := xapi.Login(ctx, s.URL, "root", "secret", xapi.WithCACert(ca))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Logout(ctx)
	var got bytes.Buffer
	if _, err := c.Export(ctx, "11111111-0000-0000-0000-000000000001", &got, xapi.ExportOptions{}); err != nil || got.String() != "archive of 11111111-0000-0000-0000-000000000001" {
		t.Fatalf("a halted VM: %v %q", err, got.String())
	}
	_, err = c.Export(ctx, "11111111-0000-0000-0000-000000000003", &got, xapi.ExportOptions{})
	if !errors.Is(err, &xapi.Error{Code: xapi.CodeBadPowerState}) || !strings.Contains(err.Error(), "is running: the host exports only a VM that is halted or suspended") {
		t.Fatalf("a running VM: %v", err)
	}
	got.Reset()
	_, err = c.Export(ctx, "11111111-0000-0000-0000-000000000002", &got, xapi.ExportOptions{})
	if !errors.Is(err, &xapi.Error{Code: "VDI_IO_ERROR"}) || got.Len() != 5 {
		t.Fatalf("an export failing on the host: %v, %d bytes", err, got.Len())
	}
}

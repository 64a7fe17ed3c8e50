package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/xva-tools/xva/fixtures"
	"github.com/xva-tools/xva/xapi/xapitest"
)

// poolArchives packs n small xapi archives of different VMs, as a host's
// export of each would be.
func poolArchives(t *testing.T, dir string, n int) [][]byte {
	t.Helper()
	var out [][]byte
	for i := range n {
		vm := fixtures.VM{Name: "vm", Memory: 1 << 29, VCPUs: 1, Disks: []fixtures.Disk{{Size: 1 << 20, Seed: uint64(900 + i), Data: 0.5}}}
		sub := filepath.Join(dir, "src", string(rune('a'+i)))
		os.MkdirAll(filepath.Dir(sub), 0o755)
		if _, err := vm.WriteXapiDir(sub, nil); err != nil {
			t.Fatal(err)
		}
		mustRun(t, dir, nil, "pack", sub, sub+".xva")
		b, err := os.ReadFile(sub + ".xva")
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// The pool of the export tests: three VMs to export, and what --all must
// leave out: the control domain, a template and a snapshot (each with an
// archive, so that taking one would show).
var (
	vmWeb  = xapitest.PoolVM{UUID: "5f1c8a52-7b3e-4a8b-9d27-000000000001", Name: "web 01", PowerState: "Halted", Tags: []string{"nightly"}}
	vmDB   = xapitest.PoolVM{UUID: "5f1c8a52-7b3e-4a8b-9d27-000000000002", Name: "db", PowerState: "Suspended", Tags: []string{"nightly", "db"}}
	vmMail = xapitest.PoolVM{UUID: "5f1c8a52-7b3e-4a8b-9d27-000000000003", Name: "mail/relay", PowerState: "Halted"}
	skip   = []xapitest.PoolVM{
		{UUID: "00000000-0000-0000-0000-00000000d0d0", Name: "Control domain on host: xs1", PowerState: "Running", ControlDomain: true},
		{UUID: "5f1c8a52-7b3e-4a8b-9d27-00000000aaaa", Name: "Debian 12", PowerState: "Halted", Template: true, Tags: []string{"nightly"}},
		{UUID: "5f1c8a52-7b3e-4a8b-9d27-00000000bbbb", Name: "web before upgrade", PowerState: "Halted", Snapshot: true, Tags: []string{"nightly"}},
	}
)

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

// export --all downloads every user VM, two at a time, each to
// UUID-NAME.xva byte for byte as the host sent it; verify DIR checks them
// all, and names the one damaged afterwards (exit 3).
func TestExportAllThenVerifyDir(t *testing.T) {
	s, ca := pool(t)
	dir := t.TempDir()
	arch := poolArchives(t, dir, 4)
	for i, v := range []xapitest.PoolVM{vmWeb, vmDB, vmMail} {
		s.AddPoolVM(v, arch[i])
	}
	for _, v := range skip {
		s.AddPoolVM(v, arch[3])
	}
	s.SetExportDelay(200 * time.Millisecond)
	r := remote(t, dir, "secret", "export", "--url", s.URL, "--ca-cert", ca, "--all", "--json", "backups")
	if r.code != 0 {
		t.Fatalf("export --all: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	checkDoc(t, "export", r.stdout)
	var doc exportManyDoc
	json.Unmarshal([]byte(r.stdout), &doc)
	if !doc.OK || doc.Exported != 3 || len(doc.VMs) != 3 || s.ExportPeak() != 2 {
		t.Fatalf("%+v, %d at once", doc, s.ExportPeak())
	}
	want := map[string][]byte{
		vmWeb.UUID + "-web_01.xva": arch[0], vmDB.UUID + "-db.xva": arch[1], vmMail.UUID + "-mail_relay.xva": arch[2]}
	if names := dirNames(t, filepath.Join(dir, "backups")); len(names) != 3 {
		t.Fatalf("backups/ holds %q", names)
	}
	for name, b := range want {
		got, err := os.ReadFile(filepath.Join(dir, "backups", name))
		if err != nil || !bytes.Equal(got, b) {
			t.Fatalf("%s: %v, or not the bytes the host sent", name, err)
		}
	}
	clean(t, s)

	// A legacy directory-form archive beneath is one archive, found and
	// checked whole; named itself, it is an archive as ever.
	os.Mkdir(filepath.Join(dir, "backups", "old"), 0o755)
	mustRun(t, dir, nil, "convert", "--format", "legacy", filepath.Join("backups", vmWeb.UUID+"-web_01.xva"), "backups/old/legacy/")
	if out := mustRun(t, dir, nil, "verify", "backups/old/legacy"); !strings.Contains(out, "OK       backups/old/legacy: legacy") {
		t.Fatalf("verify of a directory-form archive: %s", out)
	}
	r = run(t, dir, nil, "verify", "backups")
	if r.code != 0 || strings.Count(r.stdout, "OK ") != 4 || !strings.Contains(r.stdout, "4 archives: 4 OK") ||
		!strings.Contains(r.stdout, "OK       "+filepath.Join("backups", "old", "legacy")+": legacy") {
		t.Fatalf("verify backups: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = run(t, dir, nil, "verify", "--json", "--parallel", "3", "backups")
	checkDoc(t, "verify", r.stdout)
	// Damage one inside its last block: exit 3, named; the others pass.
	bad := filepath.Join(dir, "backups", vmDB.UUID+"-db.xva")
	b := bytes.Clone(arch[1])
	b[len(b)/2] ^= 0xff // inside the data block
	os.WriteFile(bad, b, 0o600)
	r = run(t, dir, nil, "verify", "backups")
	if r.code != exitCorrupt || !strings.Contains(r.stdout, "CORRUPT  "+filepath.Join("backups", vmDB.UUID+"-db.xva")) || strings.Count(r.stdout, "OK ") != 3 ||
		!strings.Contains(r.stdout, "checksum") || !strings.Contains(r.stderr, "1 of 4 archives corrupt") {
		t.Fatalf("verify with one damaged: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	// A directory with no archive is a failure, not a pass.
	os.Mkdir(filepath.Join(dir, "empty"), 0o755)
	if r := run(t, dir, nil, "verify", "empty"); r.code != exitFailure || !strings.Contains(r.stdout, "ERROR    empty: a directory that holds no archive") {
		t.Fatalf("verify of an empty directory: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// A VM that fails is named, leaves nothing, and the others complete: a
// corrupt download makes the exit code 3, a running VM (refused by the
// host) or one whose export breaks off 1.
func TestExportManyFailures(t *testing.T) {
	s, ca := pool(t)
	dir := t.TempDir()
	arch := poolArchives(t, dir, 3)
	bad := bytes.Clone(arch[2])
	bad[len(bad)/2] ^= 0xff // inside the data block
	running := xapitest.PoolVM{UUID: "5f1c8a52-7b3e-4a8b-9d27-00000000cccc", Name: "busy", PowerState: "Running"}
	broken := xapitest.PoolVM{UUID: "5f1c8a52-7b3e-4a8b-9d27-00000000dddd", Name: "broken", PowerState: "Halted"}
	s.AddPoolVM(vmWeb, arch[0])
	s.AddPoolVM(vmDB, arch[1])
	s.AddPoolVM(vmMail, bad)
	s.AddPoolVM(running, arch[0])
	s.AddPoolVM(broken, arch[1])
	s.SetFailExport(broken.UUID, 20000)
	r := remote(t, dir, "secret", "export", "--url", s.URL, "--ca-cert", ca, "--all", "--parallel", "3", "out")
	if r.code != exitCorrupt {
		t.Fatalf("exit %d, want 3\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{
		"ok      " + vmWeb.UUID + " web 01", "ok      " + vmDB.UUID + " db",
		"FAILED  " + vmMail.UUID + " mail/relay: the download is corrupt",
		"FAILED  " + running.UUID + " busy: VM " + running.UUID + " is running: the host exports only a VM that is halted or suspended",
		"FAILED  " + broken.UUID + " broken: the host failed the export after 20000 bytes: xapi: VDI_IO_ERROR",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Fatalf("stdout lacks %q:\n%s", want, r.stdout)
		}
	}
	if !strings.Contains(r.stderr, "3 of 5 VMs not exported") || !strings.Contains(r.stderr, running.UUID+" (busy)") {
		t.Fatalf("stderr: %s", r.stderr)
	}
	if names := dirNames(t, filepath.Join(dir, "out")); !slices.Equal(names, []string{vmWeb.UUID + "-web_01.xva", vmDB.UUID + "-db.xva"}) &&
		!slices.Equal(names, []string{vmDB.UUID + "-db.xva", vmWeb.UUID + "-web_01.xva"}) {
		t.Fatalf("out/ holds %q", names)
	}
	// No corrupt download among the failures: exit 1, with the document.
	r = remote(t, dir, "secret", "export", "--url", s.URL, "--ca-cert", ca, "--vm", running.UUID, "--vm", "broken", "--json", "out2")
	if r.code != exitFailure {
		t.Fatalf("exit %d, want 1\n%s%s", r.code, r.stdout, r.stderr)
	}
	checkDoc(t, "export", r.stdout)
	var doc exportManyDoc
	json.Unmarshal([]byte(r.stdout), &doc)
	if doc.OK || doc.Failed != 2 || doc.VMs[0].Failure != "failure" || !strings.Contains(doc.VMs[1].Error, "halted or suspended") {
		t.Fatalf("%+v", doc)
	}
	// The single form gets the host's refusal in the same words.
	r = remote(t, dir, "secret", "export", "--url", s.URL, "--ca-cert", ca, "--vm", running.UUID, "one.xva")
	if r.code != exitFailure || !strings.Contains(r.stderr, "is running: the host exports only a VM that is halted or suspended") {
		t.Fatalf("single form, running VM: exit %d\n%s", r.code, r.stderr)
	}
	clean(t, s)
}

// --tag and repeated --vm take what they name (a uuid, or a name one VM
// has), never a template or snapshot by tag; an archive already there is
// a failure unless --force.
func TestExportManySelects(t *testing.T) {
	s, ca := pool(t)
	dir := t.TempDir()
	arch := poolArchives(t, dir, 3)
	for i, v := range []xapitest.PoolVM{vmWeb, vmDB, vmMail} {
		s.AddPoolVM(v, arch[i])
	}
	for _, v := range skip {
		s.AddPoolVM(v, arch[0])
	}
	r := remote(t, dir, "secret", "export", "--url", s.URL, "--ca-cert", ca, "--tag", "nightly", "--compress", "zstd", "--progress=plain", "tagged")
	if !strings.Contains(r.stderr, "xva: "+vmWeb.UUID[:8]+" web 01: started") || !strings.Contains(r.stdout, "ok      "+vmDB.UUID+" db") {
		t.Fatalf("--progress=plain: a line per VM as it starts, a result line as it ends:\n%s%s", r.stdout, r.stderr)
	}
	if names := dirNames(t, filepath.Join(dir, "tagged")); r.code != 0 ||
		!slices.Equal(names, []string{vmWeb.UUID + "-web_01.xva.zst", vmDB.UUID + "-db.xva.zst"}) {
		t.Fatalf("--tag nightly: exit %d, %q\n%s%s", r.code, names, r.stdout, r.stderr)
	}
	r = remote(t, dir, "secret", "export", "--url", s.URL, "--ca-cert", ca, "--vm", vmMail.UUID, "--vm", "db", "picked")
	if names := dirNames(t, filepath.Join(dir, "picked")); r.code != 0 ||
		!slices.Equal(names, []string{vmDB.UUID + "-db.xva", vmMail.UUID + "-mail_relay.xva"}) {
		t.Fatalf("--vm UUID --vm NAME: exit %d, %q\n%s%s", r.code, names, r.stdout, r.stderr)
	}
	r = remote(t, dir, "secret", "export", "--url", s.URL, "--ca-cert", ca, "--vm", vmMail.UUID, "--vm", "db", "picked")
	if r.code != exitFailure || strings.Count(r.stdout, "FAILED") != 2 || !strings.Contains(r.stdout, "--force") {
		t.Fatalf("again without --force: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	// With bars, the result lines come after them, all at once.
	if r := remote(t, dir, "secret", "export", "--url", s.URL, "--ca-cert", ca, "--vm", vmMail.UUID, "--vm", "db", "--force", "--progress=bar", "picked"); r.code != 0 ||
		strings.Count(r.stdout, "ok      ") != 2 || !strings.Contains(r.stderr, "done") {
		t.Fatalf("again with --force: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, c := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"--tag", "none", "x"}, exitFailure, "no VM (other than templates, snapshots and control domains) has the tag none"},
		{[]string{"--vm", "db", "--vm", "nosuch", "x"}, exitFailure, `no VM has the uuid or name "nosuch"`},
		{[]string{"--all", "-"}, exitUsage, "give a directory"},
		{[]string{"--all", "--parallel", "0", "x"}, exitUsage, "--parallel"},
		{[]string{"--vm", "", "x"}, exitUsage, "--vm UUID is required"},
		{[]string{"--all", "--tag", "", "x"}, exitUsage, "need a value"},
	} {
		r := remote(t, dir, "secret", append([]string{"export", "--url", s.URL, "--ca-cert", ca}, c.args...)...)
		if r.code != c.code || !strings.Contains(r.stderr, c.msg) {
			t.Errorf("%q: exit %d, want %d and %q\n%s", c.args, r.code, c.code, c.msg, r.stderr)
		}
	}
	clean(t, s)
}

// TestExportManyReviewEdges: a host's uuid that is not a uuid names no
// file (it could name a path elsewhere); a name works with one --vm; a
// failed login leaves no output directory; verify follows a symbolic
// link given as the directory, and reports a directory-form archive that
// lost its ova.xml instead of skipping it.
func TestExportManyReviewEdges(t *testing.T) {
	s, ca := pool(t)
	dir := t.TempDir()
	arch := poolArchives(t, dir, 2)
	s.AddPoolVM(vmDB, arch[0])
	s.AddPoolVM(xapitest.PoolVM{UUID: "../../../escaped", Name: "evil", PowerState: "Halted"}, arch[1])
	r := remote(t, dir, "secret", "export", "--url", s.URL, "--ca-cert", ca, "--all", "out/sub")
	if r.code != 1 || !strings.Contains(r.stderr, "escaped") {
		t.Fatalf("a bad uuid: exit %d\n%s", r.code, r.stderr)
	}
	if m, _ := filepath.Glob(filepath.Join(filepath.Dir(dir), "*escaped*")); len(m) > 0 || fileExists(filepath.Join(dir, "out")) {
		t.Fatalf("written: %v", m)
	}
	clean(t, s)
	s2, ca2 := pool(t)
	s2.AddPoolVM(vmDB, arch[0])
	if r := remote(t, dir, "secret", "export", "--url", s2.URL, "--ca-cert", ca2, "--vm", "db", "one.xva"); r.code != 0 {
		t.Fatalf("--vm NAME: exit %d\n%s", r.code, r.stderr)
	}
	if r := remote(t, dir, "wrong", "export", "--url", s2.URL, "--ca-cert", ca2, "--all", "newdir"); r.code == 0 || fileExists(filepath.Join(dir, "newdir")) {
		t.Fatalf("a wrong password: exit %d, newdir left %v", r.code, fileExists(filepath.Join(dir, "newdir")))
	}
	clean(t, s2)
	os.MkdirAll(filepath.Join(dir, "real", "broken", "Ref:5"), 0o755)
	os.WriteFile(filepath.Join(dir, "real", "broken", "Ref:5", "00000000"), make([]byte, 512), 0o644)
	os.Rename(filepath.Join(dir, "one.xva"), filepath.Join(dir, "real", "one.xva"))
	os.Symlink("real", filepath.Join(dir, "link"))
	r = run(t, dir, nil, "verify", "link")
	if r.code == 0 || !strings.Contains(r.stdout, filepath.Join("link", "broken")) || !strings.Contains(r.stdout, "OK       "+filepath.Join("link", "one.xva")) {
		t.Fatalf("verify through a link, with a lost ova.xml: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

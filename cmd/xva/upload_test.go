package main

import (
	"bytes"
	"encoding/json"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/xva-tools/xva/fixtures"
	"github.com/xva-tools/xva/internal/procmem"
	"github.com/xva-tools/xva/xapi/xapitest"
)

// pool starts a fake pool and writes its CA certificate for --ca-cert.
func pool(t *testing.T) (*xapitest.Server, string) {
	t.Helper()
	s := xapitest.New()
	t.Cleanup(s.Close)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.Certificate().Raw}), 0o644)
	return s, ca
}

// remote runs xva with the password in XVA_PASSWORD.
func remote(t *testing.T, dir, password string, args ...string) result {
	t.Helper()
	return runWith(t, dir, nil, []string{"XVA_PASSWORD=" + password}, args...)
}

// clean checks the session was logged out and the tasks destroyed.
func clean(t *testing.T, s *xapitest.Server) {
	t.Helper()
	logins, logouts, live := s.Counts()
	if logins != logouts || live != 0 {
		t.Fatalf("%d logins, %d logouts, %d tasks left", logins, logouts, live)
	}
}

// uploadVM is a VM whose disks are whole sectors, as VDIs are.
var uploadVM = fixtures.VM{Name: "uploaded", Memory: 1 << 29, VCPUs: 2, Disks: []fixtures.Disk{
	{Size: 5<<20 + 4096, Seed: 501, Data: 0.5, MaxRegion: 1 << 20},
	{Size: 2 << 20, Seed: 502, Data: 0.9},
}}

func TestUploadEveryKindOfInput(t *testing.T) {
	s, ca := pool(t)
	dir := t.TempDir()
	sums, err := uploadVM.WriteDir(filepath.Join(dir, "vm"))
	if err != nil {
		t.Fatal(err)
	}
	mustRun(t, dir, nil, "pack", "vm", "legacy.xva")
	mustRun(t, dir, nil, "pack", "--format", "xapi", "vm", "x.xva")
	mustRun(t, dir, nil, "pack", "--format", "xapi", "--compress", "gzip", "vm", "x.xva.gz")
	mustRun(t, dir, nil, "pack", "--format", "xapi", "--compress", "zstd", "vm", "x.xva.zst")
	for i, input := range []string{"legacy.xva", "x.xva", "x.xva.gz", "x.xva.zst", "vm"} {
		r := remote(t, dir, "secret", "upload", input, "--url", s.URL, "--ca-cert", ca, "--json")
		if r.code != 0 {
			t.Fatalf("upload %s: exit %d\n%s", input, r.code, r.stderr)
		}
		var doc struct {
			SchemaVersion int    `json:"schema_version"`
			UUID          string `json:"uuid"`
			Ref           string `json:"ref"`
			BytesSent     int64  `json:"bytes_sent"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil || doc.SchemaVersion != 1 {
			t.Fatalf("upload %s --json: %s", input, r.stdout)
		}
		vms := s.VMs()
		if len(vms) != i+1 {
			t.Fatalf("%d VMs after %d uploads", len(vms), i+1)
		}
		vm := vms[i]
		if vm.UUID != doc.UUID || vm.Name != "uploaded" || len(vm.Disks) != 2 {
			t.Fatalf("upload %s: fake made %+v, we report %s", input, vm, doc.UUID)
		}
		for j, d := range vm.Disks {
			if d.SHA256 != sums[fixtures.Device(j)] {
				t.Fatalf("upload %s: disk %d arrived with other bytes", input, j)
			}
		}
	}
	clean(t, s)
}

func TestUploadRedirectAndHostIsSlave(t *testing.T) {
	s, ca := pool(t)
	s.RedirectImport = true
	dir := t.TempDir()
	sums, _ := uploadVM.WriteDir(filepath.Join(dir, "vm"))
	// Log in at the member: it names the master, which redirects the PUT
	// back to the member.
	r := remote(t, dir, "secret", "upload", "vm", "--url", s.Member.URL, "--ca-cert", ca)
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	vms := s.VMs()
	if len(vms) != 1 || strings.TrimSpace(r.stdout) != vms[0].UUID || vms[0].Disks[0].SHA256 != sums["sda"] {
		t.Fatalf("stdout %q, VMs %+v", r.stdout, vms)
	}
	clean(t, s)
}

func TestUploadFailures(t *testing.T) {
	dir := t.TempDir()
	uploadVM.WriteDir(filepath.Join(dir, "vm"))
	mustRun(t, dir, nil, "pack", "--format", "xapi", "vm", "x.xva")
	// A copy with a flipped byte in a block: the server's hash check fails.
	b, _ := os.ReadFile(filepath.Join(dir, "x.xva"))
	i := bytes.LastIndex(b, []byte("00000000.xxhash")) - 4096 // inside a block
	b[i] ^= 0xff
	os.WriteFile(filepath.Join(dir, "bad.xva"), b, 0o644)

	cases := []struct {
		name     string
		setup    func(*xapitest.Server)
		password string
		args     []string
		want     string
	}{
		{"wrong password", nil, "wrong", []string{"upload", "x.xva"}, "password is wrong"},
		{"unknown SR", nil, "secret", []string{"upload", "x.xva", "--sr", "00000000-0000-0000-0000-000000000000"}, "UUID_INVALID"},
		{"checksum failure on the server", nil, "secret", []string{"upload", "bad.xva"}, "Invalid_checksum"},
		{"connection dropped", func(s *xapitest.Server) { s.DropAfter = 300 << 10 }, "secret", []string{"upload", "vm"}, "IMPORT_ERROR"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, ca := pool(t)
			if c.setup != nil {
				c.setup(s)
			}
			r := remote(t, dir, c.password, append(c.args, "--url", s.URL, "--ca-cert", ca)...)
			if r.code == 0 || !strings.Contains(r.stderr, c.want) {
				t.Fatalf("exit %d, stderr:\n%s", r.code, r.stderr)
			}
			if len(s.VMs()) != 0 {
				t.Fatal("a VM was made")
			}
			clean(t, s)
		})
	}
}

func TestUntrustedCertificate(t *testing.T) {
	s, _ := pool(t)
	dir := t.TempDir()
	uploadVM.WriteDir(filepath.Join(dir, "vm"))
	r := remote(t, dir, "secret", "upload", "vm", "--url", s.URL)
	if r.code != 1 || !strings.Contains(r.stderr, "--ca-cert") {
		t.Fatalf("exit %d:\n%s", r.code, r.stderr)
	}
	if r := remote(t, dir, "secret", "upload", "vm", "--url", s.URL, "--insecure"); r.code != 0 {
		t.Fatalf("--insecure: exit %d\n%s", r.code, r.stderr)
	}
}

func TestUploadInterrupted(t *testing.T) {
	s, ca := pool(t)
	s.SlowRead = 20 * time.Millisecond
	dir := t.TempDir()
	uploadVM.WriteDir(filepath.Join(dir, "vm"))
	cmd := exec.Command(xvaBin, "upload", "vm", "--url", s.URL, "--ca-cert", ca)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "XVA_PASSWORD=secret")
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for s.Imports() == 0 {
		time.Sleep(10 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGINT)
	err := cmd.Wait()
	if err == nil || !strings.Contains(errb.String(), "interrupted") {
		t.Fatalf("after Ctrl-C: %v\n%s", err, errb.String())
	}
	time.Sleep(100 * time.Millisecond)
	clean(t, s)
	if len(s.VMs()) != 0 {
		t.Fatal("an interrupted upload made a VM")
	}
}

func TestUploadLargeSparseVM(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-GiB disk")
	}
	s, ca := pool(t)
	dir := t.TempDir()
	vm := fixtures.VM{Name: "big", Memory: 1 << 30, Disks: []fixtures.Disk{{Size: 3 << 30, Seed: 503, Data: 0.01, MaxRegion: 4 << 20}}}
	sums, err := vm.WriteDir(filepath.Join(dir, "vm"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(xvaBin, "upload", "vm", "--url", s.URL, "--ca-cert", ca)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "XVA_PASSWORD=secret")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	rss, err := procmem.Run(cmd)
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	d := s.VMs()[0].Disks[0]
	t.Logf("3 GiB disk: %d MiB of blocks sent, peak RSS %d MiB", d.DataSent>>20, rss>>20)
	if d.SHA256 != sums["sda"] {
		t.Fatal("the disk arrived with other bytes")
	}
	if d.DataSent > 200<<20 || rss > 256<<20 {
		t.Fatalf("sent %d MiB of a mostly empty disk, peak RSS %d MiB", d.DataSent>>20, rss>>20)
	}
}

func TestExportVerifyUnpack(t *testing.T) {
	s, ca := pool(t)
	dir := t.TempDir()
	sums, _ := uploadVM.WriteXapiDir(filepath.Join(dir, "vm"), nil)
	mustRun(t, dir, nil, "pack", "vm", "stored.xva")
	stored, _ := os.ReadFile(filepath.Join(dir, "stored.xva"))
	const uuid = "5f1c8a52-7b3e-4a8b-9d27-1b4c5a9e2f10"
	s.Exports[uuid] = stored
	for _, comp := range []string{"", "zstd"} {
		out := "out" + comp + ".xva"
		args := []string{"export", "--url", s.URL, "--ca-cert", ca, "--vm", uuid, out}
		if comp != "" {
			args = append(args, "--compress", comp)
		}
		if r := remote(t, dir, "secret", args...); r.code != 0 {
			t.Fatalf("export: exit %d\n%s", r.code, r.stderr)
		}
		mustRun(t, dir, nil, "verify", out)
		mustRun(t, dir, nil, "unpack", out, "un"+comp)
		checkDisks(t, filepath.Join(dir, "un"+comp), sums)
	}
	// A corrupt VM on the server: exit 3, nothing written.
	bad := bytes.Clone(stored)
	bad[len(bad)-1024-600] ^= 0xff // inside the last block
	s.Exports[uuid] = bad
	r := remote(t, dir, "secret", "export", "--url", s.URL, "--ca-cert", ca, "--vm", uuid, "bad.xva")
	if r.code != 3 {
		t.Fatalf("corrupt export: exit %d\n%s", r.code, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "bad.xva")); !os.IsNotExist(err) {
		t.Fatal("a corrupt export left its output")
	}
	clean(t, s)
}

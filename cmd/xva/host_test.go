package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xva-tools/xva/fixtures"
	"github.com/xva-tools/xva/ova"
)

// What a real host does with what xva sends, through the binary and the
// model of xapi's import in xapi/xapitest.

// Two VMs packed with the same flags from different disks get different
// uuids: restoring the second must not replace (or be refused as an older
// version of) the first. --uuid-seed makes the output reproducible.
func TestDifferentVMsNeverShareUUIDs(t *testing.T) {
	s, ca := pool(t)
	dir := t.TempDir()
	for i, seed := range []uint64{701, 702} {
		img := filepath.Join(dir, "disk"+string(rune('a'+i))+".img")
		if _, err := (fixtures.Disk{Size: 1 << 20, Seed: seed, Data: 0.5}).Write(img); err != nil {
			t.Fatal(err)
		}
		mustRun(t, dir, nil, "pack", "--format", "xapi", "--name", "web", "--disk", "xvda="+img, "vm"+string(rune('a'+i))+".xva")
	}
	for _, a := range []string{"vma.xva", "vmb.xva"} {
		if r := remote(t, dir, "secret", "upload", a, "--url", s.URL, "--ca-cert", ca, "--restore"); r.code != 0 {
			t.Fatalf("upload --restore %s: exit %d\n%s", a, r.code, r.stderr)
		}
	}
	if vms := s.VMs(); len(vms) != 2 || vms[0].UUID == vms[1].UUID {
		t.Fatalf("restoring two different VMs left %d VMs", len(vms))
	}
	// The same seed and input give the same bytes; packs without one differ.
	img := filepath.Join(dir, "diska.img")
	for _, name := range []string{"s1.xva", "s2.xva", "r1.xva"} {
		args := []string{"pack", "--format", "xapi", "--name", "web", "--disk", "xvda=" + img, name}
		if name != "r1.xva" {
			args = append(args, "--uuid-seed", "web-2026")
		}
		mustRun(t, dir, nil, args...)
	}
	read := func(n string) string { b, _ := os.ReadFile(filepath.Join(dir, n)); return string(b) }
	if read("s1.xva") != read("s2.xva") || read("s1.xva") == read("r1.xva") {
		t.Fatal("--uuid-seed does not make packs reproducible, or random uuids repeat")
	}
}

// A host that says it is xapi 1.20 (every host before 1.250) may read only
// SHA-1 block hashes: upload converts an xxhash archive for it on the fly,
// and --checksum overrides the choice.
func TestUploadToAnOldHost(t *testing.T) {
	s, ca := pool(t)
	s.Versions = [2]string{"1.20", "1.20"}
	dir := t.TempDir()
	sums, _ := uploadVM.WriteDir(filepath.Join(dir, "vm"))
	mustRun(t, dir, nil, "pack", "--format", "xapi", "vm", "x.xva")
	r := remote(t, dir, "secret", "upload", "x.xva", "--url", s.URL, "--ca-cert", ca, "--json")
	var doc struct {
		Converted bool   `json:"converted"`
		Checksum  string `json:"checksum"`
	}
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &doc) != nil || !doc.Converted || doc.Checksum != "sha1" {
		t.Fatalf("exit %d, %s\n%s", r.code, r.stdout, r.stderr)
	}
	if vms := s.VMs(); len(vms) != 1 || vms[0].Disks[0].SHA256 != sums["sda"] {
		t.Fatalf("VMs %+v", vms)
	}
	r = remote(t, dir, "secret", "upload", "x.xva", "--url", s.URL, "--ca-cert", ca, "--checksum", "xxhash")
	if r.code == 0 || !strings.Contains(r.stderr, "inline checksum") {
		t.Fatalf("--checksum xxhash to an old host: exit %d\n%s", r.code, r.stderr)
	}
	// A current host gets the file as it is.
	s.Versions = [2]string{"25.6", "25.6"}
	r = remote(t, dir, "secret", "upload", "x.xva", "--url", s.URL, "--ca-cert", ca, "--json")
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &doc) != nil || doc.Converted {
		t.Fatalf("to a current host: exit %d, %s\n%s", r.code, r.stdout, r.stderr)
	}
}

// An archive a host would refuse is refused before anything is sent, exit
// 3, with the host's answer; --as-is sends it, and the host refuses it.
func TestUploadChecksBeforeSending(t *testing.T) {
	dir := t.TempDir()
	cases, err := fixtures.ImportCases(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		s, ca := pool(t)
		r := remote(t, dir, "secret", "upload", c.Path, "--url", s.URL, "--ca-cert", ca)
		if r.code != 3 || !strings.Contains(r.stderr, "a host would refuse") || !strings.Contains(r.stderr, c.Member) || s.Imports() != 0 {
			t.Fatalf("%s: exit %d, %d imports\n%s", c.Fault, r.code, s.Imports(), r.stderr)
		}
		r = remote(t, dir, "secret", "upload", c.Path, "--url", s.URL, "--ca-cert", ca, "--as-is")
		if r.code != 1 || s.Imports() != 1 {
			t.Fatalf("%s --as-is: exit %d, %d imports\n%s", c.Fault, r.code, s.Imports(), r.stderr)
		}
		if r := run(t, dir, nil, "verify", c.Path); r.code != 3 || !strings.Contains(r.stdout+r.stderr, "import") {
			t.Fatalf("%s: verify exit %d\n%s%s", c.Fault, r.code, r.stdout, r.stderr)
		}
	}
}

// --network gives the imported VM an interface; without it the VM from a
// legacy archive has none, and xva says so. A read-only legacy disk
// arrives as a read-only VBD of a writable VDI.
func TestUploadNetworkAndReadOnlyDisks(t *testing.T) {
	s, ca := pool(t)
	dir := t.TempDir()
	vm := fixtures.VM{Name: "net", Memory: 1 << 29, VCPUs: 1, Disks: []fixtures.Disk{
		{Size: 1 << 20, Seed: 711, Data: 0.5}, {Size: 1 << 20, Seed: 712, Data: 0.5, ReadOnly: true}}}
	if _, err := vm.WriteDir(filepath.Join(dir, "vm")); err != nil {
		t.Fatal(err)
	}
	mustRun(t, dir, nil, "pack", "--format", "legacy", "vm", "l.xva")
	r := remote(t, dir, "secret", "upload", "l.xva", "--url", s.URL, "--ca-cert", ca)
	if r.code != 0 || !strings.Contains(r.stderr, "no network interface") {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	got := s.VMs()[0]
	if got.VBDs[1].Mode != "RO" || got.Disks[1].ReadOnly || got.Platform["nx"] != "true" {
		t.Fatalf("read-only disk %+v / %+v, platform %v", got.VBDs[1], got.Disks[1], got.Platform)
	}
	name := s.Networks()[0].Name
	r = remote(t, dir, "secret", "upload", "l.xva", "--url", s.URL, "--ca-cert", ca, "--network", name, "--json")
	var doc struct {
		VIFs int `json:"vifs"`
	}
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &doc) != nil || doc.VIFs != 1 {
		t.Fatalf("--network: exit %d %s\n%s", r.code, r.stdout, r.stderr)
	}
	if v := s.VMs()[1].VIFs; len(v) != 1 || v[0].Network != s.Networks()[0].Ref || v[0].MAC == "" {
		t.Fatalf("VIFs %+v", v)
	}
	before := s.Imports()
	r = remote(t, dir, "secret", "upload", "l.xva", "--url", s.URL, "--ca-cert", ca, "--network", "no such network")
	if r.code != 1 || !strings.Contains(r.stderr, "no network") || s.Imports() != before {
		t.Fatalf("unknown network: exit %d, %d imports\n%s", r.code, s.Imports()-before, r.stderr)
	}
}

// A legacy VM that says mem_set="0" can never start: converting it is
// refused, exit 3, naming the attribute. vcpus="0" becomes one vCPU, as
// xapi's legacy importer made every VM.
func TestLegacyZeroMemoryRefused(t *testing.T) {
	dir := t.TempDir()
	vm := fixtures.VM{Name: "zero", Memory: 1 << 29, VCPUs: 1, Disks: []fixtures.Disk{{Size: 1 << 20, Seed: 721, Data: 0.5}}}
	if _, err := vm.WriteDir(filepath.Join(dir, "vm")); err != nil {
		t.Fatal(err)
	}
	doc, _ := os.ReadFile(filepath.Join(dir, "vm", "ova.xml"))
	a, err := ova.ParseLegacy(doc)
	if err != nil {
		t.Fatal(err)
	}
	a.VMs[0].VCPUs = 0
	b, _ := a.MarshalLegacy()
	os.WriteFile(filepath.Join(dir, "vm", "ova.xml"), b, 0o644)
	mustRun(t, dir, nil, "pack", "--format", "xapi", "vm", "one-vcpu.xva")
	info := mustRun(t, dir, nil, "info", "--json", "one-vcpu.xva")
	if !strings.Contains(info, `"vcpus": 1`) {
		t.Fatalf("vcpus=0 converted to %s", info)
	}
	a.VMs[0].Memory = 0
	b, _ = a.MarshalLegacy()
	os.WriteFile(filepath.Join(dir, "vm", "ova.xml"), b, 0o644)
	r := run(t, dir, nil, "pack", "--format", "xapi", "vm", "no-memory.xva")
	if r.code != 3 || !strings.Contains(r.stderr, "mem_set") {
		t.Fatalf("mem_set=0: exit %d\n%s", r.code, r.stderr)
	}
}

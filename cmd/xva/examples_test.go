package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xva-tools/xva/fixtures"
	"github.com/xva-tools/xva/xapi/xapitest"
)

// exampleVM is the VM of the example fixtures: whole-sector disks, as a
// pool's VDIs are.
var exampleVM = fixtures.VM{Name: "web", Memory: 1 << 29, VCPUs: 2, Disks: []fixtures.Disk{
	{Size: 4 << 20, Seed: 81, Data: 0.5, MaxRegion: 256 << 10},
	{Size: 1 << 20, Seed: 82, Data: 0.5, MaxRegion: 256 << 10},
}}

// exampleFixtures writes, in dir, every file the --help examples name:
// root.img and data.img; web.xva and old.xva (legacy); current.xva and
// backup.xva (xapi); damaged.xva (xapi, one block flipped); exports/*.xva;
// unpacked/ (a VM directory); disk.vhd; pw.txt.
func exampleFixtures(t *testing.T, dir string) {
	t.Helper()
	vm := filepath.Join(t.TempDir(), "vm")
	if _, err := exampleVM.WriteDir(vm); err != nil {
		t.Fatal(err)
	}
	for from, to := range map[string]string{"sda.raw": "root.img", "sdb.raw": "data.img"} {
		if err := os.Rename(filepath.Join(vm, from), filepath.Join(dir, to)); err != nil {
			t.Fatal(err)
		}
	}
	disks := []string{"--name", "web", "--memory", "512MiB", "--disk", "sda=root.img", "--disk", "sdb=data.img"}
	mustRun(t, dir, nil, append([]string{"pack", "--format", "legacy"}, append(disks, "web.xva")...)...)
	mustRun(t, dir, nil, append([]string{"pack", "--format", "xapi"}, append(disks, "current.xva")...)...)
	mustRun(t, dir, nil, "unpack", "web.xva", "unpacked")
	mustRun(t, dir, nil, "convert", "current.xva", "appliance.ova")
	mustRun(t, dir, nil, "unpack", "--disk-format", "vhd", "current.xva", "vhd")
	os.Rename(filepath.Join(dir, "vhd", "sda.vhd"), filepath.Join(dir, "disk.vhd"))
	os.RemoveAll(filepath.Join(dir, "vhd"))
	current, _ := os.ReadFile(filepath.Join(dir, "current.xva"))
	web, _ := os.ReadFile(filepath.Join(dir, "web.xva"))
	damaged := bytes.Clone(current)
	damaged[bytes.LastIndex(damaged, []byte("00000000.xxhash"))-4096] ^= 0xff // inside a block
	os.Mkdir(filepath.Join(dir, "exports"), 0o755)
	for name, b := range map[string][]byte{"old.xva": web, "backup.xva": current, "damaged.xva": damaged,
		"exports/a.xva": current, "exports/b.xva": web, "pw.txt": []byte("secret\n")} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// helpExamples returns the example command lines of a command's --help.
func helpExamples(t *testing.T, command string) []string {
	t.Helper()
	help := mustRun(t, t.TempDir(), nil, command, "--help")
	_, rest, ok := strings.Cut(help, "\nExamples:\n")
	if !ok {
		t.Fatalf("xva %s --help has no examples", command)
	}
	rest, _, _ = strings.Cut(rest, "\n\nFlags:")
	var lines []string
	for _, l := range strings.Split(rest, "\n") {
		l = strings.TrimSpace(l)
		if l != "" && !strings.HasPrefix(l, "#") {
			lines = append(lines, l)
		}
	}
	return lines
}

// needsStorage reports examples that need a block device or a volume
// group of their own; the device tests cover those paths.
func needsStorage(example string) bool {
	return strings.Contains(example, "/dev/") || strings.Contains(example, "VG_XenStorage")
}

// Every command's --help gives 2 to 4 examples, and each one that needs no
// storage of its own succeeds exactly as written, run by bash in a
// directory of fixtures, against a fake pool reached through a CONNECT
// proxy that serves any *.example.com (so the URLs stay as printed).
func TestHelpExamplesRun(t *testing.T) {
	s, ca := pool(t)
	s.SRs["0e8e5b3c-0d7c-4e55-a1ef-1c2a6f1f3b9a"] = "OpaqueRef:sr-examples"
	proxy := xapitest.NewProxy(strings.TrimPrefix(s.URL, "https://"))
	t.Cleanup(proxy.Close)
	template := t.TempDir()
	exampleFixtures(t, template)
	current, _ := os.ReadFile(filepath.Join(template, "current.xva"))
	s.AddPoolVM(xapitest.PoolVM{UUID: "5f1c8a52-7b3e-4a8b-9d27-1b4c5a9e2f10", Name: "web", PowerState: "Halted",
		Tags: []string{"nightly"}}, current)

	var env []string
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); !strings.HasPrefix(k, "XVA_") && !strings.Contains(strings.ToLower(k), "proxy") {
			env = append(env, kv)
		}
	}
	env = append(env, "PATH="+filepath.Dir(xvaBin)+":"+os.Getenv("PATH"), "HTTPS_PROXY="+proxy.URL, "SSL_CERT_FILE="+ca)

	root := newRootCmd(&globals{})
	for _, c := range root.Commands() {
		if !c.IsAvailableCommand() || c.Name() == "help" {
			continue
		}
		examples := helpExamples(t, c.Name())
		if len(examples) < 2 || len(examples) > 4 {
			t.Errorf("xva %s --help has %d examples, want 2 to 4", c.Name(), len(examples))
		}
		ran := 0
		for _, ex := range examples {
			if needsStorage(ex) {
				t.Logf("not run (needs a device or VG): %s", ex)
				continue
			}
			dir := filepath.Join(t.TempDir(), "work")
			if out, err := exec.Command("cp", "-a", "--sparse=always", template, dir).CombinedOutput(); err != nil {
				t.Fatalf("cp: %v %s", err, out)
			}
			cmd := exec.Command("bash", "-e", "-o", "pipefail", "-c", ex)
			cmd.Dir, cmd.Env = dir, append(env, "HOME="+dir)
			out, err := cmd.CombinedOutput()
			code := cmd.ProcessState.ExitCode()
			if err != nil && !(code == exitCorrupt && strings.Contains(ex, "--salvage")) {
				t.Errorf("example of xva %s failed (exit %d): %s\n%s", c.Name(), code, ex, out)
			}
			ran++
		}
		if ran == 0 {
			t.Errorf("no example of xva %s can run here", c.Name())
		}
	}
	if proxy.Tunnels.Load() == 0 {
		t.Error("the remote examples did not go through the proxy")
	}
}

// docs/cli and docs/man are what make docs writes from the current help.
func TestDocsAreCurrent(t *testing.T) {
	dir := t.TempDir()
	mustRun(t, dir, nil, "gen-docs", dir)
	for _, sub := range []string{"cli", "man"} {
		want, err := filepath.Glob(filepath.Join(dir, sub, "*"))
		if err != nil || len(want) == 0 {
			t.Fatalf("gen-docs wrote no %s pages: %v", sub, err)
		}
		have, _ := filepath.Glob(filepath.Join("../../docs", sub, "*"))
		if len(have) != len(want) {
			t.Fatalf("docs/%s has %d pages, the commands make %d: run make docs", sub, len(have), len(want))
		}
		for _, w := range want {
			a, _ := os.ReadFile(w)
			b, err := os.ReadFile(filepath.Join("../../docs", sub, filepath.Base(w)))
			if err != nil || !bytes.Equal(a, b) {
				t.Fatalf("docs/%s/%s is out of date: run make docs", sub, filepath.Base(w))
			}
		}
	}
}

package ovf

import (
	"bytes"
	"encoding/hex"
	"strings"
	"testing"
)

func TestParseManifest(t *testing.T) {
	sha1 := "2c56f8290e1c39d8e6e1e9b1a2a4b5c6d7e8f901"
	sha256 := strings.Repeat("ab", 32)
	sha512 := strings.Repeat("0F", 64)
	doc := "SHA1(input.ovf)= " + sha1 + "\r\n" + // CRLF, as virt-v2v's test writes
		"\n" +
		"SHA256(certname (32-bit).mf)=" + sha256 + "\n" + // parentheses, no space (XenCenter's tests)
		"SHA512(odd)=name.vmdk)=   " + sha512 + "\n" + // the last ")=" ends the name
		"sha256(disk1.vmdk.000000001)= " + sha256 // chunk, no final newline, lower-case algorithm
	m, err := ParseManifest([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	want := []struct{ algo, name, hex string }{
		{"SHA1", "input.ovf", sha1},
		{"SHA256", "certname (32-bit).mf", sha256},
		{"SHA512", "odd)=name.vmdk", strings.ToLower(sha512)},
		{"SHA256", "disk1.vmdk.000000001", sha256},
	}
	if len(m.Entries) != len(want) {
		t.Fatalf("entries %+v", m.Entries)
	}
	for i, w := range want {
		e := m.Entries[i]
		if e.Algorithm != w.algo || e.Name != w.name || hex.EncodeToString(e.Digest) != w.hex {
			t.Errorf("entry %d: %s(%s)= %x, want %s(%s)= %s", i, e.Algorithm, e.Name, e.Digest, w.algo, w.name, w.hex)
		}
	}
	if e, ok := m.Lookup("certname (32-bit).mf"); !ok || e.Algorithm != "SHA256" {
		t.Error("Lookup failed")
	}
	if _, ok := m.Lookup("nope"); ok {
		t.Error("Lookup found a missing name")
	}
	out := m.Marshal()
	if !bytes.HasPrefix(out, []byte("SHA1(input.ovf)= "+sha1+"\nSHA256(certname (32-bit).mf)= "+sha256+"\n")) {
		t.Errorf("Marshal:\n%s", out)
	}
	m2, err := ParseManifest(out)
	if err != nil || !deepEqual(m, m2) {
		t.Errorf("round trip: %v", err)
	}
}

func TestParseManifestRefuses(t *testing.T) {
	sha1 := "2c56f8290e1c39d8e6e1e9b1a2a4b5c6d7e8f901"
	for _, c := range []struct{ doc, want string }{
		{"MD5(x)= " + sha1, `line 1: algorithm "MD5"`},
		{"SHA1(x)= " + sha1 + "\nSHA1(y)= zz", "line 2: digest of \"y\" is not hex"},
		{"SHA1(x)= " + sha1[:38], "has 19 bytes, not 20"},
		{"SHA1(/etc/passwd)= " + sha1, "is absolute"},
		{"\n\nSHA1(a/../../b)= " + sha1, `line 3: file name "a/../../b" holds a ".." element`},
		{"SHA1(a\\b)= " + sha1, "backslash"},
		{"SHA1()= " + sha1, "empty file name"},
		{"SHA1 x " + sha1, "is not ALGO(name)= digest"},
		{"SHA1)=(x " + sha1, "is not ALGO(name)= digest"},
		{strings.Repeat("\n", MaxManifestSize+1), "more than the 1048576 allowed"},
	} {
		if _, err := ParseManifest([]byte(c.doc)); err == nil || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "ovf: ") {
			t.Errorf("%q: error %v, want one holding %q", c.doc, err, c.want)
		}
	}
}

func TestNewHash(t *testing.T) {
	for algo, size := range map[string]int{"SHA1": 20, "SHA256": 32, "SHA512": 64} {
		h, err := NewHash(algo)
		if err != nil || h.Size() != size {
			t.Errorf("NewHash(%s) = %v, %v", algo, h, err)
		}
	}
	if _, err := NewHash("MD5"); err == nil {
		t.Error("NewHash(MD5) succeeded")
	}
}

// Two digests of one file are refused: which one was meant cannot be told,
// and checking only the first would let the second lie.
func TestManifestDuplicateName(t *testing.T) {
	a := "SHA256(vm.ovf)= " + strings.Repeat("0", 64) + "\n"
	b := "SHA256(vm.ovf)= " + strings.Repeat("1", 64) + "\n"
	_, err := ParseManifest([]byte(a + b))
	if err == nil || !strings.Contains(err.Error(), "line 2") || !strings.Contains(err.Error(), "line 1") {
		t.Fatalf("got %v, want the duplicate refused naming both lines", err)
	}
}

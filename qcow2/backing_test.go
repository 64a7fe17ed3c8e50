package qcow2

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// setBacking writes an image of data at path whose header names backing
// (with format, if not "") as its backing file.
func setBacking(t *testing.T, path string, data []byte, backing, format string) {
	t.Helper()
	b := small(t, data)
	be := binary.BigEndian
	pos := 112
	if format != "" {
		be.PutUint32(b[pos:], extBackingFmt)
		be.PutUint32(b[pos+4:], uint32(len(format)))
		copy(b[pos+8:], format)
		pos += 8 + (len(format)+7)/8*8
	}
	be.PutUint64(b[pos:], 0) // end of extensions
	pos += 8
	be.PutUint64(b[8:], uint64(pos))
	be.PutUint32(b[16:], uint32(len(backing)))
	copy(b[pos:], backing)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestBackingChains: chains are followed relative to each image, and
// cyclic, over-long, missing and mismatched ones are refused clearly.
func TestBackingChains(t *testing.T) {
	dir := t.TempDir()
	data := bytes.Repeat([]byte("base"), 1024)
	// A sparse child over a base: the child writes only its first cluster.
	base := filepath.Join(dir, "base.qcow2")
	writeQcow2(t, base, data, WithClusterSize(512))
	child := bytes.Clone(data)
	copy(child, bytes.Repeat([]byte("top!"), 128))
	os.Mkdir(filepath.Join(dir, "d"), 0o755)
	top := filepath.Join(dir, "d", "top.qcow2")
	setBacking(t, top, append(child[:512:512], make([]byte, len(data)-512)...), "../base.qcow2", "qcow2")
	if got := readAll(t, top); !bytes.Equal(got, child) {
		t.Fatal("the chain reads wrong")
	}
	if _, err := OpenOn(bytes.NewReader(mustRead(t, top)), int64(len(mustRead(t, top))), "top"); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("OpenOn of a child: %v", err)
	}

	// a → b → a
	a, b := filepath.Join(dir, "a.qcow2"), filepath.Join(dir, "b.qcow2")
	setBacking(t, a, data, "b.qcow2", "qcow2")
	setBacking(t, b, data, "a.qcow2", "")
	if _, err := Open(a); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "cyclic") {
		t.Fatalf("cyclic chain: %v", err)
	}
	// Itself.
	self := filepath.Join(dir, "self.qcow2")
	setBacking(t, self, data, "self.qcow2", "qcow2")
	if _, err := Open(self); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "cyclic") {
		t.Fatalf("an image backed by itself: %v", err)
	}
	// Longer than maxChain.
	prev := "base.qcow2"
	for i := range maxChain + 2 {
		name := fmt.Sprintf("long%02d.qcow2", i)
		setBacking(t, filepath.Join(dir, name), data, prev, "qcow2")
		prev = name
	}
	if _, err := Open(filepath.Join(dir, prev)); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "longer than") {
		t.Fatalf("over-long chain: %v", err)
	}
	for _, c := range []struct{ name, backing, format, msg string }{
		{"missing", "nowhere.qcow2", "qcow2", "no such file"},
		{"format", "base.qcow2", "vmdk", `format "vmdk"`},
		{"not qcow2", "raw.img", "qcow2", "magic"},
		{"url", "http://example.com/x.qcow2", "qcow2", "not a local file"},
	} {
		os.WriteFile(filepath.Join(dir, "raw.img"), data, 0o644)
		p := filepath.Join(dir, c.name+".qcow2")
		setBacking(t, p, data, c.backing, c.format)
		if _, err := Open(p); err == nil || !strings.Contains(err.Error(), c.msg) || !strings.Contains(err.Error(), p) {
			t.Errorf("%s: %v, want it naming %q and the image", c.name, err, c.msg)
		}
	}
}

func mustRead(t *testing.T, p string) []byte {
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

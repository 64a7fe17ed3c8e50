package ovf

import (
	"bytes"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"hash"
	"path"
	"strings"
)

// MaxManifestSize is the largest .mf ParseManifest reads: a line per
// file of the package, so a megabyte is thousands of files.
const MaxManifestSize = 1 << 20

// ManifestEntry is one line of a manifest: the digest of one file of the
// package (or one chunk of a chunked file).
type ManifestEntry struct {
	Algorithm string // "SHA1", "SHA256" or "SHA512"
	Name      string // the file's name in the package
	Digest    []byte
}

// Manifest is an OVF .mf file: "ALGO(name)= hex" lines (DSP0243 §5.1).
type Manifest struct {
	Entries []ManifestEntry
}

// digestSize is the digest length of each algorithm a manifest may use.
var digestSize = map[string]int{"SHA1": sha1.Size, "SHA256": sha256.Size, "SHA512": sha512.Size}

// NewHash returns a hash for a manifest algorithm name.
func NewHash(algorithm string) (hash.Hash, error) {
	switch algorithm {
	case "SHA1":
		return sha1.New(), nil
	case "SHA256":
		return sha256.New(), nil
	case "SHA512":
		return sha512.New(), nil
	}
	return nil, fmt.Errorf("ovf: manifest algorithm %q is not SHA1, SHA256 or SHA512", algorithm)
}

// ParseManifest reads a manifest. It tolerates what writers vary in (CRLF
// line ends, any spacing after '=', blank lines, names holding
// parentheses: the name ends at the last ")=" of the line, as XenCenter
// reads it) and refuses what it cannot check: unknown algorithms, bad hex,
// digests of the wrong length and names that would leave the package.
func ParseManifest(data []byte) (*Manifest, error) {
	if len(data) > MaxManifestSize {
		return nil, fmt.Errorf("ovf: manifest of %d bytes, more than the %d allowed", len(data), MaxManifestSize)
	}
	m := &Manifest{}
	seen := map[string]int{}
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimRight(line, "\r")
		if strings.TrimSpace(line) == "" {
			continue
		}
		e, err := parseManifestLine(line)
		if err != nil {
			return nil, fmt.Errorf("ovf: manifest line %d: %v", i+1, err)
		}
		// Two digests of one file: which one was meant cannot be told.
		if first, dup := seen[e.Name]; dup {
			return nil, fmt.Errorf("ovf: manifest line %d: %s has a digest on line %d already", i+1, e.Name, first)
		}
		seen[e.Name] = i + 1
		m.Entries = append(m.Entries, e)
	}
	return m, nil
}

func parseManifestLine(line string) (ManifestEntry, error) {
	open := strings.IndexByte(line, '(')
	end := strings.LastIndex(line, ")=")
	if open < 0 || end < open {
		return ManifestEntry{}, fmt.Errorf("%q is not ALGO(name)= digest", line)
	}
	algo := strings.ToUpper(strings.TrimSpace(line[:open]))
	size, ok := digestSize[algo]
	if !ok {
		return ManifestEntry{}, fmt.Errorf("algorithm %q is not SHA1, SHA256 or SHA512", line[:open])
	}
	name := line[open+1 : end]
	if err := checkManifestName(name); err != nil {
		return ManifestEntry{}, err
	}
	digest, err := hex.DecodeString(strings.TrimSpace(line[end+2:]))
	if err != nil {
		return ManifestEntry{}, fmt.Errorf("digest of %q is not hex", name)
	}
	if len(digest) != size {
		return ManifestEntry{}, fmt.Errorf("%s digest of %q has %d bytes, not %d", algo, name, len(digest), size)
	}
	return ManifestEntry{Algorithm: algo, Name: name, Digest: digest}, nil
}

// checkManifestName refuses names a reader could be tricked by: the
// manifest names files of the package, which are relative and inside it.
func checkManifestName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("empty file name")
	case strings.ContainsAny(name, "\x00\n\\"):
		return fmt.Errorf("file name %q holds a NUL, newline or backslash", name)
	case path.IsAbs(name):
		return fmt.Errorf("file name %q is absolute", name)
	case hasDotDot(name):
		return fmt.Errorf("file name %q holds a \"..\" element", name)
	}
	return nil
}

func hasDotDot(name string) bool {
	for _, e := range strings.Split(name, "/") {
		if e == ".." {
			return true
		}
	}
	return false
}

// Marshal writes the manifest as VMware, VirtualBox and XenCenter do:
// "ALGO(name)= hex" with lower-case hex and LF line ends.
func (m *Manifest) Marshal() []byte {
	var b bytes.Buffer
	for _, e := range m.Entries {
		fmt.Fprintf(&b, "%s(%s)= %s\n", e.Algorithm, e.Name, hex.EncodeToString(e.Digest))
	}
	return b.Bytes()
}

// Lookup returns the entry for a file name; the first one when a
// manifest lists a name twice.
func (m *Manifest) Lookup(name string) (ManifestEntry, bool) {
	for _, e := range m.Entries {
		if e.Name == name {
			return e, true
		}
	}
	return ManifestEntry{}, false
}

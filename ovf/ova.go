package ovf

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/klauspost/compress/gzip"

	"github.com/xva-tools/xva/internal/tarx"
)

// Limits of the package reader: what it reads into memory, and how many
// members it indexes (each costs a map entry).
const (
	maxDescriptor = 4 << 20
	maxManifest   = 1 << 20
	maxMembers    = 100000
	maxNotes      = 100
)

// Member is one regular file of a package. Offset is where its data lies
// in the tar file (0 for the files of a directory); Name is relative to the
// directory of the .ovf.
type Member struct {
	Name         string
	Offset, Size int64
}

// Package is an OVF package opened for reading: an OVA (a tar file) or an
// .ovf descriptor with the other files in its directory.
type Package struct {
	path    string
	form    string
	tar     *os.File // the OVA
	root    *os.Root // the directory form: the .ovf's directory
	ovf     string
	mf      string
	members []Member
	index   map[string]int

	mu     sync.Mutex
	notes  []string
	opened []io.Closer // files OpenFile opened in the directory form
}

// OpenPackage opens an OVA or an .ovf descriptor. A tar file is an OVA,
// whatever order its members come in; anything else that is not gzip is
// taken for a descriptor whose directory holds the package's other files.
func OpenPackage(name string) (*Package, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("ovf: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("ovf: %w", err)
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("ovf: %s is not a regular file", name)
	}
	var head [tarx.Block]byte
	n, err := io.ReadFull(f, head[:])
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		f.Close()
		return nil, fmt.Errorf("ovf: reading %s: %w", name, err)
	}
	switch {
	case n >= 2 && head[0] == 0x1f && head[1] == 0x8b:
		f.Close()
		// XenCenter's "compressed OVA" gzips the whole tar (.ova.gz).
		return nil, unsupportedf("ovf: %s is gzip-compressed (an .ova.gz?): gunzip it first", name)
	case tarx.ValidHeader(head[:n]):
		p := &Package{path: name, form: "ova", tar: f}
		if err := p.indexTar(st.Size()); err != nil {
			f.Close()
			return nil, err
		}
		return p, nil
	}
	f.Close()
	if !looksLikeDescriptor(name, head[:n]) {
		return nil, fmt.Errorf("ovf: %s is neither an OVA (a tar file) nor an .ovf descriptor", name)
	}
	return openDir(name, st.Size())
}

// looksLikeDescriptor: named .ovf, or starting like XML (after a byte
// order mark and white space), which covers XenCenter's UTF-16.
func looksLikeDescriptor(name string, head []byte) bool {
	if strings.EqualFold(filepath.Ext(name), ".ovf") {
		return true
	}
	for _, bom := range [][]byte{{0xef, 0xbb, 0xbf}, {0xff, 0xfe}, {0xfe, 0xff}} {
		if bytes.HasPrefix(head, bom) {
			return true
		}
	}
	head = bytes.TrimLeft(head, " \t\r\n")
	return len(head) > 0 && head[0] == '<'
}

// Form is "ova" or "ovf".
func (p *Package) Form() string { return p.form }

// DescriptorName is the .ovf's name.
func (p *Package) DescriptorName() string { return p.ovf }

// ManifestName is the .mf named as the .ovf is, or "" when there is none.
func (p *Package) ManifestName() string { return p.mf }

// Members lists the package's files: in tar order for an OVA, and for a
// directory the .ovf, then the other regular files beside it, sorted.
func (p *Package) Members() []Member { return append([]Member(nil), p.members...) }

// Notes are what the package does against DSP0243 or its own descriptor
// that readers in the wild tolerate, so neither is an error.
func (p *Package) Notes() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.notes...)
}

func (p *Package) note(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case len(p.notes) < maxNotes:
		p.notes = append(p.notes, fmt.Sprintf(format, args...))
	case len(p.notes) == maxNotes:
		p.notes = append(p.notes, "more notes left out")
	}
}

// Descriptor reads the .ovf.
func (p *Package) Descriptor() ([]byte, error) {
	return p.readSmall(p.ovf, "descriptor", maxDescriptor)
}

// ManifestBytes reads the manifest.
func (p *Package) ManifestBytes() ([]byte, error) {
	if p.mf == "" {
		return nil, fmt.Errorf("ovf: %s has no manifest", p.path)
	}
	return p.readSmall(p.mf, "manifest", maxManifest)
}

// readSmall reads a whole member after checking its size against limit.
func (p *Package) readSmall(name, what string, limit int64) ([]byte, error) {
	r, size, err := p.Open(name)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	if size > limit {
		return nil, fmt.Errorf("ovf: %s %s is %d bytes, more than the %d allowed", what, name, size, limit)
	}
	b := make([]byte, size)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, fmt.Errorf("ovf: reading %s %s: %w", what, name, err)
	}
	return b, nil
}

// Has reports whether the package holds a regular file of that name.
func (p *Package) Has(name string) bool {
	if p.root == nil {
		_, ok := p.index[name]
		return ok
	}
	if !fs.ValidPath(name) {
		return false
	}
	st, err := p.root.Stat(name)
	return err == nil && st.Mode().IsRegular()
}

// Open opens one file of the package for reading from its start, and
// returns its size. In the directory form the file is opened through an
// os.Root on the .ovf's directory, so that no name or symbolic link
// reaches outside it.
func (p *Package) Open(name string) (io.ReadCloser, int64, error) {
	if p.root == nil {
		i, ok := p.index[name]
		if !ok {
			return nil, 0, fmt.Errorf("ovf: %s holds no member %q", p.path, name)
		}
		m := p.members[i]
		return io.NopCloser(io.NewSectionReader(p.tar, m.Offset, m.Size)), m.Size, nil
	}
	f, size, err := p.openInRoot(name)
	if err != nil {
		return nil, 0, err
	}
	return f, size, nil
}

func (p *Package) openInRoot(name string) (*os.File, int64, error) {
	if !fs.ValidPath(name) || strings.Contains(name, `\`) {
		return nil, 0, fmt.Errorf("ovf: %q does not name a file beside %s", name, p.ovf)
	}
	// Stat first: opening a FIFO would wait for a writer.
	st, err := p.root.Stat(name)
	if err != nil {
		if lst, lerr := p.root.Lstat(name); lerr == nil && lst.Mode()&fs.ModeSymlink != 0 {
			return nil, 0, corruptf("ovf: %s is a symbolic link leading out of the package's directory", name)
		}
		return nil, 0, fmt.Errorf("ovf: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, 0, corruptf("ovf: %s is not a regular file", name)
	}
	f, err := p.root.Open(name)
	if err != nil {
		return nil, 0, fmt.Errorf("ovf: %w", err)
	}
	if st, err = f.Stat(); err != nil || !st.Mode().IsRegular() {
		f.Close()
		return nil, 0, corruptf("ovf: %s is not a regular file", name)
	}
	return f, st.Size(), nil
}

// Close closes the OVA, or the directory and the files OpenFile opened in
// it.
func (p *Package) Close() error {
	var errs []error
	if p.tar != nil {
		errs = append(errs, p.tar.Close())
	}
	p.mu.Lock()
	for _, c := range p.opened {
		errs = append(errs, c.Close())
	}
	p.opened = nil
	p.mu.Unlock()
	if p.root != nil {
		errs = append(errs, p.root.Close())
	}
	return errors.Join(errs...)
}

// indexTar reads every header of the OVA once, seeking over the data.
func (p *Package) indexTar(fileSize int64) error {
	tr := tarx.NewReader(io.NewSectionReader(p.tar, 0, fileSize))
	var all []Member // every regular member, names as stored
	seen := map[string]int64{}
	headers := 0
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return p.tarError(err, tr.Pos())
		}
		if headers++; headers > maxMembers {
			return corruptf("ovf: %s holds more than %d members", p.path, maxMembers)
		}
		if h.Size > fileSize-h.DataOffset {
			return corruptf("ovf: %s ends inside member %q (offset %d, %d bytes)", p.path, h.Name, h.DataOffset, h.Size)
		}
		if h.Typeflag == tarx.TypeDir || h.IsRegular() && strings.HasSuffix(h.Name, "/") {
			continue
		}
		if !h.IsRegular() {
			p.note("member %q (type %q) is not a regular file; ignored", h.Name, h.Typeflag)
			continue
		}
		if !utf8.ValidString(h.Name) {
			// An href is XML, UTF-8: nothing in the descriptor can name it.
			p.note("member %q has a name that is not UTF-8; ignored", h.Name)
			continue
		}
		name, err := memberName(h.Name)
		if err != nil {
			return fmt.Errorf("ovf: %s: member at offset %d: %w", p.path, h.Offset, err)
		}
		if off, dup := seen[name]; dup {
			return corruptf("ovf: %s holds member %q twice (offsets %d and %d)", p.path, name, off, h.Offset)
		}
		seen[name] = h.Offset
		all = append(all, Member{Name: name, Offset: h.DataOffset, Size: h.Size})
	}
	at, err := p.findDescriptor(all)
	if err != nil {
		return err
	}
	p.relativize(all)
	p.checkOrder(all, at)
	return nil
}

// tarError names the member or the offset where the tar went wrong.
func (p *Package) tarError(err error, pos int64) error {
	var te *tarx.TruncatedError
	if errors.As(err, &te) {
		return corruptf("ovf: %s ends inside member %q", p.path, te.Member)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		// The header starts at the last block boundary the reader passed.
		return corruptf("ovf: %s ends inside a tar header at offset %d", p.path, pos&^(tarx.Block-1))
	}
	return fmt.Errorf("ovf: %s: %w", p.path, err)
}

// memberName checks that a stored name stays inside the package and
// cleans it: "./vm.ovf", as tar writes when given ".", is "vm.ovf".
func memberName(name string) (string, error) {
	if name == "" || strings.HasPrefix(name, "/") || strings.Contains(name, `\`) || strings.IndexByte(name, 0) >= 0 {
		return "", corruptf("member name %q is not a local name", name)
	}
	for _, e := range strings.Split(name, "/") {
		if e == ".." {
			return "", corruptf("member name %q holds \"..\"", name)
		}
	}
	clean := path.Clean(name)
	if clean == "." {
		return "", corruptf("member name %q is not a file's", name)
	}
	return clean, nil
}

// findDescriptor picks the one .ovf of the members and returns its index.
func (p *Package) findDescriptor(all []Member) (int, error) {
	var found []int
	for i, m := range all {
		if strings.EqualFold(path.Ext(m.Name), ".ovf") {
			found = append(found, i)
		}
	}
	switch len(found) {
	case 0:
		return 0, corruptf("ovf: %s holds no .ovf descriptor", p.path)
	case 1:
		return found[0], nil
	}
	var names []string
	for _, i := range found[:min(len(found), 5)] {
		names = append(names, all[i].Name)
	}
	if len(found) > 5 {
		names = append(names, "…")
	}
	return 0, corruptf("ovf: %s holds %d .ovf descriptors (%s); a package has one", p.path, len(found), strings.Join(names, ", "))
}

// relativize keeps the members under the .ovf's directory, named relative
// to it as hrefs are (virt-v2v accepts an .ovf in a subdirectory), and
// finds the manifest.
func (p *Package) relativize(all []Member) {
	var dir string
	for _, m := range all {
		if strings.EqualFold(path.Ext(m.Name), ".ovf") {
			dir = path.Dir(m.Name)
			p.ovf = path.Base(m.Name)
		}
	}
	prefix := ""
	if dir != "." {
		prefix = dir + "/"
		p.note("the .ovf is in directory %s of the archive, not at its root", dir)
	}
	p.index = map[string]int{}
	outside := 0
	for _, m := range all {
		rel, ok := strings.CutPrefix(m.Name, prefix)
		if !ok {
			outside++
			continue
		}
		m.Name = rel
		p.index[rel] = len(p.members)
		p.members = append(p.members, m)
	}
	if outside > 0 {
		p.note("%d members lie outside the .ovf's directory %s; ignored", outside, dir)
	}
	p.mf = p.sibling(".mf")
}

// sibling is the member named as the .ovf with another extension, in the
// extension's case or upper case, or "".
func (p *Package) sibling(ext string) string {
	base := strings.TrimSuffix(p.ovf, path.Ext(p.ovf))
	for _, name := range []string{base + ext, base + strings.ToUpper(ext)} {
		if p.Has(name) {
			return name
		}
	}
	return ""
}

// checkOrder notes where the archive departs from DSP0243's order: the
// .ovf first, then the .mf and .cert right after it or both at the end.
func (p *Package) checkOrder(all []Member, at int) {
	if at != 0 {
		p.note("%s is not the first member (member %d)", all[at].Name, at+1)
	}
	pos := func(name string) int {
		if name == "" {
			return -1
		}
		full := path.Join(path.Dir(all[at].Name), name)
		for i, m := range all {
			if m.Name == full {
				return i
			}
		}
		return -1
	}
	mf, cert := pos(p.mf), pos(p.sibling(".cert"))
	last := len(all) - 1
	switch {
	case mf < 0 && cert < 0:
	case cert < 0:
		if mf != at+1 && mf != last {
			p.note("%s is neither right after the .ovf nor at the end", p.mf)
		}
	case mf < 0:
		if cert != at+1 && cert != last {
			p.note("%s is neither right after the .ovf nor at the end", all[cert].Name)
		}
	default:
		lo, hi := min(mf, cert), max(mf, cert)
		if hi != lo+1 || lo != at+1 && hi != last {
			p.note("%s and %s are neither right after the .ovf nor at the end, together", p.mf, path.Base(all[cert].Name))
		}
	}
}

// openDir opens the directory form: the .ovf names the directory.
func openDir(name string, size int64) (*Package, error) {
	root, err := os.OpenRoot(filepath.Dir(name))
	if err != nil {
		return nil, fmt.Errorf("ovf: %w", err)
	}
	p := &Package{path: name, form: "ovf", root: root, ovf: filepath.Base(name)}
	p.members = []Member{{Name: p.ovf, Size: size}}
	if err := p.listDir(); err != nil {
		root.Close()
		return nil, err
	}
	p.mf = p.sibling(".mf")
	return p, nil
}

// listDir lists the regular files beside the .ovf (following symbolic
// links that stay in the directory; os.Root refuses the others).
func (p *Package) listDir() error {
	d, err := p.root.Open(".")
	if err != nil {
		return fmt.Errorf("ovf: %w", err)
	}
	defer d.Close()
	names, err := d.Readdirnames(maxMembers + 1)
	if err != nil && err != io.EOF {
		return fmt.Errorf("ovf: listing the directory of %s: %w", p.path, err)
	}
	if len(names) > maxMembers {
		return fmt.Errorf("ovf: the directory of %s holds more than %d files", p.path, maxMembers)
	}
	sort.Strings(names)
	for _, n := range names {
		if n == p.ovf {
			continue
		}
		st, err := p.root.Stat(n)
		if err != nil {
			p.note("%s left out: %v", n, err)
			continue
		}
		if st.Mode().IsRegular() {
			p.members = append(p.members, Member{Name: n, Size: st.Size()})
		}
	}
	return nil
}

// FileData is a file of the References as a disk reader needs it: random
// access over the stored bytes, or, for a compressed file, a stream.
type FileData interface {
	io.ReaderAt
	// Size is the file's size, or -1 when Sequential.
	Size() int64
	// Sequential reports that ReadAt does not work (the file is
	// compressed) and Reader is the only way in.
	Sequential() bool
	// Reader reads the whole file from its start, inflated if compressed.
	Reader() (io.ReadCloser, error)
}

// OpenFile opens a file of the References by its href, ovf:size (-1 when
// absent), ovf:chunkSize (0 when absent) and ovf:compression. A chunked
// file is its chunks href.000000000, href.000000001, … joined; a gzip file
// is the inflated stream of the stored (joined) bytes. For a file neither
// chunked nor compressed, a size other than the stored one is only noted:
// XenCenter writes the disk's physical utilisation there.
func (p *Package) OpenFile(href string, size int64, chunkSize int64, compression string) (FileData, error) {
	name, err := p.resolve(href)
	if err != nil {
		return nil, err
	}
	if compression != "" && compression != "gzip" {
		return nil, unsupportedf("ovf: %s: compression %q is not supported (only gzip)", href, compression)
	}
	if chunkSize < 0 {
		return nil, fmt.Errorf("ovf: %s: chunk size %d is negative", href, chunkSize)
	}
	var stored FileData
	if chunkSize > 0 {
		stored, err = p.joinChunks(name, size, chunkSize)
	} else {
		stored, err = p.whole(name)
		if err == nil && size >= 0 && stored.Size() != size {
			p.note("%s holds %d bytes where the References say %d", name, stored.Size(), size)
		}
	}
	if err != nil {
		return nil, err
	}
	if compression == "gzip" {
		return &gzipFile{name: name, stored: stored}, nil
	}
	return stored, nil
}

// resolve turns an href into a member name: relative to the .ovf, never
// leaving its directory (virt-v2v's resolve_href checks the same). An href
// is a URI, so a name that only exists percent-decoded is taken so.
func (p *Package) resolve(href string) (string, error) {
	if strings.Contains(href, ":") && (strings.Contains(href, "://") || strings.HasPrefix(strings.ToLower(href), "file:")) {
		return "", corruptf("ovf: href %q is not a file of the package", href)
	}
	name, err := memberName(href)
	if err != nil {
		return "", fmt.Errorf("ovf: href %q: %w", href, err)
	}
	if strings.Contains(name, "%") && !p.exists(name) {
		if u, err := url.PathUnescape(name); err == nil {
			if un, err := memberName(u); err == nil && p.exists(un) {
				return un, nil
			}
		}
	}
	return name, nil
}

// exists reports whether name is a file or the first chunk of one.
func (p *Package) exists(name string) bool {
	return p.Has(name) || p.Has(chunkName(name, 0))
}

func chunkName(name string, i int) string { return fmt.Sprintf("%s.%09d", name, i) }

// whole opens one member with random access.
func (p *Package) whole(name string) (FileData, error) {
	if p.root == nil {
		i, ok := p.index[name]
		if !ok {
			return nil, corruptf("ovf: %s holds no file %q", p.path, name)
		}
		m := p.members[i]
		return storedFile{io.NewSectionReader(p.tar, m.Offset, m.Size)}, nil
	}
	f, size, err := p.openInRoot(name)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	p.opened = append(p.opened, f)
	p.mu.Unlock()
	return storedFile{io.NewSectionReader(f, 0, size)}, nil
}

// joinChunks opens the chunks of name as one file. Every chunk but the
// last holds exactly chunkSize bytes, none is missing, and when size is
// known the chunks add up to it (ovf:size is the total, DSP0243).
func (p *Package) joinChunks(name string, size, chunkSize int64) (FileData, error) {
	idx, err := p.chunkIndexes(name)
	if err != nil {
		return nil, err
	}
	if len(idx) == 0 {
		if p.Has(name) {
			return nil, corruptf("ovf: %s is declared in chunks of %d bytes, but the package holds it whole", name, chunkSize)
		}
		return nil, corruptf("ovf: missing chunk 0 of %s", name)
	}
	j := &joinedFile{}
	for k, i := range idx {
		if i != k {
			return nil, corruptf("ovf: missing chunk %d of %s", k, name)
		}
		f, err := p.whole(chunkName(name, i))
		if err != nil {
			return nil, err
		}
		if k > 0 && j.parts[k-1].size != chunkSize {
			return nil, corruptf("ovf: chunk %s is %d bytes, not the chunk size %d, and is not the last", chunkName(name, k-1), j.parts[k-1].size, chunkSize)
		}
		if f.Size() > chunkSize {
			return nil, corruptf("ovf: chunk %s is %d bytes, more than the chunk size %d", chunkName(name, i), f.Size(), chunkSize)
		}
		j.parts = append(j.parts, chunkPart{r: f, start: j.size, size: f.Size()})
		j.size += f.Size()
	}
	if size >= 0 && j.size != size {
		if j.size < size && j.parts[len(j.parts)-1].size == chunkSize {
			return nil, corruptf("ovf: missing chunk %d of %s (the chunks hold %d bytes of %d)", len(idx), name, j.size, size)
		}
		return nil, corruptf("ovf: the chunks of %s hold %d bytes, the References say %d", name, j.size, size)
	}
	return j, nil
}

// chunkIndexes lists, sorted, the indexes of the chunks of name present:
// files named name.NNNNNNNNN, nine digits.
func (p *Package) chunkIndexes(name string) ([]int, error) {
	names, err := p.namesIn(path.Dir(name))
	if err != nil {
		return nil, err
	}
	var idx []int
	prefix := path.Base(name) + "."
	for _, n := range names {
		digits, ok := strings.CutPrefix(n, prefix)
		if !ok || len(digits) != 9 || strings.Trim(digits, "0123456789") != "" {
			continue
		}
		i := 0
		for _, c := range digits {
			i = i*10 + int(c-'0')
		}
		if p.Has(path.Join(path.Dir(name), n)) {
			idx = append(idx, i)
		}
	}
	sort.Ints(idx)
	return idx, nil
}

// namesIn lists the base names of the files in a directory of the package.
func (p *Package) namesIn(dir string) ([]string, error) {
	if p.root == nil {
		var names []string
		for _, m := range p.members {
			if path.Dir(m.Name) == dir {
				names = append(names, path.Base(m.Name))
			}
		}
		return names, nil
	}
	d, err := p.root.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("ovf: %w", err)
	}
	defer d.Close()
	names, err := d.Readdirnames(maxMembers + 1)
	if err != nil && err != io.EOF {
		return nil, fmt.Errorf("ovf: listing %s: %w", dir, err)
	}
	if len(names) > maxMembers {
		return nil, fmt.Errorf("ovf: directory %s holds more than %d files", dir, maxMembers)
	}
	return names, nil
}

// storedFile is a stored file with random access.
type storedFile struct{ *io.SectionReader }

func (storedFile) Sequential() bool { return false }

func (s storedFile) Reader() (io.ReadCloser, error) {
	return io.NopCloser(io.NewSectionReader(s, 0, s.Size())), nil
}

// joinedFile is chunks read as one file.
type joinedFile struct {
	parts []chunkPart
	size  int64
}

type chunkPart struct {
	r           io.ReaderAt
	start, size int64
}

func (j *joinedFile) Size() int64      { return j.size }
func (j *joinedFile) Sequential() bool { return false }

func (j *joinedFile) Reader() (io.ReadCloser, error) {
	return io.NopCloser(io.NewSectionReader(j, 0, j.size)), nil
}

func (j *joinedFile) ReadAt(b []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("ovf: read at negative offset %d", off)
	}
	// The first part that ends after off.
	i := sort.Search(len(j.parts), func(i int) bool { return j.parts[i].start+j.parts[i].size > off })
	n := 0
	for ; n < len(b) && i < len(j.parts); i++ {
		pt := j.parts[i]
		rel := off + int64(n) - pt.start
		want := int(min(int64(len(b)-n), pt.size-rel))
		m, err := pt.r.ReadAt(b[n:n+want], rel)
		n += m
		if m < want {
			if err == nil || err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return n, err
		}
	}
	if n < len(b) {
		return n, io.EOF
	}
	return n, nil
}

// gzipFile is a compressed file: only a stream.
type gzipFile struct {
	name   string
	stored FileData
}

func (g *gzipFile) Size() int64      { return -1 }
func (g *gzipFile) Sequential() bool { return true }

func (g *gzipFile) ReadAt([]byte, int64) (int, error) {
	return 0, fmt.Errorf("ovf: %s is gzip-compressed, so read through Reader: %w", g.name, errors.ErrUnsupported)
}

// Reader inflates every gzip member of the file in turn (multistream), as
// gzip -d does.
func (g *gzipFile) Reader() (io.ReadCloser, error) {
	r, err := g.stored.Reader()
	if err != nil {
		return nil, err
	}
	zr, err := gzip.NewReader(r)
	if err != nil {
		r.Close()
		return nil, fmt.Errorf("ovf: inflating %s: %w", g.name, err)
	}
	return &inflater{zr: zr, under: r, name: g.name}, nil
}

// inflater names the file in the errors of the gzip reader.
type inflater struct {
	zr    *gzip.Reader
	under io.Closer
	name  string
}

func (f *inflater) Read(b []byte) (int, error) {
	n, err := f.zr.Read(b)
	if err != nil && err != io.EOF {
		err = fmt.Errorf("ovf: inflating %s: %w", f.name, err)
	}
	return n, err
}

func (f *inflater) Close() error {
	return errors.Join(f.zr.Close(), f.under.Close())
}

package xva

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/xva-tools/xva/internal/fsutil"
	"github.com/xva-tools/xva/s3"
)

// Where many archives live: a directory of archives, or an s3:// prefix. The commands reach a tree of archives
// only through these functions, so that a new kind of place is added here
// and nowhere else.

// archiveSuffixes are the names FindArchives takes for archives: an XVA,
// whole-compressed or not, and a plain tar (how some tools name an export).
var archiveSuffixes = []string{".xva", ".xva.gz", ".xva.zst", ".tar"}

// IsArchiveTree reports whether path is a place holding archives rather
// than an archive: a directory that is not itself a legacy directory-form
// archive (one with ova.xml at its top).
func IsArchiveTree(path string) bool {
	if IsObjectURL(path) {
		return isObjectTree(path)
	}
	st, err := os.Stat(path)
	if err != nil || !st.IsDir() {
		return false
	}
	_, err = os.Lstat(filepath.Join(path, "ova.xml"))
	return err != nil
}

// FindArchives lists the archives under dir, sorted: files whose names end
// in .xva, .xva.gz, .xva.zst or .tar, and directory-form archives (a
// directory with ova.xml, taken whole; nothing beneath one is listed).
// Hidden entries (a name starting with '.', such as an unfinished output's
// temporary file) are skipped, and symbolic links are not followed. An
// unreadable directory is an error naming it.
func FindArchives(ctx context.Context, dir string) ([]string, error) {
	if IsObjectURL(dir) {
		return findObjectArchives(ctx, dir)
	}
	var found []string
	// The root is walked through a trailing separator, so that a symbolic
	// link given as the root is followed (links below it are not).
	root := dir
	if !strings.HasSuffix(root, string(os.PathSeparator)) {
		root += string(os.PathSeparator)
	}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("listing archives under %s: %w", dir, err)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if path != root && strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		switch {
		case d.IsDir():
			if path != root && (!IsArchiveTree(path) || lostOVA(path)) {
				found = append(found, path)
				return filepath.SkipDir
			}
		case d.Type().IsRegular():
			name := strings.ToLower(d.Name())
			if slices.ContainsFunc(archiveSuffixes, func(s string) bool { return strings.HasSuffix(name, s) }) {
				found = append(found, path)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.Sort(found)
	return found, nil
}

// lostOVA reports whether the directory at path looks like a
// directory-form archive that has lost its ova.xml (it holds an xapi
// Ref:N directory, or a disk directory of legacy chunks): listed as an
// archive, so its check fails and says so, rather than being skipped.
func lostOVA(path string) bool {
	entries, err := os.ReadDir(path)
	if err != nil {
		return false
	}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		if strings.HasPrefix(e.Name(), "Ref:") {
			return true
		}
		if _, err := os.Lstat(filepath.Join(path, e.Name(), "chunk-000000000.gz")); err == nil {
			return true
		}
	}
	return false
}

// JoinOutput names the output called name in the output place dir: a
// local directory, or an s3:// prefix, which is joined with a slash
// whatever the local system's separator.
func JoinOutput(dir, name string) string {
	if strings.HasPrefix(dir, "s3://") {
		return strings.TrimSuffix(dir, "/") + "/" + name
	}
	return filepath.Join(dir, name)
}

// CheckOutputDir says what is wrong with dir as a place for outputs, if
// anything, before any work: an s3:// location that does not parse.
func CheckOutputDir(dir string) error {
	if IsObjectURL(dir) {
		if _, err := s3.Parse(dir); err != nil {
			return errors.New(strings.TrimPrefix(err.Error(), "s3: "))
		}
	}
	return nil
}

// MakeOutputDir makes the local directory dir (and its parents) for
// outputs to go into, if it is missing; an s3:// prefix needs nothing
// made.
func MakeOutputDir(dir string) error {
	if strings.HasPrefix(dir, "s3://") {
		return nil
	}
	if st, err := os.Stat(dir); err == nil {
		if !st.IsDir() {
			return fmt.Errorf("%s is not a directory", dir)
		}
		return nil
	}
	// Made as the archives in it are (--mode), whatever the umask.
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("making the output directory: %w", err)
	}
	return os.Chmod(dir, fsutil.DirMode())
}

// isObjectTree: a prefix with objects under it and no ova.xml at its top;
// an object, or a prefix holding ova.xml (a directory-form archive), is
// an archive.
func isObjectTree(path string) bool {
	u, s, err := parseObjectURL(path)
	if err != nil {
		return false
	}
	ctx := context.Background()
	if !u.IsPrefix() {
		if _, err := s.Stat(ctx, u); err == nil {
			return false
		}
	}
	infos, err := s.List(ctx, u.Dir())
	if err != nil || len(infos) == 0 {
		return false
	}
	top := u.Dir().Key + "ova.xml"
	return !slices.ContainsFunc(infos, func(i s3.Info) bool { return i.URL.Key == top })
}

// findObjectArchives is FindArchives under an s3:// prefix: objects named
// as archives, and prefixes holding ova.xml (directory-form archives,
// listed with a trailing slash, nothing beneath them listed).
func findObjectArchives(ctx context.Context, dir string) ([]string, error) {
	u, s, err := parseObjectURL(dir)
	if err != nil {
		return nil, err
	}
	u = u.Dir()
	infos, err := s.List(ctx, u)
	if err != nil {
		return nil, fmt.Errorf("listing archives under %s: %w", dir, err)
	}
	var forms []string // directory-form archives' prefixes
	for _, i := range infos {
		if k, ok := strings.CutSuffix(i.URL.Key, "/ova.xml"); ok && k+"/" != u.Key && !hiddenKey(k, u.Key) {
			forms = append(forms, k+"/")
		}
	}
	slices.Sort(forms)
	forms = slices.CompactFunc(forms, func(a, b string) bool { return strings.HasPrefix(b, a) })
	var found []string
	for _, f := range forms {
		found = append(found, s3.URL{Bucket: u.Bucket, Key: f}.String())
	}
	for _, i := range infos {
		key := i.URL.Key
		name := strings.ToLower(key)
		inForm := slices.ContainsFunc(forms, func(f string) bool { return strings.HasPrefix(key, f) })
		if inForm || hiddenKey(key, u.Key) || !slices.ContainsFunc(archiveSuffixes, func(s string) bool { return strings.HasSuffix(name, s) }) {
			continue
		}
		found = append(found, i.URL.String())
	}
	slices.Sort(found)
	return found, nil
}

// hiddenKey reports whether a segment of key below the prefix starts
// with '.', as hidden files are skipped in a local tree.
func hiddenKey(key, prefix string) bool {
	for _, seg := range strings.Split(strings.TrimPrefix(key, prefix), "/") {
		if strings.HasPrefix(seg, ".") {
			return true
		}
	}
	return false
}

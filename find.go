package xva

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/xva-tools/xva/internal/fsutil"
)

// Where many archives live: a directory of archives (and, once the S3
// output is in, an s3:// prefix). The commands reach a tree of archives
// only through these functions, so that a new kind of place is added here
// and nowhere else.

// archiveSuffixes are the names FindArchives takes for archives: an XVA,
// whole-compressed or not, and a plain tar (how some tools name an export).
var archiveSuffixes = []string{".xva", ".xva.gz", ".xva.zst", ".tar"}

// IsArchiveTree reports whether path is a place holding archives rather
// than an archive: a directory that is not itself a legacy directory-form
// archive (one with ova.xml at its top).
func IsArchiveTree(path string) bool {
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
	var found []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("listing archives under %s: %w", dir, err)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if path != dir && strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		switch {
		case d.IsDir():
			if path != dir && !IsArchiveTree(path) {
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

// JoinOutput names the output called name in the output place dir: a
// local directory, or an s3:// prefix, which is joined with a slash
// whatever the local system's separator.
func JoinOutput(dir, name string) string {
	if strings.HasPrefix(dir, "s3://") {
		return strings.TrimSuffix(dir, "/") + "/" + name
	}
	return filepath.Join(dir, name)
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

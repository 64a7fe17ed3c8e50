// Package fsutil holds the file-system steps that make xva's outputs atomic:
// exclusive temporary files beside the target and renames that never replace.
//
// It may import disk only.
package fsutil

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// tempPattern matches the base name TempName gives.
var tempPattern = regexp.MustCompile(`\.([^/\s]+)\.xva-tmp-[0-9a-f]{8}`)

// FinalNames rewrites the temporary names in s (an error message, say) to
// the final names they stand for, which is what a user knows.
func FinalNames(s string) string { return tempPattern.ReplaceAllString(s, "$1") }

// TempName returns a hidden name in the directory of path, derived from it.
func TempName(path string) string {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	return filepath.Join(dir, fmt.Sprintf(".%s.xva-tmp-%08x", base, rand.Uint32()))
}

// DefaultMode is the permission of the files xva creates unless SetMode
// says otherwise: an archive or a disk image holds a VM's data (password
// hashes, keys), so only its owner may read it, as restic and borg do.
const DefaultMode os.FileMode = 0o600

// mode is the permission outputs get when they are published.
var mode atomic.Uint32

func init() { mode.Store(uint32(DefaultMode)) }

// SetMode sets the permission bits (at most 0o777) that files get when
// they are published, process-wide; directories get the same plus x where
// r is set. Temporary files and directories are 0600 and 0700 until then.
func SetMode(m os.FileMode) error {
	if m&^os.ModePerm != 0 {
		return fmt.Errorf("file mode %#o has bits beyond 0777", uint32(m))
	}
	mode.Store(uint32(m))
	return nil
}

// Mode is the permission of published files.
func Mode() os.FileMode { return os.FileMode(mode.Load()) }

// DirMode is the permission of published directories: Mode with x where
// r is set, and always rwx for the owner, who must be able to remove it.
func DirMode() os.FileMode {
	m := Mode()
	return m | (m&0o444)>>2 | 0o700
}

// temps holds the temporary files and directories not yet published or
// discarded, for RemoveTemps, each with the descriptor that holds its lock.
var temps sync.Map

// Every temporary file or directory is locked (flock, exclusive) by the
// process that made it, from a moment after its creation until it is
// published or removed. The kernel drops the lock when the process dies,
// however it dies, so a temporary name that can be locked by someone else
// was left by a process that is gone (killed with SIGKILL, or a machine
// that crashed): Leftovers removes it.

// lockTemp takes the lock of the temporary name, which this process has
// just created. Where the lock is held by another process, the error
// matches errLockBusy; on a platform without these locks, too.
func lockTemp(name string) (*os.File, error) {
	l, err := os.OpenFile(name, os.O_RDONLY|ONoFollow|oCloexec, 0)
	if err != nil {
		return nil, err
	}
	if err := lockFile(l); err != nil {
		l.Close()
		return nil, fmt.Errorf("locking %s: %w", name, err)
	}
	return l, nil
}

// ownLock locks the temporary name this process has just created. A
// filesystem without locks (some NFS setups) leaves it unlocked, which
// costs only the finding of leftovers there: a nil is stored.
func ownLock(name string) *os.File {
	l, err := lockTemp(name)
	if err != nil {
		return nil
	}
	return l
}

// release drops the lock of tmp and forgets it.
func release(tmp string) {
	if l, ok := temps.LoadAndDelete(tmp); ok {
		if f, ok := l.(*os.File); ok && f != nil {
			f.Close()
		}
	}
}

// pendingGrace is how long a pending temporary name is left alone: its
// owner locks it microseconds after making it.
const pendingGrace = time.Minute

// Leftover is a temporary name a process that is gone left beside an output.
type Leftover struct {
	Path    string
	Removed bool  // false: it is in use by a running process, or err
	Err     error // why it could not be removed
}

// OnLeftover, if set, is told each temporary name found beside an output
// about to be written: removed, because its maker is gone, or left alone.
var OnLeftover func(Leftover)

// leftovers looks beside path for temporary names of path that earlier runs
// left, and removes those no running process holds. A process between
// creating a name and locking it (microseconds) would lose its temporary
// output and fail; it does not write a wrong one.
func leftovers(path string) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	es, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	prefix := "." + base + ".xva-tmp-"
	for _, e := range es {
		if !strings.HasPrefix(e.Name(), prefix) || !tempPattern.MatchString(e.Name()) {
			continue
		}
		// A pending name ("~") is a run killed while setting up its
		// temporary: one unlocked for a while is a leftover too.
		pending := len(e.Name()) == len(prefix)+9 && strings.HasSuffix(e.Name(), "~")
		if len(e.Name()) != len(prefix)+8 && !pending {
			continue
		}
		if info, err := e.Info(); pending && (err != nil || time.Since(info.ModTime()) < pendingGrace) {
			continue
		}
		name := filepath.Join(dir, e.Name())
		if _, ours := temps.Load(name); ours {
			continue
		}
		lo := Leftover{Path: name}
		if l, err := lockTemp(name); err == nil {
			lo.Err = os.RemoveAll(name)
			lo.Removed = lo.Err == nil
			l.Close()
		} else if !errors.Is(err, errLockBusy) {
			lo.Err = err
		}
		if OnLeftover != nil {
			OnLeftover(lo)
		}
	}
}

// CreateTemp creates an empty file beside path, exclusively and without
// following symlinks, after removing what killed runs left there. Publish
// or Discard ends it.
func CreateTemp(path string) (*os.File, error) {
	leftovers(path)
	name, err := claim(path, func(pending string) error {
		f, err := os.OpenFile(pending, os.O_RDWR|os.O_CREATE|os.O_EXCL|ONoFollow|oCloexec, 0o600)
		if err == nil {
			f.Close()
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(name, os.O_RDWR|ONoFollow|oCloexec, 0)
	if err != nil {
		DiscardDir(name)
		return nil, err
	}
	return f, nil
}

// MkdirTemp creates an empty directory beside path, after removing what
// killed runs left there. PublishDir or DiscardDir ends it.
func MkdirTemp(path string) (string, error) {
	leftovers(path)
	return claim(path, func(pending string) error { return os.Mkdir(pending, 0o700) })
}

// claim makes a temporary name for path with create, and locks it before
// it takes that name: it is made under a pending name (the temporary name
// and "~", which leftovers never looks at), locked, then renamed, and the
// lock goes with it. So a temporary name that another process can lock is
// never one a live process is still setting up.
func claim(path string, create func(pending string) error) (string, error) {
	for range 100 {
		name := TempName(path)
		pending := name + "~"
		err := create(pending)
		if errors.Is(err, os.ErrExist) {
			continue
		}
		if err != nil {
			return "", err
		}
		lock := ownLock(pending)
		err = RenameNoReplace(pending, name)
		if err != nil && !errors.Is(err, os.ErrExist) {
			// No no-replace rename here for a directory (NFS): the name
			// is random, so look, then rename.
			if _, lerr := os.Lstat(name); errors.Is(lerr, os.ErrNotExist) {
				err = os.Rename(pending, name)
			}
		}
		if err != nil {
			lock.Close() // nil-safe
			os.RemoveAll(pending)
			if errors.Is(err, os.ErrExist) {
				continue
			}
			return "", err
		}
		temps.Store(name, lock)
		return name, nil
	}
	return "", fmt.Errorf("no free temporary name next to %s", path)
}

// WriteNew writes data to a new file at path, which must not exist (a
// symlink there is not followed), with permission Mode: it is for files
// inside a temporary directory, published with it.
func WriteNew(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|ONoFollow|oCloexec, 0o600)
	if err != nil {
		return err
	}
	if err := f.Chmod(Mode()); err != nil {
		f.Close()
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// Publish flushes the temporary file f to stable storage, closes it and
// renames it to final: over an existing file if replace, otherwise only if
// final does not exist. On any failure the temporary file is removed.
func Publish(f *os.File, final string, replace bool) error {
	err := f.Chmod(Mode())
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = PublishDir(f.Name(), final, replace)
	}
	if err != nil {
		DiscardDir(f.Name())
	}
	return err
}

// Discard closes and removes the temporary file f.
func Discard(f *os.File) {
	f.Close()
	DiscardDir(f.Name())
}

// PublishDir renames the temporary tmp (a directory, or a closed file) to
// final. With replace, final may exist: a file is replaced, and so is an
// empty directory, atomically, which os.Rename refuses to do. A directory
// gets permission DirMode first.
func PublishDir(tmp, final string, replace bool) error {
	var err error
	if st, serr := os.Lstat(tmp); serr == nil && st.IsDir() {
		err = os.Chmod(tmp, DirMode())
	}
	switch {
	case err != nil:
	case replace:
		err = renameReplace(tmp, final)
	default:
		err = RenameNoReplace(tmp, final)
	}
	if err == nil {
		release(tmp)
		return nil
	}
	// "rename .x.xva-tmp-1234 x.xva: file exists" says nothing a user
	// knows: name the output, what happened and what to do.
	var le *os.LinkError
	switch {
	case errors.Is(err, os.ErrExist) || isInTheWay(err):
		return &ExistsError{Path: final, Replace: replace}
	case errors.As(err, &le):
		return fmt.Errorf("moving the finished output into place as %s: %w", final, le.Err)
	}
	return err
}

// ExistsError: an output could not be put in place because something is
// already there, which appeared while the output was being written (or,
// replacing, is a directory that is not empty). It matches fs.ErrExist.
type ExistsError struct {
	Path    string
	Replace bool
}

func (e *ExistsError) Error() string {
	if e.Replace {
		return fmt.Sprintf("%s cannot be replaced (a directory that is not empty, or a file where a directory goes); "+
			"the finished output was removed: remove %s or choose another name", e.Path, e.Path)
	}
	return fmt.Sprintf("%s appeared while the output was being written; it was left as it is and the finished output "+
		"removed: remove %s or choose another name, or add --force to replace a file", e.Path, e.Path)
}

func (e *ExistsError) Unwrap() error { return os.ErrExist }

// DiscardDir removes the temporary tmp and all it holds.
func DiscardDir(tmp string) {
	os.RemoveAll(tmp)
	release(tmp)
}

// RemoveTemps removes every temporary file and directory still pending, for
// a process that is exiting on a signal while work is blocked (a read from
// a stalled pipe, say) and cannot unwind by itself.
func RemoveTemps() {
	temps.Range(func(k, _ any) bool {
		os.RemoveAll(k.(string))
		release(k.(string))
		return true
	})
}

// OpenInput opens path for reading if it is a regular file, or, with
// devices, a block device; anything else (a FIFO, a socket, a character
// device) is refused before a byte is read. The open itself does not block:
// opening a FIFO without O_NONBLOCK waits for a writer, forever if none
// comes. extra adds open flags (O_NOFOLLOW).
func OpenInput(path string, devices bool, extra int) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|oNonblock|oCloexec|extra, 0)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	m := st.Mode()
	if m.IsRegular() || devices && m&os.ModeDevice != 0 && m&os.ModeCharDevice == 0 {
		return f, nil
	}
	f.Close()
	what := "a regular file"
	if devices {
		what = "a regular file or a block device"
	}
	return nil, &os.PathError{Op: "open", Path: path, Err: fmt.Errorf("is %s, not %s", kind(m), what)}
}

// kind names a file type for an error message.
func kind(m os.FileMode) string {
	switch {
	case m&os.ModeNamedPipe != 0:
		return "a named pipe (FIFO)"
	case m&os.ModeSocket != 0:
		return "a socket"
	case m&os.ModeCharDevice != 0:
		return "a character device"
	case m&os.ModeDevice != 0:
		return "a block device"
	case m.IsDir():
		return "a directory"
	}
	return "a special file"
}

// Exists reports whether path names anything, a dangling symlink included.
func Exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// Fd returns f's descriptor without switching f to blocking mode, which
// f.Fd() would do.
func Fd(f *os.File) (int, error) {
	sc, err := f.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	if err := sc.Control(func(u uintptr) { fd = int(u) }); err != nil {
		return -1, err
	}
	return fd, nil
}

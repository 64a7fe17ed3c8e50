package s3

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Uploads in flight in this process, so that AbortAll can give them up
// when the process must exit before they unwind (a second signal).
var live struct {
	sync.Mutex
	m map[*Upload]struct{}
}

func track(w *Upload) {
	live.Lock()
	if live.m == nil {
		live.m = map[*Upload]struct{}{}
	}
	live.m[w] = struct{}{}
	live.Unlock()
}

func untrack(w *Upload) {
	live.Lock()
	delete(live.m, w)
	live.Unlock()
}

// AbortAll aborts every multipart upload this process has started and not
// finished, waiting at most timeout in all. It is for a process exiting
// on a signal.
func AbortAll(timeout time.Duration) {
	live.Lock()
	ups := make([]*Upload, 0, len(live.m))
	for w := range live.m {
		ups = append(ups, w)
	}
	live.m = nil
	live.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var wg sync.WaitGroup
	for _, w := range ups {
		w.cancel() // the parts in flight first, or they may land after
		wg.Add(1)
		go func() {
			defer wg.Done()
			parts := make(chan struct{})
			go func() { w.wg.Wait(); close(parts) }()
			select {
			case <-parts:
			case <-ctx.Done():
			}
			if err := w.s.abort(ctx, w.u, w.id); err != nil {
				w.s.remember(w.u, w.id, w.s.wrap("aborting", w.u, err))
			}
		}()
	}
	wg.Wait()
}

// The uploads that could not be aborted (the store was down) are kept,
// one per line ("endpoint<TAB>bucket<TAB>key<TAB>upload id"), in
// pendingFile; each Store made later for the same endpoint aborts them
// first. A bucket lifecycle rule (AbortIncompleteMultipartUpload) is the
// store's own safety net for uploads of a machine that never runs xva
// again.
func pendingFile() string {
	dir := os.Getenv("XDG_STATE_HOME")
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return ""
		}
		dir = filepath.Join(home, ".local", "state")
	}
	return filepath.Join(dir, "xva", "s3-pending-aborts")
}

var pendingMu sync.Mutex

// OnPending, if set, is told of each upload that could not be aborted.
var OnPending func(u URL, err error)

// remember records an upload whose abort failed.
func (s *Store) remember(u URL, id string, err error) {
	if OnPending != nil {
		OnPending(u, err)
	}
	path := pendingFile()
	if path == "" {
		return
	}
	pendingMu.Lock()
	defer pendingMu.Unlock()
	if os.MkdirAll(filepath.Dir(path), 0o700) != nil {
		return
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return
	}
	defer f.Close()
	fmt.Fprintf(f, "%s\t%s\t%s\t%s\n", s.endpoint, u.Bucket, u.Key, id)
}

// abortPending aborts the recorded uploads of this store's endpoint,
// keeping those it still cannot abort.
func (s *Store) abortPending(ctx context.Context) {
	path := pendingFile()
	if path == "" {
		return
	}
	pendingMu.Lock()
	defer pendingMu.Unlock()
	f, err := os.Open(path)
	if err != nil {
		return
	}
	var keep []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Split(sc.Text(), "\t")
		if len(fields) != 4 {
			continue
		}
		if fields[0] != s.endpoint {
			keep = append(keep, sc.Text())
			continue
		}
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := s.abort(actx, URL{fields[1], fields[2]}, fields[3])
		cancel()
		if err != nil {
			keep = append(keep, sc.Text())
		}
	}
	f.Close()
	if len(keep) == 0 {
		os.Remove(path)
		return
	}
	os.WriteFile(path, []byte(strings.Join(keep, "\n")+"\n"), 0o600)
}

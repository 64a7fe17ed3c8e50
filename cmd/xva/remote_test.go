package main

import (
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
)

// Plain HTTP would carry the password in clear text: refused (exit 2)
// unless --allow-http, which then does talk HTTP.
func TestPlainHTTPNeedsAllowHTTP(t *testing.T) {
	dir, _ := setupSectors(t)
	mustRun(t, dir, nil, "pack", "--disk", "sda=sda.img", "a.xva")
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		http.Error(w, "no xapi here", http.StatusServiceUnavailable)
	}))
	t.Cleanup(srv.Close)
	for _, args := range [][]string{
		{"upload", "a.xva", "--url", srv.URL},
		{"export", "--vm", "5f1c8a52-7b3e-4a8b-9d27-1b4c5a9e2f10", "--url", srv.URL + "/", "x.xva"},
	} {
		r := remote(t, dir, "secret", args...)
		if r.code != exitUsage || !strings.Contains(r.stderr, "unencrypted") || !strings.Contains(r.stderr, "--allow-http") {
			t.Errorf("xva %v: exit %d\n%s", args, r.code, r.stderr)
		}
	}
	if calls.Load() != 0 {
		t.Fatalf("%d requests reached the server before --allow-http", calls.Load())
	}
	r := remote(t, dir, "secret", "upload", "a.xva", "--url", srv.URL, "--allow-http")
	if r.code != exitFailure || calls.Load() == 0 {
		t.Fatalf("with --allow-http: exit %d, %d requests\n%s", r.code, calls.Load(), r.stderr)
	}
	// A URL is a host: a path is refused, a trailing slash is dropped (no
	// // in what is printed).
	if r := remote(t, dir, "secret", "upload", "a.xva", "--url", "https://pool.example.com/xapi"); r.code != exitUsage {
		t.Errorf("a URL with a path: exit %d\n%s", r.code, r.stderr)
	}
	r = remote(t, dir, "secret", "upload", "a.xva", "--url", srv.URL+"/", "--allow-http")
	if regexp.MustCompile(`[^:]//`).MatchString(r.stderr) {
		t.Errorf("a double slash in: %s", r.stderr)
	}
}

package s3

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/xva-tools/xva/internal/testutil"
)

// flaky stands between the client and the real server and spoils some
// requests the way networks and busy stores do: a 503 SlowDown (S3's
// throttling answer) to every third, and a GET whose body is cut off
// halfway to every fifth.
type flaky struct {
	next      http.Handler
	n         atomic.Int64
	throttled atomic.Int64
	cut       atomic.Int64
}

func (f *flaky) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := f.n.Add(1)
	switch {
	case n%3 == 0:
		f.throttled.Add(1)
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>`)
	case n%5 == 0 && r.Method == http.MethodGet && r.Header.Get("Range") != "":
		f.cut.Add(1)
		rec := httptest.NewRecorder()
		f.next.ServeHTTP(rec, r)
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		body := rec.Body.Bytes()
		w.Write(body[:len(body)/2])
		// Drop the connection with the body half sent.
		if hj, ok := w.(http.Hijacker); ok {
			if c, _, err := hj.Hijack(); err == nil {
				c.Close()
			}
		}
	default:
		f.next.ServeHTTP(w, r)
	}
}

// TestTransientErrorsAreRetried: throttling and cut-off bodies are retried
// with backoff, and what is written and read back is exact.
func TestTransientErrorsAreRetried(t *testing.T) {
	g := testutil.S3Server(t, "xva-test")
	target, _ := url.Parse(g.Endpoint)
	f := &flaky{next: httputil.NewSingleHostReverseProxy(target)}
	proxy := httptest.NewServer(f)
	defer proxy.Close()
	s := newStore(t, Options{Endpoint: proxy.URL, PartSize: MinPartSize, Jobs: 2, MaxAttempts: 6})
	data := randomBytes(17<<20, 9)
	u := URL{"xva-test", "flaky.xva"}
	w, err := s.Create(context.Background(), u, CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w.Write(data)
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	o, err := s.Open(context.Background(), u)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(o.Reader(0))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back through a flaky network: %v, equal %v", err, bytes.Equal(got, data))
	}
	if f.throttled.Load() == 0 || f.cut.Load() == 0 {
		t.Fatalf("the proxy spoiled nothing (%d throttled, %d cut)", f.throttled.Load(), f.cut.Load())
	}
	t.Logf("%d requests, %d throttled, %d bodies cut", f.n.Load(), f.throttled.Load(), f.cut.Load())
}

// TestPersistentErrorNamesObjectAndRange: a store that keeps failing is
// given up on after the bounded tries, naming the object and the bytes.
func TestPersistentErrorNamesObjectAndRange(t *testing.T) {
	g := testutil.S3Server(t, "xva-test")
	s := newStore(t, Options{})
	u := URL{"xva-test", "x.xva"}
	w, _ := s.Create(context.Background(), u, CreateOptions{})
	w.Write(randomBytes(1<<20, 1))
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	o, err := s.Open(context.Background(), u)
	if err != nil {
		t.Fatal(err)
	}
	g.Stop()
	_, err = o.ReadAt(make([]byte, 100), 5000)
	if err == nil || !strings.Contains(err.Error(), "s3://xva-test/x.xva") || !strings.Contains(err.Error(), "bytes 0-1048575") {
		t.Fatalf("error %v names no object or range", err)
	}
	t.Log(err)
}

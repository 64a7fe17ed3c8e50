package s3

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xva-tools/xva/internal/testutil"
)

// flaky stands between the client and the real server and spoils some
// requests the way networks and busy stores do: a 503 SlowDown (S3's
// throttling answer) to every third, and a GET whose body is cut off
// halfway to every fifth.
type flaky struct {
	next      http.Handler
	cutLong   bool // cut every GET answered with more than 1 MiB, too
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
	case r.Method == http.MethodGet && (n%5 == 0 || f.cutLong):
		rec := httptest.NewRecorder()
		f.next.ServeHTTP(rec, r)
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		body := rec.Body.Bytes()
		if n%5 != 0 && len(body) <= 1<<20 {
			w.Write(body)
			return
		}
		f.cut.Add(1)
		w.Write(body[:len(body)/2])
		w.(http.Flusher).Flush()
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
	o := putObject(t, s, u, data)
	got, err := io.ReadAll(o.Reader(0))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back through a flaky network: %v, equal %v", err, bytes.Equal(got, data))
	}
	if f.throttled.Load() == 0 || f.cut.Load() == 0 {
		t.Fatalf("the proxy spoiled nothing (%d throttled, %d cut)", f.throttled.Load(), f.cut.Load())
	}
	t.Logf("%d requests, %d throttled, %d bodies cut", f.n.Load(), f.throttled.Load(), f.cut.Load())

	// A stream resumes a cut body from where it broke off, several times
	// over: every fifth GET is cut, so some resumptions are cut again.
	f.cutLong = true
	for _, start := range []int64{0, 5<<20 + 3} {
		cut := f.cut.Load()
		st := o.Stream(int64(start))
		got, err := io.ReadAll(st)
		st.Close()
		if err != nil || !bytes.Equal(got, data[start:]) {
			t.Fatalf("stream from %d through a flaky network: %v, %d bytes, equal %v", start, err, len(got), bytes.Equal(got, data[start:]))
		}
		if f.cut.Load() < cut+2 {
			t.Fatalf("stream from %d: %d bodies cut, want several", start, f.cut.Load()-cut)
		}
	}
}

// TestPersistentErrorNamesObjectAndRange: a store that keeps failing is
// given up on after the bounded tries, naming the object and the bytes.
func TestPersistentErrorNamesObjectAndRange(t *testing.T) {
	g := testutil.S3Server(t, "xva-test")
	s := newStore(t, Options{})
	u := URL{"xva-test", "x.xva"}
	o := putObject(t, s, u, randomBytes(1<<20, 1))
	g.Stop()
	_, err := o.ReadAt(make([]byte, 100), 5000)
	if err == nil || !strings.Contains(err.Error(), "s3://xva-test/x.xva") || !strings.Contains(err.Error(), "bytes 0-1048575") {
		t.Fatalf("error %v names no object or range", err)
	}
	t.Log(err)
}

// TestStreamFailureNamesObjectAndRange: a stream whose store goes away
// fails with the object and the bytes it did not get, and Close returns.
func TestStreamFailureNamesObjectAndRange(t *testing.T) {
	g := testutil.S3Server(t, "xva-test")
	s := newStore(t, Options{MaxAttempts: 2})
	u := URL{"xva-test", "s.xva"}
	data := randomBytes(96<<20, 2)
	o := putObject(t, s, u, data)
	st := o.Stream(0)
	defer st.Close()
	head := make([]byte, 1<<20)
	if _, err := io.ReadFull(st, head); err != nil || !bytes.Equal(head, data[:1<<20]) {
		t.Fatalf("first MiB: %v", err)
	}
	g.Stop()
	n, err := io.Copy(io.Discard, st)
	if err == nil || !strings.Contains(err.Error(), "s3://xva-test/s.xva") || !strings.Contains(err.Error(), "bytes ") {
		t.Fatalf("after %d more bytes: error %v names no object or range", n, err)
	}
	if want := fmt.Sprintf("bytes %d-%d", 1<<20+n, len(data)-1); !strings.Contains(err.Error(), want) {
		t.Fatalf("error %v does not name the bytes not read (%s)", err, want)
	}
	t.Log(err)
}

// TestStreamCloseEarly: closing a stream half read stops its GET and
// hands back its buffers; reading after Close fails.
func TestStreamCloseEarly(t *testing.T) {
	testutil.S3Server(t, "xva-test")
	s := newStore(t, Options{})
	u := URL{"xva-test", "c.xva"}
	data := randomBytes(64<<20, 3)
	o := putObject(t, s, u, data)
	st := o.Stream(7)
	head := make([]byte, 100)
	if _, err := io.ReadFull(st, head); err != nil || !bytes.Equal(head, data[7:107]) {
		t.Fatalf("first bytes from 7: %v", err)
	}
	done := make(chan struct{})
	go func() { st.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return")
	}
	if _, err := st.Read(head); err == nil {
		t.Fatal("a closed stream read on")
	}
}

// TestSection: a section reads exactly its bytes with one GET, lazily;
// one reaching past the object's end is cut short with
// io.ErrUnexpectedEOF after the bytes there are.
func TestSection(t *testing.T) {
	testutil.S3Server(t, "xva-test")
	s := newStore(t, Options{})
	u := URL{"xva-test", "sec.xva"}
	data := randomBytes(9<<20+5, 4)
	o := putObject(t, s, u, data)
	for _, c := range []struct{ off, n int64 }{{0, int64(len(data))}, {0, 1}, {512, 4<<20 + 1}, {int64(len(data)) - 3, 3}, {int64(len(data)), 0}} {
		st := o.Section(c.off, c.n)
		got, err := io.ReadAll(st)
		st.Close()
		if err != nil || !bytes.Equal(got, data[c.off:c.off+c.n]) {
			t.Fatalf("section %d+%d: %v, %d bytes, equal %v", c.off, c.n, err, len(got), bytes.Equal(got, data[c.off:c.off+c.n]))
		}
	}
	st := o.Section(int64(len(data))-10, 20)
	got, err := io.ReadAll(st)
	st.Close()
	if err != io.ErrUnexpectedEOF || !bytes.Equal(got, data[len(data)-10:]) {
		t.Fatalf("section past the end: %v after %d bytes", err, len(got))
	}
	// Never read: nothing asked, Close returns.
	o.Section(0, 100).Close()
}

// TestStreamGoesRanged: a stream whose store is judged slow goes on with
// ranged blocks in parallel, through throttling and cut bodies, and
// hands over exactly the object's bytes; a failure there names the
// object and the block's range, and Close returns.
func TestStreamGoesRanged(t *testing.T) {
	saved, savedProbe := slowStore, probeBytes
	defer func() { slowStore, probeBytes = saved, savedProbe }()
	slowStore, probeBytes = func(time.Duration, time.Duration) bool { return true }, 5<<20

	g := testutil.S3Server(t, "xva-test")
	target, _ := url.Parse(g.Endpoint)
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.ErrorLog = log.New(io.Discard, "", 0) // the store stopped below, on purpose
	f := &flaky{next: rp}
	proxy := httptest.NewServer(f)
	defer proxy.Close()
	s := newStore(t, Options{Endpoint: proxy.URL, MaxAttempts: 6})
	data := randomBytes(37<<20+11, 5)
	u := URL{"xva-test", "ranged.xva"}
	o := putObject(t, s, u, data)
	for _, start := range []int64{0, 3<<20 + 1} {
		before := f.n.Load()
		st := o.Stream(start)
		got, err := io.ReadAll(st)
		st.Close()
		if err != nil || !bytes.Equal(got, data[start:]) {
			t.Fatalf("ranged stream from %d: %v, %d bytes, equal %v", start, err, len(got), bytes.Equal(got, data[start:]))
		}
		// One GET, then a block per request (and the retries).
		if n := f.n.Load() - before; n < int64(len(data[start:]))/blockSize/2 {
			t.Fatalf("ranged stream from %d: %d requests, too few for ranged blocks", start, n)
		}
	}
	st := o.Stream(0)
	head := make([]byte, 6<<20)
	if _, err := io.ReadFull(st, head); err != nil || !bytes.Equal(head, data[:len(head)]) {
		t.Fatalf("first 6 MiB: %v", err)
	}
	proxy.CloseClientConnections()
	g.Stop()
	_, err := io.Copy(io.Discard, st)
	if err == nil || !strings.Contains(err.Error(), "s3://xva-test/ranged.xva") || !strings.Contains(err.Error(), "bytes ") {
		t.Fatalf("store gone mid-stream: error %v names no object or range", err)
	}
	t.Log(err)
	st.Close()
}

// TestStreamCancelledIsNotTheEnd: a stream whose context ends part way
// fails naming what it did not read; it never looks like the object's end.
func TestStreamCancelledIsNotTheEnd(t *testing.T) {
	testutil.S3Server(t, "xva-test")
	s := newStore(t, Options{})
	u := URL{"xva-test", "cancel.xva"}
	data := randomBytes(64<<20, 6)
	putObject(t, s, u, data)
	ctx, cancel := context.WithCancel(context.Background())
	o, err := s.Open(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	st := o.Stream(0)
	defer st.Close()
	if _, err := io.ReadFull(st, make([]byte, 1<<20)); err != nil {
		t.Fatal(err)
	}
	cancel()
	n, err := io.Copy(io.Discard, st)
	if err == nil || !strings.Contains(err.Error(), "s3://xva-test/cancel.xva") {
		t.Fatalf("cancelled after %d more bytes: error %v", n, err)
	}
	if n >= int64(len(data))-1<<20 {
		t.Fatalf("cancelled stream read on to the end")
	}
	late := o.Section(0, 10)
	defer late.Close()
	if _, err := io.ReadAll(late); err == nil {
		t.Fatal("a section opened after the cancel read as empty, not failed")
	}
}

// putObject writes data at u and opens it.
func putObject(t *testing.T, s *Store, u URL, data []byte) *Object {
	t.Helper()
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
	return o
}

// slowBodies passes requests to next and sends each GET's body at most
// rate bytes a second, as one connection to a distant store does.
type slowBodies struct {
	next http.Handler
	rate int
	gets atomic.Int64
}

func (h *slowBodies) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		h.next.ServeHTTP(w, r)
		return
	}
	h.gets.Add(1)
	h.next.ServeHTTP(&slowWriter{ResponseWriter: w, rate: h.rate}, r)
}

type slowWriter struct {
	http.ResponseWriter
	rate int
}

func (s *slowWriter) Write(p []byte) (int, error) {
	n, err := s.ResponseWriter.Write(p)
	time.Sleep(time.Duration(n) * time.Second / time.Duration(s.rate))
	return n, err
}

// TestStreamFromASlowStoreGoesRanged: a store that sends one body at
// 16 MB/s leaves the reader waiting, and the stream goes on with ranged
// GETs in parallel (the judgement itself, not a forced one), handing
// over exactly the object's bytes.
func TestStreamFromASlowStoreGoesRanged(t *testing.T) {
	saved := probeBytes
	defer func() { probeBytes = saved }()
	probeBytes = 8 << 20

	g := testutil.S3Server(t, "xva-test")
	s := newStore(t, Options{})
	u := URL{"xva-test", "slow.xva"}
	data := randomBytes(24<<20+7, 8)
	putObject(t, s, u, data)

	target, _ := url.Parse(g.Endpoint)
	h := &slowBodies{next: httputil.NewSingleHostReverseProxy(target), rate: 16 << 20}
	proxy := httptest.NewServer(h)
	defer proxy.Close()
	slow := newStore(t, Options{Endpoint: proxy.URL})
	o, err := slow.Open(context.Background(), u)
	if err != nil {
		t.Fatal(err)
	}
	st := o.Stream(0)
	got, err := io.ReadAll(st)
	st.Close()
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("stream from a slow store: %v, %d bytes, equal %v", err, len(got), bytes.Equal(got, data))
	}
	// One GET for the first 8 MiB, then a GET per 4 MiB block of the rest.
	if n := h.gets.Load(); n < 1+4 {
		t.Fatalf("%d GETs: the stream stayed on its one GET from a store slower than its reader", n)
	}
	t.Logf("%d GETs", h.gets.Load())
}

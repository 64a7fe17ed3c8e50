package xapi_test

import (
	"bytes"
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/xva-tools/xva/xapi"
)

// sink is a server that counts the requests reaching it: none must.
func sink(t *testing.T, tlsToo bool) (*httptest.Server, *atomic.Int32) {
	var hits atomic.Int32
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) })
	s := httptest.NewServer(h)
	if tlsToo {
		s.Close()
		s = httptest.NewTLSServer(h)
	}
	t.Cleanup(s.Close)
	return s, &hits
}

// front puts a hostile front end before the fake pool: requests to path
// are redirected (status code) to where; everything else reaches the pool.
func front(t *testing.T, path string, code int, where func(*http.Request) string) *httptest.Server {
	s, _ := fake(t)
	target, _ := url.Parse(s.URL)
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.Transport = &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}
	f := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == path {
			http.Redirect(w, r, where(r), code)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(f.Close)
	return f
}

func TestLoginRedirectToHTTPRefused(t *testing.T) {
	plain, hits := sink(t, false)
	f := front(t, "/", http.StatusTemporaryRedirect, func(*http.Request) string { return plain.URL + "/" })
	_, err := xapi.Login(ctx, f.URL, "root", "secret", xapi.WithInsecure(true))
	if err == nil || !strings.Contains(err.Error(), "from https to http") || hits.Load() != 0 {
		t.Fatalf("%d requests reached http: %v", hits.Load(), err)
	}
}

func TestLoginRedirectToAnotherHostRefused(t *testing.T) {
	other, hits := sink(t, true)
	u, _ := url.Parse(other.URL)
	u.Host = "localhost:" + u.Port() // another host name than 127.0.0.1
	f := front(t, "/", http.StatusTemporaryRedirect, func(*http.Request) string { return u.String() + "/" })
	_, err := xapi.Login(ctx, f.URL, "root", "secret", xapi.WithInsecure(true))
	if err == nil || !strings.Contains(err.Error(), "another host") || hits.Load() != 0 {
		t.Fatalf("%d requests reached the other host: %v", hits.Load(), err)
	}
}

func TestExportRedirects(t *testing.T) {
	plain, hits := sink(t, false)
	other, otherHits := sink(t, true)
	ou, _ := url.Parse(other.URL)
	for name, c := range map[string]struct {
		where func(*http.Request) string
		want  string
	}{
		"http":       {func(r *http.Request) string { return plain.URL + r.URL.RequestURI() }, "from https to http"},
		"other host": {func(r *http.Request) string { return "https://localhost:" + ou.Port() + r.URL.RequestURI() }, "not a host of the pool"},
		"loop":       {func(r *http.Request) string { return r.URL.RequestURI() }, "more than 5 times"},
	} {
		f := front(t, "/export", http.StatusFound, c.where)
		cl, err := xapi.Login(ctx, f.URL, "root", "secret", xapi.WithInsecure(true))
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		session := cl.SessionRef()
		_, err = cl.Export(ctx, "some-uuid", &out, xapi.ExportOptions{})
		cl.Logout(ctx)
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), session) || hits.Load()+otherHits.Load() != 0 {
			t.Fatalf("%s: %d requests went astray: %v", name, hits.Load()+otherHits.Load(), err)
		}
	}
}

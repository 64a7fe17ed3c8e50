package xapi_test

import (
	"bytes"
	"context"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xva-tools/xva/xapi"
	"github.com/xva-tools/xva/xapi/xapitest"
)

var ctx = context.Background()

func fake(t *testing.T) (*xapitest.Server, string) {
	t.Helper()
	s := xapitest.New()
	t.Cleanup(s.Close)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.Certificate().Raw}), 0o644)
	return s, ca
}

func TestLoginFollowsHostIsSlave(t *testing.T) {
	s, ca := fake(t)
	c, err := xapi.Login(ctx, s.Member.URL, "root", "secret", xapi.WithCACert(ca))
	if err != nil {
		t.Fatal(err)
	}
	if c.Host() != strings.TrimPrefix(s.URL, "https://") {
		t.Fatalf("logged in at %s, the master is %s", c.Host(), s.URL)
	}
	if err := c.Logout(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := xapi.Login(ctx, s.URL, "root", "nope", xapi.WithCACert(ca)); !errors.Is(err, &xapi.Error{Code: xapi.CodeAuthFailed}) {
		t.Fatalf("wrong password: %v", err)
	}
	if _, err := xapi.Login(ctx, s.URL, "root", "secret"); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("an untrusted certificate was accepted: %v", err)
	}
}

// xapi's HOST_IS_SLAVE carries the master's address bare; an IPv6 one must
// be bracketed in the URL the client builds.
func TestLoginFollowsHostIsSlaveToIPv6(t *testing.T) {
	s, err := xapitest.NewIPv6()
	if err != nil {
		t.Skipf("skipped: %v", err)
	}
	t.Cleanup(s.Close)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.Certificate().Raw}), 0o644)
	c, err := xapi.Login(ctx, s.Member.URL, "root", "secret", xapi.WithCACert(ca))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Logout(ctx)
	if want := strings.TrimPrefix(s.URL, "https://"); c.Host() != want || !strings.HasPrefix(want, "[::1]:") {
		t.Fatalf("logged in at %s, the master is %s", c.Host(), s.URL)
	}
}

func TestTasksReportErrors(t *testing.T) {
	s, ca := fake(t)
	c, err := xapi.Login(ctx, s.URL, "root", "secret", xapi.WithCACert(ca))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Logout(ctx)
	// An import of garbage fails through its task, with xapi's code.
	_, err = c.Import(ctx, bytes.NewReader(bytes.Repeat([]byte("x"), 4096)), xapi.ImportOptions{Length: 4096})
	var xe *xapi.Error
	if !errors.As(err, &xe) || !strings.HasPrefix(xe.Code, "IMPORT_ERROR") {
		t.Fatalf("garbage import: %v", err)
	}
	if _, err := c.SRByUUID(ctx, "nope"); !errors.Is(err, &xapi.Error{Code: xapi.CodeUUIDInvalid}) {
		t.Fatalf("SR.get_by_uuid of nothing: %v", err)
	}
	if sr, err := c.DefaultSR(ctx); err != nil || sr == "" {
		t.Fatalf("default SR %q: %v", sr, err)
	}
}

// The fake refuses what xapi refuses: a chunked PUT gets 403 and fails the
// task; the client never sends one.
func TestChunkedUploadIsRefused(t *testing.T) {
	s, ca := fake(t)
	c, err := xapi.Login(ctx, s.URL, "root", "secret", xapi.WithCACert(ca))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Logout(ctx)
	task, err := c.CreateTask(ctx, "t", "")
	if err != nil {
		t.Fatal(err)
	}
	defer task.Destroy(ctx)
	hc := s.Client()
	// net/http sends a body of unknown length chunked.
	body := io.MultiReader(strings.NewReader("not"), strings.NewReader(" an archive"))
	req, _ := http.NewRequest(http.MethodPut, s.URL+"/import?session_id="+sessionOf(t, s, ca)+"&task_id="+task.Ref, body)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("chunked PUT: HTTP %d, want 403", resp.StatusCode)
	}
	if _, err := task.Wait(ctx, nil); !errors.Is(err, &xapi.Error{Code: "IMPORT_ERROR_CANNOT_HANDLE_CHUNKED"}) {
		t.Fatalf("task after a chunked PUT: %v", err)
	}
}

// sessionOf logs in again to get a session ref usable in a raw request.
func sessionOf(t *testing.T, s *xapitest.Server, ca string) string {
	t.Helper()
	c, err := xapi.Login(ctx, s.URL, "root", "secret", xapi.WithCACert(ca))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Logout(ctx) })
	return c.SessionRef()
}

// Calls, imports and exports all go through a CONNECT proxy when one is
// set, and TLS is still checked against the host's own name.
func TestThroughAProxy(t *testing.T) {
	s, ca := fake(t)
	p := xapitest.NewProxy(strings.TrimPrefix(s.URL, "https://"))
	t.Cleanup(p.Close)
	proxyURL, _ := url.Parse(p.URL)
	c, err := xapi.Login(ctx, "https://xenserver.example.com", "root", "secret",
		xapi.WithCACert(ca), xapi.WithProxy(http.ProxyURL(proxyURL)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Logout(ctx)
	// Garbage reaches the server through the tunnel and is refused there.
	_, err = c.Import(ctx, bytes.NewReader(bytes.Repeat([]byte("x"), 4096)), xapi.ImportOptions{Length: 4096})
	if !strings.Contains(fmt.Sprint(err), "IMPORT_ERROR") || s.Imports() != 1 {
		t.Fatalf("import through the proxy: %v, %d imports", err, s.Imports())
	}
	const uuid = "5f1c8a52-7b3e-4a8b-9d27-1b4c5a9e2f10"
	s.Exports[uuid] = bytes.Repeat([]byte("archive "), 1000)
	var got bytes.Buffer
	if _, err := c.Export(ctx, uuid, &got, xapi.ExportOptions{}); err != nil || !bytes.Equal(got.Bytes(), s.Exports[uuid]) {
		t.Fatalf("export through the proxy: %v, %d bytes", err, got.Len())
	}
	if p.Tunnels.Load() < 1 {
		t.Fatal("the proxy was not used")
	}
	// A proxy that refuses the tunnel is reported as such.
	refusing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "no", http.StatusForbidden)
	}))
	defer refusing.Close()
	ru, _ := url.Parse(refusing.URL)
	if _, err := xapi.Login(ctx, "https://xenserver.example.com", "root", "secret", xapi.WithCACert(ca), xapi.WithProxy(http.ProxyURL(ru))); err == nil {
		t.Fatal("login through a refusing proxy succeeded")
	}
}

// TestResponseNodeBudget: an XML-RPC response is read by ova's parser, with
// its limits: a server's answer of millions of values is refused.
func TestResponseNodeBudget(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "<methodResponse><params><param><value><array><data>")
		io.WriteString(w, strings.Repeat("<value/>", 3<<20))
		io.WriteString(w, "</data></array></value></param></params></methodResponse>")
	}))
	defer srv.Close()
	_, err := xapi.Login(ctx, srv.URL, "root", "secret", xapi.WithInsecure(true))
	if err == nil || !strings.Contains(err.Error(), "elements and attributes") {
		t.Fatalf("%v", err)
	}
}

package testutil

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// VersityGW is the S3 server the tests run against: versitygw (the Versity
// S3 Gateway, Apache 2.0) with its posix backend, a real S3 implementation
// built from its Go module at the version the Makefile pins and passed in
// $XVA_VERSITYGW (make test and make bench set it). It is not a fake:
// multipart uploads, checksums, conditional writes and ranged GETs are the
// server's own.
type VersityGW struct {
	Endpoint, AccessKey, SecretKey string
	Root                           string // the posix backend's directory: bucket/key files
	addr                           string
	cmd                            *exec.Cmd
	t                              testing.TB
}

// S3Server starts a fresh versitygw on a free localhost port, with the
// buckets named, and points the AWS environment of t (and the programs it
// starts) at it. It skips t when $XVA_VERSITYGW is unset, failing instead
// under CI, where .ci/run builds it.
func S3Server(t testing.TB, buckets ...string) *VersityGW {
	t.Helper()
	bin := os.Getenv("XVA_VERSITYGW")
	if bin == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("XVA_VERSITYGW is not set: run the tests with make test, which builds versitygw")
		}
		t.Skip("XVA_VERSITYGW is not set (make test builds versitygw and sets it)")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	g := &VersityGW{Endpoint: "http://" + addr, AccessKey: "xvatestaccess", SecretKey: "xvatestsecret0123456789",
		Root: t.TempDir(), addr: addr, t: t}
	for _, b := range buckets {
		// The posix backend's buckets are the root's directories.
		if err := os.Mkdir(filepath.Join(g.Root, b), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	state := t.TempDir()
	t.Setenv("AWS_ACCESS_KEY_ID", g.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", g.SecretKey)
	t.Setenv("AWS_ENDPOINT_URL", g.Endpoint)
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(state, "aws-config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(state, "aws-credentials"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("XDG_STATE_HOME", state)
	g.Start()
	t.Cleanup(g.Stop)
	return g
}

// Start starts the server (again, after Stop) and waits until it answers.
func (g *VersityGW) Start() {
	g.t.Helper()
	cmd := exec.Command(os.Getenv("XVA_VERSITYGW"), "--access", g.AccessKey, "--secret", g.SecretKey,
		"--port", g.addr, "--quiet", "posix", g.Root)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		g.t.Fatal(err)
	}
	g.cmd = cmd
	for range 200 {
		resp, err := http.Get(g.Endpoint)
		if err == nil {
			resp.Body.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	g.Stop()
	g.t.Fatal(fmt.Errorf("versitygw did not answer on %s", g.Endpoint))
}

// Stop kills the server at once, as a crash or a lost network would.
func (g *VersityGW) Stop() {
	if g.cmd != nil {
		g.cmd.Process.Kill()
		g.cmd.Wait()
		g.cmd = nil
	}
}

package testutil

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
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
	CertFile, KeyFile              string // with TLS: the server's self-signed certificate
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
	return startS3(t, false, buckets)
}

// S3ServerTLS is S3Server serving https with a self-signed certificate
// for 127.0.0.1 (g.CertFile), which nothing trusts unless told.
func S3ServerTLS(t testing.TB, buckets ...string) *VersityGW {
	t.Helper()
	return startS3(t, true, buckets)
}

func startS3(t testing.TB, withTLS bool, buckets []string) *VersityGW {
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
	if withTLS {
		g.Endpoint = "https://" + addr
		g.CertFile, g.KeyFile = SelfSigned(t)
	}
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
	args := []string{"--access", g.AccessKey, "--secret", g.SecretKey, "--port", g.addr, "--quiet"}
	if g.CertFile != "" {
		args = append(args, "--cert", g.CertFile, "--key", g.KeyFile)
	}
	cmd := exec.Command(os.Getenv("XVA_VERSITYGW"), append(args, "posix", g.Root)...)
	// Its chatter (TLS handshakes refused on purpose, its start) is kept
	// out of the test's output, in a file beside its root.
	logf, err := os.OpenFile(filepath.Join(filepath.Dir(g.Root), "versitygw.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		g.t.Fatal(err)
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		g.t.Fatal(err)
	}
	g.cmd = cmd
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	for range 200 {
		resp, err := client.Get(g.Endpoint)
		if err == nil {
			resp.Body.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	g.Stop()
	g.t.Fatal(fmt.Errorf("versitygw did not answer on %s", g.Endpoint))
}

// SelfSigned writes a self-signed certificate for 127.0.0.1 and localhost
// and its key, returning their files.
func SelfSigned(t testing.TB) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, BasicConstraintsValid: true, IsCA: true,
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// Stop kills the server at once, as a crash or a lost network would.
func (g *VersityGW) Stop() {
	if g.cmd != nil {
		g.cmd.Process.Kill()
		g.cmd.Wait()
		g.cmd = nil
	}
}

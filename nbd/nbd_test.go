package nbd

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xva-tools/xva/disk"
	"github.com/xva-tools/xva/internal/testutil"
)

// memSource is a disk in memory with known extents; ReadAt fails on any
// range touching [failOff, failOff+failLen), and waits for gate if set.
type memSource struct {
	data             []byte
	extents          []disk.Extent
	failOff, failLen int64
	gate             chan struct{}
}

func (m *memSource) Size() int64  { return int64(len(m.data)) }
func (m *memSource) Close() error { return nil }
func (m *memSource) ReadAt(p []byte, off int64) (int, error) {
	if m.gate != nil {
		<-m.gate
	}
	if m.failLen > 0 && off < m.failOff+m.failLen && off+int64(len(p)) > m.failOff {
		return 0, errors.New("injected media error")
	}
	if off >= int64(len(m.data)) {
		return 0, nil
	}
	n := copy(p, m.data[off:])
	if n < len(p) {
		return n, errors.New("past the end")
	}
	return n, nil
}
func (m *memSource) Extents(context.Context) iter.Seq2[disk.Extent, error] {
	return func(yield func(disk.Extent, error) bool) {
		for _, e := range m.extents {
			if !yield(e, nil) {
				return
			}
		}
	}
}

// lendSource is a memSource that lends its bytes (Lender), in parts of at
// most 3000 bytes so that a reply is many slices, failing as ReadAt does.
type lendSource struct{ *memSource }

func (l lendSource) LendAt(dst [][]byte, off, n int64) ([][]byte, error) {
	if l.gate != nil {
		<-l.gate
	}
	if l.failLen > 0 && off < l.failOff+l.failLen && off+n > l.failOff {
		return dst, errors.New("injected media error")
	}
	if off < 0 || n > int64(len(l.data))-off {
		return dst, errors.New("past the end")
	}
	for end := off + n; off < end; off += min(end-off, 3000) {
		dst = append(dst, l.data[off:off+min(end-off, 3000)])
	}
	return dst, nil
}

// memOf is the memSource behind an export's source, lent or not.
func memOf(s disk.Source) *memSource {
	if l, ok := s.(lendSource); ok {
		return l.memSource
	}
	return s.(*memSource)
}

// lending makes every export's source lend its bytes.
func lending(exports []Export) []Export {
	for i := range exports {
		exports[i].Source = lendSource{exports[i].Source.(*memSource)}
	}
	return exports
}

// bothWays runs f with the test exports read with ReadAt, then lent.
func bothWays(t *testing.T, f func(t *testing.T, exports []Export)) {
	t.Run("ReadAt", func(t *testing.T) { f(t, testExports()) })
	t.Run("LendAt", func(t *testing.T) { f(t, lending(testExports())) })
}

// newMem builds a disk of size bytes whose extents hold random non-zero
// bytes and whose holes are zero.
func newMem(size int64, extents ...disk.Extent) *memSource {
	m := &memSource{data: make([]byte, size), extents: extents}
	fill := testutil.Image(size, uint64(size), 4096)
	for _, e := range extents {
		for i := e.Off; i < e.End(); i++ {
			m.data[i] = fill[i] | 1
		}
	}
	return m
}

const mib = 1 << 20

// testExports are xvda (8 MiB, data runs and holes), xvdb (empty) and
// xvdc (1 MiB+7, ending in data).
func testExports() []Export {
	return []Export{
		{Name: "xvda", Description: "first disk", Source: newMem(8*mib,
			disk.Extent{Off: 0, Len: mib},
			disk.Extent{Off: mib + mib/2, Len: mib/2 + 512},
			disk.Extent{Off: 4 * mib, Len: mib},
			disk.Extent{Off: 7*mib + 4096, Len: mib - 4096})},
		{Name: "xvdb", Source: newMem(0)},
		{Name: "xvdc", Description: "odd size", Source: newMem(mib+7,
			disk.Extent{Off: 0, Len: 4096},
			disk.Extent{Off: 64 << 10, Len: mib + 7 - 64<<10})},
	}
}

// serve runs srv on spec until the test ends and returns the address spec
// Listen returned; the test fails if Serve does not return nil.
func serve(t testing.TB, srv *Server, spec string) string {
	t.Helper()
	l, addr, err := Listen(spec)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, l) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Serve did not return after its context was cancelled")
		}
	})
	return addr
}

func unixSpec(t testing.TB) string {
	return "unix:" + filepath.Join(t.TempDir(), "nbd.sock")
}

func run(t *testing.T, name string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

func writeRaw(t *testing.T, e Export) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), e.Name+".raw")
	if err := os.WriteFile(p, memOf(e.Source).data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestRealClients serves three exports on a Unix socket and checks them
// with nbdinfo, qemu-img, nbdcopy and qemu-io.
func TestRealClients(t *testing.T) {
	testutil.NeedTools(t, "nbdinfo", "nbdcopy", "qemu-img")
	bothWays(t, testRealClients)
}

func testRealClients(t *testing.T, exports []Export) {
	addr := serve(t, &Server{Exports: exports}, unixSpec(t))
	uri := func(name string) string { return URI(addr, name, false) }

	t.Run("list", func(t *testing.T) {
		out := run(t, "nbdinfo", "--list", "--json", uri(""))
		var doc struct {
			Exports []struct {
				Name string `json:"export-name"`
				Desc string `json:"description"`
				Size int64  `json:"export-size"`
			} `json:"exports"`
		}
		if err := json.Unmarshal(out, &doc); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		var names []string
		for _, e := range doc.Exports {
			names = append(names, e.Name)
		}
		if got := strings.Join(names, ","); got != "xvda,xvdb,xvdc" {
			t.Errorf("nbdinfo --list: exports %s\n%s", got, out)
		}
		if len(doc.Exports) > 0 && doc.Exports[0].Desc != "first disk" {
			t.Errorf("xvda's description %q", doc.Exports[0].Desc)
		}
	})

	t.Run("info", func(t *testing.T) {
		for _, e := range exports {
			out := run(t, "nbdinfo", "--json", uri(e.Name))
			var doc struct {
				Exports []struct {
					Size     int64 `json:"export-size"`
					ReadOnly bool  `json:"is_read_only"`
					Multi    bool  `json:"can_multi_conn"`
					Write    bool  `json:"can_zero"`
				} `json:"exports"`
			}
			if err := json.Unmarshal(out, &doc); err != nil || len(doc.Exports) != 1 {
				t.Fatalf("%v\n%s", err, out)
			}
			x := doc.Exports[0]
			if x.Size != e.Source.Size() || !x.ReadOnly || !x.Multi || x.Write {
				t.Errorf("%s: nbdinfo says size %d, read-only %v, multi-conn %v, can zero %v\n%s", e.Name, x.Size, x.ReadOnly, x.Multi, x.Write, out)
			}
		}
	})

	t.Run("map", func(t *testing.T) {
		for _, e := range []Export{exports[0], exports[2]} {
			out := run(t, "nbdinfo", "--map", "--json", uri(e.Name))
			var got []struct {
				Off  int64 `json:"offset"`
				Len  int64 `json:"length"`
				Type int   `json:"type"`
			}
			if err := json.Unmarshal(out, &got); err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			want := segments(memOf(e.Source).extents, 0, e.Source.Size())
			if len(got) != len(want) {
				t.Fatalf("%s: nbdinfo --map: %d extents, want %d\n%s", e.Name, len(got), len(want), out)
			}
			for i, w := range want {
				typ := 0
				if w.hole {
					typ = 3
				}
				if got[i].Off != w.off || got[i].Len != w.len || got[i].Type != typ {
					t.Errorf("%s: extent %d is %+v, want %+v", e.Name, i, got[i], w)
				}
			}
		}
	})

	t.Run("qemu-img compare", func(t *testing.T) {
		for _, e := range []Export{exports[0], exports[2]} {
			run(t, "qemu-img", "compare", "-f", "raw", "-F", "raw", uri(e.Name), writeRaw(t, e))
		}
	})

	t.Run("nbdcopy", func(t *testing.T) {
		for _, args := range [][]string{nil, {"--connections=4", "--requests=16"}} {
			for _, e := range []Export{exports[0], exports[2]} {
				out := filepath.Join(t.TempDir(), "out.raw")
				run(t, "nbdcopy", append(args, uri(e.Name), out)...)
				b, err := os.ReadFile(out)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(b, memOf(e.Source).data) {
					t.Errorf("nbdcopy %v of %s: bytes differ", args, e.Name)
				}
			}
		}
	})

	t.Run("wrong name", func(t *testing.T) {
		out, err := exec.Command("nbdinfo", uri("xvdz")).CombinedOutput()
		if err == nil {
			t.Errorf("nbdinfo of an unknown export succeeded:\n%s", out)
		}
	})

	t.Run("write refused", func(t *testing.T) {
		testutil.NeedTools(t, "qemu-io")
		before := bytes.Clone(memOf(exports[0].Source).data)
		out, err := exec.Command("qemu-io", "-f", "raw", "-c", "write -P 0x55 0 4096", uri("xvda")).CombinedOutput()
		if err == nil && !strings.Contains(strings.ToLower(string(out)), "error") && !strings.Contains(string(out), "failed") {
			t.Errorf("qemu-io write reported no error:\n%s", out)
		}
		if !bytes.Equal(before, memOf(exports[0].Source).data) {
			t.Error("the source changed")
		}
	})
}

// syncBuffer is a log destination tests read while the server writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestReadError: a range whose ReadAt fails is an EIO for that read, logged
// with the export and offset; the rest of the export still reads.
// The same when the source lends its bytes.
func TestReadError(t *testing.T) {
	testutil.NeedTools(t, "qemu-io")
	t.Run("ReadAt", func(t *testing.T) { testReadError(t, false) })
	t.Run("LendAt", func(t *testing.T) { testReadError(t, true) })
}

func testReadError(t *testing.T, lend bool) {
	src := newMem(4*mib, disk.Extent{Off: 0, Len: 4 * mib})
	src.failOff, src.failLen = 2*mib+512, 10
	var source disk.Source = src
	if lend {
		source = lendSource{src}
	}
	var log syncBuffer
	addr := serve(t, &Server{
		Exports: []Export{{Name: "bad", Source: source}},
		Log:     slog.New(slog.NewTextHandler(&log, nil)),
	}, unixSpec(t))
	uri := URI(addr, "bad", false)

	out, err := exec.Command("qemu-io", "-r", "-f", "raw", "-c", fmt.Sprintf("read %d 65536", 2*mib), uri).CombinedOutput()
	if err == nil && !strings.Contains(string(out), "error") {
		t.Errorf("reading the failing range succeeded:\n%s", out)
	}
	if !strings.Contains(string(out), "Input/output error") {
		t.Errorf("qemu-io does not report EIO:\n%s", out)
	}
	out, err = exec.Command("qemu-io", "-r", "-f", "raw", "-c", "read 0 65536", uri).CombinedOutput()
	if err != nil || strings.Contains(string(out), "error") {
		t.Errorf("reading another range failed: %v\n%s", err, out)
	}
	l := log.String()
	if !strings.Contains(l, "export=bad") || !strings.Contains(l, fmt.Sprintf("offset=%d", 2*mib)) || !strings.Contains(l, "injected media error") {
		t.Errorf("the log does not name the export, offset and error:\n%s", l)
	}
}

// TestTCP serves on 127.0.0.1 with an OS-chosen port.
func TestTCP(t *testing.T) {
	testutil.NeedTools(t, "nbdinfo")
	addr := serve(t, &Server{Exports: testExports()}, "tcp::0")
	if !strings.HasPrefix(addr, "tcp:127.0.0.1:") || strings.HasSuffix(addr, ":0") {
		t.Fatalf("Listen returned %q", addr)
	}
	out := run(t, "nbdinfo", "--size", URI(addr, "xvdc", false))
	if strings.TrimSpace(string(out)) != fmt.Sprint(mib+7) {
		t.Errorf("nbdinfo --size: %s", out)
	}
}

// selfSigned writes a CA-less self-signed certificate for 127.0.0.1 and
// localhost as ca-cert.pem into a directory (libnbd's tls-certificates
// layout) and returns the directory and the server's configuration.
func selfSigned(t *testing.T) (string, *tls.Config) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "localhost"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if err := os.WriteFile(filepath.Join(dir, "ca-cert.pem"), certPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return dir, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
}

// TestTLS: with a TLS configuration a libnbd client that trusts the
// certificate reads the export, and one without TLS is refused.
func TestTLS(t *testing.T) {
	testutil.NeedTools(t, "nbdinfo", "nbdcopy")
	dir, cfg := selfSigned(t)
	exports := testExports()
	addr := serve(t, &Server{Exports: exports, TLSConfig: cfg}, "tcp:127.0.0.1:0")

	uri := URI(addr, "xvda", true) + "?tls-certificates=" + dir
	out := run(t, "nbdinfo", "--size", uri)
	if strings.TrimSpace(string(out)) != fmt.Sprint(8*mib) {
		t.Errorf("nbdinfo --size over TLS: %s", out)
	}
	dst := filepath.Join(t.TempDir(), "out.raw")
	run(t, "nbdcopy", uri, dst)
	if b, err := os.ReadFile(dst); err != nil || !bytes.Equal(b, memOf(exports[0].Source).data) {
		t.Errorf("nbdcopy over TLS: bytes differ (%v)", err)
	}
	out, err := exec.Command("nbdinfo", URI(addr, "xvda", false)).CombinedOutput()
	if err == nil {
		t.Errorf("a client without TLS was served:\n%s", out)
	}

	// By hand: every option before STARTTLS is refused with TLS_REQD.
	c := dialHello(t, addr)
	for _, opt := range []uint32{optList, optGo, optStructuredReply, 99} {
		if typ, _ := c.option(opt, nil); typ != repErrTLSReqd {
			t.Errorf("option %d before STARTTLS: reply %#x, want NBD_REP_ERR_TLS_REQD", opt, typ)
		}
	}
	if typ, _ := c.option(optStartTLS, nil); typ != repAck {
		t.Fatalf("STARTTLS: reply %#x", typ)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cfg.Certificates[0].Leaf)
	tc := tls.Client(c.conn, &tls.Config{RootCAs: pool, ServerName: "localhost"})
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	c.conn = tc
	if typ, _ := c.option(optStartTLS, nil); typ != repErrInvalid {
		t.Errorf("a second STARTTLS: reply %#x, want NBD_REP_ERR_INVALID", typ)
	}
	c.goExport(t, "xvdc", true, false)
	got := c.read(t, 0, 0, 4096)
	if !bytes.Equal(got, exports[2].Source.(*memSource).data[:4096]) {
		t.Error("read over hand-made TLS: bytes differ")
	}
}

// TestListen: a stale socket file is replaced, a live one and a regular
// file are not, and URIs have the documented forms.
func TestListen(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "s")
	l, _, err := Listen("unix:" + sock)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := Listen("unix:" + sock); err == nil {
		t.Error("a socket a server listens on was taken over")
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	l2, addr, err := Listen("unix:" + sock)
	if err != nil {
		t.Fatalf("a stale socket was not replaced: %v", err)
	}
	l2.Close()
	if addr != "unix:"+sock {
		t.Errorf("Listen returned %q", addr)
	}
	file := filepath.Join(dir, "f")
	os.WriteFile(file, nil, 0o644)
	if _, _, err := Listen("unix:" + file); err == nil {
		t.Error("a regular file was replaced by a socket")
	}
	for _, bad := range []string{"", "unix:", "udp:1.2.3.4:5", "tcp:nohost"} {
		if _, _, err := Listen(bad); err == nil {
			t.Errorf("Listen(%q) succeeded", bad)
		}
	}
	for _, c := range []struct {
		spec, name string
		tls        bool
		want       string
	}{
		{"unix:/run/x y.sock", "xvda", false, "nbd+unix:///xvda?socket=/run/x%20y.sock"},
		{"unix:/run/x.sock", "xvda", true, "nbds+unix:///xvda?socket=/run/x.sock"},
		{"tcp::10809", "xvdb", false, "nbd://127.0.0.1:10809/xvdb"},
		{"tcp:[::1]:10809", "a b", true, "nbds://[::1]:10809/a%20b"},
	} {
		if got := URI(c.spec, c.name, c.tls); got != c.want {
			t.Errorf("URI(%q, %q, %v) = %q, want %q", c.spec, c.name, c.tls, got, c.want)
		}
	}
}

// A connection past MaxConnections is closed at once; the others are
// served.
func TestMaxConnections(t *testing.T) {
	srv := &Server{Exports: []Export{{Name: "x", Source: newMem(4096)}}, MaxConnections: 1}
	addr := serve(t, srv, unixSpec(t))
	path := strings.TrimPrefix(addr, "unix:")
	first, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	hello := make([]byte, 18)
	if _, err := io.ReadFull(first, hello); err != nil {
		t.Fatalf("the first connection: %v", err)
	}
	second, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	second.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := io.ReadFull(second, hello); err == nil || n != 0 {
		t.Fatalf("the connection past the limit got %d bytes, %v", n, err)
	}
}

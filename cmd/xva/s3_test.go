package main

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/xva-tools/xva/fixtures"
	"github.com/xva-tools/xva/internal/testutil"
	"github.com/xva-tools/xva/xapi/xapitest"
)

// The tests here run xva against a real S3 server (versitygw, see
// testutil.S3Server), whose posix backend keeps each object as a file
// under g.Root/BUCKET/KEY: what xva stored is compared with the local
// results byte for byte there.

const bucket = "xva-test"

func storedFile(g *testutil.VersityGW, key string) string {
	return filepath.Join(g.Root, bucket, filepath.FromSlash(key))
}

// sdk is a client of the test server, to look at what xva left there.
func sdk(t *testing.T, g *testutil.VersityGW) *s3.Client {
	t.Helper()
	cfg, err := config.LoadDefaultConfig(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return s3.NewFromConfig(cfg, func(o *s3.Options) { o.BaseEndpoint = aws.String(g.Endpoint); o.UsePathStyle = true })
}

// leftInStore fails t if the bucket holds key or any incomplete upload.
func leftInStore(t *testing.T, g *testutil.VersityGW, key string) {
	t.Helper()
	c := sdk(t, g)
	ups, err := c.ListMultipartUploads(context.Background(), &s3.ListMultipartUploadsInput{Bucket: aws.String(bucket)})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(ups.Uploads); n != 0 {
		t.Fatalf("%d incomplete multipart uploads left in the bucket", n)
	}
	if _, err := c.HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)}); err == nil {
		t.Fatalf("object %s exists", key)
	}
}

func TestS3RoundTrips(t *testing.T) {
	g := testutil.S3Server(t, bucket)
	dir, sums := setupSectors(t)
	disks := []string{"--disk", "sda=sda.img", "--disk", "sdb=sdb.img", "--name", "s3vm", "--uuid-seed", "s3vm"}
	for _, c := range []struct {
		name string
		args []string
	}{
		{"web.xva", nil},
		{"web.xva.zst", nil},
		{"legacy.xva", []string{"--format", "legacy"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			args := append(append([]string{"pack"}, c.args...), disks...)
			mustRun(t, dir, nil, append(args, "local-"+c.name)...)
			mustRun(t, dir, nil, append(args, "s3://"+bucket+"/vms/"+c.name)...)
			// The same bytes, whether written to a file or the store.
			sameFile(t, filepath.Join(dir, "local-"+c.name), storedFile(g, "vms/"+c.name))
			if out := mustRun(t, dir, nil, "verify", "s3://"+bucket+"/vms/"+c.name); !strings.Contains(out, "OK") {
				t.Fatalf("verify: %s", out)
			}
			out := filepath.Join(dir, "out-"+c.name)
			mustRun(t, dir, nil, "unpack", "s3://"+bucket+"/vms/"+c.name, out)
			checkDisks(t, out, sums)
			// Converted from the store to a local file: the same as locally.
			mustRun(t, dir, nil, "convert", "s3://"+bucket+"/vms/"+c.name, "conv-"+c.name+".xva")
			mustRun(t, dir, nil, "convert", "local-"+c.name, "conv-local-"+c.name+".xva")
			sameFile(t, filepath.Join(dir, "conv-"+c.name+".xva"), filepath.Join(dir, "conv-local-"+c.name+".xva"))
		})
	}
	// The legacy directory form under a prefix, ova.xml and chunks as
	// objects, the same files as a local directory.
	mustRun(t, dir, nil, "convert", "--format", "legacy", "local-web.xva", "s3://"+bucket+"/dirvm/")
	mustRun(t, dir, nil, "convert", "--format", "legacy", "local-web.xva", "localdir/")
	for _, f := range []string{"ova.xml", "sda/chunk-000000000.gz", "sdb/chunk-000000000.gz"} {
		sameFile(t, filepath.Join(dir, "localdir", f), storedFile(g, "dirvm/"+f))
	}
	mustRun(t, dir, nil, "unpack", "s3://"+bucket+"/dirvm/", "out-dir")
	checkDisks(t, filepath.Join(dir, "out-dir"), sums)
	if r := run(t, dir, nil, "info", "--json", "s3://"+bucket+"/dirvm"); r.code != 0 || !strings.Contains(r.stdout, `"directory"`) {
		t.Fatalf("info of a prefix: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	// An existing object is replaced only with --force.
	r := run(t, dir, nil, append(append([]string{"pack"}, disks...), "s3://"+bucket+"/vms/web.xva")...)
	if r.code != 1 || !strings.Contains(r.stderr, "--force") {
		t.Fatalf("pack over an object: exit %d\n%s", r.code, r.stderr)
	}
	mustRun(t, dir, nil, append(append([]string{"pack", "--force"}, disks...), "s3://"+bucket+"/vms/web.xva")...)
}

func TestS3DamagedObjects(t *testing.T) {
	g := testutil.S3Server(t, bucket)
	dir, _ := setup(t)
	mustRun(t, dir, nil, "pack", "--disk", "sda=sda.img", "s3://"+bucket+"/good.xva")
	good, err := os.ReadFile(storedFile(g, "good.xva"))
	if err != nil {
		t.Fatal(err)
	}
	// A flipped byte in the first block's data, as the demo does it.
	i := bytes.Index(good, []byte("/00000000.xxhash"))
	flipped := bytes.Clone(good)
	flipped[i-4096] ^= 0xff
	if err := os.WriteFile(storedFile(g, "good.xva"), flipped, 0o644); err != nil {
		t.Fatal(err)
	}
	r := run(t, dir, nil, "verify", "s3://"+bucket+"/good.xva")
	if r.code != 3 || !strings.Contains(r.stdout+r.stderr, "00000000") {
		t.Fatalf("flipped byte: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if err := os.WriteFile(storedFile(g, "good.xva"), good[:len(good)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	r = run(t, dir, nil, "unpack", "s3://"+bucket+"/good.xva", "out")
	if r.code != 3 || fileExists(filepath.Join(dir, "out")) {
		t.Fatalf("truncated object: exit %d, output left %v\n%s", r.code, fileExists(filepath.Join(dir, "out")), r.stderr)
	}
	t.Log(r.stderr)

	// A legacy archive's chunks are each read with one GET: a flipped
	// byte in one, and the object cut inside another, are still the
	// archive's damage (exit 3), named, with nothing left.
	mustRun(t, dir, nil, "pack", "--format", "legacy", "--disk", "sda=sda.img", "--disk", "sdb=sdb.img", "s3://"+bucket+"/legacy.xva")
	legacy, err := os.ReadFile(storedFile(g, "legacy.xva"))
	if err != nil {
		t.Fatal(err)
	}
	i = bytes.Index(legacy, []byte("sdb/chunk-000000000.gz"))
	flipped = bytes.Clone(legacy)
	flipped[i+512+100] ^= 0xff
	if err := os.WriteFile(storedFile(g, "legacy.xva"), flipped, 0o644); err != nil {
		t.Fatal(err)
	}
	r = run(t, dir, nil, "unpack", "s3://"+bucket+"/legacy.xva", "out")
	if r.code != 3 || !strings.Contains(r.stderr, "chunk-000000000") || fileExists(filepath.Join(dir, "out")) {
		t.Fatalf("flipped byte in a legacy chunk: exit %d, output left %v\n%s", r.code, fileExists(filepath.Join(dir, "out")), r.stderr)
	}
	t.Log(r.stderr)
	if err := os.WriteFile(storedFile(g, "legacy.xva"), legacy[:i+512+600], 0o644); err != nil {
		t.Fatal(err)
	}
	r = run(t, dir, nil, "unpack", "s3://"+bucket+"/legacy.xva", "out")
	if r.code != 3 || fileExists(filepath.Join(dir, "out")) {
		t.Fatalf("legacy object cut inside a chunk: exit %d, output left %v\n%s", r.code, fileExists(filepath.Join(dir, "out")), r.stderr)
	}
	t.Log(r.stderr)
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

func TestS3WrongCredentialsAndBucket(t *testing.T) {
	testutil.S3Server(t, bucket)
	dir, _ := setup(t)
	r := runEnv(t, dir, []string{"AWS_SECRET_ACCESS_KEY=wrong"}, "pack", "--disk", "sda=sda.img", "s3://"+bucket+"/a.xva")
	if r.code != 1 || !strings.Contains(r.stderr, "credentials") || !strings.Contains(r.stderr, "s3://"+bucket+"/a.xva") {
		t.Fatalf("wrong secret: exit %d\n%s", r.code, r.stderr)
	}
	r = run(t, dir, nil, "pack", "--disk", "sda=sda.img", "s3://no-such-bucket/a.xva")
	if r.code != 1 || !strings.Contains(r.stderr, "no-such-bucket") {
		t.Fatalf("missing bucket: exit %d\n%s", r.code, r.stderr)
	}
	r = run(t, dir, nil, "info", "s3://"+bucket+"/missing.xva")
	if r.code != 1 || !strings.Contains(r.stderr, "missing.xva") {
		t.Fatalf("missing object: exit %d\n%s", r.code, r.stderr)
	}
}

// bigDisk writes a raw disk of incompressible data, so an upload of it
// takes long enough to be interrupted.
func bigDisk(t *testing.T, path string, size int) {
	t.Helper()
	r := rand.New(rand.NewPCG(7, 7))
	b := make([]byte, size)
	for i := 0; i+8 <= len(b); i += 8 {
		v := r.Uint64()
		for k := range 8 {
			b[i+k] = byte(v >> (8 * k))
		}
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// startUpload starts xva packing a big disk to key in parts of 5 MiB, one
// at a time, and returns once the multipart upload exists on the server.
func startUpload(t *testing.T, g *testutil.VersityGW, dir, key string) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	bigDisk(t, filepath.Join(dir, "big.img"), 256<<20)
	cmd := exec.Command(xvaBin, "pack", "--jobs", "1", "--part-size", "5MiB", "--disk", "sda=big.img", "s3://"+bucket+"/"+key)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := sdk(t, g)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		ups, err := c.ListMultipartUploads(context.Background(), &s3.ListMultipartUploadsInput{Bucket: aws.String(bucket)})
		if err == nil && len(ups.Uploads) > 0 {
			return cmd, &stderr
		}
		time.Sleep(5 * time.Millisecond)
	}
	cmd.Process.Kill()
	t.Fatalf("no multipart upload began\n%s", stderr.String())
	return nil, nil
}

func waitCode(err error) int {
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

// TestS3ServerStopsMidUpload: the store goes away during a multipart
// upload. xva fails naming the object; the abort it could not send is
// sent by the next xva that uses the store once it is back, after which
// there is no object and no incomplete upload.
func TestS3ServerStopsMidUpload(t *testing.T) {
	g := testutil.S3Server(t, bucket)
	dir := t.TempDir()
	cmd, stderr := startUpload(t, g, dir, "cut.xva")
	g.Stop()
	code := waitCode(cmd.Wait())
	if code != 1 || !strings.Contains(stderr.String(), "s3://"+bucket+"/cut.xva") {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	t.Log(stderr.String())
	g.Start()
	run(t, dir, nil, "info", "s3://"+bucket+"/cut.xva") // any use of the store
	leftInStore(t, g, "cut.xva")
}

// TestS3InterruptedUpload: Ctrl-C during a multipart upload aborts it.
func TestS3InterruptedUpload(t *testing.T) {
	g := testutil.S3Server(t, bucket)
	dir := t.TempDir()
	cmd, stderr := startUpload(t, g, dir, "int.xva")
	cmd.Process.Signal(syscall.SIGINT)
	if code := waitCode(cmd.Wait()); code == 0 {
		t.Fatalf("exit 0 after SIGINT\n%s", stderr)
	}
	leftInStore(t, g, "int.xva")
}

// TestS3UploadToPool: an archive in the store goes to a pool (the model of
// xapi's import) converted on the way, its disks arriving intact.
func TestS3UploadToPool(t *testing.T) {
	testutil.S3Server(t, bucket)
	s, ca := pool(t)
	dir := t.TempDir()
	sums, err := uploadVM.WriteDir(filepath.Join(dir, "vm"))
	if err != nil {
		t.Fatal(err)
	}
	for i, g := range []string{"legacy", "xapi"} {
		mustRun(t, dir, nil, "pack", "--format", g, "vm", "s3://"+bucket+"/up-"+g+".xva")
		if r := remote(t, dir, "secret", "upload", "s3://"+bucket+"/up-"+g+".xva", "--url", s.URL, "--ca-cert", ca); r.code != 0 {
			t.Fatalf("upload from the store: exit %d\n%s", r.code, r.stderr)
		}
		vm := s.VMs()[i]
		for j, d := range vm.Disks {
			if d.SHA256 != sums[fixtures.Device(j)] {
				t.Fatalf("%s: disk %d arrived with other bytes", g, j)
			}
		}
	}
	clean(t, s)
}

// TestS3Serve: the disks of archives in the store, served over NBD and
// read by cat, read as their images, through ranged GETs only.
func TestS3Serve(t *testing.T) {
	testutil.NeedTools(t, "qemu-img", "nbdcopy", "zstd")
	g := testutil.S3Server(t, bucket)
	dir, _ := setupSectors(t)
	disks := []string{"--disk", "sda=sda.img", "--disk", "sdb=sdb.img"}
	mustRun(t, dir, nil, append(append([]string{"pack", "--format", "xapi"}, disks...), "s3://"+bucket+"/x.xva")...)
	mustRun(t, dir, nil, append(append([]string{"pack", "--format", "legacy"}, disks...), "s3://"+bucket+"/l.xva")...)
	mustRun(t, dir, nil, append(append([]string{"pack", "--format", "legacy"}, disks...), "s3://"+bucket+"/ldir/")...)
	// Compressed as a whole: gzip and xva's seekable zstd, and one zstd
	// stream from the zstd program (a host's export is one too), read
	// through restart-point indexes built over ranged GETs.
	mustRun(t, dir, nil, "convert", "s3://"+bucket+"/x.xva", "s3://"+bucket+"/g.xva.gz")
	mustRun(t, dir, nil, "convert", "s3://"+bucket+"/x.xva", "s3://"+bucket+"/z.xva.zst")
	mustRun(t, dir, nil, "convert", "s3://"+bucket+"/x.xva", "plain.xva")
	sh(t, dir, "zstd", "-q", "-3", "plain.xva", "-o", "stream.xva.zst")
	zs, _ := os.ReadFile(filepath.Join(dir, "stream.xva.zst"))
	if _, err := sdk(t, g).PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String("zs.xva.zst"), Body: bytes.NewReader(zs)}); err != nil {
		t.Fatal(err)
	}
	t.Setenv("XDG_CACHE_HOME", filepath.Join(dir, "cache"))
	for _, a := range []string{"x.xva", "l.xva", "ldir/", "g.xva.gz", "z.xva.zst", "zs.xva.zst"} {
		t.Run(a, func(t *testing.T) {
			uris, _ := startServe(t, dir, "s3://"+bucket+"/"+a)
			for _, dev := range []string{"sda", "sdb"} {
				img := filepath.Join(dir, dev+".img")
				sh(t, dir, "qemu-img", "compare", "-f", "raw", "-F", "raw", uris[dev], img)
				out := filepath.Join(t.TempDir(), dev+".raw")
				sh(t, dir, "nbdcopy", uris[dev], out)
				sh(t, dir, "qemu-img", "compare", "-f", "raw", "-F", "raw", out, img)
			}
			got := mustRun(t, dir, nil, "cat", "s3://"+bucket+"/"+a, "sdb", "--offset", "4096", "--length", "70000")
			want, _ := os.ReadFile(filepath.Join(dir, "sdb.img"))
			if got != string(want[4096:4096+70000]) {
				t.Fatal("cat of a range differs from the image")
			}
		})
	}
}

// TestS3TLS: an https endpoint's certificate is verified: one nothing
// trusts is refused (exit 1, naming the certificate), trusted through
// AWS_CA_BUNDLE as for the AWS tools, or skipped with --insecure.
func TestS3TLS(t *testing.T) {
	g := testutil.S3ServerTLS(t, bucket)
	dir, _ := setupSectors(t)
	r := run(t, dir, nil, "pack", "--disk", "sda=sda.img", "s3://"+bucket+"/t.xva")
	if r.code != 1 || !strings.Contains(r.stderr, "certificate") {
		t.Fatalf("untrusted certificate: exit %d\n%s", r.code, r.stderr)
	}
	t.Log(r.stderr)
	mustRun(t, dir, nil, "pack", "--insecure", "--disk", "sda=sda.img", "s3://"+bucket+"/t.xva")
	if r := runEnv(t, dir, []string{"AWS_CA_BUNDLE=" + g.CertFile}, "verify", "s3://"+bucket+"/t.xva"); r.code != 0 {
		t.Fatalf("AWS_CA_BUNDLE: exit %d\n%s", r.code, r.stderr)
	}
}

// TestS3ExportPoolThenVerify: a pool exported to a prefix, each archive
// the bytes the host sent; the prefix verified with one summary, a
// damaged object found and named; a single VM exported to an object.
func TestS3ExportPoolThenVerify(t *testing.T) {
	g := testutil.S3Server(t, bucket)
	s, ca := pool(t)
	dir := t.TempDir()
	arch := poolArchives(t, dir, 3)
	for i, v := range []xapitest.PoolVM{vmWeb, vmDB, vmMail} {
		s.AddPoolVM(v, arch[i])
	}
	r := remote(t, dir, "secret", "export", "--url", s.URL, "--ca-cert", ca, "--all", "s3://"+bucket+"/backups/")
	if r.code != 0 {
		t.Fatalf("export --all to a prefix: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	for i, name := range []string{vmWeb.UUID + "-web_01.xva", vmDB.UUID + "-db.xva", vmMail.UUID + "-mail_relay.xva"} {
		got, err := os.ReadFile(storedFile(g, "backups/"+name))
		if err != nil || !bytes.Equal(got, arch[i]) {
			t.Fatalf("%s: %v, or not the bytes the host sent", name, err)
		}
	}
	// A directory-form archive under the prefix is found as one archive.
	mustRun(t, dir, nil, "convert", "--format", "legacy", "s3://"+bucket+"/backups/"+vmWeb.UUID+"-web_01.xva", "s3://"+bucket+"/backups/old/web/")
	r = run(t, dir, nil, "verify", "s3://"+bucket+"/backups/")
	if r.code != 0 || !strings.Contains(r.stdout, "4 archives: 4 OK") || !strings.Contains(r.stdout, "s3://"+bucket+"/backups/old/web/") {
		t.Fatalf("verify of a prefix: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	bad := bytes.Clone(arch[1])
	bad[len(bad)/2] ^= 0xff
	os.WriteFile(storedFile(g, "backups/"+vmDB.UUID+"-db.xva"), bad, 0o644)
	r = run(t, dir, nil, "verify", "s3://"+bucket+"/backups")
	if r.code != exitCorrupt || !strings.Contains(r.stdout, "CORRUPT  s3://"+bucket+"/backups/"+vmDB.UUID+"-db.xva") {
		t.Fatalf("verify with one damaged: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = remote(t, dir, "secret", "export", "--url", s.URL, "--ca-cert", ca, "--vm", vmWeb.UUID, "s3://"+bucket+"/one.xva")
	if r.code != 0 {
		t.Fatalf("export of one VM to an object: exit %d\n%s", r.code, r.stderr)
	}
	if got, _ := os.ReadFile(storedFile(g, "one.xva")); !bytes.Equal(got, arch[0]) {
		t.Fatal("the exported object is not the bytes the host sent")
	}
	clean(t, s)
}

// failingParts forwards to the server but fails every upload of part 3
// (a 500, retried and failing again), as a store that breaks mid-upload.
func failingParts(t *testing.T, g *testutil.VersityGW) string {
	t.Helper()
	target, _ := url.Parse(g.Endpoint)
	rp := httputil.NewSingleHostReverseProxy(target)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut && r.URL.Query().Get("partNumber") == "3" {
			io.Copy(io.Discard, r.Body)
			w.WriteHeader(http.StatusInternalServerError)
			io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>InternalError</Code><Message>We encountered an internal error.</Message></Error>`)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestS3ReplacingAPrefixFails: --force over a directory-form archive that
// fails part way leaves no archive at all, never the old one's members
// mixed with the new one's; and the edges of prefixes: none there (exit
// 1), a console's folder marker (ignored), a bad endpoint (exit 2).
func TestS3ReplacingAPrefixFails(t *testing.T) {
	g := testutil.S3Server(t, bucket)
	dir, _ := setupSectors(t)
	bigDisk(t, filepath.Join(dir, "big.img"), 24<<20)
	mustRun(t, dir, nil, "pack", "--format", "legacy", "--disk", "sda=sda.img", "--disk", "sdb=big.img", "s3://"+bucket+"/vm/")
	mustRun(t, dir, nil, "verify", "s3://"+bucket+"/vm/")
	r := run(t, dir, nil, "pack", "--force", "--part-size", "5MiB", "--s3-endpoint", failingParts(t, g), "--format", "legacy",
		"--disk", "sda=big.img", "--disk", "sdb=sdb.img", "s3://"+bucket+"/vm/")
	if r.code != 1 || !strings.Contains(r.stderr, "part 3") {
		t.Fatalf("pack through a failing store: exit %d\n%s", r.code, r.stderr)
	}
	if entries, _ := os.ReadDir(storedFile(g, "vm")); len(entries) != 0 {
		names := []string{}
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Fatalf("the failed replacement left %v under the prefix", names)
	}
	if r := run(t, dir, nil, "verify", "s3://"+bucket+"/vm/"); r.code != 1 {
		t.Fatalf("verify of an emptied prefix: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := run(t, dir, nil, "info", "s3://"+bucket+"/typo/"); r.code != 1 || !strings.Contains(r.stderr, "typo") {
		t.Fatalf("info of no prefix: exit %d\n%s", r.code, r.stderr)
	}
	if r := run(t, dir, nil, "info", "s3://no-such-bucket/x.xva"); r.code != 1 || !strings.Contains(r.stderr, "no-such-bucket") {
		t.Fatalf("info in no bucket: exit %d\n%s", r.code, r.stderr)
	}
	mustRun(t, dir, nil, "pack", "--format", "legacy", "--disk", "sda=sda.img", "s3://"+bucket+"/vm2/")
	if _, err := sdk(t, g).PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String("vm2/"), Body: strings.NewReader("")}); err != nil {
		t.Fatal(err)
	}
	mustRun(t, dir, nil, "verify", "s3://"+bucket+"/vm2/")
	if r := run(t, dir, nil, "info", "--s3-endpoint", "127.0.0.1:9000", "s3://"+bucket+"/vm2/"); r.code != 2 {
		t.Fatalf("a bad endpoint: exit %d\n%s", r.code, r.stderr)
	}
}

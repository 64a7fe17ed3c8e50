package s3

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/xva-tools/xva/internal/testutil"
)

func newStore(t *testing.T, o Options) *Store {
	t.Helper()
	s, err := New(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func randomBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// incomplete lists the multipart uploads the server still holds in bucket.
func incomplete(t *testing.T, s *Store, bucket string) int {
	t.Helper()
	out, err := s.c.ListMultipartUploads(context.Background(), &s3.ListMultipartUploadsInput{Bucket: aws.String(bucket)})
	if err != nil {
		t.Fatal(err)
	}
	return len(out.Uploads)
}

func TestUploadAndReadBack(t *testing.T) {
	g := testutil.S3Server(t, "xva-test")
	s := newStore(t, Options{PartSize: MinPartSize, Jobs: 3})
	data := randomBytes(23<<20+12345, 1) // five parts, the last short
	u := URL{"xva-test", "vm/web.xva"}
	w, err := s.Create(context.Background(), u, CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for p := data; len(p) > 0; {
		n := min(len(p), 777777) // writes that straddle parts
		if _, err := w.Write(p[:n]); err != nil {
			t.Fatal(err)
		}
		p = p[n:]
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	// Memory: the parts in flight and the one filling, whatever the size.
	if w.made > 3+1 {
		t.Fatalf("%d part buffers made for 3 in flight", w.made)
	}
	// The server's own file holds the bytes.
	got, err := os.ReadFile(filepath.Join(g.Root, "xva-test", "vm", "web.xva"))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("the stored object differs from what was written (%v)", err)
	}
	if n := incomplete(t, s, "xva-test"); n != 0 {
		t.Fatalf("%d multipart uploads left after a commit", n)
	}
	o, err := s.Open(context.Background(), u)
	if err != nil {
		t.Fatal(err)
	}
	if o.Size() != int64(len(data)) {
		t.Fatalf("size %d, want %d", o.Size(), len(data))
	}
	r := rand.New(rand.NewPCG(2, 2))
	for range 200 {
		off := r.Int64N(int64(len(data)))
		n := r.Int64N(9<<20) + 1
		buf := make([]byte, n)
		k, err := o.ReadAt(buf, off)
		want := data[off:min(off+n, int64(len(data)))]
		if k != len(want) || !bytes.Equal(buf[:k], want) || (k < len(buf) && err != io.EOF) || (k == len(buf) && err != nil && err != io.EOF) {
			t.Fatalf("ReadAt(%d, %d) = %d, %v", off, n, k, err)
		}
	}
	all, err := io.ReadAll(o.Reader(0))
	if err != nil || !bytes.Equal(all, data) {
		t.Fatalf("a sequential read differs (%v)", err)
	}
	// Without Replace an existing object is refused before anything is sent.
	if _, err := s.Create(context.Background(), u, CreateOptions{}); !errors.Is(err, ErrExists) {
		t.Fatalf("creating over an object: %v, want ErrExists", err)
	}
	// A small object is one PUT.
	w, err = s.Create(context.Background(), u, CreateOptions{Replace: true})
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("small"))
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(g.Root, "xva-test", "vm", "web.xva")); string(got) != "small" {
		t.Fatalf("replaced object holds %q", got)
	}
}

func TestAbortLeavesNothing(t *testing.T) {
	g := testutil.S3Server(t, "xva-test")
	s := newStore(t, Options{PartSize: MinPartSize, Jobs: 2})
	u := URL{"xva-test", "gone.xva"}
	w, err := s.Create(context.Background(), u, CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w.Write(randomBytes(12<<20, 3))
	w.Abort()
	if _, err := s.Stat(context.Background(), u); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after Abort: %v, want no object", err)
	}
	if n := incomplete(t, s, "xva-test"); n != 0 {
		t.Fatalf("%d multipart uploads left after Abort", n)
	}
	if _, err := os.Stat(filepath.Join(g.Root, "xva-test", "gone.xva")); err == nil {
		t.Fatal("the object's file exists")
	}
}

// TestServerDiesMidUpload: the store goes away while parts are being sent.
// The write fails naming the object; the abort cannot reach the store and
// is recorded; the next Store for that endpoint, once the server is back,
// aborts it, leaving no object and no incomplete upload.
func TestServerDiesMidUpload(t *testing.T) {
	g := testutil.S3Server(t, "xva-test")
	s := newStore(t, Options{PartSize: MinPartSize, Jobs: 2, MaxAttempts: 2})
	u := URL{"xva-test", "cut.xva"}
	w, err := s.Create(context.Background(), u, CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(randomBytes(11<<20, 4)); err != nil {
		t.Fatal(err)
	}
	g.Stop()
	_, err = w.Write(randomBytes(11<<20, 5))
	if err == nil {
		err = w.Commit()
	} else {
		w.Abort()
	}
	var se *Error
	if !errors.As(err, &se) || se.URL != u {
		t.Fatalf("error %v does not name %s", err, u)
	}
	t.Log(err)
	g.Start()
	s2 := newStore(t, Options{})
	if n := incomplete(t, s2, "xva-test"); n != 0 {
		t.Fatalf("%d multipart uploads left after the server came back", n)
	}
	if _, err := s2.Stat(context.Background(), u); !errors.Is(err, ErrNotFound) {
		t.Fatalf("object after a failed upload: %v", err)
	}
}

func TestErrorsNameWhatAndWhy(t *testing.T) {
	testutil.S3Server(t, "xva-test")
	s := newStore(t, Options{})
	_, err := s.Open(context.Background(), URL{"xva-test", "nothing-here.xva"})
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing object: %v", err)
	}
	_, err = s.Create(context.Background(), URL{"nobucket", "x.xva"}, CreateOptions{})
	if !errors.Is(err, ErrNotFound) || !bytes.Contains([]byte(err.Error()), []byte("nobucket")) {
		t.Fatalf("missing bucket: %v", err)
	}
	t.Setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret")
	bad := newStore(t, Options{})
	_, err = bad.Open(context.Background(), URL{"xva-test", "x.xva"})
	if !errors.Is(err, ErrAccess) {
		t.Fatalf("wrong secret: %v", err)
	}
	t.Log(err)
}

package s3

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"slices"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// maxParts is S3's limit on the parts of one upload.
const maxParts = 10000

// growEvery is how many parts are sent at one size before the size
// doubles, up to maxPartSize: from the smallest part (5 MiB) the 10,000
// parts hold S3's largest object (5 TiB); from the default 64 MiB, the
// first 1,000 parts (62.5 GiB) stay at 64 MiB. An upload does not know its
// size in advance (a stream), and this keeps small uploads' memory small.
const growEvery = 1000

// maxPartSize is S3's largest part.
const maxPartSize = 5 << 30

// Upload writes one object. Bytes are cut into parts uploaded up to Jobs
// at once, each with its CRC-32C, which the store checks; memory is the
// Jobs parts in flight plus the one filling, buffers reused. Nothing is visible under the key
// until Commit; Abort (or any failure) aborts the multipart upload, so no
// object and no parts remain. An object small enough for one part is
// sent with one PUT at Commit.
type Upload struct {
	s       *Store
	ctx     context.Context // the parts' requests; cancelled by Abort
	cancel  context.CancelFunc
	u       URL
	replace bool

	buf   []byte
	free  chan []byte // part buffers to reuse: jobs+1 at most are ever made
	part  int32       // parts started
	made  int         // buffers made, for the test of the bound
	id    string
	slots chan struct{}
	wg    sync.WaitGroup

	mu    sync.Mutex
	parts []types.CompletedPart
	err   error
	done  bool
}

// CreateOptions say how an object is written.
type CreateOptions struct {
	// Replace lets the upload replace an existing object; without it an
	// existing object is an error matching ErrExists, before anything is
	// sent and again when the upload completes (If-None-Match).
	Replace bool
}

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// Create starts writing the object at u. Nothing is sent until the first
// part is full.
func (s *Store) Create(ctx context.Context, u URL, co CreateOptions) (*Upload, error) {
	if u.IsPrefix() {
		return nil, fmt.Errorf("s3: %s names a prefix, not an object", u)
	}
	// Checked before any work, so a pipeline does not run for nothing;
	// credentials that may write but not read (a 403 here) are left to
	// the store's own checks (If-None-Match) at the end.
	if !co.Replace {
		_, err := s.Stat(ctx, u)
		switch {
		case err == nil:
			return nil, &Error{Op: "writing", URL: u, Err: errors.New("the object exists (use --force to replace it)"), kind: ErrExists, where: s.endpoint}
		case !errors.Is(err, ErrNotFound) && !(errors.Is(err, ErrAccess) && !err.(*Error).noCreds):
			return nil, s.wrap("writing", u, err)
		}
	}
	if err := s.checkBucket(ctx, u); err != nil {
		return nil, err
	}
	uctx, cancel := context.WithCancel(ctx)
	return &Upload{s: s, ctx: uctx, cancel: cancel, u: u, replace: co.Replace, slots: make(chan struct{}, s.o.Jobs),
		free: make(chan []byte, s.o.Jobs+1)}, nil
}

// checkBucket fails early, naming the bucket, when it does not exist or
// cannot be reached: before a pipeline has done any work.
func (s *Store) checkBucket(ctx context.Context, u URL) error {
	_, err := s.c.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: &u.Bucket})
	if err == nil {
		return nil
	}
	e := s.wrap("writing", u, err).(*Error)
	if errors.Is(e, ErrAccess) && e.Code == "" && !e.noCreds {
		return nil // HEAD says 403 with no code: maybe write-only credentials
	}
	if errors.Is(e, ErrNotFound) {
		e.Err, e.Hint = errors.New("no such bucket"), "create the bucket "+u.Bucket+" first"
	}
	return e
}

// partSize is the size of part n (1-based).
func (w *Upload) partSize(n int32) int {
	return int(min(w.s.o.PartSize<<min((n-1)/growEvery, 20), maxPartSize))
}

// Write buffers p, sending each part as it fills.
func (w *Upload) Write(p []byte) (int, error) {
	if err := w.failed(); err != nil {
		return 0, err
	}
	written := 0
	for len(p) > 0 {
		if w.buf == nil {
			w.buf = w.buffer(w.partSize(w.part + 1))
		}
		c := min(len(p), cap(w.buf)-len(w.buf))
		w.buf = append(w.buf, p[:c]...)
		p, written = p[c:], written+c
		if len(w.buf) == cap(w.buf) {
			if err := w.send(); err != nil {
				return written, err
			}
		}
	}
	return written, nil
}

func (w *Upload) failed() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return errors.New("s3: write after Commit or Abort")
	}
	return w.err
}

func (w *Upload) fail(err error) {
	w.mu.Lock()
	if w.err == nil {
		w.err = err
	}
	w.mu.Unlock()
}

// buffer returns an empty part buffer of size bytes, reusing one whose
// part is sent: the garbage collector would otherwise let finished parts
// pile up before it frees them, past the memory the part size promises.
func (w *Upload) buffer(size int) []byte {
	for {
		select {
		case b := <-w.free:
			if cap(b) == size {
				return b[:0]
			}
			// A smaller part from before the size grew: let it go.
		default:
			w.made++
			return make([]byte, 0, size)
		}
	}
}

// send uploads the filled buffer as the next part, waiting for a slot.
func (w *Upload) send() error {
	if w.id == "" {
		if err := w.begin(); err != nil {
			return err
		}
	}
	if w.part == maxParts {
		return w.s.wrap("writing", w.u, errors.New("the upload passed S3's 10,000 parts"))
	}
	select {
	case w.slots <- struct{}{}:
	case <-w.ctx.Done():
		return w.ctx.Err()
	}
	// A part that failed while this one waited for its slot ends the
	// upload: start nothing more.
	if err := w.failed(); err != nil {
		<-w.slots
		return err
	}
	w.part++
	n, data := w.part, w.buf
	w.buf = nil
	w.wg.Add(1)
	go func() {
		defer func() { <-w.slots; w.wg.Done() }()
		if err := w.uploadPart(n, data); err != nil {
			w.fail(err)
		}
		select {
		case w.free <- data:
		default:
		}
	}()
	return w.failed()
}

func (w *Upload) begin() error {
	out, err := w.s.c.CreateMultipartUpload(w.ctx, &s3.CreateMultipartUploadInput{
		Bucket: &w.u.Bucket, Key: &w.u.Key, ChecksumAlgorithm: types.ChecksumAlgorithmCrc32c})
	if err != nil {
		return w.s.wrap("writing", w.u, err)
	}
	w.id = aws.ToString(out.UploadId)
	track(w)
	return nil
}

// unsignedPayload leaves the SHA-256 of a part's bytes out of its
// signature: hashing every byte twice more (here and at the store) costs
// more than the upload on a fast link, and the part's CRC-32C, whose
// header is signed, already has the store check every byte it received.
// This is what the AWS SDKs do over TLS by default.
func unsignedPayload(o *s3.Options) {
	o.APIOptions = append(o.APIOptions, v4.SwapComputePayloadSHA256ForUnsignedPayloadMiddleware)
}

func checksum(data []byte) string {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], crc32.Checksum(data, crcTable))
	return base64.StdEncoding.EncodeToString(b[:])
}

func (w *Upload) uploadPart(n int32, data []byte) error {
	sum := checksum(data)
	out, err := w.s.c.UploadPart(w.ctx, &s3.UploadPartInput{
		Bucket: &w.u.Bucket, Key: &w.u.Key, UploadId: &w.id, PartNumber: aws.Int32(n),
		Body: bytes.NewReader(data), ContentLength: aws.Int64(int64(len(data))),
		ChecksumAlgorithm: types.ChecksumAlgorithmCrc32c, ChecksumCRC32C: aws.String(sum)}, unsignedPayload)
	if err != nil {
		e := w.s.wrap("writing", w.u, err).(*Error)
		e.Range = fmt.Sprintf("part %d", n)
		return e
	}
	w.mu.Lock()
	w.parts = append(w.parts, types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(n), ChecksumCRC32C: aws.String(sum)})
	w.mu.Unlock()
	return nil
}

// Commit sends what remains and makes the object appear. On failure the
// upload is aborted.
func (w *Upload) Commit() error {
	if err := w.failed(); err != nil {
		w.Abort()
		return err
	}
	if w.id == "" {
		err := w.putWhole()
		w.finish()
		return err
	}
	if len(w.buf) > 0 {
		if err := w.send(); err != nil {
			w.Abort()
			return err
		}
	}
	w.wg.Wait()
	if err := w.failed(); err != nil {
		w.Abort()
		return err
	}
	slices.SortFunc(w.parts, func(a, b types.CompletedPart) int { return int(*a.PartNumber - *b.PartNumber) })
	in := &s3.CompleteMultipartUploadInput{Bucket: &w.u.Bucket, Key: &w.u.Key, UploadId: &w.id,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: w.parts}}
	if !w.replace {
		in.IfNoneMatch = aws.String("*")
	}
	if _, err := w.s.c.CompleteMultipartUpload(w.ctx, in); err != nil {
		w.Abort()
		return w.existsOr(w.s.wrap("writing", w.u, err))
	}
	untrack(w)
	w.finish()
	return nil
}

// putWhole sends an object that fits in one part with one PUT.
func (w *Upload) putWhole() error {
	in := &s3.PutObjectInput{Bucket: &w.u.Bucket, Key: &w.u.Key, Body: bytes.NewReader(w.buf),
		ContentLength: aws.Int64(int64(len(w.buf))), ChecksumAlgorithm: types.ChecksumAlgorithmCrc32c,
		ChecksumCRC32C: aws.String(checksum(w.buf))}
	if !w.replace {
		in.IfNoneMatch = aws.String("*")
	}
	_, err := w.s.c.PutObject(w.ctx, in, unsignedPayload)
	return w.existsOr(w.s.wrap("writing", w.u, err))
}

// existsOr words a failed If-None-Match: another writer made the object
// meanwhile.
func (w *Upload) existsOr(err error) error {
	if errors.Is(err, ErrExists) {
		e := *err.(*Error)
		e.Err = errors.New("the object was created by someone else while this upload ran (use --force to replace it)")
		return &e
	}
	return err
}

func (w *Upload) finish() {
	w.mu.Lock()
	w.done = true
	w.buf = nil
	w.mu.Unlock()
}

// abortTimeout bounds how long an abort waits for a store that does not
// answer.
const abortTimeout = 20 * time.Second

// Abort gives the upload up: parts in flight are cancelled and the
// multipart upload aborted (again if a part landed after the abort, as
// S3 allows), so the store keeps nothing. When the store
// cannot be reached, the upload is recorded and aborted by the next Store
// made for the same endpoint (see abortPending). Abort after Commit does
// nothing.
func (w *Upload) Abort() {
	w.mu.Lock()
	if w.done {
		w.mu.Unlock()
		return
	}
	w.done = true
	w.buf = nil
	w.mu.Unlock()
	w.cancel()
	w.wg.Wait()
	if w.id == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(w.ctx), abortTimeout)
	defer cancel()
	if err := w.s.abort(ctx, w.u, w.id); err != nil {
		w.s.remember(w.u, w.id, w.s.wrap("aborting", w.u, err))
	}
	untrack(w)
}

// abort aborts one multipart upload; one already gone is not an error. A
// part still being received when the abort lands can be kept by the
// store; AWS asks to abort again until no part is listed.
func (s *Store) abort(ctx context.Context, u URL, id string) error {
	for range 3 {
		_, err := s.c.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: &u.Bucket, Key: &u.Key, UploadId: &id})
		if err != nil && !gone(s, u, err) {
			return err
		}
		parts, err := s.c.ListParts(ctx, &s3.ListPartsInput{Bucket: &u.Bucket, Key: &u.Key, UploadId: &id})
		if err != nil || len(parts.Parts) == 0 {
			return nil // gone (NoSuchUpload), or nothing left in it
		}
	}
	return nil
}

// gone reports whether err says there is no such upload (any more).
func gone(s *Store, u URL, err error) bool {
	var nsu *types.NoSuchUpload
	return errors.As(err, &nsu) || errors.Is(s.wrap("aborting", u, err), ErrNotFound)
}

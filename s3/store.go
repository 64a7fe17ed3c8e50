package s3

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/logging"
)

// Options say how to reach the store and how to move data. The zero value
// takes everything from the environment and the AWS shared files.
type Options struct {
	// Endpoint overrides AWS_ENDPOINT_URL(_S3) and the shared config's
	// endpoint_url: the store's URL, "http://" only when the user says so.
	Endpoint string
	// PathStyle addresses buckets as https://host/BUCKET rather than
	// https://BUCKET.host. Nil means: path style with a custom endpoint
	// (S3-compatible stores on an address or localhost need it), virtual
	// hosts on AWS.
	PathStyle *bool
	// Insecure skips the verification of an https endpoint's certificate.
	Insecure bool
	// Profile selects a profile of the shared files (else AWS_PROFILE).
	Profile string
	// PartSize is the size of a multipart upload's parts (default 64 MiB);
	// it grows as an upload goes on, so that 10,000 parts hold any disk.
	PartSize int64
	// Jobs is how many parts are uploaded, or ranges fetched ahead, at
	// once (default 4).
	Jobs int
	// MaxAttempts bounds the tries of each request on a transient error
	// (5xx, throttling, a reset connection); default 5.
	MaxAttempts int
}

// DefaultPartSize is the first part size of a multipart upload.
const DefaultPartSize = 64 << 20

// MinPartSize is S3's smallest part but the last.
const MinPartSize = 5 << 20

// Store is a connection to one object store.
type Store struct {
	c        *s3.Client
	o        Options
	endpoint string // for messages: the custom endpoint, or "" for AWS
	cache    blockCache
}

// CheckEndpoint says what is wrong with an endpoint URL, if anything.
func CheckEndpoint(endpoint string) error {
	if endpoint != "" && !strings.HasPrefix(endpoint, "http://") && !strings.HasPrefix(endpoint, "https://") {
		return fmt.Errorf("s3: endpoint %q: want http://HOST[:PORT] or https://HOST[:PORT]", endpoint)
	}
	return nil
}

// idleTimeout is how long a connection may carry nothing, either way,
// while a request is on it.
const idleTimeout = 2 * time.Minute

// idleConn puts a deadline on each read and write of a connection, so a
// peer that stops mid-request times out instead of hanging the transfer.
// A connection idle in the pool times out too, and is dialled afresh.
type idleConn struct{ net.Conn }

func (c *idleConn) Read(p []byte) (int, error) {
	c.Conn.SetReadDeadline(time.Now().Add(idleTimeout))
	return c.Conn.Read(p)
}

func (c *idleConn) Write(p []byte) (int, error) {
	c.Conn.SetWriteDeadline(time.Now().Add(idleTimeout))
	return c.Conn.Write(p)
}

// New configures a Store from o and the environment. It sends nothing.
func New(ctx context.Context, o Options) (*Store, error) {
	if o.PartSize == 0 {
		o.PartSize = DefaultPartSize
	}
	if o.PartSize < MinPartSize {
		return nil, fmt.Errorf("s3: a part size of %d bytes is under S3's minimum of 5 MiB", o.PartSize)
	}
	if o.Jobs <= 0 {
		o.Jobs = 4
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 5
	}
	httpClient := awshttp.NewBuildableClient().WithTransportOptions(func(t *http.Transport) {
		t.MaxIdleConnsPerHost = 4 * o.Jobs
		// A store that takes a connection and then says nothing must not
		// hang xva: no answer, or no byte either way, for idleTimeout is a
		// timeout, which is retried like a reset.
		t.ResponseHeaderTimeout = idleTimeout
		dial := (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext
		t.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := dial(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return &idleConn{Conn: c}, nil
		}
		if o.Insecure {
			t.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // the user asked, with --insecure
		}
	})
	loads := []func(*config.LoadOptions) error{
		config.WithHTTPClient(httpClient),
		// The SDK's own warnings (IMDS fallbacks) are not for xva's users:
		// what fails comes back as an error, said once.
		config.WithLogger(logging.Nop{}),
		config.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(so *retry.StandardOptions) {
				so.MaxAttempts = o.MaxAttempts
				so.MaxBackoff = 4 * time.Second
				// The SDK's default retry budget is shared by every request
				// of the client and runs dry in a burst of failures across
				// parallel parts; MaxAttempts alone bounds the tries.
				so.RateLimiter = ratelimit.None
				// A certificate that is not trusted now will not be on
				// the next try.
				so.Retryables = append([]retry.IsErrorRetryable{retry.IsErrorRetryableFunc(func(err error) aws.Ternary {
					if certificateError(err) != nil {
						return aws.FalseTernary
					}
					return aws.UnknownTernary
				})}, so.Retryables...)
			})
		}),
	}
	if o.Profile != "" {
		loads = append(loads, config.WithSharedConfigProfile(o.Profile))
	}
	cfg, err := config.LoadDefaultConfig(ctx, loads...)
	if err != nil {
		return nil, fmt.Errorf("s3: reading the AWS configuration: %w", err)
	}
	if cfg.Region == "" {
		// S3-compatible stores ignore the region but the signature names
		// one; AWS itself redirects a wrong one with a clear error.
		cfg.Region = "us-east-1"
	}
	endpoint := o.Endpoint
	if endpoint == "" {
		endpoint = firstNonEmpty(os.Getenv("AWS_ENDPOINT_URL_S3"), os.Getenv("AWS_ENDPOINT_URL"))
		if endpoint == "" && cfg.BaseEndpoint != nil {
			endpoint = *cfg.BaseEndpoint
		}
	}
	if err := CheckEndpoint(endpoint); err != nil {
		return nil, err
	}
	pathStyle := endpoint != ""
	if o.PathStyle != nil {
		pathStyle = *o.PathStyle
	}
	c := s3.NewFromConfig(cfg, func(so *s3.Options) {
		if endpoint != "" {
			so.BaseEndpoint = aws.String(endpoint)
		}
		so.UsePathStyle = pathStyle
		// Ranged GETs carry no whole-object checksum to validate: the
		// archive's own checks (CRC-32s, block hashes) judge the bytes.
		so.DisableLogOutputChecksumValidationSkipped = true
	})
	s := &Store{c: c, o: o, endpoint: endpoint, cache: blockCache{blocks: map[blockKey]*block{}, max: readAhead + 4*o.Jobs}}
	s.abortPending(ctx)
	return s, nil
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}

// Jobs is how many requests the store runs at once for one transfer.
func (s *Store) Jobs() int { return s.o.Jobs }

// Info describes an object.
type Info struct {
	URL      URL
	Size     int64
	ETag     string
	Modified time.Time
}

// Stat describes the object at u; an error matching ErrNotFound when
// there is none.
func (s *Store) Stat(ctx context.Context, u URL) (*Info, error) {
	out, err := s.c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &u.Bucket, Key: &u.Key})
	if err != nil {
		return nil, s.wrap("reading", u, err)
	}
	return &Info{URL: u, Size: aws.ToInt64(out.ContentLength), ETag: aws.ToString(out.ETag), Modified: aws.ToTime(out.LastModified)}, nil
}

// List returns every object under the prefix u, in key order.
func (s *Store) List(ctx context.Context, u URL) ([]Info, error) {
	u = u.Dir()
	var all []Info
	p := s3.NewListObjectsV2Paginator(s.c, &s3.ListObjectsV2Input{Bucket: &u.Bucket, Prefix: aws.String(u.Key)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, s.wrap("listing", u, err)
		}
		for _, o := range page.Contents {
			all = append(all, Info{URL: URL{u.Bucket, aws.ToString(o.Key)}, Size: aws.ToInt64(o.Size),
				ETag: aws.ToString(o.ETag), Modified: aws.ToTime(o.LastModified)})
		}
	}
	return all, nil
}

// Delete removes the objects at us (of one bucket), ignoring those already
// gone.
func (s *Store) Delete(ctx context.Context, us ...URL) error {
	for len(us) > 0 {
		n := min(len(us), 1000) // DeleteObjects takes at most 1000 keys
		ids := make([]types.ObjectIdentifier, n)
		for i, u := range us[:n] {
			ids[i] = types.ObjectIdentifier{Key: aws.String(u.Key)}
		}
		out, err := s.c.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: &us[0].Bucket, Delete: &types.Delete{Objects: ids, Quiet: aws.Bool(true)}})
		if err != nil {
			return s.wrap("deleting", us[0], err)
		}
		if len(out.Errors) > 0 {
			e := out.Errors[0]
			return fmt.Errorf("s3: deleting %s: %s: %s", URL{us[0].Bucket, aws.ToString(e.Key)}, aws.ToString(e.Code), aws.ToString(e.Message))
		}
		us = us[n:]
	}
	return nil
}

// ErrNotFound matches an error for a bucket or object that does not exist.
var ErrNotFound = errors.New("not found")

// ErrExists matches an error for an object that exists and was not to be
// replaced.
var ErrExists = errors.New("exists")

// ErrAccess matches an error the store gave for the credentials: wrong,
// missing, or not allowed.
var ErrAccess = errors.New("access denied")

// ErrIntegrity matches an error for bytes the store refused as damaged (a
// part's checksum) or an object that changed while it was read.
var ErrIntegrity = errors.New("integrity")

// Error is a failed request: what was being done to which object (and
// which bytes of it), and why.
type Error struct {
	Op      string // "reading", "writing", "listing", ...
	URL     URL
	Range   string // "bytes 0-8388607", or ""
	Code    string // the store's error code, if it gave one
	Hint    string // what to check; not part of Error()
	Err     error
	kind    error // ErrNotFound, ErrAccess, ... or nil
	noCreds bool  // ErrAccess because no credentials were found at all
	where   string
}

func (e *Error) Error() string {
	msg := fmt.Sprintf("s3: %s %s", e.Op, e.URL)
	if e.Range != "" {
		msg += " (" + e.Range + ")"
	}
	if e.where != "" {
		msg += " at " + e.where
	}
	return msg + ": " + e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

// Is lets errors.Is match the kind of failure.
func (e *Error) Is(target error) bool { return e.kind != nil && target == e.kind }

// wrap names the object of a failed request and classifies the failure.
func (s *Store) wrap(op string, u URL, err error) error {
	if err == nil {
		return nil
	}
	var already *Error
	if errors.As(err, &already) {
		return err
	}
	e := &Error{Op: op, URL: u, Err: err, where: s.endpoint}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		e.Code = ae.ErrorCode()
		e.Err = errors.New(strings.TrimSpace(ae.ErrorCode() + ": " + ae.ErrorMessage()))
	}
	var oe *net.OpError
	if e.Code == "" && errors.As(err, &oe) {
		// The SDK's chain repeats the request line; the network's own
		// error says what happened.
		e.Err = oe
		var me *retry.MaxAttemptsError
		if errors.As(err, &me) {
			e.Err = fmt.Errorf("%w (tried %d times)", oe, me.Attempt)
		}
	}
	var re *awshttp.ResponseError
	status := 0
	if errors.As(err, &re) {
		status = re.HTTPStatusCode()
	}
	switch {
	case e.Code == "NoSuchBucket":
		e.kind, e.Hint = ErrNotFound, "the bucket "+u.Bucket+" does not exist"
	case e.Code == "NoSuchKey" || e.Code == "NotFound" || status == http.StatusNotFound:
		e.kind = ErrNotFound
		if e.Code == "" || e.Code == "NotFound" {
			e.Err = errors.New("no such object")
		}
	case e.Code == "InvalidAccessKeyId" || e.Code == "SignatureDoesNotMatch" || e.Code == "AccessDenied" ||
		e.Code == "Forbidden" || status == http.StatusForbidden:
		e.kind = ErrAccess
		e.Hint = "check the credentials: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE or ~/.aws/credentials, and --s3-endpoint"
		if e.Code == "" || e.Code == "Forbidden" {
			e.Err = errors.New("access denied")
		}
	case e.Code == "PreconditionFailed" || status == http.StatusPreconditionFailed:
		e.kind = ErrExists
	case e.Code == "BadDigest" || strings.HasPrefix(e.Code, "InvalidChecksum") || e.Code == "XAmzContentChecksumMismatch":
		e.kind = ErrIntegrity
	}
	if ce := certificateError(err); ce != nil {
		e.Err = ce
		e.Hint = "the store's TLS certificate is not trusted here: point AWS_CA_BUNDLE (or ca_bundle in ~/.aws/config) at the CA that signed it, " +
			"or pass --insecure to skip the check on a network you trust"
	}
	var ce *smithy.CanceledError
	if errors.As(err, &ce) {
		e.Err = context.Canceled
	}
	if errors.Is(err, context.Canceled) {
		e.Err = context.Canceled
	}
	if isNoCredentials(err) {
		e.kind, e.noCreds, e.Err = ErrAccess, true, errors.New("no credentials found")
		e.Hint = "no credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, or write ~/.aws/credentials"
	}
	return e
}

// certificateError is the TLS verification failure inside err, if any.
func certificateError(err error) error {
	var cv *tls.CertificateVerificationError
	if errors.As(err, &cv) {
		return cv
	}
	var ua x509.UnknownAuthorityError
	if errors.As(err, &ua) {
		return ua
	}
	var hn x509.HostnameError
	if errors.As(err, &hn) {
		return hn
	}
	return nil
}

func isNoCredentials(err error) bool {
	return strings.Contains(err.Error(), "failed to retrieve credentials") || strings.Contains(err.Error(), "no EC2 IMDS role found")
}

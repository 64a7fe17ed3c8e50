package xapi

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/xva-tools/xva/ova"
)

// Option configures a Client.
type Option func(*options) error

type options struct {
	insecure   bool
	caCerts    []string
	httpClient *http.Client
	poll       time.Duration
	proxy      func(*http.Request) (*url.URL, error)
	log        *slog.Logger
}

// WithInsecure skips TLS certificate verification (it is on by default).
func WithInsecure(b bool) Option { return func(o *options) error { o.insecure = b; return nil } }

// WithCACert trusts the CA certificates in the PEM file at path, besides
// the system's.
func WithCACert(path string) Option {
	return func(o *options) error {
		if path != "" {
			o.caCerts = append(o.caCerts, path)
		}
		return nil
	}
}

// WithProxy sets how the proxy for a request is chosen, for the XML-RPC
// calls and the transfers alike (default: http.ProxyFromEnvironment, that
// is HTTPS_PROXY, HTTP_PROXY and NO_PROXY).
func WithProxy(proxy func(*http.Request) (*url.URL, error)) Option {
	return func(o *options) error { o.proxy = proxy; return nil }
}

// WithLogger logs the calls, redirects and transfers at debug level
// (never a password or a session ref).
func WithLogger(l *slog.Logger) Option {
	return func(o *options) error { o.log = l; return nil }
}

// WithPollInterval sets how often a task is polled (default 1 s).
func WithPollInterval(d time.Duration) Option {
	return func(o *options) error {
		if d <= 0 {
			return fmt.Errorf("xapi: poll interval must be positive")
		}
		o.poll = d
		return nil
	}
}

// Client talks to a pool master within a session.
type Client struct {
	base    *url.URL
	http    *http.Client
	tls     *tls.Config
	session string
	opts    *options
}

// Login opens a session on the pool master at rawURL (https://host). A
// pool member answers HOST_IS_SLAVE with its master's address; the login is
// then made there instead.
func Login(ctx context.Context, rawURL, user, password string, opts ...Option) (*Client, error) {
	o := &options{poll: time.Second, log: slog.New(slog.DiscardHandler)}
	for _, opt := range opts {
		if err := opt(o); err != nil {
			return nil, err
		}
	}
	base, err := url.Parse(rawURL)
	if err != nil || base.Host == "" || (base.Scheme != "https" && base.Scheme != "http") {
		return nil, fmt.Errorf("xapi: %q is not a URL like https://host", rawURL)
	}
	tc, err := tlsConfig(o)
	if err != nil {
		return nil, err
	}
	if o.proxy == nil {
		o.proxy = http.ProxyFromEnvironment
	}
	c := &Client{base: base, tls: tc, opts: o}
	c.http = &http.Client{Transport: &http.Transport{TLSClientConfig: tc, Proxy: o.proxy}}
	if o.httpClient != nil {
		hc := *o.httpClient
		c.http = &hc
	}
	c.http.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		return c.checkRedirect(req.Context(), "an XML-RPC call", via[len(via)-1].URL, req.URL, len(via), false)
	}
	for tries := 0; ; tries++ {
		v, err := c.call(ctx, "session.login_with_password", user, password, "1.1", "xva")
		var xe *Error
		if errors.As(err, &xe) && xe.Code == CodeHostIsSlave && len(xe.Params) > 0 && tries == 0 {
			c.base = &url.URL{Scheme: c.base.Scheme, Host: hostPort(xe.Params[0], c.base.Port())}
			o.log.Debug("not the pool master; logging in at the master", "master", c.base.Host)
			continue
		}
		if err != nil {
			return nil, err
		}
		c.session = v.Str()
		o.log.Debug("logged in", "host", c.base.Host, "user", user)
		return c, nil
	}
}

// hostPort makes the host part of a URL from an address a host gave
// (HOST_IS_SLAVE carries the master's address bare: "10.0.0.1",
// "xs1.example.com" or "fd00::1"), keeping the port the user's URL had.
// An IPv6 literal is bracketed; an address that already carries a port or
// brackets is kept as it is.
func hostPort(addr, port string) string {
	if strings.HasPrefix(addr, "[") {
		return addr
	}
	if ip := net.ParseIP(addr); ip != nil && strings.Contains(addr, ":") {
		if port == "" {
			return "[" + addr + "]"
		}
		return net.JoinHostPort(addr, port)
	}
	if _, _, err := net.SplitHostPort(addr); err == nil || port == "" {
		return addr
	}
	return net.JoinHostPort(addr, port)
}

func tlsConfig(o *options) (*tls.Config, error) {
	tc := &tls.Config{InsecureSkipVerify: o.insecure, MinVersion: tls.VersionTLS12}
	if len(o.caCerts) == 0 {
		return tc, nil
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	for _, path := range o.caCerts {
		pem, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("xapi: reading --ca-cert: %w", err)
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("xapi: %s holds no PEM certificate", path)
		}
	}
	tc.RootCAs = pool
	return tc, nil
}

// SessionRef is the session's ref, for requests made by hand.
func (c *Client) SessionRef() string { return c.session }

// Host is the host the session is on (the master, after HOST_IS_SLAVE).
func (c *Client) Host() string { return c.base.Host }

// call makes an XML-RPC call and returns its Value.
func (c *Client) call(ctx context.Context, method string, args ...any) (*ova.Value, error) {
	body, err := encodeCall(method, args)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base.String()+"/", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "text/xml")
	start := time.Now()
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("xapi: %s: %w", method, redact(err))
	}
	c.opts.log.Debug("call", "method", method, "status", resp.StatusCode, "seconds", time.Since(start).Seconds())
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("xapi: %s: HTTP %s", method, resp.Status)
	}
	v, err := decodeResponse(resp.Body)
	if err != nil {
		return nil, err
	}
	return v, nil
}

// Call makes an XML-RPC call in the session: the session ref goes first.
func (c *Client) Call(ctx context.Context, method string, args ...any) (*ova.Value, error) {
	return c.call(ctx, method, append([]any{c.session}, args...)...)
}

// str makes a call that returns a string.
func (c *Client) str(ctx context.Context, method string, args ...any) (string, error) {
	v, err := c.Call(ctx, method, args...)
	if err != nil {
		return "", err
	}
	return v.Str(), nil
}

// Logout ends the session. It is safe to call more than once.
func (c *Client) Logout(ctx context.Context) error {
	if c.session == "" {
		return nil
	}
	_, err := c.call(ctx, "session.logout", c.session)
	c.session = ""
	return err
}

// SRByUUID returns the ref of the SR with uuid.
func (c *Client) SRByUUID(ctx context.Context, uuid string) (string, error) {
	return c.str(ctx, "SR.get_by_uuid", uuid)
}

// VMByUUID returns the ref of the VM with uuid.
func (c *Client) VMByUUID(ctx context.Context, uuid string) (string, error) {
	return c.str(ctx, "VM.get_by_uuid", uuid)
}

// VMUUID returns the uuid of the VM ref.
func (c *Client) VMUUID(ctx context.Context, ref string) (string, error) {
	return c.str(ctx, "VM.get_uuid", ref)
}

// DefaultSR returns the pool's default SR, which an import without an SR
// goes to.
func (c *Client) DefaultSR(ctx context.Context) (string, error) {
	v, err := c.Call(ctx, "pool.get_all")
	if err != nil {
		return "", err
	}
	pools := v.Strings()
	if len(pools) == 0 {
		return "", errors.New("xapi: no pool")
	}
	return c.str(ctx, "pool.get_default_SR", pools[0])
}

// XapiVersion is a host's xapi version, software_version's "xapi" key
// ("MAJOR.MINOR"; 1.20 for every host before xapi 1.250, then the real
// one, e.g. 24.19).
type XapiVersion struct{ Major, Minor int }

func (v XapiVersion) String() string { return fmt.Sprintf("%d.%d", v.Major, v.Minor) }

// Less reports whether v is older than w.
func (v XapiVersion) Less(w XapiVersion) bool {
	return v.Major < w.Major || v.Major == w.Major && v.Minor < w.Minor
}

// XXHashSince is the first xapi that reads .xxhash block checksums: xen-api
// commit c5c703aa ("Changed the checksum algorithm from SHA1 to xxHash"),
// first in tag v1.170.0. Older hosts fail an import at the first .xxhash
// member ("Expected to find an inline checksum").
var XXHashSince = XapiVersion{1, 170}

// VersionReportedSince is the first xapi that reports its own version:
// before v1.250.0 (commit a7dacb92a5) every host said xapi 1.20, in
// software_version and in its exports, whether it read .xxhash or not.
var VersionReportedSince = XapiVersion{1, 250}

// ReadsXXHash reports whether a host that says it is v is known to read
// .xxhash members: one that says 1.20 may be older than XXHashSince.
func (v XapiVersion) ReadsXXHash() bool { return !v.Less(VersionReportedSince) }

// OldestXapi returns the oldest xapi version of the pool's hosts: an import
// may be handled by any host that sees the SR, and while a pool is being
// upgraded its members are older than its master.
func (c *Client) OldestXapi(ctx context.Context) (XapiVersion, error) {
	v, err := c.Call(ctx, "host.get_all")
	if err != nil {
		return XapiVersion{}, err
	}
	var oldest XapiVersion
	for i, host := range v.Strings() {
		sv, err := c.Call(ctx, "host.get_software_version", host)
		if err != nil {
			return XapiVersion{}, err
		}
		hv, err := parseXapiVersion(sv.Field("xapi").Str())
		if err != nil {
			return XapiVersion{}, fmt.Errorf("xapi: host %s: %w", host, err)
		}
		if i == 0 || hv.Less(oldest) {
			oldest = hv
		}
	}
	return oldest, nil
}

func parseXapiVersion(s string) (XapiVersion, error) {
	major, minor, _ := strings.Cut(s, ".")
	minor, _, _ = strings.Cut(minor, ".")
	a, err1 := strconv.Atoi(major)
	b, err2 := strconv.Atoi(minor)
	if err1 != nil || err2 != nil {
		return XapiVersion{}, fmt.Errorf("software_version says xapi %q, not MAJOR.MINOR", s)
	}
	return XapiVersion{a, b}, nil
}

// Task is a xapi task the client created.
type Task struct {
	c   *Client
	Ref string
}

// CreateTask creates a task to pass to an HTTP handler: without one, xapi
// makes its own and destroys it at the end, result included.
func (c *Client) CreateTask(ctx context.Context, label, description string) (*Task, error) {
	ref, err := c.str(ctx, "task.create", label, description)
	if err != nil {
		return nil, err
	}
	return &Task{c: c, Ref: ref}, nil
}

// TaskStatus is a task's state.
type TaskStatus struct {
	Status   string // pending, success, failure, cancelling, cancelled
	Progress float64
}

// Status reads the task's status and progress.
func (t *Task) Status(ctx context.Context) (TaskStatus, error) {
	s, err := t.c.str(ctx, "task.get_status", t.Ref)
	if err != nil {
		return TaskStatus{}, err
	}
	p, err := t.c.str(ctx, "task.get_progress", t.Ref)
	if err != nil {
		return TaskStatus{}, err
	}
	f, _ := strconv.ParseFloat(p, 64)
	return TaskStatus{Status: s, Progress: f}, nil
}

// Wait polls the task until it ends, telling progress (0–1) as it goes,
// and returns its result, or its error as an *Error.
func (t *Task) Wait(ctx context.Context, progress func(float64)) (string, error) {
	tick := time.NewTicker(t.c.opts.poll)
	defer tick.Stop()
	for {
		st, err := t.Status(ctx)
		if err != nil {
			return "", err
		}
		if progress != nil {
			progress(st.Progress)
		}
		switch st.Status {
		case "success":
			return t.c.str(ctx, "task.get_result", t.Ref)
		case "failure", "cancelled":
			v, err := t.c.Call(ctx, "task.get_error_info", t.Ref)
			if err != nil {
				return "", err
			}
			info := v.Strings()
			if len(info) == 0 {
				return "", &Error{Code: "TASK_" + strings.ToUpper(st.Status)}
			}
			return "", &Error{Code: info[0], Params: info[1:]}
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-tick.C:
		}
	}
}

// Cancel asks xapi to cancel the task.
func (t *Task) Cancel(ctx context.Context) error {
	_, err := t.c.Call(ctx, "task.cancel", t.Ref)
	return err
}

// Destroy removes the task.
func (t *Task) Destroy(ctx context.Context) error {
	_, err := t.c.Call(ctx, "task.destroy", t.Ref)
	return err
}

// maxRedirects bounds the redirects a request follows: xapi sends one, to
// the host that sees the SR, and an HTTPS front end perhaps one more.
const maxRedirects = 5

// checkRedirect is the one redirect policy of every request, the n-th
// redirect of which goes from from to to:
//
//   - at most maxRedirects;
//   - never from https to anything else, which would send the session (in
//     the query) or the password (in a re-sent body) in clear text;
//   - to another host only for a transfer (GET /export, PUT /import),
//     and only to a host of the pool, as host.get_address names them:
//     the session goes along in the query, and xapi redirects a transfer
//     to the pool member that sees the SR. An XML-RPC call carries the
//     password or the session in its body, and xapi answers a call meant
//     for the master with HOST_IS_SLAVE, never a redirect, so calls follow
//     redirects on the same host only.
func (c *Client) checkRedirect(ctx context.Context, what string, from, to *url.URL, n int, transfer bool) error {
	c.opts.log.Debug("redirect", "what", what, "from", from.Host, "to", to.Host, "scheme", to.Scheme)
	if n > maxRedirects {
		return fmt.Errorf("xapi: %s was redirected more than %d times", what, maxRedirects)
	}
	if from.Scheme == "https" && to.Scheme != "https" {
		return fmt.Errorf("xapi: refusing to follow a redirect of %s from https to %s://%s: the session would travel in clear text", what, to.Scheme, to.Host)
	}
	if strings.EqualFold(from.Hostname(), to.Hostname()) {
		return nil
	}
	if !transfer {
		return fmt.Errorf("xapi: refusing to follow a redirect of %s to another host, %s: it would carry the password or the session there", what, to.Host)
	}
	pool, err := c.poolHost(ctx, to.Hostname())
	if err != nil {
		return fmt.Errorf("xapi: %s was redirected to %s, and whether it is a host of the pool could not be checked: %w", what, to.Host, err)
	}
	if !pool {
		return fmt.Errorf("xapi: refusing to follow a redirect of %s to %s, which is not a host of the pool: it would carry the session there", what, to.Host)
	}
	return nil
}

// poolHost reports whether name (an address or a host name) is the
// address of a host of the pool.
func (c *Client) poolHost(ctx context.Context, name string) (bool, error) {
	v, err := c.Call(ctx, "host.get_all")
	if err != nil {
		return false, err
	}
	for _, h := range v.Strings() {
		addr, err := c.str(ctx, "host.get_address", h)
		if err != nil {
			return false, err
		}
		if strings.EqualFold(strings.Trim(addr, "[]"), name) {
			return true, nil
		}
	}
	return false, nil
}

// redact keeps session refs out of error text: they are credentials.
func redact(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		u, perr := url.Parse(ue.URL)
		if perr == nil {
			q := u.Query()
			if q.Has("session_id") {
				q.Set("session_id", "REDACTED")
				u.RawQuery = q.Encode()
			}
			ue.URL = u.String()
		}
		return ue
	}
	return err
}

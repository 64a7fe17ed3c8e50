package xapi

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// ImportOptions are the query flags of PUT /import and how to report.
type ImportOptions struct {
	SR      string // SR ref; "" imports into the pool's default SR
	Restore bool   // keep the VM's uuid and MACs
	Force   bool   // ignore checksum mismatches (xapi then keeps what it made)
	Length  int64  // body length, or -1 if unknown
	// Progress, if set, is told the bytes sent so far and the task's own
	// progress (0–1, or -1 before the task reports any).
	Progress func(sent int64, task float64)
}

// ImportResult is what an import made.
type ImportResult struct {
	VMRef   string
	VMUUID  string
	Sent    int64
	Seconds float64
}

// Import sends an XVA to PUT /import and waits for xapi's verdict, which
// comes only through the task: it creates its own task (without one xapi
// destroys the result), passes it, and waits for it.
func (c *Client) Import(ctx context.Context, body io.Reader, o ImportOptions) (*ImportResult, error) {
	start := time.Now()
	task, err := c.CreateTask(ctx, "xva upload", "VM import by xva")
	if err != nil {
		return nil, err
	}
	defer afterCancel(task.Destroy)
	q := url.Values{"session_id": {c.session}, "task_id": {task.Ref}}
	if o.SR != "" {
		q.Set("sr_id", o.SR)
	}
	if o.Restore {
		q.Set("restore", "true")
	}
	if o.Force {
		q.Set("force", "true")
	}
	u := *c.base
	u.Path, u.RawQuery = "/import", q.Encode()
	report := func(n int64) {
		if o.Progress != nil {
			o.Progress(n, -1)
		}
	}
	sent, putErr := c.put(ctx, &u, body, o.Length, report)
	if ctx.Err() != nil {
		afterCancel(task.Cancel)
		return nil, ctx.Err()
	}
	if putErr != nil && !errors.Is(putErr, errServerClosed) {
		return nil, putErr
	}
	result, err := task.Wait(ctx, func(p float64) {
		if o.Progress != nil {
			o.Progress(sent, p)
		}
	})
	if err != nil {
		if putErr != nil {
			return nil, fmt.Errorf("%w (the connection had closed after %d bytes)", err, sent)
		}
		return nil, err
	}
	refs := refsOf(result)
	if len(refs) == 0 {
		return nil, fmt.Errorf("xapi: the import task succeeded but names no VM: %q", result)
	}
	res := &ImportResult{VMRef: refs[0], Sent: sent}
	if res.VMUUID, err = c.VMUUID(ctx, refs[0]); err != nil {
		return nil, err
	}
	res.Seconds = time.Since(start).Seconds()
	return res, nil
}

// afterCancel makes a call that must run even once the work's context is
// cancelled (Ctrl-C): cancelling or destroying the task. It gets a context
// of its own, with a short deadline.
func afterCancel(call func(context.Context) error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	call(ctx)
}

// errServerClosed: the server closed the connection while the body was
// being sent. xapi does that once it has read what it needs (it never
// reads the end-of-archive blocks); the task says whether all went well.
var errServerClosed = errors.New("xapi: the server closed the connection during the upload")

// put sends body to u with PUT. It is written by hand over the connection
// because xapi needs what net/http cannot do: no chunked encoding ever (an
// unknown length is streamed and the connection half-closed), and the
// status line read before the body is sent (xapi answers 200, or a 302 to
// another host, before reading any of it).
func (c *Client) put(ctx context.Context, u *url.URL, body io.Reader, length int64, report func(int64)) (int64, error) {
	for hop := 0; ; hop++ {
		conn, br, resp, err := c.startPut(ctx, u, length)
		if err != nil {
			return 0, err
		}
		c.opts.log.Debug("PUT", "host", u.Host, "path", u.Path, "status", resp.StatusCode, "length", length)
		switch {
		case resp.StatusCode == http.StatusOK:
			defer conn.Close()
			return c.sendBody(ctx, conn, br, body, length, report)
		case isRedirect(resp.StatusCode):
			conn.Close()
			next, err := u.Parse(resp.Header.Get("Location"))
			if err != nil || next.Host == "" {
				return 0, fmt.Errorf("xapi: PUT /import redirected to %q", resp.Header.Get("Location"))
			}
			if err := c.checkRedirect(ctx, "PUT /import", u, next, hop+1, true); err != nil {
				return 0, err
			}
			// xapi copies the query into the Location: the session and
			// task go along. Keep them if a server does not.
			if next.RawQuery == "" {
				next.RawQuery = u.RawQuery
			}
			u = next
		default:
			msg, _ := io.ReadAll(io.LimitReader(br, 4096))
			conn.Close()
			return 0, httpError("PUT /import", resp, msg)
		}
	}
}

func isRedirect(code int) bool {
	return code == http.StatusFound || code == http.StatusMovedPermanently || code == http.StatusTemporaryRedirect || code == http.StatusSeeOther
}

// httpError explains a refused transfer.
func httpError(what string, resp *http.Response, body []byte) error {
	text := strings.TrimSpace(string(body))
	switch resp.StatusCode {
	case http.StatusUnauthorized:
		return &Error{Code: CodeAuthFailed, Params: []string{what + ": HTTP 401: the session is not valid here"}}
	case http.StatusForbidden:
		if strings.Contains(text, "CHUNKED") {
			return &Error{Code: "IMPORT_ERROR_CANNOT_HANDLE_CHUNKED"}
		}
		return &Error{Code: "RBAC_PERMISSION_DENIED", Params: []string{what + ": HTTP 403"}}
	}
	if len(text) > 300 {
		text = text[:300] + "…"
	}
	return fmt.Errorf("xapi: %s: HTTP %s: %s", what, resp.Status, text)
}

// startPut connects, sends the request head and reads the status.
func (c *Client) startPut(ctx context.Context, u *url.URL, length int64) (net.Conn, *bufio.Reader, *http.Response, error) {
	conn, err := c.dial(ctx, u)
	if err != nil {
		return nil, nil, nil, err
	}
	var head strings.Builder
	fmt.Fprintf(&head, "PUT %s HTTP/1.0\r\nHost: %s\r\nUser-Agent: xva\r\nConnection: close\r\n", u.RequestURI(), u.Host)
	if length >= 0 {
		fmt.Fprintf(&head, "Content-Length: %d\r\n", length)
	}
	head.WriteString("\r\n")
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	if _, err := io.WriteString(conn, head.String()); err != nil {
		conn.Close()
		return nil, nil, nil, fmt.Errorf("xapi: sending PUT %s: %w", u.Path, err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodPut})
	if err != nil {
		conn.Close()
		return nil, nil, nil, fmt.Errorf("xapi: reading the answer to PUT %s: %w", u.Path, err)
	}
	return conn, br, resp, nil
}

func (c *Client) dial(ctx context.Context, u *url.URL) (net.Conn, error) {
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), map[string]string{"https": "443", "http": "80"}[u.Scheme])
	}
	raw, err := dialTCP(ctx, c.opts.proxy, u, host)
	if err != nil {
		return nil, fmt.Errorf("xapi: connecting to %s: %w", host, err)
	}
	if u.Scheme != "https" {
		return raw, nil
	}
	tc := c.tls.Clone()
	tc.ServerName = u.Hostname()
	conn := tls.Client(raw, tc)
	if err := conn.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, fmt.Errorf("xapi: TLS with %s: %w", host, err)
	}
	return conn, nil
}

// dialTCP connects to host, through the proxy that proxyFor names for u
// (as for the XML-RPC calls): an HTTP CONNECT tunnel, so that the transfer
// is still end to end TLS with the host.
func dialTCP(ctx context.Context, proxyFor func(*http.Request) (*url.URL, error), u *url.URL, host string) (net.Conn, error) {
	proxy, err := proxyFor(&http.Request{URL: u})
	if err != nil {
		return nil, err
	}
	var d net.Dialer
	if proxy == nil {
		return d.DialContext(ctx, "tcp", host)
	}
	phost := proxy.Host
	if proxy.Port() == "" {
		port := "80"
		if proxy.Scheme == "https" {
			port = "443"
		}
		phost = net.JoinHostPort(proxy.Hostname(), port)
	}
	conn, err := d.DialContext(ctx, "tcp", phost)
	if err != nil {
		return nil, fmt.Errorf("proxy %s: %w", phost, err)
	}
	if proxy.Scheme == "https" {
		tc := tls.Client(conn, &tls.Config{ServerName: proxy.Hostname(), MinVersion: tls.VersionTLS12})
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			return nil, fmt.Errorf("proxy %s: %w", phost, err)
		}
		conn = tc
	}
	if err := connect(ctx, conn, proxy, host); err != nil {
		conn.Close()
		return nil, fmt.Errorf("proxy %s: %w", phost, err)
	}
	return conn, nil
}

// connect asks the proxy on conn for a tunnel to host.
func connect(ctx context.Context, conn net.Conn, proxy *url.URL, host string) error {
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	req := "CONNECT " + host + " HTTP/1.1\r\nHost: " + host + "\r\n"
	if proxy.User != nil {
		pw, _ := proxy.User.Password()
		req += "Proxy-Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte(proxy.User.Username()+":"+pw)) + "\r\n"
	}
	if _, err := io.WriteString(conn, req+"\r\n"); err != nil {
		return err
	}
	// Read the answer byte by byte up to its blank line: the tunnel's
	// first bytes (the host's TLS handshake) must stay in conn.
	var head []byte
	b := make([]byte, 1)
	for !bytes.HasSuffix(head, []byte("\r\n\r\n")) {
		if len(head) > 8<<10 {
			return errors.New("CONNECT answer too long")
		}
		if _, err := conn.Read(b); err != nil {
			return fmt.Errorf("CONNECT: %w", err)
		}
		head = append(head, b[0])
	}
	resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(head)), &http.Request{Method: http.MethodConnect})
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("CONNECT %s: %s", host, resp.Status)
	}
	return nil
}

// sendBody streams the body after the 200. A body of unknown length ends
// with a half-close: compressed, xapi reads until EOF.
func (c *Client) sendBody(ctx context.Context, conn net.Conn, br *bufio.Reader, body io.Reader, length int64, report func(int64)) (int64, error) {
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	cw := &countingWriter{w: conn, report: report}
	_, err := io.Copy(cw, body)
	switch {
	case ctx.Err() != nil:
		return cw.n, ctx.Err()
	case err != nil && (errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, net.ErrClosed)):
		return cw.n, errServerClosed
	case err != nil:
		return cw.n, err
	case length >= 0 && cw.n != length:
		return cw.n, fmt.Errorf("xapi: the body was %d bytes, %d were announced", cw.n, length)
	}
	halfClose(conn)
	// Wait for the server to finish with the connection, so that the task
	// is past reading when it is polled.
	conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	io.Copy(io.Discard, br)
	return cw.n, nil
}

// halfClose ends our side of the stream: TLS close_notify, then TCP FIN.
func halfClose(conn net.Conn) {
	if tc, ok := conn.(*tls.Conn); ok {
		tc.CloseWrite()
		conn = tc.NetConn()
	}
	if tcp, ok := conn.(*net.TCPConn); ok {
		tcp.CloseWrite()
	}
}

type countingWriter struct {
	w      io.Writer
	n      int64
	report func(int64)
	last   time.Time
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	if c.report != nil && time.Since(c.last) > 100*time.Millisecond {
		c.last = time.Now()
		c.report(c.n)
	}
	return n, err
}

// ExportOptions tune an export.
type ExportOptions struct {
	Compression string // "", "gzip" or "zstd": what xapi compresses the stream with
	Progress    func(received int64, task float64)
}

// ExportResult is what an export received.
type ExportResult struct {
	Received int64
	Seconds  float64
}

// Export downloads the VM with uuid from GET /export to w. Redirects to
// the host that sees the VM's SRs are followed. An error after the headers
// truncates the stream, so the task is checked at the end.
func (c *Client) Export(ctx context.Context, uuid string, w io.Writer, o ExportOptions) (*ExportResult, error) {
	start := time.Now()
	task, err := c.CreateTask(ctx, "xva export", "VM export by xva")
	if err != nil {
		return nil, err
	}
	defer afterCancel(task.Destroy)
	q := url.Values{"session_id": {c.session}, "task_id": {task.Ref}, "uuid": {uuid}}
	if o.Compression != "" {
		q.Set("use_compression", o.Compression)
	}
	u := *c.base
	u.Path, u.RawQuery = "/export", q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	hc := *c.http
	hc.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		return c.checkRedirect(req.Context(), "GET /export", via[len(via)-1].URL, req.URL, len(via), true)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("xapi: GET /export: %w", redact(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		herr := httpError("GET /export", resp, msg)
		// xapi fails the task before it answers a refusal with a 500
		// (the handler's exception goes through the task first): the
		// task's error says why in xapi's words, the page does not.
		if st, err := task.Status(ctx); err == nil && st.Status == "failure" {
			if _, terr := task.Wait(ctx, nil); terr != nil {
				return nil, exportRefused(uuid, terr)
			}
		}
		return nil, herr
	}
	cw := &countingWriter{w: w, report: func(n int64) {
		if o.Progress != nil {
			o.Progress(n, -1)
		}
	}}
	if _, err := io.Copy(cw, resp.Body); err != nil {
		if ctx.Err() != nil {
			afterCancel(task.Cancel)
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("xapi: receiving the export after %d bytes: %w", cw.n, err)
	}
	if _, err := task.Wait(ctx, func(p float64) {
		if o.Progress != nil {
			o.Progress(cw.n, p)
		}
	}); err != nil {
		if xe := (*Error)(nil); errors.As(err, &xe) && xe.Code != CodeBadPowerState {
			// The stream ended early and cleanly (xapi's HTTP/1.0 has
			// no length): the task is the only one to say it failed.
			return nil, fmt.Errorf("the host failed the export after %d bytes: %w", cw.n, err)
		}
		return nil, exportRefused(uuid, err)
	}
	return &ExportResult{Received: cw.n, Seconds: time.Since(start).Seconds()}, nil
}

// CodeBadPowerState is xapi's refusal of an operation the VM's power state
// does not allow; its parameters are the VM's ref, the states allowed and
// the state the VM is in (xen-api ocaml/xapi/xapi_vm_lifecycle.ml:288-295
// at e2ee48d6).
const CodeBadPowerState = "VM_BAD_POWER_STATE"

// exportRefused says in plain words why the host refused to export a VM,
// when it is its power state: xapi exports halted and suspended VMs only
// (xapi_vm_lifecycle.ml:86-90). The *Error stays in the chain.
func exportRefused(uuid string, err error) error {
	var xe *Error
	if errors.As(err, &xe) && xe.Code == CodeBadPowerState && len(xe.Params) >= 3 {
		return fmt.Errorf("VM %s is %s: the host exports only a VM that is %s; shut it down or suspend it first (%w)",
			uuid, xe.Params[2], strings.ReplaceAll(xe.Params[1], ", ", " or "), err)
	}
	return err
}

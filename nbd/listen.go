package nbd

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"time"
)

// Listen opens the listener a spec names: "unix:PATH" (a socket file left
// by a server that is gone is removed first; one a server still listens
// on, or a file that is not a socket, is an error) or "tcp:HOST:PORT" (HOST
// 127.0.0.1 when empty). It returns the listener and the spec of the
// address it listens on (port 0 replaced by the port given), for URI.
func Listen(spec string) (net.Listener, string, error) {
	kind, addr, ok := strings.Cut(spec, ":")
	switch {
	case ok && kind == "unix" && addr != "":
		if err := removeStale(addr); err != nil {
			return nil, "", err
		}
		l, err := net.Listen("unix", addr)
		if err != nil {
			return nil, "", err
		}
		return l, "unix:" + addr, nil
	case ok && kind == "tcp":
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, "", fmt.Errorf("nbd: listen %q: want tcp:HOST:PORT: %w", spec, err)
		}
		if host == "" {
			host = "127.0.0.1"
		}
		l, err := net.Listen("tcp", net.JoinHostPort(host, port))
		if err != nil {
			return nil, "", err
		}
		_, port, _ = net.SplitHostPort(l.Addr().String())
		return l, "tcp:" + net.JoinHostPort(host, port), nil
	}
	return nil, "", fmt.Errorf("nbd: listen %q: want unix:PATH or tcp:HOST:PORT", spec)
}

// removeStale removes a Unix socket file nobody listens on.
func removeStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.Mode().Type() != os.ModeSocket {
		return fmt.Errorf("nbd: %s exists and is not a socket", path)
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		c.Close()
		return fmt.Errorf("nbd: %s: a server is listening on it", path)
	}
	return os.Remove(path)
}

// URI is the NBD URI of an export served on the address spec names
// (as Listen takes or returns it): nbd+unix:///NAME?socket=PATH or
// nbd://HOST:PORT/NAME, nbds+unix and nbds with TLS (the NBD URI
// specification, doc/uri.md of the same repository).
func URI(spec, export string, tls bool) string {
	s := ""
	if tls {
		s = "s"
	}
	name := (&url.URL{Path: export}).EscapedPath()
	if path, ok := strings.CutPrefix(spec, "unix:"); ok {
		return "nbd" + s + "+unix:///" + name + "?socket=" + escapeQuery(path)
	}
	addr := strings.TrimPrefix(spec, "tcp:")
	if host, port, err := net.SplitHostPort(addr); err == nil {
		if host == "" {
			host = "127.0.0.1"
		}
		addr = net.JoinHostPort(host, port)
	}
	return "nbd" + s + "://" + addr + "/" + name
}

// escapeQuery percent-encodes a query value, leaving the characters a path
// usually holds (letters, digits, "/-._~:@,") as they are, for legibility.
func escapeQuery(v string) string {
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		c := v[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("/-._~:@,", c) >= 0 {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "%%%02X", c)
	}
	return b.String()
}

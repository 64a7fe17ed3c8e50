package xapitest

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
)

// Proxy is an HTTP CONNECT proxy that sends every tunnel to one address,
// whatever host was asked for: with a certificate for *.example.com (as
// httptest's is), https://xenserver.example.com reaches the fake pool.
type Proxy struct {
	*httptest.Server
	Target  string       // host:port every tunnel goes to
	Tunnels atomic.Int32 // CONNECTs served
}

// NewProxy starts a proxy in front of target.
func NewProxy(target string) *Proxy {
	p := &Proxy{Target: target}
	p.Server = httptest.NewServer(http.HandlerFunc(p.serve))
	return p
}

func (p *Proxy) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodConnect {
		http.Error(w, "CONNECT only", http.StatusMethodNotAllowed)
		return
	}
	up, err := net.Dial("tcp", p.Target)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		up.Close()
		return
	}
	p.Tunnels.Add(1)
	io.WriteString(conn, "HTTP/1.1 200 Connection established\r\n\r\n")
	var wg sync.WaitGroup
	wg.Add(2)
	// Each direction passes its end on as a half-close, as real proxies
	// do: an upload of unknown length ends that way.
	go func() { defer wg.Done(); io.Copy(up, brw); closeWrite(up) }()
	go func() { defer wg.Done(); io.Copy(conn, up); closeWrite(conn) }()
	wg.Wait()
	up.Close()
	conn.Close()
}

func closeWrite(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.CloseWrite()
	}
}

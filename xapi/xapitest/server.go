// Package xapitest is an in-process pool for tests: a model of what a
// XenServer / XCP-ng pool master does with the calls and transfers xva
// makes, written from xen-api's source (see import.go for the import and
// the commit it was read at). It serves XML-RPC sessions and tasks, hosts
// with their software versions and addresses, networks and VIF.create;
// PUT /import as xapi's importer does it (403 on chunked encoding, 200
// before the body, records decoded with the datamodel table, the class
// handlers and their checks, the disks streamed by recv_all_vdi); optional
// 302 redirects to the member and HOST_IS_SLAVE with a bare address; and
// GET /export of a stored VM. It records the VMs it made and their disks.
//
// It reads tar with archive/tar, not xva's reader, so that it does not
// share that reader's mistakes.
//
// It may import ova only; only tests import it.
package xapitest

import (
	"compress/gzip"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/xva-tools/xva/ova"
)

// Server is the fake pool: a master, and a member listening apart that
// shares its sessions and tasks, as a pool does.
type Server struct {
	*httptest.Server                  // the master
	Member           *httptest.Server // a pool member: logins there answer HOST_IS_SLAVE
	User, Password   string
	// RedirectImport makes the master answer PUT /import with a 302 to the
	// member, as xapi does when another host sees the SR.
	RedirectImport bool
	// SlowRead delays every read of an import's body, to keep an upload
	// going while a test interrupts it.
	SlowRead time.Duration
	// DropAfter, when positive, closes an import's connection after that
	// many body bytes.
	DropAfter int64
	// Versions are the xapi versions (software_version's "xapi" key,
	// MAJOR.MINOR) of the master and the member. An import of an archive
	// whose version block is newer than the host is refused; a host that
	// says 1.x with x below 250 reads only .checksum members (see
	// streamer.readsXXHash).
	Versions [2]string
	// SRs maps SR uuids to refs; DefaultSR is the pool's.
	SRs       map[string]string
	DefaultSR string
	// Exports maps VM uuids to the archive bytes GET /export serves.
	Exports map[string][]byte
	// PoolVMs are the VMs VM.get_all_records returns (see pool.go); an
	// export of one that is neither halted nor suspended is refused.
	PoolVMs []PoolVM
	// FailExport maps VM uuids to a byte count: the export of that VM
	// fails on the host after that many bytes (see pool.go).
	FailExport map[string]int64
	// ExportDelay holds each export before its first byte, so that
	// concurrent ones overlap.
	ExportDelay time.Duration

	masterAddr, memberAddr string // the hosts' addresses, bare

	mu       sync.Mutex
	sessions map[string]bool
	tasks    map[string]*task
	vms      []VM
	networks []Network
	logins   int
	logouts  int
	imports  int
	next     int
	// exporting counts the exports in flight; exportPeak is its maximum.
	exporting, exportPeak int
}

type task struct {
	status    string
	progress  float64
	result    string
	errorInfo []string
	destroyed bool
}

// New starts a fake pool over TLS: the master on 127.0.0.1 and a member
// on 127.0.0.2, both on one port as a real pool's hosts are, so that the
// bare address HOST_IS_SLAVE carries reaches the master on the port the
// client used.
func New() *Server { return newPool("127.0.0.1", "127.0.0.2") }

// NewIPv6 starts a fake pool whose master is at ::1 (the member stays on
// 127.0.0.1): HOST_IS_SLAVE then carries a bare IPv6 literal, as xapi
// sends it. It fails when the machine has no IPv6 loopback.
func NewIPv6() (*Server, error) {
	l, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		return nil, fmt.Errorf("xapitest: no IPv6 loopback: %w", err)
	}
	l.Close()
	return newPool("::1", "127.0.0.1"), nil
}

func newPool(master, member string) *Server {
	s := &Server{User: "root", Password: "secret", Versions: [2]string{"25.6", "25.6"},
		SRs: map[string]string{}, Exports: map[string][]byte{}, FailExport: map[string]int64{},
		sessions: map[string]bool{}, tasks: map[string]*task{}}
	s.SRs["11111111-2222-3333-4444-555555555555"] = "OpaqueRef:sr-local"
	s.DefaultSR = "OpaqueRef:sr-local"
	s.networks = []Network{{Ref: "OpaqueRef:network-0", UUID: "22222222-3333-4444-5555-666666666666",
		Name: "Pool-wide network associated with eth0", Bridge: "xenbr0", MTU: 1500}}
	s.masterAddr, s.memberAddr = master, member
	ml, bl := samePort(master, member)
	s.Server = startTLS(ml, s.serve)
	s.Member = startTLS(bl, s.serve)
	return s
}

// samePort listens on master and member addresses with one port number.
func samePort(master, member string) (net.Listener, net.Listener) {
	for range 100 {
		bl, err := net.Listen("tcp", net.JoinHostPort(member, "0"))
		if err != nil {
			panic("xapitest: " + err.Error())
		}
		port := strconv.Itoa(bl.Addr().(*net.TCPAddr).Port)
		ml, err := net.Listen("tcp", net.JoinHostPort(master, port))
		if err == nil {
			return ml, bl
		}
		bl.Close()
	}
	panic("xapitest: found no port free on both " + master + " and " + member)
}

func startTLS(l net.Listener, h http.HandlerFunc) *httptest.Server {
	srv := httptest.NewUnstartedServer(h)
	srv.Listener.Close()
	srv.Listener = l
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{poolCert()}}
	srv.StartTLS()
	return srv
}

var (
	certOnce sync.Once
	cert     tls.Certificate
)

// poolCert is a self-signed certificate for every address the fake pool
// listens on.
func poolCert() tls.Certificate {
	certOnce.Do(func() {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			panic(err)
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "xapitest pool"},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
			KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, BasicConstraintsValid: true, IsCA: true,
			IPAddresses: []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("127.0.0.2"), net.IPv6loopback},
			DNSNames:    []string{"localhost", "example.com", "*.example.com"},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		if err != nil {
			panic(err)
		}
		cert = tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	})
	return cert
}

// Close stops both listeners.
func (s *Server) Close() {
	s.Server.Close()
	s.Member.Close()
}

func (s *Server) onMember(r *http.Request) bool {
	return strings.TrimPrefix(s.Member.URL, "https://") == r.Host
}

func (s *Server) ref(kind string) string {
	s.next++
	return fmt.Sprintf("OpaqueRef:%s-%04d", kind, s.next)
}

// VMs returns the VMs imported so far.
func (s *Server) VMs() []VM {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.vms)
}

// Counts returns logins, logouts and live (not destroyed) tasks.
func (s *Server) Counts() (logins, logouts, liveTasks int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range s.tasks {
		if !t.destroyed {
			liveTasks++
		}
	}
	return s.logins, s.logouts, liveTasks
}

// Imports counts PUT /import requests that reached the body.
func (s *Server) Imports() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.imports
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == http.MethodPost && (r.URL.Path == "/" || r.URL.Path == "/RPC2"):
		s.rpc(w, r)
	case r.Method == http.MethodPut && strings.HasPrefix(r.URL.Path, "/import"):
		s.putImport(w, r)
	case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/export"):
		s.getExport(w, r)
	case r.Method == http.MethodPost && strings.HasPrefix(r.URL.Path, "/import"):
		// xapi has no POST /import: the request lands in the XML-RPC
		// handler, which cannot make sense of it.
		http.Error(w, "not an XML-RPC call", http.StatusInternalServerError)
	default:
		http.Error(w, "no such handler", http.StatusNotImplemented)
	}
}

// XML-RPC ---------------------------------------------------------------

var (
	methodRe = regexp.MustCompile(`<methodName>([^<]*)</methodName>`)
	paramRe  = regexp.MustCompile(`(?s)<param>\s*(<value>.*?</value>)\s*</param>`)
)

func (s *Server) rpc(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	m := methodRe.FindSubmatch(body)
	if m == nil {
		http.Error(w, "no methodName", http.StatusBadRequest)
		return
	}
	var params []*ova.Value
	for _, p := range paramRe.FindAllSubmatch(body, -1) {
		v, err := ova.ParseValue(p[1])
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		params = append(params, v)
	}
	s.mu.Lock()
	var value *ova.Value
	var fail []string
	if string(m[1]) == "session.login_with_password" && s.onMember(r) {
		// The master's address, bare, as xapi gives it (Pool_role's
		// "slave:ADDRESS"): an IP literal with neither port nor brackets.
		fail = []string{"HOST_IS_SLAVE", s.masterAddr}
	} else {
		value, fail = s.call(string(m[1]), params)
	}
	s.mu.Unlock()
	var resp *ova.Value
	if fail != nil {
		resp = ova.NewStruct(ova.Member{Name: "Status", Value: ova.NewString("Failure")},
			ova.Member{Name: "ErrorDescription", Value: ova.NewStrings(fail...)})
	} else {
		resp = ova.NewStruct(ova.Member{Name: "Status", Value: ova.NewString("Success")},
			ova.Member{Name: "Value", Value: value})
	}
	w.Header().Set("Content-Type", "text/xml")
	fmt.Fprintf(w, `<?xml version="1.0"?><methodResponse><params><param>%s</param></params></methodResponse>`, resp.Marshal())
}

func str(params []*ova.Value, i int) string {
	if i < len(params) {
		return params[i].Str()
	}
	return ""
}

// call runs one method, with s.mu held. It returns a value or an error
// description.
func (s *Server) call(method string, p []*ova.Value) (*ova.Value, []string) {
	if method == "session.login_with_password" {
		if str(p, 0) != s.User || str(p, 1) != s.Password {
			return nil, []string{"SESSION_AUTHENTICATION_FAILED", str(p, 0), "Authentication failure"}
		}
		ref := s.ref("session")
		s.sessions[ref] = true
		s.logins++
		return ova.NewString(ref), nil
	}
	if !s.sessions[str(p, 0)] {
		return nil, []string{"SESSION_INVALID", str(p, 0)}
	}
	switch method {
	case "session.logout":
		delete(s.sessions, str(p, 0))
		s.logouts++
		return ova.NewString(""), nil
	case "task.create":
		ref := s.ref("task")
		s.tasks[ref] = &task{status: "pending", progress: -1}
		return ova.NewString(ref), nil
	case "SR.get_by_uuid":
		if ref, ok := s.SRs[str(p, 1)]; ok {
			return ova.NewString(ref), nil
		}
		return nil, []string{"UUID_INVALID", "SR", str(p, 1)}
	case "VM.get_by_uuid", "VM.get_uuid":
		for _, vm := range s.vms {
			if vm.UUID == str(p, 1) && method == "VM.get_by_uuid" {
				return ova.NewString(vm.Ref), nil
			}
			if vm.Ref == str(p, 1) && method == "VM.get_uuid" {
				return ova.NewString(vm.UUID), nil
			}
		}
		return nil, []string{"UUID_INVALID", "VM", str(p, 1)}
	case "pool.get_all":
		return ova.NewStrings("OpaqueRef:pool"), nil
	case "host.get_all":
		return ova.NewStrings("OpaqueRef:host-master", "OpaqueRef:host-member"), nil
	case "host.get_address":
		switch str(p, 1) {
		case "OpaqueRef:host-master":
			return ova.NewString(s.masterAddr), nil
		case "OpaqueRef:host-member":
			return ova.NewString(s.memberAddr), nil
		}
		return nil, []string{"HANDLE_INVALID", "host", str(p, 1)}
	case "network.get_by_uuid", "network.get_by_name_label", "network.get_MTU":
		return s.networkCall(method, str(p, 1))
	case "VM.get_VIFs":
		for _, vm := range s.vms {
			if vm.Ref == str(p, 1) {
				refs := []string{}
				for _, v := range vm.VIFs {
					refs = append(refs, vm.Ref+"/vif"+v.Device)
				}
				return ova.NewStrings(refs...), nil
			}
		}
		return nil, []string{"HANDLE_INVALID", "VM", str(p, 1)}
	case "VIF.create":
		return s.vifCreate(p)
	case "VIF.get_device":
		// The fake's VIF refs are VM/vifDEVICE.
		if i := strings.LastIndex(str(p, 1), "/vif"); i >= 0 {
			return ova.NewString(str(p, 1)[i+4:]), nil
		}
		return nil, []string{"HANDLE_INVALID", "VIF", str(p, 1)}
	case "host.get_software_version":
		// Xapi_globs.software_version: "xapi" is MAJOR.MINOR.
		i := map[string]int{"OpaqueRef:host-master": 0, "OpaqueRef:host-member": 1}
		h, ok := i[str(p, 1)]
		if !ok {
			return nil, []string{"HANDLE_INVALID", "host", str(p, 1)}
		}
		return ova.NewMap(map[string]string{"xapi": s.Versions[h], "product_brand": "XCP-ng", "hostname": "xapitest"}), nil
	case "pool.get_default_SR":
		return ova.NewString(s.DefaultSR), nil
	case "VM.get_all_records":
		return s.vmRecords(), nil
	}
	if strings.HasPrefix(method, "task.") {
		t, ok := s.tasks[str(p, 1)]
		if !ok || t.destroyed {
			return nil, []string{"HANDLE_INVALID", "task", str(p, 1)}
		}
		switch method {
		case "task.get_status":
			return ova.NewString(t.status), nil
		case "task.get_progress":
			return ova.NewDouble(t.progress), nil
		case "task.get_result":
			return ova.NewString(t.result), nil
		case "task.get_error_info":
			return ova.NewStrings(t.errorInfo...), nil
		case "task.cancel":
			if t.status == "pending" {
				t.status, t.errorInfo = "cancelled", []string{"TASK_CANCELLED", str(p, 1)}
			}
			return ova.NewString(""), nil
		case "task.destroy":
			t.destroyed = true
			return ova.NewString(""), nil
		}
	}
	return nil, []string{"MESSAGE_METHOD_UNKNOWN", method}
}

func (s *Server) networkCall(method, arg string) (*ova.Value, []string) {
	var refs []string
	for _, n := range s.networks {
		switch {
		case method == "network.get_by_uuid" && n.UUID == arg:
			return ova.NewString(n.Ref), nil
		case method == "network.get_MTU" && n.Ref == arg:
			return ova.NewInt(n.MTU), nil
		case method == "network.get_by_name_label" && n.Name == arg:
			refs = append(refs, n.Ref)
		}
	}
	if method == "network.get_by_name_label" {
		return ova.NewStrings(refs...), nil
	}
	return nil, []string{"UUID_INVALID", "network", arg}
}

// vifCreate is VIF.create: its record decoded as the datamodel's
// constructor arguments are (a field without a default must be there),
// then Xapi_vif_helpers.create's checks.
func (s *Server) vifCreate(p []*ova.Value) (*ova.Value, []string) {
	if len(p) < 2 || p[1].Kind != ova.Struct {
		return nil, []string{"FIELD_TYPE_ERROR", "args"}
	}
	rec := p[1]
	for _, f := range []string{"device", "network", "VM", "MAC", "MTU", "other_config", "qos_algorithm_type", "qos_algorithm_params"} {
		if rec.Field(f) == nil {
			// The dispatcher's Dispatcher_FieldNotFound, as the client
			// sees it (server_helpers.ml:23-25).
			return nil, []string{"INTERNAL_ERROR", "Dispatcher_FieldNotFound(\"" + f + "\")"}
		}
	}
	net := rec.Field("network").Str()
	if !slices.ContainsFunc(s.networks, func(n Network) bool { return n.Ref == net }) {
		return nil, []string{"HANDLE_INVALID", "network", net}
	}
	for i := range s.vms {
		vm := &s.vms[i]
		if vm.Ref != rec.Field("VM").Str() {
			continue
		}
		mtu, _ := ova.OCamlInt64(rec.Field("MTU").Str())
		v, err := s.createVIF(vm, rec.Field("device").Str(), net, rec.Field("MAC").Str(), mtu)
		if err != nil {
			return nil, err.(*ImportError).Info
		}
		vm.VIFs = append(vm.VIFs, v)
		return ova.NewString(vm.Ref + "/vif" + v.Device), nil
	}
	return nil, []string{"HANDLE_INVALID", "VM", rec.Field("VM").Str()}
}

// Networks returns the pool's networks.
func (s *Server) Networks() []Network {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.networks)
}

// checkHTTP authenticates an HTTP handler's request: session_id from the
// cookie first, then the query, and the task it names.
func (s *Server) checkHTTP(r *http.Request) (*task, int) {
	session := r.URL.Query().Get("session_id")
	if c, err := r.Cookie("session_id"); err == nil {
		session = c.Value
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.sessions[session] {
		return nil, http.StatusUnauthorized
	}
	t := s.tasks[r.URL.Query().Get("task_id")]
	if t == nil {
		// Without task_id xapi makes its own and destroys it at the end:
		// the result is lost. Be as unforgiving as that.
		t = &task{status: "pending", destroyed: true}
	}
	return t, 0
}

func (s *Server) finish(t *task, result string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t.status != "pending" {
		return
	}
	if err != nil {
		var ie *ImportError
		if errors.As(err, &ie) {
			t.errorInfo = ie.Info
		} else {
			t.errorInfo = []string{"IMPORT_ERROR", err.Error()}
		}
		t.status = "failure"
		return
	}
	t.status, t.result, t.progress = "success", result, 1
}

// ImportError is a failure in xapi's words: its error code and parameters.
type ImportError struct{ Info []string }

func (e *ImportError) Error() string { return strings.Join(e.Info, " ") }

// Code is the error code.
func (e *ImportError) Code() string { return e.Info[0] }

func failure(info ...string) error { return &ImportError{Info: info} }

// PUT /import ------------------------------------------------------------

func (s *Server) putImport(w http.ResponseWriter, r *http.Request) {
	t, status := s.checkHTTP(r)
	if status != 0 {
		w.Header().Set("WWW-Authenticate", `Basic realm="xapi"`)
		http.Error(w, "session invalid", status)
		return
	}
	if s.RedirectImport && !s.onMember(r) {
		http.Redirect(w, r, s.Member.URL+r.URL.RequestURI(), http.StatusFound)
		return
	}
	q := r.URL.Query()
	sr := s.DefaultSR
	if id := q.Get("sr_id"); id != "" {
		sr = id
	}
	if !slices.Contains(mapValues(s.SRs), sr) {
		// An SR no host can see: Xapi_vm_helpers.find_host_for_sr
		// (import.ml:2656-2658, xapi_vm_helpers.ml:831).
		s.finish(t, "", failure("NO_HOSTS_AVAILABLE"))
		http.Error(w, "unknown SR", http.StatusInternalServerError)
		return
	}
	if len(r.TransferEncoding) > 0 {
		s.finish(t, "", failure("IMPORT_ERROR_CANNOT_HANDLE_CHUNKED"))
		http.Error(w, "IMPORT_ERROR_CANNOT_HANDLE_CHUNKED", http.StatusForbidden)
		return
	}
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	defer conn.Close()
	// The answer comes before any of the body is read, as xapi does.
	fmt.Fprintf(brw, "HTTP/1.1 200 OK\r\nConnection: close\r\nCache-Control: no-cache, no-store\r\ntask-id:%s\r\ncontent-type: application/octet-stream\r\n\r\n", "task")
	brw.Flush()
	s.mu.Lock()
	s.imports++
	s.mu.Unlock()
	var body io.Reader = brw.Reader
	if r.ContentLength > 0 {
		body = io.LimitReader(body, r.ContentLength)
	}
	if s.DropAfter > 0 {
		body = &dropper{r: body, left: s.DropAfter, conn: conn}
	}
	if s.SlowRead > 0 {
		body = &slow{r: body, d: s.SlowRead}
	}
	host := 0
	if s.onMember(r) {
		host = 1
	}
	vm, err := s.Import(body, host, q.Get("restore") == "true", q.Get("force") == "true")
	if err == nil {
		refs := ""
		if vm != nil {
			refs = "<value>" + vm.Ref + "</value>"
		}
		s.finish(t, "<value><array><data>"+refs+"</data></array></value>", nil)
	} else {
		s.finish(t, "", err)
	}
	// xapi never reads the end-of-archive blocks: close without them.
}

// Import imports the archive read from body as host (0 the master, 1 the
// member) would, without HTTP, and keeps the VM it makes. A refusal is an
// *ImportError in xapi's words.
func (s *Server) Import(body io.Reader, host int, restore, force bool) (*VM, error) {
	vm, err := s.receive(body, host, restore, force)
	if err != nil || vm == nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	vm.Ref = s.ref("vm")
	s.vms = append(s.vms, *vm)
	return vm, nil
}

func mapValues(m map[string]string) []string {
	var v []string
	for _, x := range m {
		v = append(v, x)
	}
	return v
}

type slow struct {
	r io.Reader
	d time.Duration
}

func (s *slow) Read(p []byte) (int, error) {
	time.Sleep(s.d)
	return s.r.Read(p[:min(len(p), 64<<10)])
}

type dropper struct {
	r    io.Reader
	left int64
	conn net.Conn
}

func (d *dropper) Read(p []byte) (int, error) {
	if d.left <= 0 {
		d.conn.Close()
		return 0, errors.New("connection dropped by the fake")
	}
	if int64(len(p)) > d.left {
		p = p[:d.left]
	}
	n, err := d.r.Read(p)
	d.left -= int64(n)
	return n, err
}

// GET /export ------------------------------------------------------------

// SetFailExport makes the export of the VM uuid fail after n bytes; tests
// set it through here, under the lock the handlers read it with.
func (s *Server) SetFailExport(uuid string, n int64) {
	s.mu.Lock()
	s.FailExport[uuid] = n
	s.mu.Unlock()
}

// SetExportDelay holds each export d before its first byte.
func (s *Server) SetExportDelay(d time.Duration) {
	s.mu.Lock()
	s.ExportDelay = d
	s.mu.Unlock()
}

func (s *Server) getExport(w http.ResponseWriter, r *http.Request) {
	t, status := s.checkHTTP(r)
	if status != 0 {
		http.Error(w, "session invalid", status)
		return
	}
	uuid := r.URL.Query().Get("uuid")
	s.mu.Lock()
	archive, ok := s.Exports[uuid]
	failAt, fail := s.FailExport[uuid]
	refusal := s.exportRefusal(uuid)
	delay := s.ExportDelay
	s.mu.Unlock()
	if !ok {
		s.finish(t, "", failure("UUID_INVALID", "VM", uuid))
		http.Error(w, "no such VM", http.StatusInternalServerError)
		return
	}
	if refusal != nil {
		// Export.handler takes the VM's lock (with_vm_locked, export.ml:
		// 1012), whose check fails before any header is sent: the task
		// fails with the error, and Http_svr.handle_one answers the
		// exception with a 500 (http_svr.ml:562-564).
		s.finish(t, "", refusal)
		http.Error(w, "HTTP 500 internal server error: "+refusal.Error(), http.StatusInternalServerError)
		return
	}
	s.exportStarted()
	defer s.exportEnded()
	time.Sleep(delay)
	if fail {
		s.failExport(w, t, archive, failAt)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", `attachment; filename="export.xva"`)
	var out io.Writer = w
	var closer io.Closer
	switch r.URL.Query().Get("use_compression") {
	case "zstd":
		e, _ := zstd.NewWriter(w)
		out, closer = e, e
	case "true", "gzip":
		g := gzip.NewWriter(w)
		out, closer = g, g
	}
	out.Write(archive)
	if closer != nil {
		closer.Close()
	}
	s.finish(t, "", nil)
}

// Package xapitest is an in-process fake pool master for tests. It behaves
// as xapi does where clients go wrong: XML-RPC sessions and tasks, PUT
// /import read exactly as xapi's Stream_vdi.recv_all_vdi reads it (first
// member ova.xml, disks in lexicographic order of their ids, blocks placed
// by running offset sized by the first block of the archive, a hash check
// per block, data members in whole sectors, 403 on chunked encoding, 200
// before the body), optional 302 redirects and HOST_IS_SLAVE, and GET
// /export of a stored VM. It records what it received.
//
// It reads tar with archive/tar and ova.xml with its own checks, so that
// it does not share xva's reader's mistakes.
package xapitest

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
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

	"github.com/cespare/xxhash/v2"
	"github.com/klauspost/compress/zstd"

	"github.com/xva-tools/xva/ova"
)

// Disk is a disk an import wrote.
type Disk struct {
	VDI      string // id in the archive
	Size     int64
	SHA256   string // of the whole disk, zeros included
	DataSent int64  // bytes of blocks received
}

// VM is a VM an import created.
type VM struct {
	Ref, UUID, Name string
	Disks           []Disk
}

// Server is the fake pool: a master, and a member listening apart that
// shares its sessions and tasks, as a pool does.
type Server struct {
	*httptest.Server                  // the master
	Member           *httptest.Server // a pool member: logins there answer HOST_IS_SLAVE
	User, Password   string
	// XapiMajor and XapiMinor are this host's version: newer archives are
	// refused, as Importexport.assert_compatible does.
	XapiMajor, XapiMinor int
	// RedirectImport makes the master answer PUT /import with a 302 to the
	// member, as xapi does when another host sees the SR.
	RedirectImport bool
	// SlowRead delays every read of an import's body, to keep an upload
	// going while a test interrupts it.
	SlowRead time.Duration
	// DropAfter, when positive, closes an import's connection after that
	// many body bytes.
	DropAfter int64
	// Versions are the xapi versions (software_version's "xapi" key) of
	// the master and the member. One older than 1.170 reads only .checksum
	// members, as xapi did before xen-api commit c5c703aa.
	Versions [2]string
	// SRs maps SR uuids to refs; DefaultSR is the pool's.
	SRs       map[string]string
	DefaultSR string
	// Exports maps VM uuids to the archive bytes GET /export serves.
	Exports map[string][]byte

	masterAddr string // the master's address, bare

	mu       sync.Mutex
	sessions map[string]bool
	tasks    map[string]*task
	vms      []VM
	logins   int
	logouts  int
	imports  int
	next     int
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
	s := &Server{User: "root", Password: "secret", XapiMajor: 1, XapiMinor: 20, Versions: [2]string{"25.6", "25.6"},
		SRs: map[string]string{}, Exports: map[string][]byte{},
		sessions: map[string]bool{}, tasks: map[string]*task{}}
	s.SRs["11111111-2222-3333-4444-555555555555"] = "OpaqueRef:sr-local"
	s.DefaultSR = "OpaqueRef:sr-local"
	s.masterAddr = master
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
		var ie *importError
		if errors.As(err, &ie) {
			t.errorInfo = ie.info
		} else {
			t.errorInfo = []string{"IMPORT_ERROR_GENERIC", err.Error()}
		}
		t.status = "failure"
		return
	}
	t.status, t.result, t.progress = "success", result, 1
}

// importError is a failure with xapi's own error code.
type importError struct{ info []string }

func (e *importError) Error() string { return strings.Join(e.info, " ") }

func failure(info ...string) error { return &importError{info} }

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
		s.finish(t, "", failure("SR_NOT_FOUND", sr))
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
	vm, err := s.receive(body, q.Get("restore") == "true", q.Get("force") == "true")
	if err == nil {
		s.mu.Lock()
		vm.Ref = s.ref("vm")
		s.vms = append(s.vms, *vm)
		s.mu.Unlock()
		s.finish(t, fmt.Sprintf("<value><array><data><value>%s</value></data></array></value>", vm.Ref), nil)
	} else {
		s.finish(t, "", err)
	}
	// xapi never reads the end-of-archive blocks: close without them.
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

// open recognises the stream as xapi's Import.with_open_archive does: a
// tar header named ova.xml, else zstd by its magic, else gzip.
func open(r io.Reader) (io.Reader, error) {
	br := bufio.NewReaderSize(r, 1<<16)
	first, err := br.Peek(512)
	if err != nil {
		return nil, failure("IMPORT_ERROR_PREMATURE_EOF")
	}
	if string(bytes.TrimRight(first[:100], "\x00")) == "ova.xml" {
		return br, nil
	}
	if bytes.HasPrefix(first, []byte{0x28, 0xb5, 0x2f, 0xfd}) {
		d, err := zstd.NewReader(br)
		if err != nil {
			return nil, err
		}
		return d.IOReadCloser(), nil
	}
	return gzip.NewReader(br)
}

// receive reads an archive as xapi does and returns the VM it would make.
func (s *Server) receive(body io.Reader, restore, force bool) (*VM, error) {
	stream, err := open(body)
	if err != nil {
		return nil, err
	}
	tr := tar.NewReader(stream)
	h, err := tr.Next()
	if err != nil {
		return nil, failure("IMPORT_ERROR_PREMATURE_EOF")
	}
	if h.Name != "ova.xml" {
		return nil, failure("IMPORT_ERROR_UNEXPECTED_FILE", "ova.xml", h.Name)
	}
	doc, err := io.ReadAll(tr)
	if err != nil {
		return nil, failure("IMPORT_ERROR_PREMATURE_EOF")
	}
	vm, vdis, err := s.metadata(doc, restore)
	if err != nil {
		return nil, err
	}
	firstlen := int64(-1)
	for _, v := range vdis {
		d, err := recvVDI(tr, v.id, v.size, &firstlen, force)
		if err != nil {
			return nil, err
		}
		vm.Disks = append(vm.Disks, *d)
	}
	return vm, nil
}

type vdiInfo struct {
	id   string
	size int64
}

// metadata checks ova.xml as xapi's import does and returns the VM and the
// VDIs whose blocks follow, in the order they must come.
func (s *Server) metadata(doc []byte, restore bool) (*VM, []vdiInfo, error) {
	root, err := ova.ParseValue(doc)
	if err != nil {
		return nil, nil, failure("IMPORT_ERROR_GENERIC", "XML-RPC parse error: "+err.Error())
	}
	version := root.Field("version")
	for _, f := range []string{"hostname", "date", "product_version", "product_brand", "build_number", "xapi_major", "xapi_minor"} {
		if version.Field(f) == nil {
			return nil, nil, failure("IMPORT_ERROR_GENERIC", "Failure(\"Field "+f+" not present in rpc\")")
		}
	}
	vsn, _ := version.Field("export_vsn").Int64() // missing reads as 0
	if vsn != 2 {
		return nil, nil, failure("IMPORT_ERROR_GENERIC", fmt.Sprintf("export_vsn %d is not supported by this fake", vsn))
	}
	major, _ := version.Field("xapi_major").Int64()
	minor, _ := version.Field("xapi_minor").Int64()
	if major > int64(s.XapiMajor) || major == int64(s.XapiMajor) && minor > int64(s.XapiMinor) {
		return nil, nil, failure("IMPORT_INCOMPATIBLE_VERSION")
	}
	objs := map[string]*ova.Value{}
	classes := map[string]string{}
	var vmID string
	for _, o := range root.Field("objects").Items {
		id, class := o.Field("id").Str(), o.Field("class").Str()
		objs[id], classes[id] = o.Field("snapshot"), class
		if class == "VM" && vmID == "" {
			vmID = id
		}
	}
	if vmID == "" {
		return nil, nil, failure("IMPORT_ERROR_GENERIC", "no VM in the archive")
	}
	// bool_of_rpc refuses anything but <boolean>.
	boolFields := map[string][]string{
		"VM":  {"is_a_template", "is_control_domain", "is_a_snapshot", "ha_always_run"},
		"VBD": {"bootable", "unpluggable", "storage_lock", "empty", "currently_attached"},
		"VDI": {"sharable", "read_only", "storage_lock", "managed", "missing", "is_a_snapshot"},
		"SR":  {"shared"},
	}
	for id, class := range classes {
		for _, f := range boolFields[class] {
			if v := objs[id].Field(f); v == nil || v.Kind != ova.Bool {
				return nil, nil, failure("IMPORT_ERROR_GENERIC", fmt.Sprintf("%s %s: field %s is not a <boolean>", class, id, f))
			}
		}
	}
	vmRec := objs[vmID]
	vm := &VM{UUID: vmRec.Field("uuid").Str(), Name: vmRec.Field("name_label").Str()}
	if !restore {
		vm.UUID = fmt.Sprintf("fa4e0000-0000-4000-8000-%012d", time.Now().UnixNano()%1e12)
	}
	var vdis []vdiInfo
	for id, class := range classes {
		if class != "VBD" {
			continue
		}
		vbd := objs[id]
		if vbd.Field("VM").Str() != vmID || strings.EqualFold(vbd.Field("type").Str(), "CD") {
			continue
		}
		if b, _ := vbd.Field("empty").Bool(); b {
			continue
		}
		vdiID := vbd.Field("VDI").Str()
		vdi, ok := objs[vdiID]
		if !ok || classes[vdiID] != "VDI" {
			return nil, nil, failure("IMPORT_ERROR_FAILED_TO_FIND_OBJECT", vdiID)
		}
		srID := vdi.Field("SR").Str()
		if classes[srID] != "SR" {
			return nil, nil, failure("IMPORT_ERROR_FAILED_TO_FIND_OBJECT", srID)
		}
		if objs[srID].Field("content_type").Str() == "iso" {
			continue
		}
		size, err := vdi.Field("virtual_size").Int64()
		if err != nil {
			return nil, nil, failure("IMPORT_ERROR_GENERIC", "virtual_size of "+vdiID)
		}
		vdis = append(vdis, vdiInfo{vdiID, size})
	}
	// Stream_vdi.for_each_vdi: compare on the id string.
	slices.SortFunc(vdis, func(a, b vdiInfo) int { return strings.Compare(a.id, b.id) })
	return vm, vdis, nil
}

// recvVDI is Stream_vdi.recv_all_vdi for one VDI: the gap before a block
// is (number − last − 1) × firstlen, firstlen being the size of the very
// first data member of the import.
func recvVDI(tr *tar.Reader, prefix string, size int64, firstlen *int64, force bool) (*Disk, error) {
	h := sha256.New()
	var pos, data int64
	last := "-1"
	zeros := make([]byte, 1<<20)
	fill := func(n int64) {
		for n > 0 {
			c := min(n, int64(len(zeros)))
			h.Write(zeros[:c])
			n -= c
		}
	}
	for pos < size {
		hd, err := tr.Next()
		if err != nil {
			return nil, failure("IMPORT_ERROR_PREMATURE_EOF")
		}
		if *firstlen < 0 {
			*firstlen = hd.Size
		}
		if !strings.HasPrefix(hd.Name, prefix) || len(hd.Name) <= len(prefix) {
			return nil, failure("IMPORT_ERROR_GENERIC", "Invalid XVA file: "+hd.Name+" is not a block of "+prefix)
		}
		suffix := hd.Name[len(prefix)+1:]
		if !(suffix > last) {
			return nil, failure("IMPORT_ERROR_GENERIC", "Invalid XVA file: "+hd.Name+" does not follow "+last)
		}
		if hd.Size%512 != 0 {
			// xapi reads the next header before skipping the padding.
			return nil, failure("IMPORT_ERROR_GENERIC", fmt.Sprintf("Invalid XVA file: %s is %d bytes, not whole sectors", hd.Name, hd.Size))
		}
		n, err1 := strconv.ParseInt(suffix, 10, 64)
		l, err2 := strconv.ParseInt(last, 10, 64)
		if err1 != nil || err2 != nil {
			return nil, failure("IMPORT_ERROR_GENERIC", "Invalid XVA file: block name "+hd.Name)
		}
		gap := (n - l - 1) * *firstlen
		fill(gap)
		pos += gap
		block, err := io.ReadAll(tr)
		if err != nil || int64(len(block)) != hd.Size {
			return nil, failure("IMPORT_ERROR_PREMATURE_EOF")
		}
		if pos+hd.Size > size {
			return nil, failure("IMPORT_ERROR_GENERIC", fmt.Sprintf("%s writes past the end of the VDI", hd.Name))
		}
		ch, err := tr.Next()
		if err != nil {
			return nil, failure("IMPORT_ERROR_PREMATURE_EOF")
		}
		text, _ := io.ReadAll(tr)
		var want string
		switch ch.Name {
		case hd.Name + ".xxhash":
			want = fmt.Sprintf("%016X", xxhash.Sum64(block))
		case hd.Name + ".checksum":
			sum := sha1.Sum(block)
			want = hex.EncodeToString(sum[:])
		default:
			return nil, failure("IMPORT_ERROR_GENERIC", "Invalid XVA file: "+ch.Name+" is not the checksum of "+hd.Name)
		}
		if string(text) != want && !force {
			return nil, failure("IMPORT_ERROR_GENERIC", "Invalid_checksum: "+ch.Name)
		}
		h.Write(block)
		pos += hd.Size
		data += hd.Size
		last = suffix
	}
	return &Disk{VDI: prefix, Size: size, SHA256: hex.EncodeToString(h.Sum(nil)), DataSent: data}, nil
}

// GET /export ------------------------------------------------------------

func (s *Server) getExport(w http.ResponseWriter, r *http.Request) {
	t, status := s.checkHTTP(r)
	if status != 0 {
		http.Error(w, "session invalid", status)
		return
	}
	s.mu.Lock()
	archive, ok := s.Exports[r.URL.Query().Get("uuid")]
	s.mu.Unlock()
	if !ok {
		s.finish(t, "", failure("UUID_INVALID", "VM", r.URL.Query().Get("uuid")))
		http.Error(w, "no such VM", http.StatusInternalServerError)
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

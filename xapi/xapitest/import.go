package xapitest

// The import model: PUT /import as xen-api's importer does it, written from
// its source at commit e2ee48d6 (the datamodel table's commit): the archive
// framing of Import.with_open_archive, the version check of
// Importexport.assert_compatible, the class handlers of import.ml in their
// order, the checks of VBD.create and VIF.create, the dom0 read-write
// attach the data is written through, and Stream_vdi.recv_all_vdi. Records
// are decoded with the datamodel table in package ova, as the generated
// <class>_t_of_rpc functions decode them. Line numbers below are of that
// commit unless a file says otherwise.

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"path"
	"regexp"
	"slices"
	"strings"

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
	ReadOnly bool   // the VDI's read_only
	Type     string // the VDI's type
}

// VBD is a VBD an import created.
type VBD struct {
	Userdevice, Mode, Type string
	Bootable, Empty        bool
	VDI                    string // archive id of its VDI, "" if empty
}

// VIF is a network interface of a VM.
type VIF struct {
	Device, MAC, Network string // Network is the network's ref
}

// VM is a VM an import created, as the host holds it.
type VM struct {
	Ref, UUID, Name       string
	Version               int64
	VCPUsMax, MemoryMax   int64
	HVMBootPolicy         string
	Platform, OtherConfig map[string]string
	Disks                 []Disk
	VBDs                  []VBD
	VIFs                  []VIF
}

// Network is a network of the pool.
type Network struct {
	Ref, UUID, Name, Bridge string
	MTU                     int64
}

// object is one record of ova.xml.
type object struct {
	class, id string
	rec       *ova.Value
}

// job is one import: the archive's objects and the table of what each
// became (import.ml's state.table).
type job struct {
	s              *Server
	restore, force bool
	version        [2]int // the receiving host's xapi major, minor
	objects        []object
	byID           map[string]object
	vm             *VM
	vdis           map[string]*Disk  // archive VDI id → created VDI
	networks       map[string]string // archive network id → network ref
	skipSR         map[string]bool   // ISO SRs: nothing of them is imported
}

// internal is how an exception that is not an API error reaches the
// client (import.ml:2436-2439, exnHelper.ml:81-86).
func internal(exn string) error {
	return failure("IMPORT_ERROR", "INTERNAL_ERROR: [ "+exn+" ]")
}

func ocamlFailure(msg string) error { return internal(fmt.Sprintf("Failure(%q)", msg)) }

// openArchive recognises the stream as Import.with_open_archive does
// (import.ml:2238-2332): a tar header named ova.xml, else zstd by its
// magic, else gzip.
func openArchive(r io.Reader) (io.Reader, error) {
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
			return nil, internal(err.Error())
		}
		return d.IOReadCloser(), nil
	}
	g, err := gzip.NewReader(br)
	if err != nil {
		return nil, internal("Gzip: " + err.Error())
	}
	return g, nil
}

// receive runs one import and returns the VM it made. host is the host
// handling it: 0 the master, 1 the member. It holds no lock while reading.
func (s *Server) receive(body io.Reader, host int, restore, force bool) (*VM, error) {
	stream, err := openArchive(body)
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
	major, minor := parseVersion(s.Versions[host])
	j := &job{s: s, restore: restore, force: force, version: [2]int{major, minor},
		byID: map[string]object{}, vdis: map[string]*Disk{}, networks: map[string]string{}, skipSR: map[string]bool{}}
	vsn, err := j.header(doc)
	if err != nil {
		return nil, err
	}
	if err := j.handleAll(); err != nil {
		return nil, err
	}
	if err := j.stream(tr, vsn); err != nil {
		return nil, err
	}
	return j.vm, nil
}

// header reads ova.xml: the version block (importexport.ml:65-92), the
// version check (importexport.ml:122-136) and the objects
// (importexport.ml:19-20, 97). It returns export_vsn.
func (j *job) header(doc []byte) (int64, error) {
	root, err := ova.ParseValue(doc)
	if err != nil {
		return 0, internal("Xmlrpc parse error: " + err.Error())
	}
	version := root.Field("version")
	if version == nil || root.Field("objects") == nil {
		return 0, ocamlFailure("Undefined field: Expecting 'version'")
	}
	for _, k := range []string{"hostname", "date", "product_version", "product_brand", "build_number", "xapi_major", "xapi_minor"} {
		if version.Field(k) == nil {
			return 0, internal(fmt.Sprintf("Importexport.Failure(\"Failed to find key '%s' in version data\")", k))
		}
	}
	major, _ := ova.OCamlInt64(version.Field("xapi_major").Str())
	minor, _ := ova.OCamlInt64(version.Field("xapi_minor").Str())
	if major > int64(j.version[0]) || major == int64(j.version[0]) && minor > int64(j.version[1]) {
		return 0, failure("IMPORT_INCOMPATIBLE_VERSION")
	}
	var vsn int64 // a missing or undecodable export_vsn is 0 (importexport.ml:85)
	if v := version.Field("export_vsn"); v != nil {
		vsn, _ = ova.OCamlInt64(v.Str())
	}
	for _, it := range root.Field("objects").Items {
		o := object{class: it.Field("class").Str(), id: it.Field("id").Str(), rec: it.Field("snapshot")}
		if o.rec == nil || o.rec.Kind != ova.Struct {
			return 0, ocamlFailure("Expected Dictionary")
		}
		j.objects = append(j.objects, o)
		j.byID[o.id] = o
	}
	return vsn, nil
}

// handleAll runs the class handlers in import.ml's order (2059-2076);
// within a class, archive order.
func (j *job) handleAll() error {
	for _, class := range []string{"SR", "VDI", "VM", "network", "VBD", "VIF"} {
		for _, o := range j.objects {
			if o.class != class {
				continue
			}
			if _, err := ova.XapiDatamodel().DecodeRecord(class, o.rec); err != nil {
				// xapi's message names no field for a type error.
				msg := err.Error()
				if rest, ok := strings.CutPrefix(msg, "field "); ok {
					_, msg, _ = strings.Cut(rest, ": ")
				}
				return ocamlFailure(msg)
			}
			if err := j.handle(o); err != nil {
				return err
			}
		}
	}
	if j.vm == nil {
		return ocamlFailure("no VM in the archive")
	}
	return nil
}

func (j *job) handle(o object) error {
	switch o.class {
	case "SR":
		// import.ml:886-935: an ISO SR is not needed; any other maps to
		// the SR the import goes to. Nothing is created.
		j.skipSR[o.id] = strings.EqualFold(o.rec.Field("content_type").Str(), "iso")
	case "VDI":
		return j.vdi(o)
	case "VM":
		return j.vmRecord(o)
	case "network":
		j.network(o)
	case "VBD":
		return j.vbd(o)
	case "VIF":
		return j.vif(o)
	}
	return nil
}

func (j *job) find(id, class string) (object, error) {
	o, ok := j.byID[id]
	if !ok || o.class != class {
		return object{}, failure("IMPORT_ERROR_FAILED_TO_FIND_OBJECT", id)
	}
	return o, nil
}

// vdi is import.ml:945-1204 and Xapi_vdi.create (xapi_vdi.ml:576-590).
func (j *job) vdi(o object) error {
	sr := o.rec.Field("SR").Str()
	if _, err := j.find(sr, "SR"); err != nil {
		return err
	}
	if j.skipSR[sr] {
		return nil // a CD image: looked up in the host's ISO SRs, or ejected
	}
	typ := strings.ToLower(o.rec.Field("type").Str())
	if typ == "cbt_metadata" {
		return failure("VDI_INCOMPATIBLE_TYPE", o.id, typ)
	}
	size, _ := ova.OCamlInt64(o.rec.Field("virtual_size").Str())
	ro, _ := o.rec.Field("read_only").Bool()
	j.vdis[o.id] = &Disk{VDI: o.id, Size: size, ReadOnly: ro, Type: typ}
	return nil
}

// vmRecord is the VM handler (import.ml:420-810). Only the first VM is the
// import's result; xva archives hold one.
func (j *job) vmRecord(o object) error {
	if j.vm != nil {
		return nil
	}
	rec := o.rec
	vm := &VM{UUID: rec.Field("uuid").Str(), Name: rec.Field("name_label").Str(),
		HVMBootPolicy: rec.Field("HVM_boot_policy").Str(), Platform: strMap(rec.Field("platform")),
		OtherConfig: strMap(rec.Field("other_config"))}
	vm.VCPUsMax, _ = ova.OCamlInt64(rec.Field("VCPUs_max").Str())
	vm.MemoryMax, _ = ova.OCamlInt64(rec.Field("memory_static_max").Str())
	vm.Version, _ = ova.OCamlInt64(rec.Field("version").Str()) // defaulted: absent is 0
	if j.restore {
		if err := j.s.restoreCheck(vm, j.force); err != nil {
			return err
		}
		vm.Version++ // import.ml: the version is bumped on restore
	} else {
		vm.UUID = newUUID()
		vm.Version = 0
		// A fresh MAC seed unless restoring (import.ml:573-580).
		vm.OtherConfig["mac_seed"] = newUUID()
	}
	// HVM guests get qemu-upstream-compat unless they name a device
	// model (import.ml:652-662).
	if vm.HVMBootPolicy != "" && vm.Platform["device-model"] == "" {
		vm.Platform["device-model"] = "qemu-upstream-compat"
	}
	j.vm = vm
	return nil
}

// restoreCheck is the precheck of a restore (import.ml:449-502): a VM
// with the same uuid is replaced only by a newer version, or with force;
// and assert_can_restore_backup's mac_seed rule (import.ml:181-262).
func (s *Server) restoreCheck(vm *VM, force bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, old := range s.vms {
		if old.UUID == vm.UUID {
			if old.Version >= vm.Version && !force {
				return failure("VM_TO_IMPORT_IS_NOT_NEWER_VERSION", old.Ref, fmt.Sprint(old.Version), fmt.Sprint(vm.Version))
			}
			s.vms = slices.Delete(s.vms, i, i+1) // Replace: the old VM is destroyed
			return nil
		}
	}
	seed := vm.OtherConfig["mac_seed"]
	for _, old := range s.vms {
		if seed != "" && old.OtherConfig["mac_seed"] == seed {
			return failure("DUPLICATE_MAC_SEED", seed)
		}
	}
	return nil
}

// network is import.ml:1211-1278: an existing network of the same name,
// else of the same bridge, else a new one.
func (j *job) network(o object) {
	name, bridge := o.rec.Field("name_label").Str(), o.rec.Field("bridge").Str()
	j.s.mu.Lock()
	defer j.s.mu.Unlock()
	for _, match := range []func(Network) bool{
		func(n Network) bool { return n.Name == name },
		func(n Network) bool { return n.Bridge == bridge },
	} {
		if i := slices.IndexFunc(j.s.networks, match); i >= 0 {
			j.networks[o.id] = j.s.networks[i].Ref
			return
		}
	}
	n := Network{Ref: j.s.ref("network"), UUID: newUUID(), Name: name, Bridge: bridge, MTU: 1500}
	if n.Bridge == "" {
		n.Bridge = fmt.Sprintf("xapi%d", len(j.s.networks))
	}
	j.s.networks = append(j.s.networks, n)
	j.networks[o.id] = n.Ref
}

// vbd is the VBD handler (import.ml:1376-1514) and VBD.create's checks
// (xapi_vbd.ml:157-193, xapi_vbd_helpers.ml:403-415).
func (j *job) vbd(o object) error {
	rec := o.rec
	if _, err := j.find(rec.Field("VM").Str(), "VM"); err != nil {
		return err
	}
	b := VBD{Userdevice: rec.Field("userdevice").Str(), Mode: strings.ToUpper(rec.Field("mode").Str()),
		Type: rec.Field("type").Str()}
	b.Bootable, _ = rec.Field("bootable").Bool()
	b.Empty, _ = rec.Field("empty").Bool()
	cd := strings.EqualFold(b.Type, "CD") || strings.EqualFold(b.Type, "Floppy")
	vdi := j.vdis[rec.Field("VDI").Str()]
	if vdi == nil {
		if !cd {
			return nil // a Disk whose VDI was not imported is skipped
		}
		b.Empty = true
	} else {
		b.VDI = vdi.VDI
	}
	if vdi != nil && incompatible(vdi.Type) {
		return failure("VDI_INCOMPATIBLE_TYPE", vdi.VDI, vdi.Type)
	}
	if strings.EqualFold(b.Type, "CD") && b.Mode != "RO" {
		return failure("VBD_CDS_MUST_BE_READONLY")
	}
	if !cd && b.Empty {
		return failure("VBD_NOT_REMOVABLE_MEDIA", "in constructor")
	}
	if b.Mode == "RW" && vdi != nil && vdi.ReadOnly {
		return failure("VDI_READONLY", vdi.VDI)
	}
	if !validUserdevice(b.Userdevice) {
		return failure("INVALID_DEVICE", b.Userdevice)
	}
	for _, other := range j.vm.VBDs {
		if other.Userdevice == b.Userdevice && b.Userdevice != "autodetect" {
			return failure("DEVICE_ALREADY_EXISTS", b.Userdevice)
		}
	}
	j.vm.VBDs = append(j.vm.VBDs, b)
	return nil
}

func incompatible(typ string) bool {
	return typ == "ha_statefile" || typ == "redo_log" || typ == "cbt_metadata"
}

var xenDevice = regexp.MustCompile(`^(xvd|hd|sd)[a-z]+$`)

// validUserdevice: "autodetect", a device name, or a number
// (xapi_vbd_helpers.ml:403-415).
func validUserdevice(d string) bool {
	_, ok := ova.OCamlInt64(d)
	return d == "autodetect" || xenDevice.MatchString(d) || ok
}

// vif is the VIF handler (import.ml:1518-1662) and VIF.create's checks.
func (j *job) vif(o object) error {
	rec := o.rec
	network := rec.Field("other_config").Field("maps_to").Str()
	if network == "" {
		if _, err := j.find(rec.Field("network").Str(), "network"); err != nil {
			return err
		}
		network = j.networks[rec.Field("network").Str()]
	}
	mac := ""
	if j.restore {
		mac = rec.Field("MAC").Str()
	}
	v, err := j.s.createVIF(j.vm, rec.Field("device").Str(), network, mac)
	if err != nil {
		return err
	}
	j.vm.VIFs = append(j.vm.VIFs, v)
	return nil
}

var (
	unsignedDecimal = regexp.MustCompile(`^[0-9]+$`)
	validMAC        = regexp.MustCompile(`^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$`)
)

// createVIF is Xapi_vif_helpers.create (xapi_vif_helpers.ml:237-302): the
// device an unsigned decimal, unique; a MAC made from the VM's mac_seed
// when none is given, else a valid one.
func (s *Server) createVIF(vm *VM, device, network, mac string) (VIF, error) {
	if !unsignedDecimal.MatchString(device) {
		return VIF{}, failure("INVALID_DEVICE", device)
	}
	if mac == "" && vm.OtherConfig["mac_seed"] != "" {
		h := sha256.Sum256([]byte(vm.OtherConfig["mac_seed"] + device))
		mac = fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", h[0]&0xfe|0x02, h[1], h[2], h[3], h[4], h[5])
	}
	if !validMAC.MatchString(mac) {
		return VIF{}, failure("MAC_INVALID", mac)
	}
	for _, v := range vm.VIFs {
		if v.Device == device {
			return VIF{}, failure("DEVICE_ALREADY_EXISTS", device)
		}
	}
	return VIF{Device: device, MAC: mac, Network: network}, nil
}

// stream writes the disks: Import's non_cdrom_vdis (import.ml:133-164,
// 2544-2562) in lexicographic order of their ids (stream_vdi.ml:61-69),
// each opened read-write through a VBD in dom0, which VBD.create refuses
// on a read-only VDI (stream_vdi.ml:546, attach_helpers.ml:48-65,
// xapi_vbd.ml:190-193). Then, for export_vsn 1, the checksum table.
func (j *job) stream(tr *tar.Reader, vsn int64) error {
	var ids []string
	for _, o := range j.objects {
		var id string
		switch o.class {
		case "VBD":
			if t := o.rec.Field("type").Str(); strings.EqualFold(t, "CD") {
				continue
			}
			id = o.rec.Field("VDI").Str()
			vdi, err := j.find(id, "VDI")
			if err != nil {
				return err
			}
			if _, err := j.find(vdi.rec.Field("SR").Str(), "SR"); err != nil {
				return err
			}
		case "VDI":
			if !strings.EqualFold(o.rec.Field("type").Str(), "suspend") {
				continue
			}
			id = o.id
		default:
			continue
		}
		if j.vdis[id] != nil && !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	st := &streamer{tr: tr, host: j, firstlen: -1, checksums: map[string]string{}}
	for _, id := range ids {
		d := j.vdis[id]
		if d.ReadOnly {
			return failure("VDI_READONLY", id)
		}
		if err := st.recv(d, vsn > 0); err != nil {
			return err
		}
		j.vm.Disks = append(j.vm.Disks, *d)
	}
	if vsn == 1 {
		return st.table(j.force)
	}
	return nil
}

// streamer is Stream_vdi.recv_all_vdi's state across the VDIs of one
// import: firstchunklength is set once, by the very first data member.
type streamer struct {
	tr        *tar.Reader
	host      *job
	firstlen  int64
	checksums map[string]string // data member → the checksum xapi computed
}

// readsXXHash: hosts from xen-api v1.170.0 (commit c5c703aa) read .xxhash
// members. Before v1.250.0 every host reported itself as xapi 1.20, so a
// host that says 1.x with x below 250 is modelled as the older kind.
func (st *streamer) readsXXHash() bool {
	v := st.host.version
	return v[0] > 1 || v[1] >= 250
}

// recv is recv_one (stream_vdi.ml:535-634) for one VDI.
func (st *streamer) recv(d *Disk, inline bool) error {
	h := sha256.New()
	var offset int64
	last := "-1"
	zeros := make([]byte, 1<<20)
	for offset < d.Size {
		hdr, err := st.tr.Next()
		if err != nil {
			return failure("IMPORT_ERROR_PREMATURE_EOF")
		}
		if st.firstlen < 0 {
			st.firstlen = hdr.Size
		}
		if !strings.HasPrefix(hdr.Name, d.VDI) || len(hdr.Name) <= len(d.VDI) {
			return ocamlFailure("Invalid XVA file")
		}
		// The separator after the prefix is not checked (566-570).
		suffix := hdr.Name[len(d.VDI)+1:]
		if suffix <= last {
			return ocamlFailure("Invalid XVA file")
		}
		n, ok1 := ova.OCamlInt64(suffix)
		l, ok2 := ova.OCamlInt64(last)
		if !ok1 || !ok2 {
			return ocamlFailure("int_of_string")
		}
		gap := (n - l - 1) * st.firstlen
		if gap > 0 {
			if offset+gap > d.Size {
				return failure("VDI_IO_ERROR", "Device I/O error")
			}
			for left := gap; left > 0; left -= min(left, int64(len(zeros))) {
				h.Write(zeros[:min(left, int64(len(zeros)))])
			}
		}
		block, err := io.ReadAll(st.tr)
		if err != nil || int64(len(block)) != hdr.Size {
			return failure("IMPORT_ERROR_PREMATURE_EOF")
		}
		if offset+gap+hdr.Size > d.Size {
			return failure("VDI_IO_ERROR", "Device I/O error") // a write past the VDI's end
		}
		if err := st.checksum(hdr, block, inline); err != nil {
			return err
		}
		h.Write(block)
		offset += gap + hdr.Size
		d.DataSent += hdr.Size
		last = suffix
	}
	d.SHA256 = hex.EncodeToString(h.Sum(nil))
	return nil
}

// checksum reads the member after a data member (stream_vdi.ml:606-629).
// From v1.170.0 xapi reads its header before skipping the data member's
// padding, so a data member that is not whole 512-byte sectors makes it
// read a header inside the padding; older hosts skipped the padding first
// but knew only .checksum (verify_inline_checksum at c5c703aa^).
func (st *streamer) checksum(data *tar.Header, block []byte, inline bool) error {
	if !st.readsXXHash() {
		next, err := st.tr.Next()
		if err != nil {
			return failure("IMPORT_ERROR_PREMATURE_EOF")
		}
		sum := sha1.Sum(block)
		st.checksums[data.Name] = hex.EncodeToString(sum[:])
		if !inline {
			return nil
		}
		if !strings.HasSuffix(next.Name, ".checksum") {
			return ocamlFailure("Expected to find an inline checksum, found file called: " + next.Name)
		}
		return st.compare(next, strings.TrimSuffix(next.Name, ".checksum"))
	}
	if data.Size%512 != 0 {
		return internal("Tar.Header.Checksum_mismatch")
	}
	next, err := st.tr.Next()
	if err != nil {
		return failure("IMPORT_ERROR_PREMATURE_EOF")
	}
	// Filename.extension: the suffix of the last path element.
	ext := path.Ext(next.Name)
	switch {
	case ext == ".xxhash":
		st.checksums[data.Name] = fmt.Sprintf("%016X", xxhash.Sum64(block))
	case ext == ".checksum":
		sum := sha1.Sum(block)
		st.checksums[data.Name] = hex.EncodeToString(sum[:])
	default:
		return ocamlFailure("Found unsupported checksum file: " + next.Name)
	}
	if !inline {
		return nil
	}
	return st.compare(next, strings.TrimSuffix(next.Name, ext))
}

// compare is verify_inline_checksum (stream_vdi.ml:486-525): the member's
// exact text against the checksum of the data member it is named after.
func (st *streamer) compare(member *tar.Header, of string) error {
	text, err := io.ReadAll(st.tr)
	if err != nil {
		return failure("IMPORT_ERROR_PREMATURE_EOF")
	}
	want, ok := st.checksums[of]
	if !ok {
		return internal("Not_found")
	}
	if string(text) != want && !st.host.force {
		return internal(fmt.Sprintf("Stream_vdi.Invalid_checksum(\"Block %s checksum failed: original = %s; recomputed = %s\")", of, text, want))
	}
	return nil
}

// table reads export_vsn 1's trailing checksum table, an XML-RPC struct of
// data member → checksum (import.ml:2580-2596, importexport.ml:161-180).
func (st *streamer) table(force bool) error {
	if _, err := st.tr.Next(); err != nil {
		return failure("IMPORT_ERROR_PREMATURE_EOF")
	}
	doc, err := io.ReadAll(st.tr)
	if err != nil {
		return failure("IMPORT_ERROR_PREMATURE_EOF")
	}
	v, err := ova.ParseValue(doc)
	if err != nil {
		return internal("Xmlrpc parse error: " + err.Error())
	}
	for name, sum := range st.checksums {
		if v.Field(name).Str() != sum && !force {
			return failure("IMPORT_ERROR_SOME_CHECKSUMS_FAILED")
		}
	}
	return nil
}

func strMap(v *ova.Value) map[string]string {
	m := map[string]string{}
	if v != nil {
		for _, x := range v.Members {
			m[x.Name] = x.Value.Str()
		}
	}
	return m
}

func parseVersion(s string) (int, int) {
	var major, minor int
	fmt.Sscanf(s, "%d.%d", &major, &minor)
	return major, minor
}

func newUUID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

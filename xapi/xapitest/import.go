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
	"crypto/md5"
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
	Ref      string // the VDI the host made
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
	// ppx_deriving_rpc checks the record's labels last first
	// (ppx_deriving_rpc.ml:244-262).
	for _, label := range []string{"objects", "version"} {
		if root.Field(label) == nil {
			return 0, ocamlFailure("Undefined field: Expecting '" + label + "'")
		}
	}
	version := root.Field("version")
	for _, k := range []string{"hostname", "date", "product_version", "product_brand", "build_number", "xapi_major", "xapi_minor"} {
		if version.Field(k) == nil {
			return 0, internal(fmt.Sprintf("Importexport.Failure(\"Failed to find key '%s' in version data\")", k))
		}
	}
	major, err := ova.VersionNumber(version.Field("xapi_major"))
	if err != nil {
		return 0, ocamlFailure(err.Error())
	}
	minor, err := ova.VersionNumber(version.Field("xapi_minor"))
	if err != nil {
		return 0, ocamlFailure(err.Error())
	}
	if major > int64(j.version[0]) || major == int64(j.version[0]) && minor > int64(j.version[1]) {
		return 0, failure("IMPORT_INCOMPATIBLE_VERSION")
	}
	var vsn int64 // a missing or undecodable export_vsn is 0 (importexport.ml:85)
	if v := version.Field("export_vsn"); v != nil {
		vsn, _ = ova.OCamlInt64(v.Str())
	}
	for _, it := range root.Field("objects").Items {
		for _, label := range []string{"snapshot", "id", "class"} {
			if it.Field(label) == nil {
				return 0, ocamlFailure("Undefined field: Expecting '" + label + "'")
			}
		}
		o := object{class: it.Field("class").Str(), id: it.Field("id").Str(), rec: it.Field("snapshot")}
		j.objects = append(j.objects, o)
		j.byID[o.id] = o
	}
	return vsn, nil
}

// handleAll runs the class handlers in import.ml's order (2059-2076);
// within a class, archive order.
func (j *job) handleAll() error {
	if j.restore {
		if err := j.macSeeds(); err != nil {
			return err
		}
	}
	for _, class := range []string{"SR", "VDI", "VM", "network", "VBD", "VIF"} {
		for _, o := range j.objects {
			if o.class != class {
				continue
			}
			if _, err := ova.XapiDatamodel().DecodeRecord(class, o.rec); err != nil {
				if p, ok := err.(interface{ Printed() string }); ok {
					return internal(p.Printed())
				}
				return internal(err.Error())
			}
			if err := j.handle(o); err != nil {
				return err
			}
		}
	}
	return nil // with no VM the import succeeds and names none (import.ml:2598-2599)
}

// macSeeds is assert_can_restore_backup (import.ml:181-262), run before
// any handler: a VM of the archive whose mac_seed an existing VM has is
// refused unless both are the same VM (same uuid).
func (j *job) macSeeds() error {
	j.s.mu.Lock()
	defer j.s.mu.Unlock()
	for _, o := range j.objects {
		if o.class != "VM" {
			continue
		}
		seed, uuid := o.rec.Field("other_config").Field("mac_seed").Str(), o.rec.Field("uuid").Str()
		for _, old := range j.s.vms {
			if seed != "" && old.OtherConfig["mac_seed"] == seed && old.UUID != uuid {
				return failure("DUPLICATE_MAC_SEED", seed)
			}
		}
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
		return failure("VDI_INCOMPATIBLE_TYPE", "", typ)
	}
	size, _ := ova.OCamlInt64(o.rec.Field("virtual_size").Str())
	ro, _ := o.rec.Field("read_only").Bool()
	j.s.mu.Lock()
	ref := j.s.ref("vdi")
	j.s.mu.Unlock()
	j.vdis[o.id] = &Disk{VDI: o.id, Ref: ref, Size: size, ReadOnly: ro, Type: typ}
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
		vm.Version++ // the version is bumped on restore
	} else {
		vm.UUID = newUUID()
		vm.Version = 0
		// A fresh MAC seed unless restoring (import.ml:573-580).
		vm.OtherConfig["mac_seed"] = newUUID()
	}
	ensureDeviceModel(rec, vm.Platform)
	j.vm = vm
	return nil
}

// ensureDeviceModel is Xapi_vm_helpers.ensure_device_model_profile_present
// as the VM handler calls it (import.ml:652-662, xapi_vm_helpers.ml:
// 1686-1707): for a VM that is not a template and whose domain type
// (derived from HVM_boot_policy when unspecified, xapi_vm_helpers.ml:54-58)
// needs qemu, a device-model is added if absent; qemu-trad is upgraded.
func ensureDeviceModel(rec *ova.Value, platform map[string]string) {
	const def = "qemu-upstream-compat" // vm_platform.ml:78-80
	if tmpl, _ := rec.Field("is_a_template").Bool(); tmpl {
		return
	}
	domain := strings.ToLower(rec.Field("domain_type").Str())
	if domain == "" || domain == "unspecified" {
		domain = "pv"
		if rec.Field("HVM_boot_policy").Str() != "" {
			domain = "hvm"
		}
	}
	if dm, ok := platform["device-model"]; ok || domain != "hvm" {
		if ok && dm == "qemu-trad" {
			platform["device-model"] = def
		}
		return
	}
	platform["device-model"] = def
}

// restoreCheck is the precheck of a restore (import.ml:449-502): a VM
// with the same uuid is replaced only by a newer version, or with force.
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
	mtu, _ := ova.OCamlInt64(o.rec.Field("MTU").Str())
	if mtu <= 0 {
		mtu = 1500 // xapi_network.ml:236-283
	}
	n := Network{Ref: j.s.ref("network"), UUID: newUUID(), Name: name, Bridge: bridge, MTU: mtu}
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
	cd := strings.EqualFold(b.Type, "CD")
	vdi := j.vdis[rec.Field("VDI").Str()]
	// A VBD attached at export whose VDI was not imported: only a CD of
	// an HVM VM may lack it (import.ml:1431-1442).
	if attached, _ := rec.Field("currently_attached").Bool(); attached && vdi == nil && !(cd && j.vm.HVMBootPolicy != "") {
		return failure("IMPORT_ERROR_ATTACHED_DISKS_NOT_FOUND")
	}
	if vdi == nil {
		if !cd && !strings.EqualFold(b.Type, "Floppy") {
			return nil // a Disk whose VDI was not imported is skipped
		}
		b.Empty = true
	} else {
		b.VDI = vdi.VDI
	}
	// VBD.create (xapi_vbd.ml:157-193).
	if vdi != nil && incompatible(vdi.Type) {
		return failure("VDI_INCOMPATIBLE_TYPE", vdi.Ref, vdi.Type)
	}
	if cd && b.Mode != "RO" {
		return failure("VBD_CDS_MUST_BE_READONLY")
	}
	if !cd && b.Empty {
		return failure("VBD_NOT_REMOVABLE_MEDIA", "in constructor")
	}
	if b.Mode == "RW" && vdi != nil && vdi.ReadOnly {
		return failure("VDI_READONLY", vdi.Ref)
	}
	n, ok := ova.DeviceNumber(b.Userdevice)
	if !ok && b.Userdevice != "autodetect" {
		return failure("INVALID_DEVICE", b.Userdevice)
	}
	for _, other := range j.vm.VBDs {
		if m, _ := ova.DeviceNumber(other.Userdevice); ok && m == n {
			return failure("DEVICE_ALREADY_EXISTS", b.Userdevice)
		}
	}
	j.vm.VBDs = append(j.vm.VBDs, b)
	return nil
}

func incompatible(typ string) bool {
	return typ == "ha_statefile" || typ == "redo_log" || typ == "cbt_metadata"
}

// vif is the VIF handler (import.ml:1518-1662) and VIF.create's checks.
func (j *job) vif(o object) error {
	rec := o.rec
	if _, err := j.find(rec.Field("VM").Str(), "VM"); err != nil {
		return err
	}
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
	n, _ := ova.OCamlInt64(device)
	if mac == "" && vm.OtherConfig["mac_seed"] != "" {
		mac = genMAC(n, vm.OtherConfig["mac_seed"])
	}
	if !validMAC.MatchString(mac) {
		return VIF{}, failure("MAC_INVALID", mac)
	}
	for _, v := range vm.VIFs {
		if m, _ := ova.OCamlInt64(v.Device); m == n {
			return VIF{}, failure("DEVICE_ALREADY_EXISTS", device)
		}
	}
	return VIF{Device: device, MAC: mac, Network: network}, nil
}

// genMAC is Xapi_vif_helpers.gen_mac (xapi_vif_helpers.ml:210-229): MD5
// applied 2×device+1 times to the seed, then once more, and bytes of
// both, made locally administered and unicast (record_util.ml:546).
func genMAC(device int64, seed string) string {
	d1 := []byte(seed)
	for range 2*device + 1 {
		h := md5.Sum(d1)
		d1 = h[:]
	}
	d2 := md5.Sum(d1)
	m := []byte{d1[0], d1[1], d1[2], d1[3], d2[1], d2[2]}
	m[0] = m[0]&^0x01 | 0x02 // locally administered, unicast
	return fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5])
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
			return failure("VDI_READONLY", d.Ref)
		}
		if err := st.recv(d, vsn > 0); err != nil {
			return err
		}
		j.vm.Disks = append(j.vm.Disks, *d)
	}
	if vsn < 2 {
		return st.table(j.force) // import.ml:2580
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
		hdr, err := st.next()
		if err != nil {
			return err
		}
		if st.firstlen < 0 {
			st.firstlen = hdr.Size
		}
		if !strings.HasPrefix(hdr.Name, d.VDI) {
			return ocamlFailure("Invalid XVA file")
		}
		if len(hdr.Name) == len(d.VDI) {
			return internal("Invalid argument: String.sub / Bytes.sub")
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
				return pastEnd(hdr.Name)
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
			return pastEnd(hdr.Name)
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

// next reads a tar header as Tar_unix.get_next_header does: the end of
// the archive (two zero blocks) is Tar.Header.End_of_stream, an IMPORT_ERROR;
// a short read End_of_file, IMPORT_ERROR_PREMATURE_EOF (import.ml:2432-2439).
func (st *streamer) next() (*tar.Header, error) {
	h, err := st.tr.Next()
	switch {
	case err == io.EOF:
		return nil, internal("Tar.Header.End_of_stream")
	case err != nil:
		return nil, failure("IMPORT_ERROR_PREMATURE_EOF")
	}
	return h, nil
}

// pastEnd: a block that runs past the VDI's virtual_size. xapi seeks and
// writes on (stream_vdi.ml:587-604) and what then happens depends on the
// SR (a short write, ENOSPC); its source does not say. The model refuses,
// so that nothing xva writes relies on it.
func pastEnd(member string) error {
	return internal("xapitest: " + member + " runs past the VDI's virtual_size")
}

// checksum reads the member after a data member (stream_vdi.ml:606-629).
// From v1.170.0 xapi reads its header before skipping the data member's
// padding, so a data member that is not whole 512-byte sectors makes it
// read a header inside the padding; older hosts skipped the padding first
// but knew only .checksum (verify_inline_checksum at c5c703aa^).
func (st *streamer) checksum(data *tar.Header, block []byte, inline bool) error {
	if !st.readsXXHash() {
		sum := sha1.Sum(block)
		st.checksums[data.Name] = hex.EncodeToString(sum[:])
		if !inline {
			return nil // no checksum member is read at all
		}
		next, err := st.next()
		if err != nil {
			return err
		}
		if !strings.HasSuffix(next.Name, ".checksum") {
			return ocamlFailure("Expected to find an inline checksum, found file called: " + next.Name)
		}
		return st.compare(next, strings.TrimSuffix(next.Name, ".checksum"))
	}
	if data.Size%512 != 0 {
		return internal("Tar.Header.Checksum_mismatch")
	}
	next, err := st.next()
	if err != nil {
		return err
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
		// export_vsn 0: the header was read but not the body, and the
		// next header is looked for inside it (stream_vdi.ml:606-631).
		if next.Size > 0 {
			return internal("Tar.Header.Checksum_mismatch")
		}
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
	if _, err := st.next(); err != nil {
		return err
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

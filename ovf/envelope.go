package ovf

import (
	"bytes"
	"cmp"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// Limits of what Parse reads. Real descriptors are a few kilobytes with a
// few dozen elements; the limits are far above that and keep a hostile
// document from costing more than a bounded multiple of its size.
const (
	MaxDescriptorSize = 4 << 20  // an .ovf bigger than this is refused
	MaxCapacity       = 64 << 40 // largest disk capacity, in bytes
	MaxMemory         = 16 << 40 // largest memory, in bytes
	MaxVCPUs          = 4096     // most vCPUs of one virtual system
	maxDepth          = 64       // element nesting
	maxElements       = 100000   // elements in the whole document
	maxEntries        = 10000    // files, disks, networks or items
)

// Descriptor is one OVF envelope as xva reads and writes it: one virtual
// system.
type Descriptor struct {
	Version  string    // "1.0", "2.0", "0.9" or another ovf:version as written
	Files    []File    // References
	Disks    []Disk    // DiskSection
	Networks []Network // NetworkSection
	System   System    // the first VirtualSystem (or first in a VirtualSystemCollection)
	Dropped  []string  // what the document says that this model cannot carry, one plain sentence each
}

// File is one References/File: a file of the package.
type File struct {
	ID, Href    string // Href is relative to the .ovf and inside the package
	Size        int64  // bytes as stored (all chunks), -1 if absent
	Compression string // "" or "gzip"
	ChunkSize   int64  // 0 = not chunked
}

// Disk is one DiskSection/Disk: a virtual disk and the file holding it.
type Disk struct {
	ID, FileRef   string // FileRef "" is a blank disk to create
	Capacity      int64  // bytes: capacity x capacityAllocationUnits
	PopulatedSize int64  // bytes, -1 if absent
	Format        string // the ovf:format URI as written
}

// Network is one NetworkSection/Network.
type Network struct {
	Name, Description string
}

// System is the virtual system: its identity and hardware.
type System struct {
	ID, Name, Description string
	OSType                int    // OperatingSystemSection ovf:id (CIM OSType), -1 if absent
	OSDescription         string // its Description, or vmw:osType when it has none
	VCPUs                 int    // sum of the Processor items' VirtualQuantity
	Memory                int64  // bytes, sum of the Memory items
	Firmware              string // "bios", "uefi", or "" when not stated
	SystemType            string // vssd:VirtualSystemType as written
	Disks                 []DiskRef
	CDs                   int               // CD/DVD drives (their media, if any, is dropped)
	NICs                  []NIC             // in order of appearance
	Xen                   map[string]string // XenCenter's VirtualSystemOtherConfigurationData, nil when none
}

// DiskRef is a disk drive of the virtual system.
type DiskRef struct {
	DiskID     string // a Disk's ID
	Controller string // "ide", "scsi", "sata", "nvme", "other", or "" when none is named
	Address    int    // AddressOnParent, -1 if absent
	Device     int    // XenCenter's "device=N" in rasd:Connection, else -1
}

// NIC is a network adapter of the virtual system.
type NIC struct {
	Network string // rasd:Connection: a network name
	MAC     string // lower-case aa:bb:cc:dd:ee:ff, or "" when none or not a MAC
	Model   string // rasd:ResourceSubType, e.g. "E1000", "VMXNET3"
}

// The format URIs of the disk formats xva writes or meets.
const (
	FormatVMDKStream = "http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"
	FormatVMDKSparse = "http://www.vmware.com/specifications/vmdk.html#sparse"
	FormatVHD        = "http://www.microsoft.com/technet/virtualserver/downloads/vhdspec.mspx"
	FormatQCOW2      = "http://www.gnome.org/~markmc/qcow-image-format.html"
	FormatRaw        = "" // no standard URI: the attribute is omitted
)

// node is an element of the document, namespaces kept but matched by
// local name.
type node struct {
	name  xml.Name
	attrs []xml.Attr
	kids  []*node
	text  string
	buf   []byte // text while the element is open
}

// attr returns the attribute with this local name. An attribute in the
// envelope's namespace or none wins over a vendor's of the same local
// name (XenCenter puts xenovf:id beside ovf:id).
func (n *node) attr(local, envNS string) (string, bool) {
	var other *xml.Attr
	for i, a := range n.attrs {
		if a.Name.Local != local {
			continue
		}
		if a.Name.Space == envNS || a.Name.Space == "" {
			return strings.TrimSpace(a.Value), true
		}
		if other == nil {
			other = &n.attrs[i]
		}
	}
	if other != nil {
		return strings.TrimSpace(other.Value), true
	}
	return "", false
}

// child returns the first child with this local name.
func (n *node) child(local string) *node {
	for _, k := range n.kids {
		if k.name.Local == local {
			return k
		}
	}
	return nil
}

// childText is the trimmed text of the first child with this local name.
func (n *node) childText(local string) string {
	if c := n.child(local); c != nil {
		return c.text
	}
	return ""
}

// kind is a section's type: its local name, or for the VMware 0.9 form
// <Section xsi:type="ovf:DiskSection_Type"> the name in the type.
func (n *node) kind() string {
	if n.name.Local != "Section" && n.name.Local != "Content" {
		return n.name.Local
	}
	for _, a := range n.attrs {
		if a.Name.Local == "type" {
			t := a.Value[strings.IndexByte(a.Value, ':')+1:]
			return strings.TrimSuffix(t, "_Type")
		}
	}
	return n.name.Local
}

// decodeText turns the bytes of a descriptor into UTF-8: XenCenter writes
// UTF-16 with a byte order mark; a UTF-8 BOM is dropped. It reports
// whether the input was UTF-16, so that the declaration may say so.
func decodeText(data []byte) ([]byte, bool, error) {
	switch {
	case bytes.HasPrefix(data, []byte{0xEF, 0xBB, 0xBF}):
		return data[3:], false, nil
	case bytes.HasPrefix(data, []byte{0xFF, 0xFE}):
		return utf16ToUTF8(data[2:], false)
	case bytes.HasPrefix(data, []byte{0xFE, 0xFF}):
		return utf16ToUTF8(data[2:], true)
	case len(data) >= 2 && data[0] == '<' && data[1] == 0:
		return utf16ToUTF8(data, false) // UTF-16LE without a BOM
	case len(data) >= 2 && data[0] == 0 && data[1] == '<':
		return utf16ToUTF8(data, true)
	}
	return data, false, nil
}

func utf16ToUTF8(b []byte, bigEndian bool) ([]byte, bool, error) {
	if len(b)%2 != 0 {
		return nil, true, errors.New("ovf: UTF-16 descriptor of an odd number of bytes")
	}
	u := make([]uint16, len(b)/2)
	for i := range u {
		if bigEndian {
			u[i] = uint16(b[2*i])<<8 | uint16(b[2*i+1])
		} else {
			u[i] = uint16(b[2*i+1])<<8 | uint16(b[2*i])
		}
	}
	out := make([]byte, 0, len(u)+len(u)/2)
	for _, r := range utf16.Decode(u) {
		out = utf8.AppendRune(out, r)
	}
	return out, true, nil
}

// readTree decodes the document into nodes, refusing a DOCTYPE (and so
// any entity), nesting deeper than maxDepth and more than maxElements
// elements, before they are allocated.
func readTree(data []byte) (*node, error) {
	text, wasUTF16, err := decodeText(data)
	if err != nil {
		return nil, err
	}
	d := xml.NewDecoder(bytes.NewReader(text))
	d.Strict = true
	d.CharsetReader = func(label string, r io.Reader) (io.Reader, error) {
		l := strings.ToLower(label)
		if wasUTF16 && (l == "utf-16" || l == "utf-16le" || l == "utf-16be") {
			return r, nil // transcoded above
		}
		return nil, fmt.Errorf("ovf: descriptor encoding %q: only UTF-8 and UTF-16 are read", label)
	}
	var stack []*node
	var root *node
	count := 0
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("ovf: descriptor is not well-formed XML: %v", err)
		}
		switch t := tok.(type) {
		case xml.Directive:
			return nil, errors.New("ovf: descriptor has a DOCTYPE or other directive, which OVF never needs (entities are refused)")
		case xml.StartElement:
			if count++; count > maxElements {
				return nil, fmt.Errorf("ovf: descriptor has more than %d elements", maxElements)
			}
			if len(stack) >= maxDepth {
				return nil, fmt.Errorf("ovf: element <%s> nested deeper than %d levels", t.Name.Local, maxDepth)
			}
			n := &node{name: t.Name, attrs: t.Attr}
			if len(stack) > 0 {
				p := stack[len(stack)-1]
				p.kids = append(p.kids, n)
			} else if root == nil {
				root = n
			}
			stack = append(stack, n)
		case xml.EndElement:
			n := stack[len(stack)-1]
			n.text = strings.TrimSpace(string(n.buf))
			n.buf = nil
			stack = stack[:len(stack)-1]
		case xml.CharData:
			if len(stack) > 0 {
				n := stack[len(stack)-1]
				if len(n.kids) == 0 { // text of leaves only; mixed content is not OVF
					n.buf = append(n.buf, t...)
				}
			}
		}
	}
	if root == nil {
		return nil, errors.New("ovf: descriptor has no root element")
	}
	return root, nil
}

// Namespaces of the envelope, by version.
const (
	nsOVF1  = "http://schemas.dmtf.org/ovf/envelope/1"
	nsOVF2  = "http://schemas.dmtf.org/ovf/envelope/2"
	nsOVF09 = "http://www.vmware.com/schema/ovf/1/envelope"
)

// parser carries what the walk needs besides the tree.
type parser struct {
	ns      string // the envelope's namespace: attributes in it win
	d       *Descriptor
	files   map[string]bool
	disks   map[string]bool
	config  string          // the default deployment option, "" when there are none
	systems int             // virtual systems seen in the content
	props   int             // ProductSection properties seen
	dropped map[string]bool // what Dropped holds, for saying it once
}

// Parse reads an OVF descriptor (see the package comment for what it
// accepts and refuses).
func Parse(data []byte) (*Descriptor, error) {
	if len(data) > MaxDescriptorSize {
		return nil, fmt.Errorf("ovf: descriptor of %d bytes, more than the %d allowed", len(data), MaxDescriptorSize)
	}
	root, err := readTree(data)
	if err != nil {
		return nil, err
	}
	if root.name.Local != "Envelope" {
		return nil, fmt.Errorf("ovf: root element is <%s>, not <Envelope>", root.name.Local)
	}
	p := &parser{ns: root.name.Space, d: &Descriptor{}, files: map[string]bool{}, disks: map[string]bool{}, dropped: map[string]bool{}}
	p.d.Version = p.version(root)
	if err := p.envelope(root); err != nil {
		return nil, err
	}
	if p.props > 0 {
		p.drop("ProductSection properties (%d)", p.props)
	}
	return p.d, nil
}

// version is ovf:version when it is a version number, else what the
// namespace implies.
func (p *parser) version(root *node) string {
	for _, a := range root.attrs {
		if a.Name.Local == "version" && (a.Name.Space == p.ns || a.Name.Space == "") && isVersion(a.Value) {
			return a.Value
		}
	}
	switch p.ns {
	case nsOVF2:
		return "2.0"
	case nsOVF1:
		return "1.0"
	case nsOVF09:
		return "0.9"
	}
	return ""
}

func isVersion(v string) bool {
	return v != "" && len(v) <= 8 && strings.Trim(v, "0123456789.") == ""
}

// envelope reads the children of Envelope in the order the model needs
// them: files before the disks naming them, deployment options before
// the items they select.
func (p *parser) envelope(root *node) error {
	var content *node
	for _, k := range root.kids {
		switch k.kind() {
		case "References":
			if err := p.references(k); err != nil {
				return err
			}
		case "DeploymentOptionSection":
			p.deploymentOptions(k)
		case "VirtualSystem", "VirtualSystemCollection":
			if content == nil {
				content = k
			}
		}
	}
	for _, k := range root.kids {
		var err error
		switch k.kind() {
		case "References", "DeploymentOptionSection", "VirtualSystem", "VirtualSystemCollection", "Strings":
		case "DiskSection":
			err = p.diskSection(k)
		case "NetworkSection":
			err = p.networkSection(k)
		default:
			p.section(k)
		}
		if err != nil {
			return err
		}
	}
	if content == nil {
		return errors.New("ovf: the envelope has no VirtualSystem")
	}
	return p.content(content)
}

// drop records a sentence for Dropped, once.
func (p *parser) drop(format string, args ...any) {
	s := fmt.Sprintf(format, args...)
	if !p.dropped[s] {
		p.dropped[s] = true
		p.d.Dropped = append(p.d.Dropped, s)
	}
}

// required is ovf:required, which defaults to true (DSP0243 §6).
func (p *parser) required(n *node) bool {
	v, ok := n.attr("required", p.ns)
	return !ok || (v != "false" && v != "0")
}

// sectionNames are the sections the model knows of but does not carry.
var sectionNames = map[string]string{
	"DeploymentOptionSection":   "deployment options",
	"EulaSection":               "a license agreement (EulaSection)",
	"StartupSection":            "a start-up order (StartupSection)",
	"ResourceAllocationSection": "resource reservations (ResourceAllocationSection)",
	"InstallSection":            "an install step (InstallSection)",
	"BootDeviceSection":         "a boot order (BootDeviceSection)",
}

// section notes a section the model does not read: always when it is a
// known kind, else when it is required (an importer ought to fail on it;
// we read on and say so).
func (p *parser) section(n *node) {
	k := n.kind()
	if k == "ProductSection" {
		p.properties(n)
		return
	}
	if s, ok := sectionNames[k]; ok {
		p.drop("%s", s)
		return
	}
	if p.required(n) {
		p.drop("a required section the model does not read: %s", k)
	}
}

// properties counts ProductSection properties, which the model does not
// carry; Parse notes them all in one sentence.
func (p *parser) properties(n *node) {
	for _, k := range n.kids {
		if k.name.Local == "Property" {
			p.props++
		}
	}
}

// deploymentOptions picks the default configuration: items of other
// configurations are not read.
func (p *parser) deploymentOptions(n *node) {
	p.drop("deployment options")
	for _, k := range n.kids {
		if k.name.Local != "Configuration" {
			continue
		}
		id, _ := k.attr("id", p.ns)
		if p.config == "" {
			p.config = id
		}
		if v, _ := k.attr("default", p.ns); v == "true" || v == "1" {
			p.config = id
			return
		}
	}
}

// selected is whether an item belongs to the configuration read: the
// default deployment option, and the normal bound of a range.
func (p *parser) selected(n *node) bool {
	if b, ok := n.attr("bound", p.ns); ok && b != "normal" {
		return false
	}
	c, ok := n.attr("configuration", p.ns)
	if !ok || p.config == "" {
		return true
	}
	for _, id := range strings.Fields(c) {
		if id == p.config {
			return true
		}
	}
	return false
}

func (p *parser) references(n *node) error {
	for _, k := range n.kids {
		if k.name.Local != "File" {
			continue
		}
		if len(p.d.Files) >= maxEntries {
			return fmt.Errorf("ovf: References has more than %d files", maxEntries)
		}
		f, err := p.file(k)
		if err != nil {
			return err
		}
		p.files[f.ID] = true
		p.d.Files = append(p.d.Files, f)
	}
	return nil
}

func (p *parser) file(n *node) (File, error) {
	f := File{Size: -1}
	f.ID, _ = n.attr("id", p.ns)
	if f.ID == "" {
		return f, errors.New("ovf: a References File has no ovf:id")
	}
	if p.files[f.ID] {
		return f, fmt.Errorf("ovf: two References Files have ovf:id %q", f.ID)
	}
	href, _ := n.attr("href", p.ns)
	var err error
	if f.Href, err = cleanHref(href); err != nil {
		return f, fmt.Errorf("ovf: File %q: %v", f.ID, err)
	}
	if f.Size, err = p.optSize(n, "size", -1); err != nil {
		return f, fmt.Errorf("ovf: File %q: %v", f.ID, err)
	}
	if f.ChunkSize, err = p.optSize(n, "chunkSize", 0); err != nil {
		return f, fmt.Errorf("ovf: File %q: %v", f.ID, err)
	}
	c, _ := n.attr("compression", p.ns)
	switch c {
	case "", "identity":
	case "gzip":
		f.Compression = c
	case "bzip2":
		return f, fmt.Errorf("ovf: File %q: bzip2 compression is not supported (only gzip)", f.ID)
	default:
		return f, fmt.Errorf("ovf: File %q: compression %q is not supported (only gzip)", f.ID, c)
	}
	return f, nil
}

// cleanHref checks that a file reference names a file inside the
// package and returns it in its plain form ("./x" is "x").
func cleanHref(href string) (string, error) {
	switch {
	case href == "":
		return "", errors.New("ovf:href is empty")
	case strings.ContainsAny(href, "\x00\\"):
		return "", fmt.Errorf("href %q holds a NUL or backslash", href)
	case hasScheme(href):
		return "", fmt.Errorf("href %q: only files inside the package are supported", href)
	case strings.HasPrefix(href, "/"):
		return "", fmt.Errorf("href %q is absolute: only files inside the package are supported", href)
	case hasDotDot(href):
		return "", fmt.Errorf("href %q leaves the package (a \"..\" element)", href)
	}
	var keep []string
	for _, e := range strings.Split(href, "/") {
		if e != "" && e != "." {
			keep = append(keep, e)
		}
	}
	if len(keep) == 0 {
		return "", fmt.Errorf("href %q names no file", href)
	}
	return strings.Join(keep, "/"), nil
}

// hasScheme is whether a reference starts with a URI scheme ("http:",
// "file:") or anything else with a colon before its first slash, which
// on Windows is a drive.
func hasScheme(href string) bool {
	i := strings.IndexAny(href, ":/")
	return i >= 0 && href[i] == ':'
}

// optSize reads an optional non-negative integer attribute.
func (p *parser) optSize(n *node, name string, absent int64) (int64, error) {
	v, ok := n.attr(name, p.ns)
	if !ok {
		return absent, nil
	}
	i, err := smallInt(v)
	if err != nil {
		return 0, fmt.Errorf("ovf:%s %q is not a non-negative integer", name, v)
	}
	return i, nil
}

func (p *parser) diskSection(n *node) error {
	for _, k := range n.kids {
		if k.name.Local != "Disk" {
			continue
		}
		if len(p.d.Disks) >= maxEntries {
			return fmt.Errorf("ovf: DiskSection has more than %d disks", maxEntries)
		}
		d, err := p.disk(k)
		if err != nil {
			return err
		}
		p.disks[d.ID] = true
		p.d.Disks = append(p.d.Disks, d)
	}
	return nil
}

func (p *parser) disk(n *node) (Disk, error) {
	d := Disk{}
	d.ID, _ = n.attr("diskId", p.ns)
	if d.ID == "" {
		return d, errors.New("ovf: a DiskSection Disk has no ovf:diskId")
	}
	if p.disks[d.ID] {
		return d, fmt.Errorf("ovf: two Disks have ovf:diskId %q", d.ID)
	}
	var err error
	if d.Capacity, err = p.capacity(n); err != nil {
		return d, fmt.Errorf("ovf: Disk %q: %v", d.ID, err)
	}
	if d.PopulatedSize, err = p.optSize(n, "populatedSize", -1); err != nil {
		return d, fmt.Errorf("ovf: Disk %q: %v", d.ID, err)
	}
	d.FileRef, _ = n.attr("fileRef", p.ns)
	if d.FileRef != "" && !p.files[d.FileRef] {
		return d, fmt.Errorf("ovf: Disk %q: ovf:fileRef %q names no References File", d.ID, d.FileRef)
	}
	d.Format, _ = n.attr("format", p.ns)
	if parent, ok := n.attr("parentRef", p.ns); ok {
		p.drop("a delta disk (%s on %s)", d.ID, parent)
	}
	return d, nil
}

// capacity is ovf:capacity x ovf:capacityAllocationUnits in bytes.
func (p *parser) capacity(n *node) (int64, error) {
	v, ok := n.attr("capacity", p.ns)
	if !ok {
		return 0, errors.New("no ovf:capacity")
	}
	if strings.Contains(v, "${") {
		return 0, fmt.Errorf("ovf:capacity %q is a property reference, which xva does not resolve", v)
	}
	c, err := smallInt(v)
	if err != nil {
		return 0, fmt.Errorf("ovf:capacity %q is not a non-negative integer", v)
	}
	units := "byte"
	if u, ok := n.attr("capacityAllocationUnits", p.ns); ok && u != "" {
		units = u
	}
	m, err := ParseUnits(units)
	if err != nil {
		return 0, err
	}
	b, err := mulCheck(c, m)
	if err != nil || b > MaxCapacity {
		return 0, fmt.Errorf("capacity %s x %q is more than the %d bytes allowed", v, units, int64(MaxCapacity))
	}
	return b, nil
}

func (p *parser) networkSection(n *node) error {
	for _, k := range n.kids {
		if k.name.Local != "Network" {
			continue
		}
		if len(p.d.Networks) >= maxEntries {
			return fmt.Errorf("ovf: NetworkSection has more than %d networks", maxEntries)
		}
		name, _ := k.attr("name", p.ns)
		if name == "" {
			return errors.New("ovf: a NetworkSection Network has no ovf:name")
		}
		p.d.Networks = append(p.d.Networks, Network{Name: name, Description: k.childText("Description")})
	}
	return nil
}

// content reads the first virtual system, looking into collections.
func (p *parser) content(n *node) error {
	vs := p.firstSystem(n)
	if vs == nil {
		return errors.New("ovf: the VirtualSystemCollection holds no VirtualSystem")
	}
	if p.systems > 1 {
		id, _ := vs.attr("id", p.ns)
		p.drop("VirtualSystemCollection: only the first of %d virtual systems (%s) is read", p.systems, id)
	}
	s, err := p.system(vs)
	if err != nil {
		return err
	}
	p.d.System = s
	return nil
}

// firstSystem returns the first VirtualSystem depth first and counts all;
// a collection's own sections are noted like the envelope's.
func (p *parser) firstSystem(n *node) *node {
	if n.kind() == "VirtualSystem" {
		p.systems++
		return n
	}
	var first *node
	for _, k := range n.kids {
		switch k.kind() {
		case "Info", "Name":
		case "VirtualSystem", "VirtualSystemCollection":
			if vs := p.firstSystem(k); first == nil {
				first = vs
			}
		default:
			p.section(k)
		}
	}
	return first
}

// system reads one VirtualSystem.
func (p *parser) system(n *node) (System, error) {
	s := System{OSType: -1}
	s.ID, _ = n.attr("id", p.ns)
	if s.ID == "" {
		return s, errors.New("ovf: the VirtualSystem has no ovf:id")
	}
	s.Name = n.childText("Name")
	if s.Name == "" {
		s.Name = s.ID
	}
	var hardware []*node
	var annotation, product, vbox string
	for _, k := range n.kids {
		switch k.kind() {
		case "Info", "Name":
		case "AnnotationSection":
			annotation = k.childText("Annotation")
		case "ProductSection":
			if product == "" {
				product = k.childText("Product")
			}
			p.properties(k)
		case "OperatingSystemSection":
			if err := p.operatingSystem(k, &s); err != nil {
				return s, err
			}
		case "VirtualHardwareSection":
			hardware = append(hardware, k)
		case "Machine":
			vbox = vboxFirmware(k)
		default:
			p.section(k)
		}
	}
	h := hw{}
	if len(hardware) > 1 {
		p.drop("only the first of %d VirtualHardwareSections is read", len(hardware))
	}
	if len(hardware) > 0 {
		if err := p.hardware(hardware[0], &s, &h); err != nil {
			return s, err
		}
	}
	s.Description = firstOf(annotation, h.description, product)
	s.Firmware = firstOf(h.vmwFirmware, vbox, xenFirmware(s.Xen))
	return s, nil
}

func firstOf(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

func (p *parser) operatingSystem(n *node, s *System) error {
	if v, ok := n.attr("id", p.ns); ok {
		id, err := smallInt(v)
		if err != nil || id > 32767 {
			return fmt.Errorf("ovf: OperatingSystemSection ovf:id %q is not a number from 0 to 32767", v)
		}
		s.OSType = int(id)
	}
	s.OSDescription = n.childText("Description")
	if s.OSDescription == "" {
		s.OSDescription, _ = n.attr("osType", p.ns) // vmw:osType, VMware's guest id
	}
	return nil
}

// vboxFirmware reads vbox:Machine/Hardware/Firmware@type.
func vboxFirmware(m *node) string {
	h := m.child("Hardware")
	if h == nil {
		return ""
	}
	f := h.child("Firmware")
	if f == nil {
		return ""
	}
	t, _ := f.attr("type", "")
	switch strings.ToUpper(t) {
	case "EFI", "EFI32", "EFI64", "EFIDUAL":
		return "uefi"
	case "BIOS":
		return "bios"
	}
	return ""
}

// xenFirmware reads firmware=uefi|bios in XenCenter's HVM_boot_params,
// a "k=v;k=v;" map.
func xenFirmware(xen map[string]string) string {
	for _, kv := range strings.Split(xen["HVM_boot_params"], ";") {
		k, v, _ := strings.Cut(kv, "=")
		if strings.TrimSpace(k) != "firmware" {
			continue
		}
		switch strings.TrimSpace(v) {
		case "uefi":
			return "uefi"
		case "bios":
			return "bios"
		}
	}
	return ""
}

// hw is what the hardware section says besides the System fields.
type hw struct {
	description string // vssd:Description
	vmwFirmware string
	controllers map[string]controller // by InstanceID
	diskCtrl    []int                 // each disk's controller index, for sortDisks
}

type controller struct {
	kind  string
	index int // order of appearance
}

// hardware reads a VirtualHardwareSection: controllers first, so that a
// device may name one that comes after it, then the devices.
func (p *parser) hardware(n *node, s *System, h *hw) error {
	if sys := n.child("System"); sys != nil {
		s.SystemType = sys.childText("VirtualSystemType")
		h.description = sys.childText("Description")
	}
	var items []*node
	for _, k := range n.kids {
		switch k.name.Local {
		case "Item", "StorageItem", "EthernetPortItem":
			if len(items) >= maxEntries {
				return fmt.Errorf("ovf: VirtualHardwareSection has more than %d items", maxEntries)
			}
			if p.selected(k) {
				items = append(items, k)
			}
		case "Config":
			p.vmwConfig(k, h)
		case "VirtualSystemOtherConfigurationData":
			name, _ := k.attr("Name", p.ns)
			if s.Xen == nil {
				s.Xen = map[string]string{}
			}
			s.Xen[name] = k.childText("Value")
		}
	}
	h.controllers = map[string]controller{}
	for _, it := range items {
		if kind := controllerKind(it); kind != "" {
			id := it.childText("InstanceID")
			if _, dup := h.controllers[id]; !dup {
				h.controllers[id] = controller{kind: kind, index: len(h.controllers)}
			}
		}
	}
	for _, it := range items {
		if err := p.item(it, s, h); err != nil {
			return err
		}
	}
	sortDisks(s.Disks, h.diskCtrl)
	return nil
}

// vmwConfig reads <vmw:Config vmw:key="firmware" vmw:value="efi"/>.
func (p *parser) vmwConfig(n *node, h *hw) {
	if k, _ := n.attr("key", p.ns); k != "firmware" {
		return
	}
	switch v, _ := n.attr("value", p.ns); strings.ToLower(v) {
	case "efi":
		h.vmwFirmware = "uefi"
	case "bios":
		h.vmwFirmware = "bios"
	}
}

// controllerKind is the bus of a controller item, "" when it is not one.
func controllerKind(it *node) string {
	switch it.childText("ResourceType") {
	case "5":
		return "ide"
	case "6":
		return "scsi"
	case "20": // "other storage device": SATA by convention, NVMe by subtype
		if strings.Contains(strings.ToLower(it.childText("ResourceSubType")), "nvme") {
			return "nvme"
		}
		return "sata"
	case "7", "8", "9":
		return "other"
	}
	return ""
}

// deviceNames name the devices the model does not carry, by ResourceType
// (CIM ResourceAllocationSettingData; 35 is VirtualBox's sound card).
var deviceNames = map[int]string{
	1: "a device of type Other", 2: "a computer system", 11: "a network adapter of another kind",
	12: "an I/O slot", 13: "an I/O device", 14: "a floppy drive", 18: "a tape drive",
	21: "a serial port", 22: "a parallel port", 23: "a USB controller", 24: "a graphics controller",
	25: "an IEEE 1394 controller", 26: "a partitionable unit", 27: "a base partitionable unit",
	28: "a power supply", 29: "a cooling device", 30: "an Ethernet switch port",
	33: "an Ethernet connection", 35: "a sound card",
}

// item reads one RASD item into the system.
func (p *parser) item(it *node, s *System, h *hw) error {
	label := itemLabel(it)
	rt, err := smallInt(it.childText("ResourceType"))
	if err != nil {
		return fmt.Errorf("ovf: Item %s: ResourceType %q is not a number", label, it.childText("ResourceType"))
	}
	switch rt {
	case 3:
		return p.cpu(it, label, s)
	case 4:
		return p.memory(it, label, s)
	case 5, 6, 7, 8, 9, 20: // read before
	case 10:
		return p.nic(it, label, s)
	case 15, 16:
		s.CDs++
		if kind, id := hostResource(it); kind != "" {
			p.drop("a CD/DVD drive with media (%s)", id)
		}
	case 17, 19, 31, 32: // XenCenter writes 19 (storage extent) for its disks
		return p.diskDrive(it, label, s, h)
	default:
		if name, ok := deviceNames[int(rt)]; ok {
			p.drop("%s (ResourceType %d)", name, rt)
		} else {
			p.drop("a device of ResourceType %d", rt)
		}
	}
	return nil
}

// itemLabel names an item in errors: its InstanceID, or its name.
func itemLabel(it *node) string {
	return fmt.Sprintf("%q", firstOf(it.childText("InstanceID"), it.childText("ElementName"), it.childText("Caption")))
}

func (p *parser) quantity(it *node, label string) (int64, error) {
	v := it.childText("VirtualQuantity")
	q, err := smallInt(v)
	if err != nil {
		return 0, fmt.Errorf("ovf: Item %s: VirtualQuantity %q is not a non-negative integer", label, v)
	}
	return q, nil
}

func (p *parser) cpu(it *node, label string, s *System) error {
	q, err := p.quantity(it, label)
	if err != nil {
		return err
	}
	if q > MaxVCPUs || int64(s.VCPUs)+q > MaxVCPUs {
		return fmt.Errorf("ovf: Item %s: %d vCPUs in all, more than the %d allowed", label, int64(s.VCPUs)+q, MaxVCPUs)
	}
	s.VCPUs += int(q)
	return nil
}

func (p *parser) memory(it *node, label string, s *System) error {
	q, err := p.quantity(it, label)
	if err != nil {
		return err
	}
	units := it.childText("AllocationUnits")
	if units == "" {
		units = "byte * 2^20"
	}
	m, err := ParseUnits(units)
	if err != nil {
		return fmt.Errorf("ovf: Item %s: %v", label, err)
	}
	b, err := mulCheck(q, m)
	if err == nil {
		b, err = addCheck(s.Memory, b)
	}
	if err != nil || b > MaxMemory {
		return fmt.Errorf("ovf: Item %s: memory of %s x %q in all is more than the %d bytes allowed", label, it.childText("VirtualQuantity"), units, int64(MaxMemory))
	}
	s.Memory = b
	return nil
}

func (p *parser) nic(it *node, label string, s *System) error {
	s.NICs = append(s.NICs, NIC{
		Network: it.childText("Connection"),
		MAC:     normalMAC(it.childText("Address")),
		Model:   it.childText("ResourceSubType"),
	})
	return nil
}

// normalMAC is a MAC address as lower-case aa:bb:cc:dd:ee:ff, from that
// form with ':' or '-' or from 12 hex digits; "" when it is not a MAC.
func normalMAC(a string) string {
	h := a
	if len(a) == 17 {
		sep := a[2]
		if sep != ':' && sep != '-' {
			return ""
		}
		for i := 2; i < 17; i += 3 {
			if a[i] != sep {
				return ""
			}
		}
		h = strings.ReplaceAll(a, string(sep), "")
	}
	if len(h) != 12 || strings.Trim(strings.ToLower(h), "0123456789abcdef") != "" {
		return ""
	}
	h = strings.ToLower(h)
	return h[0:2] + ":" + h[2:4] + ":" + h[4:6] + ":" + h[6:8] + ":" + h[8:10] + ":" + h[10:12]
}

// hostResource reads the first HostResource naming a disk or a file:
// "ovf:/disk/ID", "/disk/ID" (VirtualBox 2.0), "ovf:/file/ID".
func hostResource(it *node) (kind, id string) {
	for _, k := range it.kids {
		if k.name.Local != "HostResource" {
			continue
		}
		v := strings.TrimPrefix(k.text, "ovf:")
		v = strings.TrimPrefix(v, "//")
		v = strings.TrimPrefix(v, "/")
		for _, kind := range []string{"disk", "file"} {
			if id, ok := strings.CutPrefix(v, kind+"/"); ok && id != "" {
				return kind, id
			}
		}
	}
	return "", ""
}

func (p *parser) diskDrive(it *node, label string, s *System, h *hw) error {
	kind, id := hostResource(it)
	switch {
	case kind == "file":
		return fmt.Errorf("ovf: disk drive Item %s: HostResource names a file, not a Disk (ovf:/disk/ID)", label)
	case kind == "":
		var err error
		if id, err = p.blankDisk(it, label); err != nil {
			return err
		}
	case !p.disks[id]:
		return fmt.Errorf("ovf: disk drive Item %s: HostResource names disk %q, which DiskSection does not hold", label, id)
	}
	r := DiskRef{DiskID: id, Address: -1, Device: -1}
	index := 1 << 30 // no controller: after those on one
	if c, ok := h.controllers[it.childText("Parent")]; ok {
		r.Controller, index = c.kind, c.index
	}
	if v := it.childText("AddressOnParent"); v != "" {
		a, err := smallInt(v)
		if err != nil || a > 1<<20 {
			return fmt.Errorf("ovf: disk drive Item %s: AddressOnParent %q is not a small non-negative integer", label, v)
		}
		r.Address = int(a)
	}
	r.Device = xenDevice(it)
	s.Disks = append(s.Disks, r)
	h.diskCtrl = append(h.diskCtrl, index)
	return nil
}

// blankDisk adds to the Disks the blank disk an item without a
// HostResource asks for, as vSphere writes them and govmomi reads them:
// VirtualQuantity x AllocationUnits bytes. Its ID is "blank-" and the
// item's InstanceID, made unique.
func (p *parser) blankDisk(it *node, label string) (string, error) {
	q, err := p.quantity(it, label)
	if err != nil {
		return "", fmt.Errorf("ovf: disk drive Item %s has no HostResource and no size: %v", label, err)
	}
	m, err := ParseUnits(firstOf(it.childText("AllocationUnits"), "byte"))
	if err != nil {
		return "", fmt.Errorf("ovf: disk drive Item %s: %v", label, err)
	}
	b, err := mulCheck(q, m)
	if err != nil || b > MaxCapacity {
		return "", fmt.Errorf("ovf: disk drive Item %s: capacity %d x %q is more than the %d bytes allowed", label, q, it.childText("AllocationUnits"), int64(MaxCapacity))
	}
	if len(p.d.Disks) >= maxEntries {
		return "", fmt.Errorf("ovf: more than %d disks", maxEntries)
	}
	id := "blank-" + it.childText("InstanceID")
	for i := 2; p.disks[id]; i++ {
		id = fmt.Sprintf("blank-%s-%d", it.childText("InstanceID"), i)
	}
	p.disks[id] = true
	p.d.Disks = append(p.d.Disks, Disk{ID: id, Capacity: b, PopulatedSize: -1})
	return id, nil
}

// xenDevice reads XenCenter's "device=N" key in rasd:Connection, the
// disk's userdevice; -1 when absent.
func xenDevice(it *node) int {
	for _, k := range it.kids {
		if k.name.Local != "Connection" {
			continue
		}
		for _, kv := range strings.Split(k.text, ",") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(kv), "device="); ok {
				if d, err := smallInt(v); err == nil && d <= 1<<20 {
					return int(d)
				}
			}
		}
	}
	return -1
}

// sortDisks puts the disks in the virtual machine's order: XenCenter's
// device numbers first when given, then by controller in order of
// appearance, then by address; otherwise as listed. ctrl holds each
// disk's controller index.
func sortDisks(ds []DiskRef, ctrl []int) {
	const last = 1 << 30
	type keyed struct {
		key [3]int
		ref DiskRef
	}
	ks := make([]keyed, len(ds))
	for i, r := range ds {
		k := [3]int{last, ctrl[i], last}
		if r.Device >= 0 {
			k[0] = r.Device
		}
		if r.Address >= 0 {
			k[2] = r.Address
		}
		ks[i] = keyed{k, r}
	}
	slices.SortStableFunc(ks, func(a, b keyed) int {
		for i := range a.key {
			if c := cmp.Compare(a.key[i], b.key[i]); c != 0 {
				return c
			}
		}
		return 0
	})
	for i := range ks {
		ds[i] = ks[i].ref
	}
}

package ova

import (
	"crypto/rand"
	"crypto/sha1"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The version block we write. xapi refuses archives whose xapi_major and
// xapi_minor are newer than its own, so they are the lowest real values;
// export_vsn 2 means inline checksums and no trailing table.
var exportVersion = []Member{
	{"hostname", NewString("localhost")},
	{"date", NewString("20090101T00:00:00Z")},
	{"product_version", NewString("")},
	{"product_brand", NewString("xva")},
	{"build_number", NewString("")},
	{"xapi_major", NewInt(1)},
	{"xapi_minor", NewInt(1)},
	{"export_vsn", NewInt(2)},
}

// ErrInvalidVM: the VM described cannot be made into one a host can start.
var ErrInvalidVM = errors.New("ova: the VM cannot be converted")

// minStaticMemory is what xapi's legacy importer set as memory_static_min.
const minStaticMemory = 16 << 20

// FromAppliance builds an xapi ova.xml for the only VM of an appliance:
// complete VM, VBD, VDI and SR records, and a VIF record per network
// interface with a network record per distinct network name, every field
// the importer needs present and typed as it expects. A legacy appliance
// has no interfaces, as the legacy importer created none. Object ids are
// Ref:100 upwards (Ref:1000 upwards when there are more than 900 objects),
// all of one width, so that the VDIs' lexicographic order, the order xapi
// reads disks in, is the order of the VM's disks.
//
// The VM's Firmware must be "", FirmwareBIOS or, for an HVM VM,
// FirmwareUEFI. Each VIF needs a Network name, an unsigned decimal Device
// no other VIF of the VM has, an MTU of 0 (1500) to 65535, and a MAC that
// is empty or six colon-separated hex pairs, which is written lower-case.
// Whatever is wrong is an error naming the VIF.
//
// The uuids are random unless seed is given: then they are derived from
// the seed and the document, so the same seed and input give the same
// bytes. Two different VMs must never share a uuid (a host imports a VM
// with a uuid it knows as a newer version of it, or refuses), and the
// document alone cannot tell two VMs with the same name and sizes apart:
// reproducible output is the caller's explicit choice of seed.
func FromAppliance(a *Appliance, seed string) (*Export, error) {
	if len(a.VMs) != 1 {
		return nil, fmt.Errorf("ova: the appliance holds %d VMs; converting supports exactly one", len(a.VMs))
	}
	vm := a.VMs[0]
	// xapi's legacy importer gave every VM one vCPU whatever its vcpus
	// said (import_xva.ml:92 at xen-api a14b69f4); we keep a count that
	// can start, and do as it did for one that cannot. It took mem_set as
	// it was, and a VM without memory never starts: refuse that.
	if vm.VCPUs < 1 {
		vm.VCPUs = 1
	}
	if vm.Memory <= 0 {
		return nil, fmt.Errorf("%w: <config mem_set=\"%d\">: a VM without memory can never start", ErrInvalidVM, vm.Memory)
	}
	if len(vm.VBDs) > 400 {
		return nil, fmt.Errorf("ova: %d disks are too many", len(vm.VBDs))
	}
	if err := checkFirmware(vm); err != nil {
		return nil, err
	}
	vifs, err := checkVIFs(vm.VIFs)
	if err != nil {
		return nil, err
	}
	vm.VIFs = vifs
	networks := networkNames(vifs)
	doc, err := a.MarshalLegacy()
	if err != nil {
		return nil, err
	}
	// The legacy document leaves the interfaces and firmware out: the
	// uuids derive from them too, so that VMs that differ only there do
	// not share uuids. Without either, the input is the document alone,
	// as before they existed.
	if vm.Firmware != "" || len(vifs) > 0 {
		doc = append(doc, "\x00firmware="+vm.Firmware...)
		for _, v := range vifs {
			doc = append(doc, fmt.Sprintf("\x00vif %q %q %q %d", v.Device, v.MAC, v.Network, v.MTU)...)
		}
	}
	uuid := randomUUID
	if seed != "" {
		uuid = func(role string) string { return uuidFrom(append([]byte(seed+"\x00"), doc...), role) }
	}
	// One width for every id: 100 upwards while they fit in three
	// digits, as they always did, else the next power of ten.
	next, count := 100, 2+2*len(vm.VBDs)+len(vifs)+len(networks)
	for next+count > 10*next {
		next *= 10
	}
	ref := func() string { next++; return "Ref:" + strconv.Itoa(next-1) }
	vmID, srID := ref(), ""
	type disk struct{ vbdID, vdiID string }
	disks := make([]disk, len(vm.VBDs))
	// VDI ids follow the disks' source order, the order a legacy archive
	// stores them in, so a converted stream keeps xapi's order.
	order := make([]int, len(vm.VBDs))
	for i := range order {
		order[i] = i
	}
	source := func(i int) string { v, _ := a.VDI(vm.VBDs[i].VDI); return v.Source }
	slices.SortStableFunc(order, func(x, y int) int { return strings.Compare(source(x), source(y)) })
	for _, i := range order {
		disks[i].vdiID = ref()
	}
	for i := range disks {
		disks[i].vbdID = ref()
	}
	srID = ref()
	vifIDs := make([]string, len(vifs))
	for i := range vifs {
		vifIDs[i] = ref()
	}
	netIDs := make([]string, len(networks))
	for i := range networks {
		netIDs[i] = ref()
	}

	var objects []*Value
	add := func(class, id string, fields []Member) {
		objects = append(objects, NewStruct(
			Member{"class", NewString(class)}, Member{"id", NewString(id)}, Member{"snapshot", NewStruct(fields...)}))
	}
	var vbdIDs, vdiIDs []string
	for _, d := range disks {
		vbdIDs = append(vbdIDs, d.vbdID)
		vdiIDs = append(vdiIDs, d.vdiID)
	}
	add("VM", vmID, vmRecord(vm, uuid("vm"), uuid("mac_seed"), vbdIDs, vifIDs))
	for i, b := range vm.VBDs {
		vdi, ok := a.VDI(b.VDI)
		if !ok {
			return nil, fmt.Errorf("ova: vbd %q names missing vdi %q", b.Device, b.VDI)
		}
		add("VBD", disks[i].vbdID, vbdRecord(b, i, vdi, uuid("vbd"+strconv.Itoa(i)), vmID, disks[i].vdiID))
	}
	for i, b := range vm.VBDs {
		vdi, _ := a.VDI(b.VDI)
		add("VDI", disks[i].vdiID, vdiRecord(vdi, uuid("vdi"+strconv.Itoa(i)), srID, disks[i].vbdID))
	}
	add("SR", srID, srRecord(uuid("sr"), vdiIDs))
	for i, v := range vifs {
		n := slices.Index(networks, v.Network)
		add("VIF", vifIDs[i], vifRecord(v, uuid("vif"+strconv.Itoa(i)), vmID, netIDs[n], networkMTU(vifs, v.Network)))
	}
	for i, name := range networks {
		var members []string
		for j, v := range vifs {
			if v.Network == name {
				members = append(members, vifIDs[j])
			}
		}
		add("network", netIDs[i], networkRecord(name, uuid("network"+strconv.Itoa(i)), networkMTU(vifs, name), members))
	}
	root := NewStruct(
		Member{"version", NewStruct(exportVersion...)},
		Member{"objects", NewArray(objects...)},
	)
	return ParseExport(root.Marshal())
}

var epoch = NewTime(time.Unix(0, 0))

func null() *Value { return NewString(NullRef) }

// platformFor is the platform map of a converted VM: what a current host
// gives a new VM from its default templates (xenserver/guest-templates-json
// guesttemplates/blank_template.py:35-51 sets nx, acpi, apic, pae and hpet
// for every template; base-hvmlinux.json and base-windows.json set
// viridian off and on). xenguest clears the guest's NX and PAE CPUID bits
// when platform/nx or platform/pae is absent or "false"
// (tools/xenguest/xenguest_stubs.c:312-316): 64-bit Windows 8 and later do
// not boot without NX. device-model is left to the importing host, which
// sets qemu-upstream-compat (import.ml:652-662). A legacy archive says only
// its distribution: Windows gets the Hyper-V enlightenments, and Windows
// 2000 keeps ACPI and the APIC off as the legacy importer gave it
// (import_xva.ml:58-73 at xen-api a14b69f4).
func platformFor(vm VM) map[string]string {
	p := map[string]string{"nx": "true", "acpi": "1", "apic": "true", "pae": "true", "hpet": "true"}
	if vm.HVM {
		p["viridian"] = "false"
	}
	if vm.Distrib == "windows" {
		p["viridian"] = "true"
		if vm.DistribVersion == "win2k" {
			p["acpi"], p["apic"] = "0", "false"
		}
	}
	return p
}

func vmRecord(vm VM, uuid, macSeed string, vbds, vifs []string) []Member {
	mem := vm.Memory
	policy, bootloader, domain := "", "pygrub", "pv"
	bootParams := map[string]string{}
	if vm.HVM {
		policy, bootloader, domain = "BIOS order", "", "hvm"
		bootParams["order"] = "cd"
		// The firmware a host boots an HVM VM with is this key, "bios" or
		// "uefi", BIOS when absent (xapi_xenops.ml:255-268; documented in
		// doc/content/xen-api/topics/vm-lifecycle.md:58-65). A UEFI VM
		// needs nothing else: its NVRAM starts empty and gets the
		// defaults (xapi_xenops.ml:226-253); Secure Boot is off unless
		// platform:secureboot is true (xapi_vm.ml:1740-1745,
		// vm-lifecycle.md:64-65), so platform stays as for BIOS; and
		// the device model the import adds, qemu-upstream-compat
		// (import.ml:652-662), boots UEFI: only qemu-trad is refused
		// with it (vm_platform.ml:167-186).
		bootParams["firmware"] = FirmwareBIOS
		if vm.Firmware == FirmwareUEFI {
			bootParams["firmware"] = FirmwareUEFI
		}
	}
	platform := platformFor(vm)
	return []Member{
		{"uuid", NewString(uuid)},
		{"allowed_operations", NewArray()},
		{"current_operations", NewStruct()},
		{"power_state", NewString("Halted")},
		{"name_label", NewString(vm.Label)},
		{"name_description", NewString(vm.Description)},
		{"user_version", NewInt(1)},
		{"is_a_template", NewBool(false)},
		{"is_default_template", NewBool(false)},
		{"suspend_VDI", null()},
		{"resident_on", null()},
		{"affinity", null()},
		{"memory_overhead", NewInt(0)},
		{"memory_target", NewInt(mem)},
		{"memory_static_max", NewInt(mem)},
		{"memory_dynamic_max", NewInt(mem)},
		{"memory_dynamic_min", NewInt(mem)},
		{"memory_static_min", NewInt(min(mem, minStaticMemory))},
		{"VCPUs_params", NewStruct()},
		{"VCPUs_max", NewInt(int64(vm.VCPUs))},
		{"VCPUs_at_startup", NewInt(int64(vm.VCPUs))},
		{"actions_after_shutdown", NewString("destroy")},
		{"actions_after_reboot", NewString("restart")},
		{"actions_after_crash", NewString("restart")},
		{"consoles", NewArray()},
		{"VIFs", NewStrings(vifs...)},
		{"VBDs", NewStrings(vbds...)},
		{"crash_dumps", NewArray()},
		{"VTPMs", NewArray()},
		{"PV_bootloader", NewString(bootloader)},
		{"PV_kernel", NewString("")},
		{"PV_ramdisk", NewString("")},
		{"PV_args", NewString(vm.KernelCmdline)},
		{"PV_bootloader_args", NewString("")},
		{"PV_legacy_args", NewString("")},
		{"HVM_boot_policy", NewString(policy)},
		{"HVM_boot_params", NewMap(bootParams)},
		{"HVM_shadow_multiplier", NewDouble(1)},
		{"platform", NewMap(platform)},
		{"PCI_bus", NewString("")},
		// Every VM a host makes has a mac_seed (xapi_vm.ml:586-590), from
		// which VIF.create makes the MAC of a VIF given none
		// (xapi_vif_helpers.ml:259-272).
		{"other_config", NewMap(map[string]string{"mac_seed": macSeed})},
		{"domid", NewInt(-1)},
		{"domarch", NewString("")},
		{"last_boot_CPU_flags", NewStruct()},
		{"is_control_domain", NewBool(false)},
		{"metrics", null()},
		{"guest_metrics", null()},
		{"last_booted_record", NewString("")},
		{"recommendations", NewString("")},
		{"xenstore_data", NewStruct()},
		{"ha_always_run", NewBool(false)},
		{"ha_restart_priority", NewString("")},
		{"is_a_snapshot", NewBool(false)},
		{"snapshot_of", null()},
		{"snapshots", NewArray()},
		{"snapshot_time", epoch},
		{"transportable_snapshot_id", NewString("")},
		{"blobs", NewStruct()},
		{"tags", NewArray()},
		{"blocked_operations", NewStruct()},
		{"snapshot_info", NewStruct()},
		{"snapshot_metadata", NewString("")},
		{"parent", null()},
		{"children", NewArray()},
		{"bios_strings", NewStruct()},
		{"is_snapshot_from_vmpp", NewBool(false)},
		{"is_vmss_snapshot", NewBool(false)},
		{"start_delay", NewInt(0)},
		{"shutdown_delay", NewInt(0)},
		{"order", NewInt(0)},
		{"VGPUs", NewArray()},
		{"attached_PCIs", NewArray()},
		{"suspend_SR", null()},
		{"version", NewInt(0)},
		{"generation_id", NewString("")},
		{"hardware_platform_version", NewInt(0)},
		{"has_vendor_device", NewBool(false)},
		{"requires_reboot", NewBool(false)},
		{"reference_label", NewString("")},
		{"domain_type", NewString(domain)},
		{"NVRAM", NewStruct()},
		{"VUSBs", NewArray()},
	}
}

func vbdRecord(b VBD, index int, vdi VDI, uuid, vmID, vdiID string) []Member {
	mode := "RW"
	if b.ReadOnly {
		mode = "RO"
	}
	return []Member{
		{"uuid", NewString(uuid)},
		{"allowed_operations", NewArray()},
		{"current_operations", NewStruct()},
		{"VM", NewString(vmID)},
		{"VDI", NewString(vdiID)},
		{"device", NewString(b.Device)},
		{"userdevice", NewString(strconv.Itoa(index))},
		{"bootable", NewBool(b.Bootable())},
		{"mode", NewString(mode)},
		{"type", NewString("Disk")},
		// As xapi's legacy importer did: only the system disk is fixed.
		{"unpluggable", NewBool(vdi.Variety != "system")},
		{"storage_lock", NewBool(false)},
		{"empty", NewBool(false)},
		{"other_config", NewMap(map[string]string{"owner": "true"})},
		{"currently_attached", NewBool(false)},
		{"status_code", NewInt(0)},
		{"status_detail", NewString("")},
		{"runtime_properties", NewStruct()},
		{"qos_algorithm_type", NewString("")},
		{"qos_algorithm_params", NewStruct()},
		{"qos_supported_algorithms", NewArray()},
		{"metrics", null()},
	}
}

// maxVIFs bounds a VM's network interfaces. xapi offers devices 0 to 15
// (xapi_vm_helpers.ml:1306-1308) though VIF.create takes any number.
const maxVIFs = 256

// maxVIFDevice bounds a VIF's device number: VIF.create makes a MAC by
// hashing the VM's mac_seed 2×device+1 times (xapi_vif_helpers.ml:210-229, 264).
const maxVIFDevice = 65535

// checkFirmware refuses a firmware xapi does not know
// (xapi_xenops.ml:255-268), and UEFI for a PV VM, which has no firmware.
func checkFirmware(vm VM) error {
	switch vm.Firmware {
	case "", FirmwareBIOS:
		return nil
	case FirmwareUEFI:
		if !vm.HVM {
			return fmt.Errorf("%w: UEFI firmware for a PV VM, which boots no firmware", ErrInvalidVM)
		}
		return nil
	}
	return fmt.Errorf("%w: firmware %q (want %q or %q)", ErrInvalidVM, vm.Firmware, FirmwareBIOS, FirmwareUEFI)
}

// checkVIFs returns the VIFs as FromAppliance writes them: devices in
// their plain decimal form, MACs lower-case, or the first thing a host
// would refuse. VIF.create wants a device that Scanf "%u" reads whole
// (INVALID_DEVICE, xapi_vif_helpers.ml:204-208, 257-258), no other VIF of
// the VM with the same number (DEVICE_ALREADY_EXISTS, 292-302), and a MAC
// of six two-digit hex groups (MAC_INVALID, 259-272, helpers.ml:1308-1318)
// unless it is empty, when it makes one from the VM's mac_seed.
func checkVIFs(in []VIF) ([]VIF, error) {
	if len(in) > maxVIFs {
		return nil, fmt.Errorf("%w: %d network interfaces, more than the %d allowed", ErrInvalidVM, len(in), maxVIFs)
	}
	out := make([]VIF, len(in))
	devices := map[uint64]string{}
	for i, v := range in {
		n, err := strconv.ParseUint(v.Device, 10, 32)
		if err != nil || !isDigits(v.Device) || n > maxVIFDevice {
			return nil, fmt.Errorf("%w: VIF device %q: not an unsigned decimal up to %d", ErrInvalidVM, v.Device, maxVIFDevice)
		}
		if first, dup := devices[n]; dup {
			return nil, fmt.Errorf("%w: VIF device %q: VIF device %q has the same number", ErrInvalidVM, v.Device, first)
		}
		devices[n] = v.Device
		v.Device = strconv.FormatUint(n, 10)
		if v.MAC != "" && !validMAC(v.MAC) {
			return nil, fmt.Errorf("%w: VIF device %s: MAC %q is not six hex pairs like aa:bb:cc:dd:ee:ff", ErrInvalidVM, v.Device, v.MAC)
		}
		v.MAC = strings.ToLower(v.MAC)
		if v.Network == "" {
			return nil, fmt.Errorf("%w: VIF device %s names no network", ErrInvalidVM, v.Device)
		}
		if v.MTU < 0 || v.MTU > 65535 {
			return nil, fmt.Errorf("%w: VIF device %s: MTU %d is out of range", ErrInvalidVM, v.Device, v.MTU)
		}
		if v.MTU == 0 {
			v.MTU = 1500 // as Network.create makes it (xapi_network.ml:243-247)
		}
		out[i] = v
	}
	return out, nil
}

func isDigits(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return s != ""
}

// validMAC is Helpers.is_valid_MAC (helpers.ml:1308-1318): six groups of
// two hex digits, either case, separated by colons.
func validMAC(s string) bool {
	groups := strings.Split(s, ":")
	if len(groups) != 6 {
		return false
	}
	for _, g := range groups {
		if len(g) != 2 || !isHex(g[0]) || !isHex(g[1]) {
			return false
		}
	}
	return true
}

func isHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

// networkNames lists the distinct networks of vifs, in order of first use.
func networkNames(vifs []VIF) []string {
	var names []string
	for _, v := range vifs {
		if !slices.Contains(names, v.Network) {
			names = append(names, v.Network)
		}
	}
	return names
}

// networkMTU is the MTU of the network name: that of its first VIF.
func networkMTU(vifs []VIF, name string) int64 {
	for _, v := range vifs {
		if v.Network == name {
			return v.MTU
		}
	}
	return 1500
}

// vifRecord is a VIF as xapi exports one of a halted VM. The import
// blanks MAC unless it is a restore (import.ml:1548-1559) and VIF.create
// then makes one from the VM's mac_seed and sets MAC_autogenerated, which
// is not a constructor field, itself (xapi_vif_helpers.ml:259-270): the
// record says what an export of that VIF would. The MTU a guest gets is
// its network's unless other_config:mtu says otherwise
// (xapi_xenops.ml:758-771): a VIF whose MTU is not its network's has it
// there too.
func vifRecord(v VIF, uuid, vmID, netID string, networkMTU int64) []Member {
	other := map[string]string{}
	if v.MTU != networkMTU {
		other["mtu"] = strconv.FormatInt(v.MTU, 10)
	}
	return []Member{
		{"uuid", NewString(uuid)},
		{"allowed_operations", NewArray()},
		{"current_operations", NewStruct()},
		{"device", NewString(v.Device)},
		{"network", NewString(netID)},
		{"VM", NewString(vmID)},
		{"MAC", NewString(v.MAC)},
		{"MTU", NewInt(v.MTU)},
		{"other_config", NewMap(other)},
		{"currently_attached", NewBool(false)},
		{"status_code", NewInt(0)},
		{"status_detail", NewString("")},
		{"runtime_properties", NewStruct()},
		{"qos_algorithm_type", NewString("")},
		{"qos_algorithm_params", NewStruct()},
		{"qos_supported_algorithms", NewArray()},
		{"metrics", null()},
		{"MAC_autogenerated", NewBool(v.MAC == "")},
		{"locking_mode", NewString("network_default")},
		{"ipv4_allowed", NewArray()},
		{"ipv6_allowed", NewArray()},
		{"ipv4_configuration_mode", NewString("None")},
		{"ipv4_addresses", NewArray()},
		{"ipv4_gateway", NewString("")},
		{"ipv6_configuration_mode", NewString("None")},
		{"ipv6_addresses", NewArray()},
		{"ipv6_gateway", NewString("")},
		{"trunks", NewArray()},
	}
}

// networkRecord is a network the VM's VIFs are on. The import uses the
// host's network of the same name_label, else one whose bridge is the
// record's, else creates it from the record (import.ml:1211-1278). The
// bridge is left empty: no network of a host has an empty bridge, so the
// name alone decides, and a created network gets a fresh xapiN bridge
// (xapi_network.ml:254-256) rather than one that may clash
// (BRIDGE_NAME_EXISTS, 271-273).
func networkRecord(name, uuid string, mtu int64, vifs []string) []Member {
	return []Member{
		{"uuid", NewString(uuid)},
		{"name_label", NewString(name)},
		{"name_description", NewString("")},
		{"allowed_operations", NewArray()},
		{"current_operations", NewStruct()},
		{"VIFs", NewStrings(vifs...)},
		{"PIFs", NewArray()},
		{"MTU", NewInt(mtu)},
		{"other_config", NewStruct()},
		{"bridge", NewString("")},
		{"managed", NewBool(true)},
		{"blobs", NewStruct()},
		{"tags", NewArray()},
		{"default_locking_mode", NewString("unlocked")},
		{"assigned_ips", NewStruct()},
		{"purpose", NewArray()},
	}
}

// XapiSize is the virtual size an xapi archive can carry for a disk of n
// bytes: whole 512-byte sectors. xapi's importer reads the next tar header
// before skipping a block's padding, so a block that is not whole sectors
// throws it off, and VDIs are sector-sized anyway.
func XapiSize(n int64) int64 { return (n + 511) / 512 * 512 }

// vdiRecord is the VDI of a legacy disk. It is never read_only, even for a
// read-only VBD: xapi writes the imported data through a read-write VBD in
// dom0, which VBD.create refuses on a read-only VDI (VDI_READONLY); only
// the VM's VBD carries the mode.
func vdiRecord(v VDI, uuid, srID, vbdID string) []Member {
	v.Size = XapiSize(v.Size)
	variety := v.Variety
	if variety == "" {
		variety = "user"
	}
	return []Member{
		{"uuid", NewString(uuid)},
		{"name_label", NewString(v.Name)},
		{"name_description", NewString("")},
		{"allowed_operations", NewArray()},
		{"current_operations", NewStruct()},
		{"SR", NewString(srID)},
		{"VBDs", NewStrings(vbdID)},
		{"crash_dumps", NewArray()},
		{"virtual_size", NewInt(v.Size)},
		{"physical_utilisation", NewInt(v.Size)},
		{"type", NewString(variety)},
		{"sharable", NewBool(false)},
		{"read_only", NewBool(false)},
		{"other_config", NewStruct()},
		{"storage_lock", NewBool(false)},
		{"location", NewString("")},
		{"managed", NewBool(true)},
		{"missing", NewBool(false)},
		{"parent", null()},
		{"xenstore_data", NewStruct()},
		{"sm_config", NewStruct()},
		{"is_a_snapshot", NewBool(false)},
		{"snapshot_of", null()},
		{"snapshots", NewArray()},
		{"snapshot_time", epoch},
		{"tags", NewArray()},
		{"allow_caching", NewBool(false)},
		{"on_boot", NewString("persist")},
		{"metadata_of_pool", null()},
		{"metadata_latest", NewBool(false)},
		{"is_tools_iso", NewBool(false)},
		{"cbt_enabled", NewBool(false)},
	}
}

func srRecord(uuid string, vdis []string) []Member {
	return []Member{
		{"uuid", NewString(uuid)},
		{"name_label", NewString("Local storage")},
		{"name_description", NewString("")},
		{"allowed_operations", NewArray()},
		{"current_operations", NewStruct()},
		{"VDIs", NewStrings(vdis...)},
		{"PBDs", NewArray()},
		{"virtual_allocation", NewInt(0)},
		{"physical_utilisation", NewInt(0)},
		{"physical_size", NewInt(0)},
		{"type", NewString("lvm")},
		{"content_type", NewString("user")},
		{"shared", NewBool(false)},
		{"other_config", NewStruct()},
		{"tags", NewArray()},
		{"sm_config", NewStruct()},
		{"blobs", NewStruct()},
		{"local_cache_enabled", NewBool(false)},
		{"introduced_by", null()},
		{"clustered", NewBool(false)},
		{"is_tools_sr", NewBool(false)},
	}
}

// uuidFrom derives a name-based (version 5 style) UUID from seed and role.
func uuidFrom(seed []byte, role string) string {
	h := sha1.Sum(append([]byte(role+"\x00"), seed...))
	h[6] = h[6]&0x0f | 0x50
	h[8] = h[8]&0x3f | 0x80
	return formatUUID(h[:16])
}

// randomUUID returns a random (version 4) UUID.
func randomUUID(string) string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return formatUUID(b[:])
}

func formatUUID(b []byte) string {
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// ToAppliance builds the legacy view of the exported VM: its name,
// description, memory, vCPUs, boot mode, kernel command line and disks. A
// disk's source directory is its device name, as the xe CLI expects. The
// VM keeps its Firmware and VIFs, which MarshalLegacy cannot write: see
// VM.LegacyDrops.
func (e *Export) ToAppliance() (*Appliance, error) {
	o, err := e.VMObject()
	if err != nil {
		return nil, err
	}
	vm, err := e.VM()
	if err != nil {
		return nil, err
	}
	disks, err := e.Disks(o)
	if err != nil {
		return nil, err
	}
	vm.VBDs = nil
	a := &Appliance{}
	for _, d := range disks {
		if d.VBD == nil {
			continue // a suspend image has no place in a legacy appliance
		}
		name := "vdi_" + d.Device
		fn := "user"
		if d.Bootable {
			fn = "root"
		}
		vm.VBDs = append(vm.VBDs, VBD{Device: d.Device, Function: fn, ReadOnly: d.ReadOnly, VDI: name})
		variety := strings.ToLower(d.VDI.Str("type"))
		if !validVariety(variety) {
			variety = "user"
		}
		a.VDIs = append(a.VDIs, VDI{Name: name, Size: d.Size, Source: "file://" + d.Device, Type: TypeGzippedChunks, Variety: variety})
	}
	a.VMs = []VM{vm}
	return a, a.check()
}

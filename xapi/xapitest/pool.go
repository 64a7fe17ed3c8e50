package xapitest

// The pool's VMs as VM.get_all_records returns them, and the export
// handler's refusals and failures, from xen-api at the same commit as
// import.go (e2ee48d6); line numbers are of that commit.

import (
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/xva-tools/xva/ova"
)

// PoolVM is a VM of the pool: the fields of its record xva reads
// (ocaml/idl/datamodel_vm.ml: uuid 2778, name_label by the "name"
// namespace 2784 and datamodel_common.ml:776-785, power_state 2798,
// is_a_template 2809, is_control_domain 2961, is_a_snapshot 3062, tags
// 3114).
type PoolVM struct {
	UUID, Name string
	// PowerState is one of the enum vm_power_state's names, as the API
	// spells them (datamodel_vm.ml:225-237): Halted, Paused, Running,
	// Suspended.
	PowerState string
	// Template, ControlDomain and Snapshot are is_a_template,
	// is_control_domain and is_a_snapshot. A snapshot is a template too:
	// VM.snapshot makes its record with is_a_template = is_a_snapshot ||
	// the source's (xapi_vm_clone.ml:341); NewSnapshot sets both.
	Template, ControlDomain, Snapshot bool
	Tags                              []string
}

// Ref is the VM's ref in the model.
func (v PoolVM) Ref() string { return "OpaqueRef:vm-" + v.UUID }

// AddPoolVM adds a VM to the pool, with the archive its export serves
// (nil for none: a control domain, say).
func (s *Server) AddPoolVM(v PoolVM, archive []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.PoolVMs = append(s.PoolVMs, v)
	if archive != nil {
		s.Exports[v.UUID] = archive
	}
}

// ExportPeak is the most exports that were in flight at once.
func (s *Server) ExportPeak() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.exportPeak
}

func (s *Server) exportStarted() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.exporting++
	s.exportPeak = max(s.exportPeak, s.exporting)
}

func (s *Server) exportEnded() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.exporting--
}

// vmRecords is VM.get_all_records: a map from each VM's ref to its
// record, every VM of the pool, templates, snapshots and control domains
// included (the generated get_all_records does not filter; xe's
// select_vms filters out templates and control domains itself,
// cli_operations.ml:3260-3272). s.mu is held.
func (s *Server) vmRecords() *ova.Value {
	var members []ova.Member
	for _, v := range s.PoolVMs {
		tags := v.Tags
		if tags == nil {
			tags = []string{}
		}
		rec := ova.NewStruct(
			ova.Member{Name: "uuid", Value: ova.NewString(v.UUID)},
			ova.Member{Name: "name_label", Value: ova.NewString(v.Name)},
			ova.Member{Name: "name_description", Value: ova.NewString("")},
			ova.Member{Name: "power_state", Value: ova.NewString(v.PowerState)},
			ova.Member{Name: "is_a_template", Value: ova.NewBool(v.Template || v.Snapshot)},
			ova.Member{Name: "is_default_template", Value: ova.NewBool(false)},
			ova.Member{Name: "is_control_domain", Value: ova.NewBool(v.ControlDomain)},
			ova.Member{Name: "is_a_snapshot", Value: ova.NewBool(v.Snapshot)},
			ova.Member{Name: "tags", Value: ova.NewStrings(tags...)},
			ova.Member{Name: "other_config", Value: ova.NewMap(map[string]string{})},
		)
		members = append(members, ova.Member{Name: v.Ref(), Value: rec})
	}
	return ova.NewStruct(members...)
}

// exportRefusal is what taking the VM's lock for `export refuses, if
// anything: Export.lock_vm asserts the operation valid (export.ml:756-765),
// and Xapi_vm_lifecycle allows `export in the Halted and Suspended power
// states only (xapi_vm_lifecycle.ml:86-90), else VM_BAD_POWER_STATE with
// the VM's ref, the states expected and the state it is in, lower-case
// (report_power_state_error, xapi_vm_lifecycle.ml:288-295). A VM not in
// PoolVMs (one only in Exports) is taken to be halted. s.mu is held.
func (s *Server) exportRefusal(uuid string) error {
	i := slices.IndexFunc(s.PoolVMs, func(v PoolVM) bool { return v.UUID == uuid })
	if i < 0 {
		return nil
	}
	v := s.PoolVMs[i]
	if v.PowerState == "Halted" || v.PowerState == "Suspended" {
		return nil
	}
	return failure("VM_BAD_POWER_STATE", v.Ref(), "halted, suspended", strings.ToLower(v.PowerState))
}

// failExport is an export that fails on the host after n bytes, as when
// reading a disk fails: the headers went out (HTTP/1.0, no length, the
// connection closed at the end: export.ml:1004-1013), so the client sees
// the stream end early, cleanly; only the task, failed with the error,
// says what happened.
func (s *Server) failExport(w http.ResponseWriter, t *task, archive []byte, n int64) {
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	defer conn.Close()
	fmt.Fprintf(brw, "HTTP/1.0 200 OK\r\nConnection: close\r\ntask-id: task\r\ncontent-type: application/octet-stream\r\n"+
		"Content-Disposition: attachment; filename=\"export.xva\"\r\n\r\n")
	brw.Write(archive[:min(n, int64(len(archive)))])
	brw.Flush()
	s.finish(t, "", failure("VDI_IO_ERROR", "Device I/O errors"))
}

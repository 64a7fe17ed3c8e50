package xapi

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// The VMs of a pool, and which of them an export of many takes. Field
// names and their meaning are xen-api's datamodel (ocaml/idl/
// datamodel_vm.ml at commit e2ee48d6: uuid 2778, name_label 2784 with
// datamodel_common.ml:776-785, power_state 2798, is_a_template 2809,
// is_control_domain 2961, is_a_snapshot 3062, tags 3114).

// VMRecord is what VM.get_all_records says of a VM, the fields xva
// selects and names exports by.
type VMRecord struct {
	Ref, UUID, Name string
	// PowerState is Halted, Paused, Running or Suspended, as the API
	// spells vm_power_state (datamodel_vm.ml:225-237).
	PowerState      string
	IsTemplate      bool // is_a_template; a snapshot has it too
	IsControlDomain bool // dom0 or a driver domain
	IsSnapshot      bool // is_a_snapshot
	Tags            []string
}

// UserVM reports whether r is a VM a user runs: not a template, not a
// control domain, not a snapshot. xe's select_vms drops templates and
// control domains the same way (cli_operations.ml:3260-3272); a snapshot
// is a template as well (VM.snapshot sets is_a_template,
// xapi_vm_clone.ml:341), but is_a_snapshot is checked on its own so that
// the rule does not rest on that.
func (r VMRecord) UserVM() bool { return !r.IsTemplate && !r.IsControlDomain && !r.IsSnapshot }

// VMRecords returns every VM of the pool, templates, snapshots and
// control domains included, sorted by name then uuid.
func (c *Client) VMRecords(ctx context.Context) ([]VMRecord, error) {
	v, err := c.Call(ctx, "VM.get_all_records")
	if err != nil {
		return nil, err
	}
	var out []VMRecord
	for _, m := range v.Members {
		rec := m.Value
		flag := func(name string) (bool, error) {
			b, err := rec.Field(name).Bool()
			if err != nil {
				return false, fmt.Errorf("xapi: VM.get_all_records: VM %s: %s: %w", m.Name, name, err)
			}
			return b, nil
		}
		r := VMRecord{Ref: m.Name, UUID: rec.Field("uuid").Str(), Name: rec.Field("name_label").Str(),
			PowerState: rec.Field("power_state").Str(), Tags: rec.Field("tags").Strings()}
		if r.IsTemplate, err = flag("is_a_template"); err != nil {
			return nil, err
		}
		if r.IsControlDomain, err = flag("is_control_domain"); err != nil {
			return nil, err
		}
		if r.IsSnapshot, err = flag("is_a_snapshot"); err != nil {
			return nil, err
		}
		// The uuid names files (ExportName): one that is not the
		// canonical 8-4-4-4-12 form, as xapi makes them, could name a
		// path elsewhere, and comes from a host xva need not trust.
		if !IsUUID(r.UUID) {
			return nil, fmt.Errorf("xapi: VM.get_all_records: VM %s has uuid %q, not one of the form xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx", m.Name, r.UUID)
		}
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b VMRecord) int {
		if c := strings.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		return strings.Compare(a.UUID, b.UUID)
	})
	return out, nil
}

// Selection says which VMs to take: every user VM (All), the VMs named
// (VMs: each a uuid, or the name of exactly one user VM), and the user
// VMs carrying any of Tags. The union is taken, each VM once.
type Selection struct {
	All  bool
	VMs  []string
	Tags []string
}

// ErrSelection marks a selection that names no VM, or names one
// ambiguously.
var ErrSelection = errors.New("xapi: bad VM selection")

// Select returns the VMs of records that s takes, in records' order. A
// uuid may name any VM (a template, a snapshot: the host exports those
// too); a name only a user VM, and one only. A uuid or name that matches
// nothing, a name that matches several VMs, or a selection that takes no
// VM is an error wrapping ErrSelection.
func Select(records []VMRecord, s Selection) ([]VMRecord, error) {
	take := make([]bool, len(records))
	for i, r := range records {
		if r.UserVM() && (s.All || slices.ContainsFunc(s.Tags, func(t string) bool { return slices.Contains(r.Tags, t) })) {
			take[i] = true
		}
	}
	for _, want := range s.VMs {
		if i := slices.IndexFunc(records, func(r VMRecord) bool { return strings.EqualFold(r.UUID, want) }); i >= 0 {
			take[i] = true
			continue
		}
		var named []int
		for i, r := range records {
			if r.UserVM() && r.Name == want {
				named = append(named, i)
			}
		}
		switch len(named) {
		case 0:
			return nil, fmt.Errorf("%w: no VM has the uuid or name %q", ErrSelection, want)
		case 1:
			take[named[0]] = true
		default:
			var uuids []string
			for _, i := range named {
				uuids = append(uuids, records[i].UUID)
			}
			return nil, fmt.Errorf("%w: %d VMs are named %q (%s): give a uuid", ErrSelection, len(named), want, strings.Join(uuids, ", "))
		}
	}
	var out []VMRecord
	for i, r := range records {
		if take[i] {
			out = append(out, r)
		}
	}
	if len(out) == 0 {
		switch {
		case len(s.Tags) > 0 && !s.All:
			return nil, fmt.Errorf("%w: no VM (other than templates, snapshots and control domains) has the tag %s", ErrSelection, strings.Join(s.Tags, " or "))
		default:
			return nil, fmt.Errorf("%w: the pool has no VM other than templates, snapshots and control domains", ErrSelection)
		}
	}
	return out, nil
}

// IsUUID reports whether s is a uuid as xapi writes them: 36
// characters, hex digits in groups of 8-4-4-4-12.
func IsUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, c := range s {
		switch {
		case i == 8 || i == 13 || i == 18 || i == 23:
			if c != '-' {
				return false
			}
		case !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'):
			return false
		}
	}
	return true
}

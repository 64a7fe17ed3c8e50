package xapi

import (
	"context"
	"fmt"
	"strconv"

	"github.com/xva-tools/xva/ova"
)

// NetworkByNameOrUUID returns the ref of the network whose uuid or name
// (name_label) is id. A name must name exactly one network.
func (c *Client) NetworkByNameOrUUID(ctx context.Context, id string) (string, error) {
	if ref, err := c.str(ctx, "network.get_by_uuid", id); err == nil {
		return ref, nil
	}
	v, err := c.Call(ctx, "network.get_by_name_label", id)
	if err != nil {
		return "", err
	}
	switch refs := v.Strings(); len(refs) {
	case 1:
		return refs[0], nil
	case 0:
		return "", fmt.Errorf("xapi: the pool has no network with uuid or name %q", id)
	default:
		return "", fmt.Errorf("xapi: %d networks are named %q; give the uuid of one", len(refs), id)
	}
}

// VIFDevices returns the device numbers of the VM's network interfaces.
func (c *Client) VIFDevices(ctx context.Context, vm string) ([]int, error) {
	v, err := c.Call(ctx, "VM.get_VIFs", vm)
	if err != nil {
		return nil, err
	}
	var devs []int
	for _, ref := range v.Strings() {
		d, err := c.str(ctx, "VIF.get_device", ref)
		if err != nil {
			return nil, err
		}
		n, err := strconv.Atoi(d)
		if err != nil {
			return nil, fmt.Errorf("xapi: VIF %s has device %q", ref, d)
		}
		devs = append(devs, n)
	}
	return devs, nil
}

// CreateVIF gives the VM a network interface on network, with device
// number device and a MAC the host makes from the VM's mac_seed
// (xapi_vif_helpers.ml:259-272). It returns the VIF's ref.
func (c *Client) CreateVIF(ctx context.Context, vm, network string, device int) (string, error) {
	mtu, err := c.str(ctx, "network.get_MTU", network)
	if err != nil {
		return "", err
	}
	n, err := strconv.ParseInt(mtu, 10, 64)
	if err != nil {
		return "", fmt.Errorf("xapi: network %s has MTU %q", network, mtu)
	}
	// VIF.create's record: the constructor's fields without a datamodel
	// default must be there (device, network, VM, MAC, MTU, other_config,
	// qos_algorithm_type, qos_algorithm_params); the rest are given as a
	// new VIF has them.
	rec := ova.NewStruct(
		ova.Member{Name: "device", Value: ova.NewString(strconv.Itoa(device))},
		ova.Member{Name: "network", Value: ova.NewString(network)},
		ova.Member{Name: "VM", Value: ova.NewString(vm)},
		ova.Member{Name: "MAC", Value: ova.NewString("")},
		ova.Member{Name: "MTU", Value: ova.NewInt(n)},
		ova.Member{Name: "other_config", Value: ova.NewStruct()},
		ova.Member{Name: "currently_attached", Value: ova.NewBool(false)},
		ova.Member{Name: "qos_algorithm_type", Value: ova.NewString("")},
		ova.Member{Name: "qos_algorithm_params", Value: ova.NewStruct()},
		ova.Member{Name: "locking_mode", Value: ova.NewString("network_default")},
		ova.Member{Name: "ipv4_allowed", Value: ova.NewArray()},
		ova.Member{Name: "ipv6_allowed", Value: ova.NewArray()},
	)
	return c.str(ctx, "VIF.create", rec)
}

package lvm

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// XenServer LVM SR conventions (SM lvhdutil.py, LVHDSR.py, vhdutil.py).
const (
	// SRPrefix begins the VG of an LVM SR: VG_XenStorage-<sr uuid>.
	SRPrefix = "VG_XenStorage-"
	// sizeIncrement is LVM's default extent, 4 MiB, which SM rounds to.
	sizeIncrement = 4 << 20
	// vhdOverhead2TiB is calcOverheadEmpty(2 TiB): the headers, BAT and
	// batmap of a VHD preallocated for 2 TiB, as SM creates them.
	vhdOverhead2TiB = 4329472
	vhdBlock        = 2 << 20
)

// LVName is the SR's name for a VDI's volume: LV-<uuid> for a raw VDI,
// VHD-<uuid> for a VHD one.
func LVName(vdiUUID string, vhd bool) string {
	if vhd {
		return "VHD-" + vdiUUID
	}
	return "LV-" + vdiUUID
}

func roundUp(n, to int64) int64 { return (n + to - 1) / to * to }

// RawLVSize is the size SM gives the LV of a raw VDI of v bytes.
func RawLVSize(v int64) int64 { return roundUp(v, sizeIncrement) }

// VHDLVSize is the size SM gives the (fully inflated) LV of a VHD VDI of v
// bytes: calcSizeVHDLV, room for the 2 TiB metadata and 4 KiB per block.
func VHDLVSize(v int64) int64 {
	return roundUp(v+vhdOverhead2TiB+4096*((v+vhdBlock-1)/vhdBlock), sizeIncrement)
}

// hasDeviceMapper reports whether the kernel's device-mapper is reachable;
// without it LVM can change metadata (with --driverloaded n) but not
// activate volumes. The LVM tools create /dev/mapper/control whether or
// not the kernel has the driver, so it has to be opened to tell.
func hasDeviceMapper() bool {
	f, err := os.OpenFile("/dev/mapper/control", os.O_RDWR, 0)
	if err != nil {
		return false
	}
	f.Close()
	return true
}

// lvm runs an LVM command, quietly, adding --driverloaded n when there is
// no device-mapper.
func lvm(ctx context.Context, name string, args ...string) (string, error) {
	if !hasDeviceMapper() && name != "pvs" && name != "vgs" && name != "lvs" {
		args = append([]string{"--driverloaded", "n"}, args...)
	}
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), "LVM_SUPPRESS_FD_WARNINGS=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, lastLines(string(out)))
	}
	return string(out), nil
}

func lastLines(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(len(lines)-3, 0):], "; ")
}

// CreateLV creates LV name of at least size bytes in VG vg, with tags, as
// SM does (wiping signatures, which needs the volume active: without
// device-mapper nothing is wiped or zeroed, and the writer zeros what the
// disk does not write). LVM rounds the size up to whole extents.
func CreateLV(ctx context.Context, vg, name string, size int64, tags ...string) error {
	wipe := []string{"-W", "y"}
	if !hasDeviceMapper() {
		wipe = []string{"-W", "n", "-Z", "n"}
	}
	args := append([]string{"-n", name, "-L", fmt.Sprintf("%db", size), "--yes"}, wipe...)
	for _, t := range tags {
		args = append(args, "--addtag", t)
	}
	_, err := lvm(ctx, "lvcreate", append(args, vg)...)
	return err
}

// Activate activates vg/name and returns its device node, or "" when the
// volume cannot be activated (no device-mapper): then it is written on its
// PV directly.
func Activate(ctx context.Context, vg, name string) (string, error) {
	if !hasDeviceMapper() {
		return "", nil
	}
	if _, err := lvm(ctx, "lvchange", "-ay", vg+"/"+name); err != nil {
		return "", err
	}
	dev := "/dev/" + vg + "/" + name
	if _, err := os.Stat(dev); err != nil {
		return "", fmt.Errorf("lvm: %s/%s is active but %s does not exist", vg, name, dev)
	}
	return dev, nil
}

// PVsOf lists the PVs of a VG, as the LVM tools know them.
func PVsOf(ctx context.Context, vg string) ([]string, error) {
	out, err := lvm(ctx, "pvs", "--noheadings", "-o", "pv_name", "-S", "vg_name="+vg)
	if err != nil {
		return nil, err
	}
	var pvs []string
	for _, l := range strings.Split(out, "\n") {
		if l = strings.TrimSpace(l); strings.HasPrefix(l, "/") {
			pvs = append(pvs, l)
		}
	}
	if len(pvs) == 0 {
		return nil, fmt.Errorf("lvm: VG %s has no PV the LVM tools can see", vg)
	}
	return pvs, nil
}

// PVOf returns the PV holding LV vg/name wholly.
func PVOf(ctx context.Context, vg, name string) (string, error) {
	pvs, err := PVsOf(ctx, vg)
	if err != nil {
		return "", err
	}
	var lastErr error
	for _, p := range pvs {
		if _, _, _, err := locate(p, vg, name); err == nil {
			return p, nil
		} else {
			lastErr = err
		}
	}
	return "", lastErr
}

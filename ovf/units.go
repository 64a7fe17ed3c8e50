package ovf

import (
	"errors"
	"fmt"
	"math/bits"
	"strconv"
	"strings"
)

// namedUnits are the unit names that are not DSP0004 programmatic units
// but occur in the wild: VirtualBox writes "MegaBytes", other readers
// accept the short forms. All are binary multiples, as those writers mean.
var namedUnits = map[string]int64{
	"b": 1, "byte": 1, "bytes": 1,
	"kb": 1 << 10, "kib": 1 << 10, "kilobyte": 1 << 10, "kilobytes": 1 << 10,
	"mb": 1 << 20, "mib": 1 << 20, "megabyte": 1 << 20, "megabytes": 1 << 20,
	"gb": 1 << 30, "gib": 1 << 30, "gigabyte": 1 << 30, "gigabytes": 1 << 30,
	"tb": 1 << 40, "tib": 1 << 40, "terabyte": 1 << 40, "terabytes": 1 << 40,
}

// ParseUnits returns the multiplier, in bytes, of an allocation unit
// string: the DSP0004 programmatic form "byte * 2^30" (any spacing, any
// number of factors "B^E" or "N"), or one of the names seen in the wild
// ("bytes", "MegaBytes", "MB", "KB", "KiloBytes", "GB", "GigaBytes").
// A multiplier that does not fit in an int64 is an error.
func ParseUnits(s string) (int64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	if m, ok := namedUnits[t]; ok {
		return m, nil
	}
	parts := strings.Split(t, "*")
	base := strings.TrimSpace(parts[0])
	if base != "byte" && base != "bytes" {
		return 0, fmt.Errorf("ovf: allocation units %q: not a unit of bytes", s)
	}
	m := int64(1)
	for _, p := range parts[1:] {
		f, err := unitFactor(strings.TrimSpace(p))
		if err != nil {
			return 0, fmt.Errorf("ovf: allocation units %q: %v", s, err)
		}
		if m, err = mulCheck(m, f); err != nil {
			return 0, fmt.Errorf("ovf: allocation units %q: %v", s, err)
		}
	}
	if m == 0 {
		return 0, fmt.Errorf("ovf: allocation units %q: a multiplier of zero", s)
	}
	return m, nil
}

// unitFactor is one factor of a programmatic unit: "2^30" or "1024".
func unitFactor(p string) (int64, error) {
	b, e, pow := strings.Cut(p, "^")
	base, err := smallInt(strings.TrimSpace(b))
	if err != nil {
		return 0, fmt.Errorf("factor %q: %v", p, err)
	}
	if !pow {
		return base, nil
	}
	exp, err := smallInt(strings.TrimSpace(e))
	if err != nil {
		return 0, fmt.Errorf("exponent in %q: %v", p, err)
	}
	if base <= 1 && exp > 0 {
		return base, nil // 0^e and 1^e: no loop over a huge exponent
	}
	r := int64(1)
	for i := int64(0); i < exp; i++ {
		if r, err = mulCheck(r, base); err != nil {
			return 0, err
		}
	}
	return r, nil
}

// smallInt is a non-negative decimal below 2^63 with no sign or spaces.
func smallInt(s string) (int64, error) {
	if s == "" || strings.IndexFunc(s, func(r rune) bool { return r < '0' || r > '9' }) >= 0 {
		return 0, errors.New("not a decimal number")
	}
	return strconv.ParseInt(s, 10, 64)
}

var errOverflow = errors.New("too large for 64 bits")

// mulCheck multiplies two non-negative int64s, refusing overflow.
func mulCheck(a, b int64) (int64, error) {
	hi, lo := bits.Mul64(uint64(a), uint64(b))
	if hi != 0 || lo > 1<<63-1 {
		return 0, errOverflow
	}
	return int64(lo), nil
}

// addCheck adds two non-negative int64s, refusing overflow.
func addCheck(a, b int64) (int64, error) {
	if a > 1<<63-1-b {
		return 0, errOverflow
	}
	return a + b, nil
}

package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"syscall"

	"github.com/xva-tools/xva"
	"github.com/xva-tools/xva/xapi"
)

// hintedError carries the next step a user should take about an error
// that only the command knows how to explain.
type hintedError struct {
	error
	hint string
}

func (h hintedError) Unwrap() error { return h.error }

func withHint(err error, hint string) error {
	if err == nil {
		return nil
	}
	return hintedError{err, hint}
}

// Hints of more than one command.
const (
	hintLegacy = "current XenServer/XCP-ng hosts cannot import version 0.1 (legacy) archives; " +
		"'xva upload' converts automatically, or run 'xva convert --format xapi IN OUT'"
	hintNotArchive = "an archive is a tar file (plain, gzip or zstd compressed) or a directory holding ova.xml; " +
		"'xva info' also describes VHD images and LVM physical volumes"
)

// hint says what to do next about err, or "".
func hint(err error) string {
	var h hintedError
	var xe *xapi.Error
	var na *xva.NotArchiveError
	switch {
	case errors.As(err, &h):
		return h.hint
	case errors.As(err, &na) && na.Hint != "":
		return na.Hint
	case errors.Is(err, xva.ErrNotArchive):
		return hintNotArchive
	case errors.Is(err, syscall.ENOSPC):
		return "the filesystem or device being written is full; nothing was left under the output name. Free some space or write elsewhere."
	case errors.Is(err, xva.ErrTooSmall):
		return "give a device or volume at least as large as the disk ('xva info ARCHIVE' shows each disk's size), " +
			"or let --create-lv VG make a volume of the right size"
	case errors.Is(err, xva.ErrExists):
		return "xva never overwrites: choose a new name or an empty directory, or remove the old one first " +
			"(pack, convert and export take --force to replace a file)"
	case errors.As(err, &xe) && xe.Code == xapi.CodeAuthFailed:
		return "the user name or password is wrong: check --user (default root) and the password from --password-file or XVA_PASSWORD"
	case isCertificateError(err):
		return "the host's TLS certificate is not trusted here: pass the CA that signed it with --ca-cert FILE, " +
			"or --insecure to skip the check on a network you trust"
	}
	return ""
}

func isCertificateError(err error) bool {
	var ve *tls.CertificateVerificationError
	var ua x509.UnknownAuthorityError
	var he x509.HostnameError
	var ci x509.CertificateInvalidError
	return errors.As(err, &ve) || errors.As(err, &ua) || errors.As(err, &he) || errors.As(err, &ci)
}

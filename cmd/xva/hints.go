package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"syscall"

	"github.com/xva-tools/xva"
	"github.com/xva-tools/xva/s3"
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
	var se *s3.Error
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
	case errors.As(err, &xe) && xapiHints[xe.Code] != "":
		return xapiHints[xe.Code]
	case errors.As(err, &se) && se.Hint != "":
		return se.Hint
	case isCertificateError(err):
		return "the host's TLS certificate is not trusted here: pass the CA that signed it with --ca-cert FILE, " +
			"or --insecure to skip the check on a network you trust"
	}
	return ""
}

// xapiHints says what to do about the errors a host answers an import or
// an export with (their codes are xen-api's, ocaml/idl/datamodel_errors.ml).
var xapiHints = map[string]string{
	xapi.CodeAuthFailed: "the user name or password is wrong: check --user (default root) and the password from --password-file or XVA_PASSWORD",
	"IMPORT_INCOMPATIBLE_VERSION": "the archive was exported by a newer host than this one; import it on a host at least as new, " +
		"or convert it with 'xva convert IN OUT', which writes the oldest version block every host accepts",
	"VDI_READONLY": "a disk of the archive is a read-only VDI, which xapi cannot write the import into; " +
		"'xva convert IN OUT' keeps the disk read-only through its VBD instead, or import with --as-is on the host's own export",
	"SR_FULL":                           "the SR has no room for the VM's disks: pick another with --sr UUID ('xe sr-list' shows each SR's free space) or free space on it",
	"VM_TO_IMPORT_IS_NOT_NEWER_VERSION": "--restore keeps the VM's uuid, and the pool already has a VM with that uuid: import without --restore to make a new VM",
}

func isCertificateError(err error) bool {
	var ve *tls.CertificateVerificationError
	var ua x509.UnknownAuthorityError
	var he x509.HostnameError
	var ci x509.CertificateInvalidError
	return errors.As(err, &ve) || errors.As(err, &ua) || errors.As(err, &he) || errors.As(err, &ci)
}

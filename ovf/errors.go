package ovf

import (
	"errors"
	"fmt"
)

// The kinds of error the package reader returns, for errors.Is: a package
// that breaks the format (a tar cut short, a missing chunk, a member name
// leaving the package), and one using what xva does not read (bzip2
// files, an .ova.gz). Other errors are the file system's.
var (
	ErrCorrupt     = errors.New("malformed OVF package")
	ErrUnsupported = errors.New("not supported")
)

// kindError is an error of one of those kinds, with its own text.
type kindError struct {
	err  error
	kind error
}

func (e *kindError) Error() string        { return e.err.Error() }
func (e *kindError) Unwrap() error        { return e.err }
func (e *kindError) Is(target error) bool { return target == e.kind }

func corruptf(format string, args ...any) error {
	return &kindError{fmt.Errorf(format, args...), ErrCorrupt}
}

func unsupportedf(format string, args ...any) error {
	return &kindError{fmt.Errorf(format, args...), ErrUnsupported}
}

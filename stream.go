package xva

import (
	"context"
	"io"
	"os"
)

// StreamXapi writes the VM at input, a VM directory, an archive of either
// generation or an OVF package, as an xapi-generation tar stream to w (what PUT /import
// takes), converting on the fly in one pass, with no temporary files.
func StreamXapi(ctx context.Context, input string, w io.Writer, opts ...Option) (*PackResult, error) {
	opts = append(opts, WithFormat(XAPI), func(o *options) error { o.writer = w; return nil })
	if IsVMDir(input) {
		return PackDir(ctx, input, "-", opts...)
	}
	return Convert(ctx, input, "-", opts...)
}

// IsVMDir reports whether path is a VM directory (an ova.xml plus an image
// per disk) rather than an archive in directory form.
func IsVMDir(path string) bool {
	st, err := os.Stat(path)
	if err != nil || !st.IsDir() {
		return false
	}
	_, _, err = readVMDir(path)
	return err == nil
}

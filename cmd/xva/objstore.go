package main

import (
	"fmt"
	"os"
	"runtime/debug"
	"slices"
	"strings"

	"github.com/dustin/go-humanize"
	"github.com/spf13/cobra"

	"github.com/xva-tools/xva"
	"github.com/xva-tools/xva/internal/pipeline"
	"github.com/xva-tools/xva/s3"
)

// s3Flags say how s3:// paths are reached. Credentials, the region and
// profiles come from the environment and the AWS shared files, as for the
// AWS tools (AWS_ACCESS_KEY_ID, AWS_PROFILE, AWS_ENDPOINT_URL, ...).
type s3Flags struct {
	endpoint  string
	pathStyle bool
	partSize  string
}

func (f *s3Flags) register(root *cobra.Command) {
	fl := root.PersistentFlags()
	fl.StringVar(&f.endpoint, "s3-endpoint", "", "URL of an S3-compatible store for s3:// paths (else AWS_ENDPOINT_URL, the AWS config, or AWS); "+
		"http:// only if you mean it")
	fl.BoolVar(&f.pathStyle, "s3-path-style", true, "address buckets as ENDPOINT/BUCKET (the default with a custom endpoint; =false for BUCKET.ENDPOINT)")
	fl.StringVar(&f.partSize, "part-size", "64MiB", "first part size of uploads to s3:// (grows so 10,000 parts hold any archive); "+
		"memory is about --jobs parts")
}

// addInsecure gives every command an --insecure for https S3 endpoints;
// those that talk to a pool have one already, which then covers both.
func addInsecure(root *cobra.Command) {
	for _, c := range root.Commands() {
		if slices.Contains([]string{"pack", "unpack", "info", "verify", "convert", "cat", "serve"}, c.Name()) && c.Flags().Lookup("insecure") == nil {
			c.Flags().Bool("insecure", false, "do not verify the TLS certificate of an https S3 endpoint")
		}
	}
}

// configure hands the flags of cmd to the library.
func (f *s3Flags) configure(cmd *cobra.Command, g *globals, args []string) error {
	part, err := humanize.ParseBytes(f.partSize)
	if err != nil {
		return usagef("--part-size %q: %v", f.partSize, err)
	}
	if part < s3.MinPartSize || part > 5<<30 {
		return usagef("--part-size %s: S3 takes parts of 5 MiB to 5 GiB", f.partSize)
	}
	if err := s3.CheckEndpoint(f.endpoint); err != nil {
		return usagef("--s3-endpoint: %s", strings.TrimPrefix(err.Error(), "s3: "))
	}
	o := s3.Options{Endpoint: f.endpoint, PartSize: int64(part), Jobs: pipeline.Jobs(g.jobs)}
	if fl := cmd.Flags().Lookup("s3-path-style"); fl != nil && fl.Changed {
		ps := f.pathStyle
		o.PathStyle = &ps
	}
	if fl := cmd.Flags().Lookup("insecure"); fl != nil {
		o.Insecure = fl.Value.String() == "true"
	}
	xva.ConfigureS3(o)
	if slices.ContainsFunc(args, xva.IsObjectURL) && os.Getenv("GOMEMLIMIT") == "" {
		// Uploads hold --jobs parts in flight and one filling; a soft
		// limit of those plus 40 MiB of working set (a legacy chunk's 16 MiB
		// spool among it) makes the collector free finished parts before
		// the heap doubles past them.
		debug.SetMemoryLimit(int64(o.Jobs+1)*o.PartSize + 40<<20)
	}
	s3.OnPending = func(_ s3.URL, err error) {
		fmt.Fprintf(os.Stderr, "xva: note: the incomplete upload could not be given up: %v; the next xva that reaches the store aborts it "+
			"(a bucket lifecycle rule AbortIncompleteMultipartUpload also removes such uploads)\n", xva.PlainError(err))
	}
	return nil
}

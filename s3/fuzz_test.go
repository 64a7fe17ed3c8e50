package s3

import (
	"strings"
	"testing"
)

// FuzzParse: a location that parses prints as itself (less a doubled
// scheme), names a bucket, and parses again to the same URL; Join keeps
// it in its bucket under its prefix.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"s3://b/k", "s3://bucket/dir/", "s3://bucket", "s3:///k", "s3://b//k", "s3://b/a/../b", "http://x"} {
		f.Add(s, "chunk-000000000.gz")
	}
	f.Fuzz(func(t *testing.T, s, name string) {
		u, err := Parse(s)
		if err != nil {
			return
		}
		if u.Bucket == "" || strings.Contains(u.Bucket, "/") {
			t.Fatalf("%q: bucket %q", s, u.Bucket)
		}
		v, err := Parse(u.String())
		if err != nil || v != u {
			t.Fatalf("%q prints as %q, which parses to %+v (%v)", s, u.String(), v, err)
		}
		if strings.HasPrefix(name, "/") || strings.Contains(name, "..") {
			return
		}
		j := u.Join(name)
		if j.Bucket != u.Bucket || !strings.HasPrefix(j.Key, u.Dir().Key) {
			t.Fatalf("%+v.Join(%q) = %+v leaves the prefix", u, name, j)
		}
	})
}

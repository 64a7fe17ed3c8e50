// Package s3 reads and writes archives in S3-compatible object storage:
// objects read at random through ranged GETs with read-ahead, objects
// written by a multipart upload that appears only when complete, and
// prefixes listed as directories. It wraps the AWS SDK for Go v2, which
// takes credentials, profiles and endpoints the way the AWS tools do.
package s3

import (
	"fmt"
	"strings"
)

// Scheme is how a location in object storage is written: s3://BUCKET/KEY.
const Scheme = "s3://"

// URL is a bucket and a key (or a key prefix ending in "/") within it.
type URL struct {
	Bucket, Key string
}

// IsURL reports whether s names a location in object storage.
func IsURL(s string) bool { return strings.HasPrefix(s, Scheme) }

// Parse reads s3://BUCKET/KEY. The key may be empty (the whole bucket) or
// end in "/" (a prefix).
func Parse(s string) (URL, error) {
	if !IsURL(s) {
		return URL{}, fmt.Errorf("s3: %q is not an s3://BUCKET/KEY location", s)
	}
	rest := strings.TrimPrefix(s, Scheme)
	bucket, key, _ := strings.Cut(rest, "/")
	if bucket == "" {
		return URL{}, fmt.Errorf("s3: %q names no bucket: want s3://BUCKET/KEY", s)
	}
	for _, seg := range strings.Split(strings.TrimSuffix(key, "/"), "/") {
		switch {
		case key == "":
		case seg == "":
			return URL{}, fmt.Errorf("s3: %q has an empty path segment", s)
		case seg == "." || seg == "..":
			// Legal in S3, but stores on file systems refuse them and
			// every reader would take them for a relative path.
			return URL{}, fmt.Errorf("s3: %q has a %q path segment", s, seg)
		}
	}
	return URL{Bucket: bucket, Key: key}, nil
}

func (u URL) String() string { return Scheme + u.Bucket + "/" + u.Key }

// IsPrefix reports whether u names a prefix (a directory) rather than an
// object.
func (u URL) IsPrefix() bool { return u.Key == "" || strings.HasSuffix(u.Key, "/") }

// Dir is u as a prefix: its key with a trailing "/".
func (u URL) Dir() URL {
	if !u.IsPrefix() {
		u.Key += "/"
	}
	return u
}

// Join names the object name (slash-separated) under the prefix u.
func (u URL) Join(name string) URL {
	d := u.Dir()
	d.Key += strings.TrimPrefix(name, "/")
	return d
}

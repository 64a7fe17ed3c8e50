// Package chunk holds the two disk encodings inside XVA archives: legacy
// gzip chunks (each ChunkSize bytes of the disk as a standalone gzip file,
// written as independent 1 MiB pieces deflated in parallel) and xapi's
// hashed blocks (BlockSize members each followed by its XXH64 or SHA-1),
// with the member-sequence rules that unpack and verify share.
//
// A format package: it may import disk and internal/pipeline, never
// another format package.
package chunk

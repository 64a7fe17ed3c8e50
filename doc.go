// Package xva packs, unpacks, inspects and converts XenServer / XCP-ng
// virtual appliance (XVA) archives. It is the one place where an archive's
// format maps onto the packages that implement it.
//
// # Glossary
//
// Archive: an ova.xml plus the encoded bytes of each disk, as a directory or
// as one tar stream (optionally gzip- or zstd-compressed as a whole).
//
// Generation: legacy ("version 0.1": an <appliance> ova.xml, disks as
// directories of 1e9-byte gzip chunks) or xapi (an XML-RPC ova.xml, disks as
// 1 MiB hashed blocks), the format every current host exports and imports.
//
// Member: one file of the archive: "ova.xml", "sda/chunk-000000001.gz",
// "Ref:7/00000042", "Ref:7/00000042.xxhash".
//
// Chunk: a legacy member, a standalone gzip file of 1e9 raw bytes (the last
// of a disk shorter).
//
// Block: an xapi data member, 1 MiB of raw bytes (the last of a disk
// shorter), followed by a member holding its hash.
//
// Extent: a range of a disk that may hold data; everything else is zero.
//
// VM directory: what Unpack writes and Pack reads: the archive's ova.xml
// unchanged plus one image per disk named after its device (sda.raw).
//
// It is where formats meet: it may import ova, chunk, disk, the image
// formats (raw, vhd, lvm; formats.go is their table), xapi and
// internal/{tarx, pipeline, fsutil, blockdev}. cmd/xva, verify and
// fixtures import it.
package xva

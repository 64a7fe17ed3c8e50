package chunk

import (
	"bytes"
	"context"

	"testing"
)

// Hot paths of both disk encodings, in MB/s of raw disk bytes. Run with
// go test -bench . ./chunk; compare runs with benchstat.

var benchData = map[string][]byte{
	"zeros": make([]byte, 32<<20),
	"mixed": testDisk(32<<20, 42),
}

func BenchmarkGzipWrite(b *testing.B) {
	for name, data := range benchData {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			for range b.N {
				var f memFile
				if _, err := WriteGzipChunk(context.Background(), &f, sliceFiller{data, false}, 0, int64(len(data)), GzipOptions{Level: DefaultLevel}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkGzipRead(b *testing.B) {
	for name, data := range benchData {
		indexed := encode(b, data, false, GzipOptions{Level: DefaultLevel})
		for kind, gz := range map[string][]byte{"indexed": indexed, "foreign": foreignGzip(data, 1)} {
			b.Run(name+"/"+kind, func(b *testing.B) {
				b.SetBytes(int64(len(data)))
				for range b.N {
					if _, err := ReadGzipChunk(context.Background(), bytes.NewReader(gz), int64(len(data)), func(int64, []byte) error { return nil }, GzipOptions{}); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

type discardMembers struct{}

func (discardMembers) WriteMember(string, []byte) error { return nil }

func BenchmarkWriteBlocks(b *testing.B) {
	data := benchData["mixed"]
	b.SetBytes(int64(len(data)))
	for range b.N {
		if _, err := WriteBlocks(context.Background(), discardMembers{}, sliceFiller{data, false}, "Ref:1", int64(len(data)), BlockOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkReadBlocks(b *testing.B) {
	data := benchData["mixed"]
	var m memArchive
	if _, err := WriteBlocks(context.Background(), &m, sliceFiller{data, false}, "Ref:7", int64(len(data)), BlockOptions{}); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for range b.N {
		if _, err := ReadBlocks(context.Background(), seq(m.members), "Ref:7", int64(len(data)), func(int64, []byte) error { return nil }, BlockOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}

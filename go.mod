module github.com/xva-tools/xva

go 1.26.0

require (
	github.com/beevik/etree v1.8.1
	github.com/klauspost/compress v1.20.3
	github.com/klauspost/pgzip v1.3.0
	golang.org/x/sys v0.49.0
)

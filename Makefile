# xva: the two commands that matter are `make demo` and `make test`.
GO       ?= go
BIN      := bin/xva
# Tools the checks use are installed here, at pinned versions, never taken
# from ~/go/bin: a fresh machine and this one run the same binaries.
TOOLS    := $(CURDIR)/bin/tools
# staticcheck 2026.2.2, under the module version the Go proxy serves.
STATICCHECK_VERSION := v0.8.2
STATICCHECK := $(TOOLS)/staticcheck-$(STATICCHECK_VERSION)

.PHONY: all build demo test lint unit fuzz fuzz-seeds docs bench benchgo clean

all: build

# The version xva version reports: the nearest tag, or the commit.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)

build:
	$(GO) build -buildvcs=auto -ldflags "-X main.version=$(VERSION)" -o $(BIN) ./cmd/xva

# The Markdown reference (docs/cli) and man pages (docs/man), generated
# from the commands' own help; a test fails when they are out of date.
docs:
	$(GO) run ./cmd/xva gen-docs docs

# Pack a generated sample VM, show it, unpack it and prove the disks match.
demo: build
	rm -rf demo && mkdir -p demo
	$(GO) run ./internal/cmd/fixture -o demo/vm > demo/original.sha256
	@echo '$$ xva pack demo/vm demo/web.xva'
	@./$(BIN) pack demo/vm demo/web.xva
	@echo '$$ xva info demo/web.xva'
	@./$(BIN) info demo/web.xva
	@echo '$$ xva unpack demo/web.xva demo/unpacked'
	@./$(BIN) unpack demo/web.xva demo/unpacked
	@sed 's#demo/vm/#demo/unpacked/#' demo/original.sha256 | sha256sum -c -
	@echo "demo: every unpacked disk matches its original"

# Everything CI checks: formatting, vet, staticcheck, all tests, and a
# short run of every fuzz target.
test: lint unit fuzz

lint: $(STATICCHECK)
	@test -z "$$(gofmt -l .)" || (echo "gofmt needed:"; gofmt -l .; exit 1)
	$(GO) vet ./...
	$(STATICCHECK) ./...

$(STATICCHECK):
	mkdir -p $(TOOLS)
	GOBIN=$(TOOLS) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	mv $(TOOLS)/staticcheck $@

unit:
	$(GO) test -count=1 -timeout 15m ./...

# Every parser's fuzz target (the seed corpora under testdata/fuzz run with
# the unit tests too). Each target runs a fixed number of executions, about
# 8 s here: a -fuzztime duration races Go 1.26's fuzz coordinator, which can
# fail a target with a bare "context deadline exceeded" at the deadline
# (go.dev/issue/75804, fixed in Go 1.27). FUZZTIME=10m overrides every count
# with a duration for long runs. Minimisation is capped: left at its default
# it stalls the run for a minute per new input.
FUZZTIME ?=
FUZZ_TARGETS := .:FuzzParseMetadata:60000 ./ova:FuzzParseLegacy:100000 \
	./ova:FuzzParseExport:70000 ./internal/tarx:FuzzReader:50000 \
	./chunk:FuzzReadGzipChunk:16000 ./chunk:FuzzReadBlocks:300000 \
	./vhd:FuzzOpen:80000 ./lvm:FuzzParseMetadata:80000 ./lvm:FuzzReadPV:100000
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; rest=$${t#*:}; name=$${rest%%:*}; ft="$(FUZZTIME)"; \
		[ -n "$$ft" ] || ft="$${rest##*:}x"; \
		echo "fuzz $$pkg $$name ($$ft)"; \
		$(GO) test -run '^$$' -fuzz "^$$name$$" -fuzztime $$ft -fuzzminimizetime 1s $$pkg > .fuzz.log 2>&1 || { cat .fuzz.log; rm -f .fuzz.log; exit 1; }; \
		tail -n 1 .fuzz.log; \
	done; rm -f .fuzz.log

# Regenerate the checked-in seed corpora (needs ../shared/samples, and uses
# gzip, pigz, tar and qemu-img where installed).
fuzz-seeds:
	$(GO) run ./internal/cmd/fuzzseed

# Side-by-side measurements against pigz, tar+xxhsum (and qemu-img); a few
# minutes at the default 4 GiB disk. SIZE=16GiB make bench for a bigger one.
SIZE ?= 4GiB
bench:
	$(GO) run ./bench -size $(SIZE) -out bench/results.json

# Go benchmarks of the hot paths (gzip chunks, hashed blocks, VHD, sparse
# raw), for comparing revisions with benchstat.
benchgo:
	$(GO) test -run '^$$' -bench . -benchmem ./chunk ./vhd ./raw

clean:
	rm -rf bin demo

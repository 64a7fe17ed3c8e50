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
# the unit tests too), each for FUZZTIME: 5 s of fuzzing plus its start,
# about 7 s a target and a minute in all on 2 cores. A duration, not a count:
# execution rates differ tenfold between machines and fall as a target finds
# new inputs, so no count is a time budget. Go 1.26's fuzz coordinator can
# fail a clean target at a -fuzztime deadline with a bare "context deadline
# exceeded" (a race between its context and its workers' one,
# go.dev/issue/75804, fixed in Go 1.27): that exact failure, with no failing
# input written, is reported and passed; any other failure, or a failing
# input, fails the run. FUZZTIME=10m (or a count, 500000x) for long runs.
# Minimisation is capped: left at its default it stalls the run for a
# minute per new input.
FUZZTIME ?= 5s
FUZZ_TARGETS := .:FuzzParseMetadata ./ova:FuzzParseLegacy ./ova:FuzzParseExport \
	./internal/tarx:FuzzReader ./chunk:FuzzReadGzipChunk ./chunk:FuzzReadBlocks \
	./vhd:FuzzOpen ./lvm:FuzzParseMetadata ./lvm:FuzzReadPV
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t#*:}; \
		echo "fuzz $$pkg $$name ($(FUZZTIME))"; \
		if $(GO) test -run '^$$' -fuzz "^$$name$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 1s $$pkg > .fuzz.log 2>&1; then \
			tail -n 1 .fuzz.log; \
		elif ! grep -q 'Failing input written' .fuzz.log && \
			grep -A1 -e "^--- FAIL: $$name " .fuzz.log | tail -n 1 | grep -qx '[[:space:]]*context deadline exceeded'; then \
			echo "ok (go.dev/issue/75804: the coordinator's deadline race, nothing found)"; \
		else \
			cat .fuzz.log; rm -f .fuzz.log; exit 1; \
		fi; \
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

# xva: the two commands that matter are `make demo` and `make test`.
GO       ?= go
BIN      := bin/xva
# Tools the checks use are installed here, at pinned versions, never taken
# from ~/go/bin: a fresh machine and this one run the same binaries.
TOOLS    := $(CURDIR)/bin/tools
# staticcheck 2026.2.2, under the module version the Go proxy serves.
STATICCHECK_VERSION := v0.8.2
STATICCHECK := $(TOOLS)/staticcheck-$(STATICCHECK_VERSION)
# The S3 server the tests and the bench write to and read from: versitygw
# (Versity S3 Gateway, Apache 2.0) with its posix backend, a real S3
# implementation built from its Go module at this version.
VERSITYGW_VERSION := v1.8.0
VERSITYGW := $(TOOLS)/versitygw-$(VERSITYGW_VERSION)
export XVA_VERSITYGW := $(VERSITYGW)

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

# A tour in a few seconds: pack a generated sample VM for current hosts,
# show and verify it, catch a corrupted copy (exit 3), unpack it and prove
# the disks match, and convert it (zstd, and legacy for old hosts).
# Each command is printed before it runs; the demo stops at the first
# that does not do what it says.
DEMO_RUN = @run() { printf '\n$$ %s\n' "$$*"; "$$@"; }; run
DEMO ?= demo
demo: build
	@rm -rf $(DEMO) && mkdir -p $(DEMO)
	@echo "Generating a sample VM: two sparse raw disks (256 MiB and 64 MiB, 15% data) in $(DEMO)/vm"
	@$(GO) run ./internal/cmd/fixture -o $(DEMO)/vm > $(DEMO)/original.sha256
	$(DEMO_RUN) ./$(BIN) pack --name web --memory 1GiB --vcpus 2 --disk sda=$(DEMO)/vm/sda.raw --disk sdb=$(DEMO)/vm/sdb.raw $(DEMO)/web.xva
	$(DEMO_RUN) ./$(BIN) info $(DEMO)/web.xva
	$(DEMO_RUN) ./$(BIN) verify $(DEMO)/web.xva
	@echo; echo "# Damage a copy: two bytes inside sda's first block"
	@cp $(DEMO)/web.xva $(DEMO)/damaged.xva
	@off=$$(grep -abo -m1 '/00000000.xxhash' $(DEMO)/web.xva | cut -d: -f1); \
		printf 'XY' | dd of=$(DEMO)/damaged.xva bs=1 seek=$$((off - 4096)) conv=notrunc status=none
	@printf '\n$$ %s\n' "./$(BIN) verify $(DEMO)/damaged.xva"; \
		./$(BIN) verify $(DEMO)/damaged.xva; code=$$?; echo "(exit code $$code: corruption)"; test $$code -eq 3
	$(DEMO_RUN) ./$(BIN) unpack $(DEMO)/web.xva $(DEMO)/unpacked
	@printf '\n$$ %s\n' "sha256sum -c (each unpacked disk against the original)"
	@sed 's#$(DEMO)/vm/#$(DEMO)/unpacked/#' $(DEMO)/original.sha256 | sha256sum -c -
	$(DEMO_RUN) ./$(BIN) convert $(DEMO)/web.xva $(DEMO)/web.xva.zst
	$(DEMO_RUN) ./$(BIN) convert --format legacy $(DEMO)/web.xva $(DEMO)/web-legacy.xva
	@echo; ls -lh $(DEMO)/*.xva $(DEMO)/*.zst
	@echo; echo "demo: packed, checked, corruption caught, unpacked identical, converted"

# Everything CI checks: formatting, vet, staticcheck, the macOS and
# Windows builds, all tests, and a short run of every fuzz target.
test: lint unit fuzz

# The project's Go files: not the tools and modules a run puts under bin/.
GOFILES = $$(find . -name '*.go' -not -path './bin/*' -not -path './demo/*')

# Linux-only parts (O_DIRECT, BLK* ioctls, RENAME_NOREPLACE, SEEK_DATA,
# flock) sit behind build tags; the other platforms must still build and
# vet, tests included.
PORTABLE_GOOS := darwin windows

lint: $(STATICCHECK)
	@test -z "$$(gofmt -l $(GOFILES))" || (echo "gofmt needed:"; gofmt -l $(GOFILES); exit 1)
	$(GO) vet ./...
	$(STATICCHECK) ./...
	@set -e; for os in $(PORTABLE_GOOS); do \
		echo "GOOS=$$os go build ./... && go vet ./..."; \
		GOOS=$$os $(GO) build ./... && GOOS=$$os $(GO) vet ./...; \
	done

$(STATICCHECK):
	mkdir -p $(TOOLS)
	GOBIN=$(TOOLS) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	mv $(TOOLS)/staticcheck $@

$(VERSITYGW):
	mkdir -p $(TOOLS)
	GOBIN=$(TOOLS) $(GO) install github.com/versity/versitygw/cmd/versitygw@$(VERSITYGW_VERSION)
	mv $(TOOLS)/versitygw $@

unit: $(VERSITYGW)
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
FUZZ_TARGETS := .:FuzzParseMetadata .:FuzzLoadCache ./ova:FuzzParseLegacy ./ova:FuzzParseExport \
	./internal/tarx:FuzzReader ./chunk:FuzzReadGzipChunk ./chunk:FuzzReadBlocks \
	./vhd:FuzzOpen ./vhdx:FuzzOpen ./qcow2:FuzzOpen ./lvm:FuzzParseMetadata ./lvm:FuzzReadPV \
	./vmdk:FuzzOpen ./vmdk:FuzzParseDescriptor ./ovf:FuzzParse ./ovf:FuzzParseManifest ./ovf:FuzzOpenPackage \
	./nbd:FuzzHandshake ./internal/zran:FuzzInflate ./internal/zran:FuzzUnmarshal ./internal/zstdseek:FuzzOpen \
	./internal/zstdran:FuzzDecode ./internal/zstdran:FuzzUnmarshal ./s3:FuzzParse
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
bench: $(VERSITYGW)
	$(GO) run ./bench -size $(SIZE) -out bench/results.json

# Go benchmarks of the hot paths (gzip chunks, hashed blocks, VHD, sparse
# raw), for comparing revisions with benchstat.
benchgo:
	$(GO) test -run '^$$' -bench . -benchmem ./chunk ./vhd ./raw

clean:
	rm -rf bin demo

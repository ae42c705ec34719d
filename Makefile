# callroom: `make run` starts everything for a developer; `make test` runs
# every test; `make bench` measures the performance targets.
SHELL := /bin/bash
GO ?= go
BIN := bin/callroom
export CALLROOM_HTTP_ADDR ?= 127.0.0.1:8080

.PHONY: run build test bench vet fmt clean db-stop fuzz vulncheck

build:
	$(GO) build -o $(BIN) ./cmd/callroom

# Uses $$DATABASE_URL when set; otherwise a private PostgreSQL under ./.data/.
run: build
	@set -e; \
	url="$${DATABASE_URL:-$$(scripts/postgres.sh run)}"; \
	export DATABASE_URL="$$url"; \
	if [ -z "$${CALLROOM_MASTER_KEY:-}" ]; then \
		export CALLROOM_MASTER_KEY_FILE="$${CALLROOM_MASTER_KEY_FILE:-.data/master.keys}"; \
		$(BIN) keys init --if-missing --file "$$CALLROOM_MASTER_KEY_FILE"; \
	fi; \
	$(BIN) migrate --log-format text; \
	exec $(BIN) serve --demo --log-format text

test:
	@scripts/test-deps.sh
	@set -e; \
	url="$${CALLROOM_TEST_DATABASE_URL:-$$(scripts/postgres.sh test)}"; \
	export CALLROOM_TEST_DATABASE_URL="$$url"; \
	$(GO) vet ./...; \
	$(GO) test -race -count=1 -timeout 9m ./...
	@scripts/vulncheck.sh
	@$(MAKE) -s fuzz FUZZTIME=3s

# Every fuzz target for a short while (FUZZTIME each; longer by hand, e.g.
# make fuzz FUZZTIME=5m). New crashers land in the package's testdata/fuzz.
FUZZTIME ?= 30s
fuzz:
	@set -e; for pkg in $$(grep -rl --include='*_test.go' '^func Fuzz' . | xargs -n1 dirname | sort -u); do \
		for f in $$(grep -h '^func Fuzz' $$pkg/*_test.go | sed 's/func \(Fuzz[A-Za-z0-9_]*\).*/\1/'); do \
			echo "fuzz: $$pkg $$f ($(FUZZTIME))"; \
			out=$$($(GO) test -run '^$$' -fuzz "^$$f\$$" -fuzztime $(FUZZTIME) $$pkg 2>&1) || { echo "$$out"; exit 1; }; \
		done; \
	done

vulncheck:
	scripts/vulncheck.sh

# Benchmarks run against a durable cluster (fsync on), as production would.
# What each figure is, its target and the last results: docs/PERFORMANCE.md.
# Every benchmark runs BENCH_COUNT (3) times, one package at a time (-p 1)
# so that they do not load the machine for each other; compare medians.
# About 20 minutes on the 2-core machine of docs/PERFORMANCE.md (one pass,
# BENCH_COUNT=1: 6 min 15 s); the response-time report and patient-chart
# benchmarks load 1,000,000 rows on every run. EscalationLatenessSpread is skipped (see its comment).
# BENCH picks benchmarks by name, as go test -bench does, e.g.
# make bench BENCH=PageToNotify BENCH_COUNT=1.
BENCH ?= .
bench:
	@scripts/test-deps.sh
	@set -e; \
	url="$${CALLROOM_BENCH_DATABASE_URL:-$$(scripts/postgres.sh bench)}"; \
	export CALLROOM_TEST_DATABASE_URL="$$url"; \
	echo "bench: $$(nproc) CPUs ($$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs)), load average $$(cut -d' ' -f1-3 /proc/loadavg)"; \
	$(GO) test -p 1 -run '^$$' -bench '$(BENCH)' -skip 'EscalationLatenessSpread' -benchtime 2s \
		-count $${BENCH_COUNT:-3} -timeout 90m ./...

vet:
	$(GO) vet ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

db-stop:
	scripts/postgres.sh stop

clean:
	rm -rf bin

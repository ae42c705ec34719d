# callroom: `make run` starts everything for a developer; `make test` runs
# every test; `make bench` measures the performance targets.
SHELL := /bin/bash
GO ?= go
BIN := bin/callroom
export CALLROOM_HTTP_ADDR ?= 127.0.0.1:8080

.PHONY: run build test bench vet fmt clean db-stop

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
	$(GO) test -count=1 -timeout 9m ./...

# Benchmarks run against a durable cluster (fsync on), as production would.
bench:
	@set -e; \
	url="$${CALLROOM_BENCH_DATABASE_URL:-$$(scripts/postgres.sh bench)}"; \
	export CALLROOM_TEST_DATABASE_URL="$$url"; \
	$(GO) test -run '^$$' -bench . -benchtime 2s ./...

vet:
	$(GO) vet ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

db-stop:
	scripts/postgres.sh stop

clean:
	rm -rf bin

# Banyan. `make run` starts everything; `make test` runs every test.
GO        ?= go
BIN       := bin/banyan
GOFLAGS_B := -trimpath
export GOFLAGS := -mod=readonly

.PHONY: all build wasm run test test-short lint bench fuzz clean vendor

all: build

build: wasm
	$(GO) build $(GOFLAGS_B) -o $(BIN) ./cmd/banyan

# The browser peer. Built into web/ so the binary embeds it (issue 6).
wasm:
	@if [ -d wasm ] && ls wasm/*.go >/dev/null 2>&1; then \
		$(GO) run ./internal/webbuild -out web/dist -pkg ./wasm -ldflags "-s -w"; \
	fi

run: build
	./$(BIN) up

test:
	$(GO) vet ./...
	# One package at a time: the end-to-end packages each run a whole swarm
	# (processes, browsers, ffmpeg) and measure timing; two at once on a
	# 2-core machine starve each other.
	$(GO) test -p 1 -count=1 -timeout 30m ./...

test-short:
	$(GO) test -short -count=1 ./...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	GOOS=js GOARCH=wasm $(GO) vet ./chunk/... ./media/ 2>/dev/null || true

# Micro-benchmarks, then the standard swarm set on the mem transport (about
# an hour on 2 cores; the 10k runs hold ~12 GiB of heap: BENCH_MEMLIMIT sets
# GOMEMLIMIT), then bench/REPORT.md and its plots. The swarm runs stay out
# of `make test`: they are benchmarks, not tests.
bench:
	mkdir -p bench/results
	$(GO) test -run '^$$' -bench . -benchtime 200ms ./store/ ./chunk/ ./overlay/ ./media/cmaf/ ./peer/ ./bench/ > bench/results/micro.txt
	cat bench/results/micro.txt
	$(GO) build -o bin/banyan-bench ./cmd/banyan
	@set -e; R=bench/results; \
	run() { n=$$1; shift; echo "== $$n: banyan bench swarm $$*"; \
		GOMEMLIMIT=$${BENCH_MEMLIMIT:-13GiB} bin/banyan-bench bench swarm --json "$$@" > $$R/$$n.json; }; \
	T="--engine tuned"; H="--headroom 0.4"; S="--bitrate 125k --upload-scale 0.0416667"; \
	run origin-1k        --mode origin --peers 1000 --duration 60s --churn 10%; \
	run mesh-1k-default  --peers 1000 --duration 60s --churn 10%; \
	run mesh-1k          --peers 1000 --duration 60s --churn 10% $$T; \
	run mesh-1k-h40      --peers 1000 --duration 60s --churn 10% $$T $$H; \
	run mesh-1k-k1       --peers 1000 --duration 60s --churn 10% $$T --stripes 1; \
	run mesh-1k-k4       --peers 1000 --duration 60s --churn 10% $$T --stripes 4; \
	run mesh-1k-kill30   --peers 1000 --duration 60s --kill 0.3 $$T; \
	run mesh-1k-churn0   --peers 1000 --duration 60s $$T; \
	run mesh-1k-churn30  --peers 1000 --duration 60s --churn 30% $$T; \
	run mesh-1k-churn60  --peers 1000 --duration 60s --churn 60% $$T; \
	run mesh-1k-clean10  --peers 1000 --duration 60s --churn 10% --churn-mode clean $$T; \
	run mesh-1k-clean60  --peers 1000 --duration 60s --churn 60% --churn-mode clean $$T; \
	run origin-10k       --mode origin --peers 10000 --duration 40s --churn 10%; \
	run mesh-10k-default --peers 10000 --duration 30s --churn 10%; \
	run mesh-10k         --peers 10000 --duration 40s --churn 10% $$T; \
	run mesh-10k-h40     --peers 10000 --duration 40s --churn 10% $$T $$H; \
	run mesh-10k-k1      --peers 10000 --duration 40s --churn 10% $$T --stripes 1; \
	run mesh-10k-kill30  --peers 10000 --duration 40s --kill 0.3 $$T $$H; \
	run check-2k         --peers 2000 --duration 40s --churn 10% $$T $$H; \
	run check-2k-scale   --peers 2000 --duration 40s --churn 10% $$T $$H $$S; \
	run scale-100k       --peers 100000 --duration 30s --churn 10% $$T $$H $$S
	$(GO) run ./bench/cmd/report -in bench/results -out bench

# The dashboard's JS libraries (pinned with their sha512 in web/vendor.json),
# copied with their licences into web/static/vendor/. The copies are
# committed, so only changing a pin needs node and npm.
vendor:
	node web/vendor.mjs

clean:
	rm -rf bin

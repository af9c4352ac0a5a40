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

# One package at a time: the end-to-end packages each run a whole swarm
# (processes, browsers, ffmpeg) and measure timing; two at once on a 2-core
# machine starve each other.
test:
	$(GO) vet ./...
	$(GO) test -p 1 -count=1 -timeout 30m ./...

test-short:
	$(GO) test -short -count=1 ./...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	GOOS=js GOARCH=wasm $(GO) vet ./chunk/... ./media/ 2>/dev/null || true

# Micro-benchmarks, then the standard swarm set on the mem transport and
# real nodes (about 70 minutes on 2 cores, an hour of it the two 100k runs,
# which hold 5–6 GB of heap; BENCH_MEMLIMIT sets GOMEMLIMIT), then
# bench/REPORT.md and its plots. The swarm runs stay
# out of `make test`: they are benchmarks, not tests. Every run uses the
# shipped defaults (the engine every viewer runs, the tracker's capacity
# policy); an experiment is run by hand and labelled exp-*.
bench:
	mkdir -p bench/results
	$(GO) test -run '^$$' -bench . -benchtime 200ms ./store/ ./chunk/ ./overlay/ ./media/cmaf/ ./peer/ ./bench/ > bench/results/micro.txt
	cat bench/results/micro.txt
	$(GO) build -buildvcs=auto -o bin/banyan-bench ./cmd/banyan
	@set -e; R=bench/results; : > $$R/commands.txt; \
	run() { n=$$1; shift; echo "== $$n: banyan bench swarm $$*"; echo "$$n: banyan bench swarm --json $$*" >> $$R/commands.txt; \
		GOMEMLIMIT=$${BENCH_MEMLIMIT:-13GiB} bin/banyan-bench bench swarm --json "$$@" > $$R/$$n.json; }; \
	run origin-1k           --mode origin --peers 1000 --duration 40s --churn 10%; \
	run mesh-1k             --peers 1000 --duration 40s --churn 10%; \
	run mesh-1k-seed2       --peers 1000 --duration 40s --churn 10% --seed 2; \
	run mesh-1k-k2          --peers 1000 --duration 40s --churn 10% --stripes 2; \
	run mesh-1k-k2-seed2    --peers 1000 --duration 40s --churn 10% --stripes 2 --seed 2; \
	run mesh-1k-6M          --peers 1000 --duration 40s --churn 10% --bitrate 6M; \
	run mesh-1k-6M-k2       --peers 1000 --duration 40s --churn 10% --bitrate 6M --stripes 2; \
	run mesh-1k-churn30     --peers 1000 --duration 40s --churn 30%; \
	run mesh-1k-kill30      --peers 1000 --duration 40s --kill 0.3; \
	run mesh-1k-6M-seed2    --peers 1000 --duration 40s --churn 10% --bitrate 6M --seed 2; \
	run mesh-1k-churn30-seed2 --peers 1000 --duration 40s --churn 30% --seed 2; \
	run mesh-1k-kill30-seed2 --peers 1000 --duration 40s --kill 0.3 --seed 2; \
	run mesh-1k-noupload40  --peers 1000 --duration 40s --churn 10% --no-upload 40; \
	run mesh-1k-churn0      --peers 1000 --duration 40s; \
	run mesh-1k-k1          --peers 1000 --duration 40s --churn 10% --stripes 1; \
	run mesh-1k-gop1s       --peers 1000 --duration 40s --churn 10% --gop 1s; \
	run mesh-1k-gop2s       --peers 1000 --duration 40s --churn 10% --gop 2s; \
	run mesh-1k-gop4s       --peers 1000 --duration 40s --churn 10% --gop 4s; \
	run mesh-1k-gop8s       --peers 1000 --duration 40s --churn 10% --gop 8s; \
	run mesh-10k            --peers 10000 --duration 60s --churn 10%; \
	run mesh-10k-seed2      --peers 10000 --duration 60s --churn 10% --seed 2; \
	run mesh-10k-k2         --peers 10000 --duration 60s --churn 10% --stripes 2; \
	run mesh-100k           --peers 100000 --duration 40s --churn 10%; \
	run mem-14-rc1          --transport mem --peers 14 --root-capacity 1 --duration 40s; \
	if [ "$$(id -u)" = 0 ]; then \
	  run netns-14-limited-rc1   --transport netns --peers 14 --root-capacity 1 --duration 40s --netns-peers $$R/netns-14-limited-rc1.peers.json; \
	  run netns-14-unlimited-rc1 --transport netns --peers 14 --root-capacity 1 --duration 40s --unlimited --netns-peers $$R/netns-14-unlimited-rc1.peers.json; \
	else echo "== netns runs skipped: they need root (network namespaces, tc, iptables)"; fi; \
	run webrtc-30           --transport webrtc --peers 30 --duration 60s; \
	run webrtc-50           --transport webrtc --peers 50 --duration 60s
	$(GO) run ./bench/cmd/report -in bench/results -out bench -prev bench/results/archive-2026-11-21

# The dashboard's JS libraries (pinned with their sha512 in web/vendor.json),
# copied with their licences into web/static/vendor/. The copies are
# committed, so only changing a pin needs node and npm.
vendor:
	node web/vendor.mjs

clean:
	rm -rf bin

# Soak (not part of `make test`): a live stream with 50 native peers under
# churn (5 replaced a minute, half of them by SIGKILL) for 30 minutes
# against `banyan up --pprof`; goroutines and heap from /debug/pprof every
# minute, profiles and soak.json in SOAK_OUT. SOAK_DURATION=3m for a short
# run; SOAK_PEERS and SOAK_CHURN_PER_MIN change the load.
.PHONY: soak
soak:
	BANYAN_SOAK=1 SOAK_DURATION=$${SOAK_DURATION:-30m} $(GO) test -short -count=1 -timeout 0 -run '^TestSoak$$' -v ./cmd/banyan/

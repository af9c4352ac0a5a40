# Banyan. `make run` starts everything; `make test` runs every test.
GO        ?= go
BIN       := bin/banyan
GOFLAGS_B := -trimpath
export GOFLAGS := -mod=readonly

.PHONY: all build wasm run test test-short lint bench fuzz clean

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
	$(GO) test -count=1 -timeout 20m ./...

test-short:
	$(GO) test -short -count=1 ./...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	GOOS=js GOARCH=wasm $(GO) vet ./chunk/... ./media/ 2>/dev/null || true

bench:
	$(GO) test -run '^$$' -bench . -benchtime 2s ./store/ ./chunk/ ./overlay/ ./media/...

clean:
	rm -rf bin

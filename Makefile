# alignkit's build. OpenBLAS is used through cgo when libopenblas is installed (Debian:
# libopenblas-dev), and gonum's pure-Go BLAS otherwise; `make BLAS=gonum` forces the fallback.
GO      ?= go
BIN     := bin/alignkit
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)

ifeq ($(origin BLAS), undefined)
BLAS := $(shell (ldconfig -p 2>/dev/null | grep -q 'libopenblas\.so ') && echo openblas || echo gonum)
endif
ifeq ($(BLAS),openblas)
TAGS := -tags openblas
export CGO_LDFLAGS := -lopenblas
endif
# OpenBLAS and Go's own goroutines compete for the same 2 cores; measured in `make bench`.
export OPENBLAS_NUM_THREADS ?= 2

LDFLAGS := -X main.version=$(VERSION)
TEST_TIMEOUT ?= 25m

.PHONY: all build test test-short vet fmt demo demo-quick bench conformance clean

all: build

build:
	$(GO) build $(TAGS) -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/alignkit

# All tests. Tests that need ../shared or node-llama-cpp skip with a message when those are absent.
test: build
	$(GO) vet $(TAGS) ./...
	$(GO) test $(TAGS) -timeout $(TEST_TIMEOUT) -count=1 ./...

test-short:
	$(GO) test $(TAGS) -short -count=1 ./...

fmt:
	gofmt -l -w $$(git ls-files '*.go')

# The whole pipeline on the embedded synthetic world.
demo: build
	$(BIN) demo --out runs/demo --force

demo-quick: build
	$(BIN) demo --quick --out runs/demo-quick --force

conformance/llamacpp/node_modules:
	cd conformance/llamacpp && npm i -E --omit=optional --no-audit --no-fund node-llama-cpp@3.21.1 @node-llama-cpp/linux-x64@3.21.1

conformance: build conformance/llamacpp/node_modules
	$(GO) test $(TAGS) -count=1 -run Conformance -v ./conformance/... ./model/gguf/...

bench: build
	./bench/run.sh

clean:
	rm -rf bin runs

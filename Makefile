# alignkit's build. OpenBLAS is used through cgo when libopenblas is installed (Debian:
# libopenblas-dev), and gonum's pure-Go BLAS otherwise; `make BLAS=gonum` forces the fallback.
GO      ?= go
BIN     := bin/alignkit
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)

ifeq ($(origin BLAS), undefined)
BLAS := $(shell (ldconfig -p 2>/dev/null | grep -q 'libopenblas\.so ') && echo openblas || echo gonum)
endif
ifeq ($(BLAS),openblas)
GOTAGS += openblas
export CGO_LDFLAGS := -lopenblas
endif
# MPI=1 builds with Open MPI (Debian: libopenmpi-dev) through cgo, for data-parallel jobs under
# mpirun; without it every job is one process. It is opt-in: the binary then needs libmpi to start.
ifeq ($(MPI),1)
GOTAGS += mpi
endif
comma := ,
empty :=
space := $(empty) $(empty)
TAGS := $(if $(strip $(GOTAGS)),-tags $(subst $(space),$(comma),$(strip $(GOTAGS))))
TAGS_MPI := -tags $(subst $(space),$(comma),$(strip $(filter-out mpi,$(GOTAGS)) mpi))
MPIRUN ?= mpirun --allow-run-as-root --oversubscribe
# OpenBLAS and Go's own goroutines compete for the same 2 cores; measured in `make bench`.
export OPENBLAS_NUM_THREADS ?= 2
# Debian 12's OpenBLAS 0.3.21 predates Zen 5 and gives it a kernel without AVX-512 (this machine's
# environment even exports OPENBLAS_CORETYPE=Haswell). On a CPU with AVX-512, SKYLAKEX's kernel makes
# sgemm 45-60% faster for every OpenBLAS user, alignkit and PyTorch alike (bench/settings.md), so the
# targets here set it; `make OPENBLAS_CORETYPE=Haswell ...` on the command line keeps another.
ifneq ($(origin OPENBLAS_CORETYPE),command line)
ifeq ($(shell grep -qw avx512f /proc/cpuinfo 2>/dev/null && echo yes),yes)
export OPENBLAS_CORETYPE := SKYLAKEX
endif
endif

LDFLAGS := -X main.version=$(VERSION)
TEST_TIMEOUT ?= 25m

.PHONY: docs all build test test-short test-mpi vet lint fmt fuzz demo demo-quick demo-seeds demo-seeds-quick bench conformance clean

all: build

build:
	$(GO) build $(TAGS) -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/alignkit
	@echo "built $(BIN) with $(BLAS)'s BLAS$(if $(filter 1,$(MPI)), and Open MPI,) ($(BIN) version says the same)"

# All tests. Tests that need ../shared or node-llama-cpp skip with a message when those are absent;
# internal/testsummary prints go test's usual output and ends with every skipped test and its message
# (the exit status stays go test's).
test: build lint
	$(GO) build -o bin/testsummary ./internal/testsummary
	bin/testsummary $(GO) test $(TAGS) -json -timeout $(TEST_TIMEOUT) -count=1 ./...

# Style kept by tools pinned in go.mod's tool directives (a fresh clone has them): go vet,
# staticcheck, and goimports with this module's imports grouped last.
lint:
	$(GO) vet $(TAGS) ./...
	$(GO) tool staticcheck $(TAGS) ./...
	@out=$$($(GO) tool goimports -local github.com/alignkit/alignkit -l $$(git ls-files '*.go')); \
	if [ -n "$$out" ]; then echo "goimports: these files need 'make fmt':"; echo "$$out"; exit 1; fi

test-short:
	$(GO) build -o bin/testsummary ./internal/testsummary
	bin/testsummary $(GO) test $(TAGS) -json -short -count=1 ./...

# The data-parallel tests: dist's collectives in a test binary run as 2 MPI ranks, then the
# end-to-end runs (2 ranks against 1 process, a killed rank and its resume) of the binary built
# with MPI. OPENBLAS_NUM_THREADS=1: two ranks share the cores.
test-mpi:
	$(MAKE) build MPI=1
	$(GO) test -c $(TAGS_MPI) -o bin/dist.test ./dist
	OPENBLAS_NUM_THREADS=1 $(MPIRUN) -np 2 bin/dist.test -test.count=1 -test.run 'TestWorld'
	ALIGNKIT_CLI=$(CURDIR)/$(BIN) ALIGNKIT_MPIRUN="$(MPIRUN)" $(GO) test $(TAGS) -count=1 -timeout $(TEST_TIMEOUT) -v ./dist/mpitest/

fmt:
	$(GO) tool goimports -local github.com/alignkit/alignkit -w $$(git ls-files '*.go')

# The whole pipeline on the embedded synthetic world.
demo: build
	$(BIN) demo --out runs/demo --force

demo-quick: build
	$(BIN) demo --quick --out runs/demo-quick --force

# The measured effects on 3 seeds, with mean and spread (runs/demo-seeds/SEEDS.md): three full demos.
demo-seeds: build
	$(BIN) demo --seeds 3 --out runs/demo-seeds --force

demo-seeds-quick: build
	$(BIN) demo --quick --seeds 3 --out runs/demo-seeds-quick --force

# llama.cpp for the conformance tests: node-llama-cpp 3.21.1 and only its prebuilt linux-x64 CPU build
# (about 83 MB), exactly as package-lock.json pins them; reinstalled when the lockfile changes.
conformance/llamacpp/node_modules: conformance/llamacpp/package-lock.json
	cd conformance/llamacpp && npm ci --omit=optional --no-audit --no-fund
	touch $@

# The exports checked against llama.cpp (./conformance, model/gguf's llama.cpp and ggml codec tests)
# and `alignkit export`'s round trips and errors, with the CLI just built.
conformance: build conformance/llamacpp/node_modules
	ALIGNKIT_CLI=$(CURDIR)/$(BIN) $(GO) test $(TAGS) -count=1 -v -run 'Conformance|LlamaCpp|CodecMatchesGGML|^TestExport' ./conformance/... ./model/gguf/... ./cmd/alignkit/

bench: build
	./bench/run.sh

# Every fuzz target, FUZZTIME each (go test runs one -fuzz target at a time). A crasher is written
# to the package's testdata/fuzz/ and fails the run; commit it with the fix, and plain `go test`
# replays it from then on. internal/fuzzrun/fuzz.sh tells Go 1.26's coordinator deadline race on
# a loaded machine (go.dev/issue/75804) from a finding.
FUZZTIME ?= 10s
FUZZ_TARGETS := \
	./model/hf:FuzzParseHeader \
	./model/gguf:FuzzOpen \
	./model/tokenizer:FuzzSentencePieceModel \
	./model/tokenizer:FuzzLoadTokenizerJSON \
	./data/chat:FuzzRender \
	./model:FuzzParseConfig \
	./data:FuzzReadJSONL \
	./data:FuzzReadParquet \
	./conf:FuzzLoadYAML \
	./serve:FuzzRequestBody

fuzz:
	./internal/fuzzrun/fuzz.sh $(FUZZTIME) $(GO) "$(TAGS)" $(FUZZ_TARGETS)

# The generated config reference (a test checks it is current).
docs: build
	mkdir -p docs && $(BIN) config-reference > docs/CONFIG.md

clean:
	rm -rf bin runs

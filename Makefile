# raftbench — see README.md. Every target works on a fresh clone: Go fetches
# the modules named in go.mod through the module proxy.

SHELL       := bash
.SHELLFLAGS := -o pipefail -c

GO        ?= go
PKGS      ?= ./...
SEEDS     ?= 100000
# An execution count, not a duration: with a duration, Go 1.26's fuzz
# coordinator can report a spurious "context deadline exceeded" failure when
# the time runs out on a loaded machine (golang/go#75804, fixed in Go 1.27).
FUZZTIME  ?= 200000x
STATICCHECK = $(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2

# The commit raftbench stamps into every result (env.commit): this
# checkout's, with -dirty when it has changes, or "unknown" outside git.
COMMIT  := $(shell git rev-parse HEAD 2>/dev/null)$(shell git diff --quiet HEAD 2>/dev/null || echo -dirty)
LDFLAGS := -X github.com/raftbench/raftbench/bench/results.stampedCommit=$(if $(filter -dirty,$(COMMIT)),unknown,$(COMMIT))

# Fuzz targets run briefly by `make test`, as package:FuzzFunc pairs.
FUZZ_TARGETS ?= ./core:FuzzUnmarshalConfChange ./transport:FuzzDecodeFrame ./transport:FuzzHandshake ./transport:FuzzSnapshotRecords ./wal:FuzzDecodeEntry ./kv:FuzzDecodeCommand ./clientapi/wire:FuzzDecodeFrame

.PHONY: test vet unit sim-short wal-matrix fuzz-short lint sim bench cover run build race-soak crash-soak peers-test build-peers compare-peers

## run: a raftbench run with the defaults (3 nodes, TCP, Pebble with sync,
## 128 B payloads, 64 closed-loop clients, 10 s); pass more flags in RUNFLAGS,
## e.g. make run RUNFLAGS='--transport quic --fault kill-leader@5s+2s --check'.
RUNFLAGS ?=
run:
	$(GO) run -ldflags '$(LDFLAGS)' ./cmd/raftbench run $(RUNFLAGS)

## build: bin/raftbench, stamped with this checkout's commit.
build:
	$(GO) build -ldflags '$(LDFLAGS)' -o bin/raftbench ./cmd/raftbench

## race-soak: the end-of-run verdict regression test at the issue's bar, 50
## consecutive runs (make test runs 12).
race-soak:
	RAFTBENCH_RACE_RUNS=50 $(GO) test -race -count=1 -run '^TestEndOfRunVerdictsExact$$' -v ./bench/

## test: vet, the race-enabled test suite, and a short run of every fuzz
## target; then the same vet and race tests of the peers module.
test: vet unit sim-short wal-matrix fuzz-short peers-test

## peers-test: vet and race-test the peers module (its own go.mod: the other
## Raft libraries stay out of raftbench's).
peers-test:
	cd peers && $(GO) vet ./... && $(GO) test -race -count=1 -timeout 5m ./...

vet:
	$(GO) vet $(PKGS)

## unit: the race-enabled suite. The tests that start node processes (cli,
## bench/procs, bench/crashsoak) share one raftbench binary built first,
## without -race (internal/testbin says why).
TESTBIN := $(CURDIR)/bin/raftbench-test
unit:
	$(GO) build -o $(TESTBIN) ./cmd/raftbench
	RAFTBENCH_TEST_BIN=$(TESTBIN) $(GO) test -race -count=1 -timeout 9m -skip '^(TestSimulation|TestCorruptionMatrix)$$' $(PKGS)

## sim-short: the core simulator's default 2,100 seeds, showing its summary
## line (go test hides a passing test's output otherwise).
sim-short:
	$(GO) test -race -count=1 -timeout 9m -run '^TestSimulation$$' -v ./core/ | grep -Ev '^(=== RUN|--- PASS)'

## wal-matrix: the WAL corruption matrix (every 4 KiB of a live WAL and an
## sstable, flipped and cut), showing its summary line.
wal-matrix:
	$(GO) test -race -count=1 -run '^TestCorruptionMatrix$$' -v ./wal/ | grep -Ev '^(=== RUN|--- PASS)'

fuzz-short:
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; fn=$${t##*:}; \
		echo "fuzz $$pkg $$fn ($(FUZZTIME))"; \
		$(GO) test -run='^$$' -fuzz="^$$fn$$" -fuzztime=$(FUZZTIME) $$pkg; \
	done

## lint: formatting and staticcheck (of both modules).
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(STATICCHECK) $(PKGS)
	cd peers && $(STATICCHECK) ./...

## sim: a long soak of the core simulator, e.g. make sim SEEDS=100000.
sim:
	$(GO) test -count=1 -timeout 0 -run '^TestSimulation$$' ./core/ -sim.seeds=$(SEEDS) -v

## crash-soak: node processes SIGKILLed round after round (one node, a
## minority, every node at once) and restarted, checking after each round
## that nothing acknowledged was lost and the replicas agree; prints
## `crash-soak: R rounds, K kills, A acked, L lost, V violations`. Not part
## of make test. E.g. make crash-soak MINUTES=20 SOAKFLAGS='--nodes 5'.
MINUTES   ?= 2
SOAKFLAGS ?=
crash-soak:
	$(GO) run ./cmd/raftbench crash-soak --duration $(MINUTES)m $(SOAKFLAGS)

## build-peers: bin/raftbench-peers, raftbench's CLI with --system etcd,
## etcd-async, hashicorp, dragonboat and raftbench-quic (built in the peers
## module).
build-peers:
	cd peers && $(GO) build -ldflags '$(LDFLAGS)' -o ../bin/raftbench-peers ./cmd/raftbench-peers

## compare-peers: the README's comparison table. raftbench on TCP and QUIC
## vs etcd raft, hashicorp/raft and dragonboat, 3 nodes, 128 B payloads,
## fsync on, at 1, 64 and 256 closed-loop clients, each cell --count 3 runs
## of PEERS_WARMUP + PEERS_DURATION; writes every result directory and
## table.md (printed at the end) under PEERS_OUT. The defaults (6 s + 1 s)
## fit 15 cells x 3 runs (with each run's start, settling and report) in
## under 15 minutes on 2 cores. E.g. make compare-peers PEERS_DURATION=20s.
PEERS_DURATION ?= 6s
PEERS_WARMUP   ?= 1s
PEERS_COUNT    ?= 3
PEERS_CLIENTS  ?= 1 64 256
PEERS_SYSTEMS  ?= raftbench raftbench-quic etcd hashicorp dragonboat
PEERS_FLAGS    ?=
PEERS_OUT      ?= results/compare-peers/$(shell date -u +%Y%m%dT%H%M%SZ)
compare-peers: build-peers
	@set -e; mkdir -p $(PEERS_OUT); \
	for c in $(PEERS_CLIENTS); do for s in $(PEERS_SYSTEMS); do \
		echo "compare-peers: $$s, $$c clients"; \
		bin/raftbench-peers run --system $$s --nodes 3 --payload 128 --sync --clients $$c \
			--count $(PEERS_COUNT) --duration $(PEERS_DURATION) --warmup $(PEERS_WARMUP) $(PEERS_FLAGS) \
			--out $(PEERS_OUT)/c$$c-$$s > $(PEERS_OUT)/c$$c-$$s.log 2>&1 || \
			{ echo "compare-peers: $$s at $$c clients failed (see $(PEERS_OUT)/c$$c-$$s.log):"; tail -5 $(PEERS_OUT)/c$$c-$$s.log; }; \
	done; done; \
	{ echo "# raftbench vs etcd raft, hashicorp/raft, dragonboat"; echo; \
	  echo "3 nodes on loopback, 128 B payloads, fsync on, closed loop; $(PEERS_COUNT) runs of $(PEERS_WARMUP) warm-up + $(PEERS_DURATION) per cell; \`make compare-peers\` on $$(nproc) CPUs."; echo; \
	  bin/raftbench-peers table $(PEERS_OUT); } > $(PEERS_OUT)/table.md; \
	cat $(PEERS_OUT)/table.md; echo "compare-peers: wrote $(PEERS_OUT)/table.md"

## bench: Go benchmarks with allocations.
bench:
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)

## cover: statement coverage of core.
cover:
	$(GO) test -count=1 -cover ./core/...

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

# Fuzz targets run briefly by `make test`, as package:FuzzFunc pairs.
FUZZ_TARGETS ?= ./core:FuzzUnmarshalConfChange ./transport:FuzzDecodeFrame ./transport:FuzzHandshake ./transport:FuzzSnapshotRecords ./wal:FuzzDecodeEntry ./kv:FuzzDecodeCommand ./clientapi/wire:FuzzDecodeFrame

.PHONY: test vet unit sim-short fuzz-short lint sim bench cover run crash-soak

## run: a raftbench run with the defaults (3 nodes, TCP, Pebble with sync,
## 128 B payloads, 64 closed-loop clients, 10 s); pass more flags in RUNFLAGS,
## e.g. make run RUNFLAGS='--transport quic --fault kill-leader@5s+2s --check'.
RUNFLAGS ?=
run:
	$(GO) run ./cmd/raftbench run $(RUNFLAGS)

## test: vet, the race-enabled test suite, and a short run of every fuzz target.
test: vet unit sim-short fuzz-short

vet:
	$(GO) vet $(PKGS)

unit:
	$(GO) test -race -count=1 -timeout 9m -skip '^TestSimulation$$' $(PKGS)

## sim-short: the core simulator's default 2,100 seeds, showing its summary
## line (go test hides a passing test's output otherwise).
sim-short:
	$(GO) test -race -count=1 -timeout 9m -run '^TestSimulation$$' -v ./core/ | grep -Ev '^(=== RUN|--- PASS)'

fuzz-short:
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; fn=$${t##*:}; \
		echo "fuzz $$pkg $$fn ($(FUZZTIME))"; \
		$(GO) test -run='^$$' -fuzz="^$$fn$$" -fuzztime=$(FUZZTIME) $$pkg; \
	done

## lint: formatting and staticcheck.
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(STATICCHECK) $(PKGS)

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

## bench: Go benchmarks with allocations.
bench:
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)

## cover: statement coverage of core.
cover:
	$(GO) test -count=1 -cover ./core/...

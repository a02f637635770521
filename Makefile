# roamtrail: make run starts the service on embedded defaults, make test
# proves it. See README.md.

GO       ?= go
BIN      := bin/roamtrail
FUZZTIME ?= 3s

.PHONY: build run test vet race fuzz fuzz-short bench bench-compare soak chaos lint clean

build:
	$(GO) build -o $(BIN) ./cmd/roamtrail

run: build
	./$(BIN) demo

test: vet race fuzz-short

vet:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

race:
	$(GO) test -race -count=1 -timeout 30m ./...

# A short pass over every fuzz target (seed corpus plus FUZZTIME of new
# inputs each); `make fuzz` runs them longer.
fuzz-short:
	FUZZTIME=$(FUZZTIME) ./scripts/fuzz.sh

fuzz:
	FUZZTIME=2m ./scripts/fuzz.sh

bench: build
	$(GO) test -run='^$$' -bench=. -benchmem ./...
	./$(BIN) bench --subscribers 1000000

# roamtrail beside PostgreSQL and Redis on the same data and queries, and
# the SMS path beside bare echo ESMEs. Needs PostgreSQL on 127.0.0.1:5432
# and Redis on 127.0.0.1:6379. See README "Beside the alternatives".
bench-compare: build
	./$(BIN) bench compare

# Ten minutes of steady mixed load against serve, recorded in docs/soak/.
# CI runs a short version as a Go test.
soak: build
	./$(BIN) bench soak --duration 10m --out docs/soak

# The fault tests at full length (kill -9 loop of 20, SMSC, Redis, disk);
# `make test` runs them shorter.
chaos:
	ROAMTRAIL_CHAOS=full $(GO) test -count=1 -timeout 60m -run 'Chaos' -v ./...

lint: vet
	@if command -v staticcheck >/dev/null; then staticcheck ./...; else echo "staticcheck not installed: go install honnef.co/go/tools/cmd/staticcheck@latest"; fi

clean:
	rm -rf bin

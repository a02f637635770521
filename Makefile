# roamtrail: make run starts the service on embedded defaults, make test
# proves it. See README.md.

GO       ?= go
BIN      := bin/roamtrail
FUZZTIME ?= 3s

.PHONY: build run test vet race fuzz fuzz-short bench lint clean

build:
	$(GO) build -o $(BIN) ./cmd/roamtrail

run: build
	./$(BIN) demo

test: vet race fuzz-short

vet:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

race:
	$(GO) test -race -count=1 ./...

# A short pass over every fuzz target (seed corpus plus FUZZTIME of new
# inputs each); `make fuzz` runs them longer.
fuzz-short:
	FUZZTIME=$(FUZZTIME) ./scripts/fuzz.sh

fuzz:
	FUZZTIME=2m ./scripts/fuzz.sh

bench: build
	$(GO) test -run='^$$' -bench=. -benchmem ./...
	./$(BIN) bench --subscribers 1000000

lint: vet
	@if command -v staticcheck >/dev/null; then staticcheck ./...; else echo "staticcheck not installed: go install honnef.co/go/tools/cmd/staticcheck@latest"; fi

clean:
	rm -rf bin

# vigil - thin wrapper over CMake.  `make run` and `make check` are the two
# commands a new user needs; both install what is missing first.
BUILD      ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE_ARGS ?=
FUZZ_SECONDS ?= 120
MAKEFLAGS  += --no-print-directory

.PHONY: all deps build run check test asan fuzz bench image clean help

all: build

help:
	@echo "make run     install missing dependencies, build, start 'vigil serve' (HTTP :8000)"
	@echo "make check   install, build and run every test suite"
	@echo "make asan    the test suite under AddressSanitizer + UndefinedBehaviorSanitizer"
	@echo "make fuzz    run each libFuzzer target for FUZZ_SECONDS (default 120)"
	@echo "make bench   engine benchmarks side by side with ONNX Runtime"
	@echo "make image   the container image vigil:<version> from the build (Docker; docs/DEPLOY.md)"
	@echo "make deps | build | clean"

deps:
	@bash scripts/install-deps.sh

$(BUILD)/CMakeCache.txt:
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_ARGS) >/dev/null

build: deps $(BUILD)/CMakeCache.txt
	@cmake --build $(BUILD) -j$(JOBS)

run: build
	@bash scripts/run.sh $(BUILD)/vigil

check: build
	@bash scripts/check.sh $(BUILD)

test: check

asan: deps
	@cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DVIGIL_SANITIZE=ON >/dev/null
	@cmake --build $(ASAN_BUILD) -j$(JOBS)
	@bash scripts/check.sh $(ASAN_BUILD) sanitized

fuzz: deps
	@CC=clang cmake -S . -B $(FUZZ_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DVIGIL_FUZZ=ON -DVIGIL_SANITIZE=ON >/dev/null
	@cmake --build $(FUZZ_BUILD) -j$(JOBS)
	@bash scripts/fuzz.sh $(FUZZ_BUILD) $(FUZZ_SECONDS)

bench: build
	@/usr/bin/python3 bench/engine_bench.py --vigil $(BUILD)/vigil
	@/usr/bin/python3 bench/detect_timing.py --vigil $(BUILD)/vigil
	@/usr/bin/python3 bench/jpeg_reduced_scale.py --vigil $(BUILD)/vigil
	@/usr/bin/python3 bench/serve_bench.py --vigil $(BUILD)/vigil
	@/usr/bin/python3 bench/memory_bench.py --vigil $(BUILD)/vigil
	@/usr/bin/python3 bench/trace_bench.py --vigil $(BUILD)/vigil
	@/usr/bin/python3 bench/stream_bench.py --vigil $(BUILD)/vigil
	@VIGIL_BINARY=$(BUILD)/vigil /usr/bin/python3 bench/hailo_bench.py --frame raw640x480 --frames 3000 --rounds 2 --library $(BUILD)/hailo_fake/libhailort_fake.so

# The image holds build/'s binary, stripped: the one make check tests (see
# deploy/image/build.sh and docs/DEPLOY.md for why no second build).
image: build
	@bash deploy/image/build.sh $(BUILD)

clean:
	@rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)

# Thin wrapper over CMake/CTest for the README commands. `make test` and `make demo` work on a
# fresh Debian machine as root: they install what they need first (tools/setup.sh, idempotent).
JOBS ?= $(shell nproc)
PORT ?= 8080
DEMO_DIR ?= demo-data
# Scale of the generated IMDb demo database (1 = 15M people, 90M credits).
SCALE ?= 0.01

.PHONY: all setup build asan release fuzz test test-dev test-asan demo bench install check format clean

all: build

setup:
	bash tools/setup.sh

build: setup
	cmake --preset dev >/dev/null
	cmake --build build -j $(JOBS)

asan: setup
	cmake --preset asan >/dev/null
	cmake --build build-asan -j $(JOBS)

release: setup
	cmake --preset release >/dev/null
	cmake --build build-release -j $(JOBS)

fuzz: setup
	cmake --preset fuzz >/dev/null
	cmake --build build-fuzz -j $(JOBS)

check:
	bash tools/checksrc.sh

test-dev: build
	ctest --preset dev -j 2

test-asan: asan
	ctest --preset asan -j 2

# The whole default suite: source checks, the debug build, then everything again under ASan+UBSan.
test: setup check test-dev test-asan

demo: build
	SCALE="$(SCALE)" bash tools/demo.sh "$(DEMO_DIR)" "$(PORT)"

bench: release
	bash bench/run.sh

install: release
	cmake --install build-release

format:
	git ls-files '*.c' '*.h' | xargs clang-format -i

clean:
	rm -rf build build-asan build-release build-fuzz

# The two commands of the quick start: `make demo` and `make check`.
BUILD ?= build
BUILD_TYPE ?= RelWithDebInfo
CMAKE_FLAGS ?=
# The Windows build (docs/windows.md): dependencies, wine prefix and outputs all inside it.
BUILD_WIN ?= build-win

.PHONY: all bootstrap build demo check memcheck coverage fuzz soak mutate mutate-ci clean \
	windows-bootstrap windows check-windows

all: build

bootstrap:
	@sh scripts/bootstrap.sh

$(BUILD)/build.ninja: | bootstrap
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) $(CMAKE_FLAGS)

build: bootstrap $(BUILD)/build.ninja
	cmake --build $(BUILD)

demo: build
	@sh scripts/demo.sh $(BUILD)/bin

# A program with a skipped test shows as Skipped; the reasons follow the summary.
check: build
	(cd $(BUILD) && ctest --output-on-failure -j2); rc=$$?; sh scripts/skips.sh $(BUILD); exit $$rc

# Every test again under valgrind (pipemsgd included); slower, run by CI.
memcheck: build
	@sh scripts/memcheck.sh $(BUILD)

# The suite in build-coverage (gcc --coverage), then line and branch coverage per directory
# and per file (gcovr); the per-line report lands in build-coverage/coverage/index.html.
coverage: bootstrap
	cmake -S . -B build-coverage -G Ninja -DCMAKE_BUILD_TYPE=Debug -DPM_COVERAGE=ON
	cmake --build build-coverage
	@sh scripts/coverage.sh build-coverage

# Mutation testing (tests/mutation/*.mut, see docs/testing.md): each entry breaks one rule in a
# scratch copy (build-mutate) and its tests must fail. MUTATE_ARGS: e.g. --only ID or --list.
MUTATE_BUILD ?= build-mutate
MUTATE_ARGS ?=
MUTATE = python3 scripts/mutate.py --build-dir $(MUTATE_BUILD) --build-type $(BUILD_TYPE) \
	--cmake-flags "$(CMAKE_FLAGS)" $(MUTATE_ARGS)

mutate: bootstrap
	$(MUTATE)

# The subset CI runs (entries marked `ci: yes`), under 10 minutes.
mutate-ci: bootstrap
	$(MUTATE) --ci

# The libFuzzer targets (clang, ASan + UBSan) in build-fuzz, 10 minutes each.
fuzz:
	@sh scripts/fuzz.sh 600

# The soak run: pipemsgd under load with random client kills, 3 minutes.
soak:
	@sh scripts/soak.sh 180

# Windows (docs/windows.md): mingw-w64 and wine installed if missing, the dependencies
# cross-built from Debian's sources once, then the project; the tests under wine.
windows-bootstrap:
	@sh scripts/bootstrap.sh windows

windows: windows-bootstrap
	@sh scripts/windows-deps.sh $(BUILD_WIN)
	@test -f $(BUILD_WIN)/build.ninja || cmake -S . -B $(BUILD_WIN) -G Ninja \
	  -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) -DCMAKE_TOOLCHAIN_FILE=$(CURDIR)/cmake/mingw-w64.cmake \
	  -DPM_WIN_DEPS=$(abspath $(BUILD_WIN))/deps
	cmake --build $(BUILD_WIN)

check-windows: windows
	cd $(BUILD_WIN) && ctest --output-on-failure -j2

clean:
	rm -rf $(BUILD)

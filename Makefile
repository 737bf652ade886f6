# The two commands of the quick start: `make demo` and `make check`.
BUILD ?= build
BUILD_TYPE ?= RelWithDebInfo
CMAKE_FLAGS ?=

.PHONY: all bootstrap build demo check memcheck fuzz soak clean

all: build

bootstrap:
	@sh scripts/bootstrap.sh

$(BUILD)/build.ninja: | bootstrap
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) $(CMAKE_FLAGS)

build: bootstrap $(BUILD)/build.ninja
	cmake --build $(BUILD)

demo: build
	@sh scripts/demo.sh $(BUILD)/bin

check: build
	cd $(BUILD) && ctest --output-on-failure -j2

# Every test again under valgrind (pipemsgd included); slower, run by CI.
memcheck: build
	@sh scripts/memcheck.sh $(BUILD)

# The libFuzzer targets (clang, ASan + UBSan) in build-fuzz, 10 minutes each.
fuzz:
	@sh scripts/fuzz.sh 600

# The soak run: pipemsgd under load with random client kills, 3 minutes.
soak:
	@sh scripts/soak.sh 180

clean:
	rm -rf $(BUILD)

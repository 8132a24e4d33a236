# kvmem + libkv top-level Makefile.
#   make            build libkv (static + shared), kvctl, tests; CUDA and the
#                   kernel module when their toolchains are present
#   make test       install what is missing (as root), build, run every test
#   make run        the main job: kvctl replay on the embedded default workload
#   make bench      the comparison tables
#   make install    DESTDIR= and prefix= honoured
#   make SANITIZE=1 test   the same under ASan+UBSan (build in build-san/)
#
# libkv itself is described by libkv/libkv.mk (its sources, libkv.a,
# libkv.so, libkv.pc and LIBKV_LDLIBS, what they link against) and the
# memory server's library by libkv/server/server.mk. Other parts of the
# tree add themselves through optional fragments (kmod/kmod.mk,
# kernels/cuda.mk, tests/*/*.mk) that append to: ALL_TARGETS, TESTS,
# TEST_DEPS, BENCH_CMDS (one shell line: append "&& CMD"), DEPS_TEST,
# DEPS_BUILD, KV_LDLIBS, INSTALL_TARGETS.

prefix ?= /usr/local
DESTDIR ?=
SANITIZE ?= 0
CC ?= cc

ifeq ($(SANITIZE),1)
BUILD ?= build-san
SANFLAGS := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
else
BUILD ?= build
SANFLAGS :=
endif
override BUILD := $(abspath $(BUILD))

KV_SOVERSION := 0
KV_VERSION := 0.4.0

CFLAGS ?= -O2 -g
KV_CFLAGS := -std=gnu11 -Wall -Wextra -Wshadow -Wno-unused-parameter \
	-D_GNU_SOURCE -pthread -fPIC -fvisibility=hidden \
	-Ilibkv/include -Ilibkv/src -Ikernels $(SANFLAGS)
KV_LDFLAGS := $(SANFLAGS)

DEPS_BUILD := build-essential pkg-config
DEPS_TEST := fio iperf3 python3

# libkv's sources, libraries and link flags (LIBKV_LDLIBS).
include libkv/libkv.mk
# Programs that link libkv.a: its flags, then what fragments append.
KV_LDLIBS := $(LIBKV_LDLIBS)

KVCTL_SRCS := $(sort $(wildcard tools/kvctl/*.c))
KVCTL_OBJS := $(KVCTL_SRCS:%.c=$(BUILD)/obj/%.o)
UNIT_SRCS := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)
TEST_LIB_SRCS := $(sort $(filter-out $(UNIT_SRCS),$(wildcard tests/unit/*.c)))
TEST_LIB_OBJS := $(TEST_LIB_SRCS:%.c=$(BUILD)/obj/%.o)

KVCTL := $(BUILD)/kvctl

ALL_TARGETS := $(LIBKV_A) $(LIBKV_SO) $(KVCTL) $(UNIT_BINS) $(LIBKV_PC)
TESTS := $(UNIT_BINS) $(sort $(wildcard tests/scripts/test_*.sh))
TEST_DEPS :=
BENCH_CMDS := $(KVCTL) bench
INSTALL_TARGETS :=

.DEFAULT_GOAL := all
include libkv/server/server.mk
-include $(sort $(wildcard kmod/*.mk kernels/*.mk tests/*/*.mk))

export KV_BUILD := $(BUILD)
export KV_SRC := $(CURDIR)

.PHONY: all deps deps-test test test-run run bench bench-run install clean FORCE
# Keep objects built through pattern chains (unit test objects).
.SECONDARY:
all: deps $(ALL_TARGETS)

deps:
	@tools/deps.sh $(DEPS_BUILD)

deps-test:
	@tools/deps.sh $(DEPS_BUILD) -- $(DEPS_TEST)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(KV_CFLAGS) -MMD -MP -c $< -o $@

$(KVCTL): $(KVCTL_OBJS) $(KVSERVER_A) $(LIBKV_A)
	$(CC) $(KV_LDFLAGS) -o $@ $(KVCTL_OBJS) $(KVSERVER_A) $(LIBKV_A) $(KVSERVER_LDLIBS) $(KV_LDLIBS)

$(BUILD)/tests/%: $(BUILD)/obj/tests/unit/%.o $(TEST_LIB_OBJS) $(LIBKV_A)
	@mkdir -p $(dir $@)
	$(CC) $(KV_LDFLAGS) -o $@ $< $(TEST_LIB_OBJS) $(LIBKV_A) $(KV_LDLIBS)

# test and bench install first, then run make again: what the fragments
# detect at parse time (kernel headers, clang) may have just been installed.
test: deps-test
	@$(MAKE) --no-print-directory test-run

test-run: $(ALL_TARGETS) $(TEST_DEPS)
	@tests/run.sh $(TESTS)

run: deps $(KVCTL)
	$(KVCTL) replay

bench: deps-test
	@$(MAKE) --no-print-directory bench-run

bench-run: $(ALL_TARGETS) $(TEST_DEPS)
	@$(BENCH_CMDS)

install: $(LIBKV_A) $(LIBKV_SO) $(KVCTL) $(LIBKV_PC) $(INSTALL_TARGETS)
	install -d $(DESTDIR)$(prefix)/include $(DESTDIR)$(prefix)/lib/pkgconfig $(DESTDIR)$(prefix)/bin
	install -m 644 libkv/include/kv.h $(DESTDIR)$(prefix)/include/kv.h
	install -m 644 $(LIBKV_A) $(DESTDIR)$(prefix)/lib/libkv.a
	install -m 755 $(LIBKV_SO) $(DESTDIR)$(prefix)/lib/libkv.so.$(KV_VERSION)
	ln -sf libkv.so.$(KV_VERSION) $(DESTDIR)$(prefix)/lib/libkv.so.$(KV_SOVERSION)
	ln -sf libkv.so.$(KV_SOVERSION) $(DESTDIR)$(prefix)/lib/libkv.so
	install -m 644 $(LIBKV_PC) $(DESTDIR)$(prefix)/lib/pkgconfig/libkv.pc
	install -m 755 $(KVCTL) $(DESTDIR)$(prefix)/bin/kvctl

clean:
	rm -rf build build-san

-include $(KVCTL_OBJS:.o=.d) $(TEST_LIB_OBJS:.o=.d) $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/obj/tests/unit/%.d)

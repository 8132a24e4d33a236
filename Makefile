# kvmem + libkv top-level Makefile.
#   make            build libkv (static + shared), kvctl, tests; CUDA and the
#                   kernel module when their toolchains are present
#   make test       install what is missing (as root), build, run every test
#   make run        the main job: kvctl replay on the embedded default workload
#   make bench      the comparison tables
#   make install    DESTDIR= and prefix= honoured
#   make SANITIZE=1 test   the same under ASan+UBSan (build in build-san/)
#
# Parts of the tree add themselves through fragments (kmod/kmod.mk,
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
KV_LDLIBS := -lxxhash -luring -lpthread -ldl -lm
KV_LDFLAGS := $(SANFLAGS)

DEPS_BUILD := build-essential pkg-config libxxhash-dev liburing-dev
DEPS_TEST := fio iperf3 python3

LIB_SRCS := $(sort $(wildcard libkv/src/*.c)) kernels/kv_pack_cpu.c
LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/obj/%.o)
KVCTL_SRCS := $(sort $(wildcard tools/kvctl/*.c))
KVCTL_OBJS := $(KVCTL_SRCS:%.c=$(BUILD)/obj/%.o)
UNIT_SRCS := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)
TEST_LIB_SRCS := $(sort $(filter-out $(UNIT_SRCS),$(wildcard tests/unit/*.c)))
TEST_LIB_OBJS := $(TEST_LIB_SRCS:%.c=$(BUILD)/obj/%.o)

LIBKV_A := $(BUILD)/libkv.a
LIBKV_SO := $(BUILD)/libkv.so.$(KV_VERSION)
KVCTL := $(BUILD)/kvctl

ALL_TARGETS := $(LIBKV_A) $(LIBKV_SO) $(KVCTL) $(UNIT_BINS) $(BUILD)/libkv.pc
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

# Only called on CPUs that have AVX2 (runtime dispatch in checksum.c).
ifneq ($(filter x86_64,$(shell uname -m)),)
$(BUILD)/obj/libkv/src/checksum_avx2.o: KV_CFLAGS += -mavx2
endif

# The object list, rewritten only when it changes: a source that leaves
# libkv (as server.c did) rebuilds the libraries without it.
$(BUILD)/obj/libkv.objs: FORCE
	@mkdir -p $(dir $@)
	@echo '$(LIB_OBJS)' | cmp -s - $@ || echo '$(LIB_OBJS)' > $@

$(LIBKV_A): $(LIB_OBJS) $(BUILD)/obj/libkv.objs
	@rm -f $@
	$(AR) rcs $@ $(LIB_OBJS)

$(LIBKV_SO): $(LIB_OBJS) $(BUILD)/obj/libkv.objs libkv/libkv.map
	$(CC) -shared -Wl,-soname,libkv.so.$(KV_SOVERSION) \
		-Wl,--version-script=libkv/libkv.map -Wl,-z,defs \
		$(KV_LDFLAGS) -o $@ $(LIB_OBJS) $(KV_LDLIBS)
	ln -sf libkv.so.$(KV_VERSION) $(BUILD)/libkv.so.$(KV_SOVERSION)
	ln -sf libkv.so.$(KV_SOVERSION) $(BUILD)/libkv.so

$(KVCTL): $(KVCTL_OBJS) $(KVSERVER_A) $(LIBKV_A)
	$(CC) $(KV_LDFLAGS) -o $@ $(KVCTL_OBJS) $(KVSERVER_A) $(LIBKV_A) $(KVSERVER_LDLIBS) $(KV_LDLIBS)

$(BUILD)/tests/%: $(BUILD)/obj/tests/unit/%.o $(TEST_LIB_OBJS) $(LIBKV_A)
	@mkdir -p $(dir $@)
	$(CC) $(KV_LDFLAGS) -o $@ $< $(TEST_LIB_OBJS) $(LIBKV_A) $(KV_LDLIBS)

$(BUILD)/libkv.pc: libkv/libkv.pc.in Makefile
	@mkdir -p $(dir $@)
	sed -e 's|@prefix@|$(prefix)|' -e 's|@version@|$(KV_VERSION)|' $< > $@

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

install: $(LIBKV_A) $(LIBKV_SO) $(KVCTL) $(BUILD)/libkv.pc $(INSTALL_TARGETS)
	install -d $(DESTDIR)$(prefix)/include $(DESTDIR)$(prefix)/lib/pkgconfig $(DESTDIR)$(prefix)/bin
	install -m 644 libkv/include/kv.h $(DESTDIR)$(prefix)/include/kv.h
	install -m 644 $(LIBKV_A) $(DESTDIR)$(prefix)/lib/libkv.a
	install -m 755 $(LIBKV_SO) $(DESTDIR)$(prefix)/lib/libkv.so.$(KV_VERSION)
	ln -sf libkv.so.$(KV_VERSION) $(DESTDIR)$(prefix)/lib/libkv.so.$(KV_SOVERSION)
	ln -sf libkv.so.$(KV_SOVERSION) $(DESTDIR)$(prefix)/lib/libkv.so
	install -m 644 $(BUILD)/libkv.pc $(DESTDIR)$(prefix)/lib/pkgconfig/libkv.pc
	install -m 755 $(KVCTL) $(DESTDIR)$(prefix)/bin/kvctl

clean:
	rm -rf build build-san

-include $(LIB_OBJS:.o=.d) $(KVCTL_OBJS:.o=.d) $(TEST_LIB_OBJS:.o=.d) $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/obj/tests/unit/%.d)

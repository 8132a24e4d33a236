# tests/remote/remote.mk - the remote tier: memory server test driver, host
# tests (two servers on loopback, security, malformed frames, fuzzing) and
# the TCP benchmark against iperf3. Included by the top Makefile.

DEPS_TEST += iperf3 clang

REMOTE_DIR := $(BUILD)/tests/remote
REMOTE_SERVE := $(REMOTE_DIR)/kvr_serve
REMOTE_TEST := $(REMOTE_DIR)/kvr_test
REMOTE_FUZZ := $(REMOTE_DIR)/kvr_fuzz
REMOTE_HOSTILE := $(REMOTE_DIR)/kvr_hostile

$(REMOTE_SERVE): $(BUILD)/obj/tests/remote/kvr_serve.o $(BUILD)/obj/tools/kvctl/cmd_serve.o $(BUILD)/obj/tools/kvctl/util.o $(KVSERVER_A) $(LIBKV_A)
	@mkdir -p $(dir $@)
	$(CC) $(KV_LDFLAGS) -o $@ $^ $(KVSERVER_LDLIBS) $(KV_LDLIBS)

$(REMOTE_TEST): $(BUILD)/obj/tests/remote/kvr_test.o $(LIBKV_A)
	@mkdir -p $(dir $@)
	$(CC) $(KV_LDFLAGS) -o $@ $^ $(KV_LDLIBS)

# The hostile server: server.c again, with the test-only fault modes
# (KVS_FAULTS), linked instead of libkvserver.a's honest one.
$(BUILD)/obj/libkv/server/server_faults.o: libkv/server/server.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(KV_CFLAGS) -DKVS_FAULTS -MMD -MP -c $< -o $@

$(REMOTE_HOSTILE): $(BUILD)/obj/tests/remote/kvr_hostile.o $(BUILD)/obj/libkv/server/server_faults.o $(BUILD)/obj/tools/kvctl/cmd_serve.o $(BUILD)/obj/tools/kvctl/util.o $(LIBKV_A)
	@mkdir -p $(dir $@)
	$(CC) $(KV_LDFLAGS) -o $@ $^ $(KVSERVER_LDLIBS) $(KV_LDLIBS)

$(BUILD)/obj/tests/remote/%.o: KV_CFLAGS += -Itools/kvctl

ALL_TARGETS += $(REMOTE_SERVE) $(REMOTE_TEST) $(REMOTE_HOSTILE)
TESTS += $(sort $(wildcard tests/remote/test_*.sh))
BENCH_CMDS += && tests/remote/bench_remote.sh

-include $(BUILD)/obj/tests/remote/kvr_serve.d $(BUILD)/obj/tests/remote/kvr_test.d \
	$(BUILD)/obj/tests/remote/kvr_hostile.d $(BUILD)/obj/libkv/server/server_faults.d

# libFuzzer harness: built with clang when it can link -fsanitize=fuzzer
# (not under SANITIZE=1: gcc's ASan objects and clang's runtime do not mix).
FUZZ_CC ?= $(shell command -v clang 2>/dev/null || command -v clang-14 2>/dev/null)
ifeq ($(SANITIZE),1)
FUZZ_CC :=
endif
ifneq ($(FUZZ_CC),)
$(REMOTE_FUZZ): tests/remote/fuzz_server.c libkv/server/server.c libkv/src/proto.c libkv/server/server.h libkv/src/proto.h $(LIBKV_A)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) -g -O1 -fsanitize=fuzzer,address -std=gnu11 -D_GNU_SOURCE -Ilibkv/include -Ilibkv/src -Ilibkv/server \
		-o $@ tests/remote/fuzz_server.c libkv/server/server.c libkv/src/proto.c $(LIBKV_A) $(KVSERVER_LDLIBS) $(KV_LDLIBS) \
		|| { echo "remote: clang cannot build the fuzzer; test_remote_fuzz will SKIP"; rm -f $@; }
TEST_DEPS += $(REMOTE_FUZZ)
endif

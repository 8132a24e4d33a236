# tests/disk/disk.mk - the disk tier's fio comparison (make bench) and its
# script tests (make test). Included by the top Makefile.
DEPS_TEST += $(filter-out $(DEPS_TEST),fio bc)

KV_BENCH_DISK := $(BUILD)/bench_disk
ALL_TARGETS += $(KV_BENCH_DISK)
TESTS += $(sort $(wildcard tests/disk/test_*.sh))
TEST_DEPS += $(KV_BENCH_DISK)
BENCH_CMDS += && tests/disk/bench_fio.sh $(KV_BENCH_DISK)

$(KV_BENCH_DISK): $(BUILD)/obj/tests/disk/bench_disk.o $(LIBKV_A)
	$(CC) $(KV_LDFLAGS) -o $@ $< $(LIBKV_A) $(KV_LDLIBS)

-include $(BUILD)/obj/tests/disk/bench_disk.d

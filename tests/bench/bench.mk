# tests/bench/bench.mk - latency rows of make bench (bench_latency.c) and the
# replay through host, disk and a memory server (bench_tiers.sh).
KV_BENCH_LATENCY := $(BUILD)/bench_latency
ALL_TARGETS += $(KV_BENCH_LATENCY)
BENCH_CMDS += && tests/bench/bench_tiers.sh $(KV_BENCH_LATENCY)

$(KV_BENCH_LATENCY): $(BUILD)/obj/tests/bench/bench_latency.o $(LIBKV_A)
	$(CC) $(KV_LDFLAGS) -o $@ $< $(LIBKV_A) $(KV_LDLIBS)

-include $(BUILD)/obj/tests/bench/bench_latency.d

# libkv/server/server.mk - the memory server core behind `kvctl serve`, as a
# static library of its own: $(BUILD)/libkvserver.a. It is not in libkv.a
# or libkv.so (an engine never runs a server). kvctl and the remote tests
# link it before libkv.a, whose internal objects (proto, check, region,
# remote_rdma, checksum) it uses. Included by the top Makefile.

KVSERVER_SRCS := $(sort $(wildcard libkv/server/*.c))
KVSERVER_OBJS := $(KVSERVER_SRCS:%.c=$(BUILD)/obj/%.o)
KVSERVER_A := $(BUILD)/libkvserver.a
# What a program that links libkvserver.a needs beyond libkv.a's own flags
# (nothing today: the AUTH check uses nettle, as libkv does).
KVSERVER_LDLIBS :=

$(KVSERVER_A): $(KVSERVER_OBJS)
	@rm -f $@
	$(AR) rcs $@ $^

# The users of server.h.
$(BUILD)/obj/tools/kvctl/%.o $(BUILD)/obj/tests/remote/%.o: KV_CFLAGS += -Ilibkv/server

ALL_TARGETS += $(KVSERVER_A)

-include $(KVSERVER_OBJS:.o=.d)

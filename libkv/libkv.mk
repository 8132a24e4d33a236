# libkv/libkv.mk - libkv itself: its sources, libkv.a, libkv.so, libkv.pc,
# and the one place that says what libkv links against (LIBKV_LDLIBS: the
# link of libkv.so and libkv.pc's Libs.private; the top Makefile starts
# KV_LDLIBS, the flags of programs that link libkv.a, from it). Included by
# the top Makefile before the other fragments; it needs none of them.

LIB_SRCS := $(sort $(wildcard libkv/src/*.c)) kernels/kv_pack_cpu.c
LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/obj/%.o)
LIBKV_A := $(BUILD)/libkv.a
LIBKV_SO := $(BUILD)/libkv.so.$(KV_VERSION)
LIBKV_PC := $(BUILD)/libkv.pc

# nettle: HMAC-SHA256 for the remote tier's AUTH answer (proto.c). It is
# small, has no global state, and libnettle8 is on every Debian system (apt
# needs it through libgnutls30); libcrypto would be 5 MiB for one function.
# libibverbs is not linked: remote_rdma.c dlopen()s it on first use (its
# header, libibverbs-dev, is still needed to build).
LIBKV_LDLIBS := -lxxhash -luring -lnettle -lpthread -ldl -lm
DEPS_BUILD += libxxhash-dev liburing-dev nettle-dev libibverbs-dev

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

$(LIBKV_SO): $(LIB_OBJS) $(BUILD)/obj/libkv.objs libkv/libkv.map libkv/libkv.mk
	$(CC) -shared -Wl,-soname,libkv.so.$(KV_SOVERSION) \
		-Wl,--version-script=libkv/libkv.map -Wl,-z,defs \
		$(KV_LDFLAGS) -o $@ $(LIB_OBJS) $(LIBKV_LDLIBS)
	ln -sf libkv.so.$(KV_VERSION) $(BUILD)/libkv.so.$(KV_SOVERSION)
	ln -sf libkv.so.$(KV_SOVERSION) $(BUILD)/libkv.so

$(LIBKV_PC): libkv/libkv.pc.in libkv/libkv.mk Makefile
	@mkdir -p $(dir $@)
	sed -e 's|@prefix@|$(prefix)|' -e 's|@version@|$(KV_VERSION)|' \
		-e 's|@libs_private@|$(LIBKV_LDLIBS)|' $< > $@

-include $(LIB_OBJS:.o=.d)

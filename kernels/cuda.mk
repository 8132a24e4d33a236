# kernels/cuda.mk - the CUDA backend (libkv_cuda.so), the GPU tests and the
# GPU benchmark; built whenever nvcc is found ($(NVCC), default
# /usr/local/cuda/bin/nvcc, else nvcc on PATH). Without nvcc only the
# loader test (which checks that libkv degrades to -EOPNOTSUPP) is added.
#
#   CUDA_ARCHS    SM versions to build machine code for (default 80 90);
#                 PTX of the last one is embedded for newer GPUs.
#
# libkv.so never links cudart: libkv_cuda.so links it statically and is
# dlopen()ed by libkv/src/backend_cuda.c. Every kernel object is checked for
# register spills (ptxas -v log next to the object); a spill fails the build.

NVCC ?= /usr/local/cuda/bin/nvcc
KV_NVCC := $(if $(wildcard $(NVCC)),$(NVCC),$(shell command -v nvcc 2>/dev/null))
CUDA_ARCHS ?= 80 90

# The loader test runs everywhere: no CUDA needed to check the fallback.
$(BUILD)/tests/gpu/test_cuda_loader: $(BUILD)/obj/tests/gpu/test_cuda_loader.o $(LIBKV_A)
	@mkdir -p $(dir $@)
	$(CC) $(KV_LDFLAGS) -o $@ $< $(LIBKV_A) $(KV_LDLIBS)

ALL_TARGETS += $(BUILD)/tests/gpu/test_cuda_loader
TESTS += $(BUILD)/tests/gpu/test_cuda_loader

ifneq ($(KV_NVCC),)

# nvcc may be a wrapper script (/usr/local/bin/nvcc): find the static
# runtime and the headers where they are rather than next to nvcc.
CUDA_HOME ?= $(abspath $(dir $(KV_NVCC))/..)
CUDA_SEARCH := $(CUDA_HOME) /usr/local/cuda /usr
CUDA_LIBDIR ?= $(patsubst %/,%,$(dir $(firstword $(wildcard $(foreach d,$(CUDA_SEARCH),\
	$(d)/lib64/libcudart_static.a $(d)/targets/x86_64-linux/lib/libcudart_static.a \
	$(d)/lib/x86_64-linux-gnu/libcudart_static.a)) $(CUDA_HOME)/lib64/x)))
CUDA_INCDIR ?= $(patsubst %/,%,$(dir $(firstword $(wildcard $(foreach d,$(CUDA_SEARCH),\
	$(d)/include/cuda_runtime_api.h $(d)/targets/x86_64-linux/include/cuda_runtime_api.h)) \
	$(CUDA_HOME)/include/x)))
CUDA_GENCODE := $(foreach a,$(CUDA_ARCHS),-gencode arch=compute_$(a),code=sm_$(a)) \
	-gencode arch=compute_$(lastword $(CUDA_ARCHS)),code=compute_$(lastword $(CUDA_ARCHS))
KV_NVCCFLAGS := -O3 -std=c++17 $(CUDA_GENCODE) \
	-Xcompiler -fPIC,-fvisibility=hidden,-Wall,-Wno-unused-parameter \
	-Ikernels -Ilibkv/include -Ilibkv/src
# Static cudart: libkv_cuda.so needs only the driver (libcuda.so.1) at run
# time, found by cudart itself when the first CUDA call is made.
CUDA_LINK := -L$(CUDA_LIBDIR) -lcudart_static -lrt -ldl -lpthread

CUDA_OBJS := $(BUILD)/obj/kernels/kv_pack_cuda.cu.o $(BUILD)/obj/kernels/kv_cuda_backend.cu.o
LIBKV_CUDA := $(BUILD)/libkv_cuda.so.0

# Every .cu object: ptxas -v into a log; any spill is an error.
$(BUILD)/obj/%.cu.o: %.cu kernels/kv_cuda_backend.h kernels/kv_pack.h libkv/include/kv.h \
		$(wildcard tests/gpu/*.h)
	@mkdir -p $(dir $@)
	$(KV_NVCC) $(KV_NVCCFLAGS) -Xptxas -v -c $< -o $@ 2> $@.ptxas.log || \
		{ cat $@.ptxas.log >&2; rm -f $@; exit 1; }
	@grep -v '^ptxas info' $@.ptxas.log | grep -v 'bytes stack frame' >&2 || true
	@if grep -qE '[1-9][0-9]* bytes (spill|stack frame)' $@.ptxas.log; then \
		grep -B2 -E '[1-9][0-9]* bytes (spill|stack frame)' $@.ptxas.log >&2; \
		echo "cuda.mk: register spills or stack frame in $< (log: $@.ptxas.log)" >&2; \
		rm -f $@; exit 1; fi

$(LIBKV_CUDA): $(CUDA_OBJS)
	$(CXX) -shared -Wl,-soname,libkv_cuda.so.0 -Wl,--exclude-libs,ALL -Wl,-z,defs \
		-o $@ $(CUDA_OBJS) $(CUDA_LINK)
	ln -sf libkv_cuda.so.0 $(BUILD)/libkv_cuda.so

GPU_TESTS := $(BUILD)/tests/gpu/test_pack_emul $(BUILD)/tests/gpu/test_gpu_pack \
	$(BUILD)/tests/gpu/test_gpu_roundtrip
KV_CUDA_BENCH := $(BUILD)/kv_cuda_bench

# The kernel body run on the host against the CPU reference (no GPU needed).
$(BUILD)/tests/gpu/test_pack_emul: $(BUILD)/obj/tests/gpu/test_pack_emul.cu.o $(LIBKV_A)
	@mkdir -p $(dir $@)
	$(CXX) $(KV_LDFLAGS) -o $@ $< $(LIBKV_A) $(CUDA_LINK) $(KV_LDLIBS)

$(BUILD)/obj/tests/gpu/test_pack_emul.cu.o: kernels/kv_pack_cuda.cu

$(BUILD)/tests/gpu/test_gpu_pack: $(BUILD)/obj/tests/gpu/test_gpu_pack.cu.o $(CUDA_OBJS) $(LIBKV_A)
	@mkdir -p $(dir $@)
	$(CXX) $(KV_LDFLAGS) -o $@ $< $(CUDA_OBJS) $(LIBKV_A) $(CUDA_LINK) $(KV_LDLIBS)

$(BUILD)/tests/gpu/test_gpu_roundtrip: $(BUILD)/obj/tests/gpu/test_gpu_roundtrip.cu.o $(LIBKV_A) $(LIBKV_CUDA)
	@mkdir -p $(dir $@)
	$(CXX) $(KV_LDFLAGS) -o $@ $< $(LIBKV_A) $(CUDA_LINK) $(KV_LDLIBS)

$(KV_CUDA_BENCH): $(BUILD)/obj/tests/gpu/bench_cuda.cu.o $(CUDA_OBJS) $(LIBKV_A)
	$(CXX) $(KV_LDFLAGS) -o $@ $< $(CUDA_OBJS) $(LIBKV_A) $(CUDA_LINK) $(KV_LDLIBS)

ALL_TARGETS += $(LIBKV_CUDA) $(GPU_TESTS) $(KV_CUDA_BENCH)
TESTS += tests/gpu/test_cuda_so.sh $(GPU_TESTS)
TEST_DEPS += $(LIBKV_CUDA)
# Prints its table on a GPU machine, one "skipped: reason" line elsewhere.
BENCH_CMDS += && $(KV_CUDA_BENCH) --if-gpu
INSTALL_TARGETS += install-cuda

.PHONY: install-cuda
install-cuda: $(LIBKV_CUDA)
	install -d $(DESTDIR)$(prefix)/lib
	install -m 755 $(LIBKV_CUDA) $(DESTDIR)$(prefix)/lib/libkv_cuda.so.0
	ln -sf libkv_cuda.so.0 $(DESTDIR)$(prefix)/lib/libkv_cuda.so

endif

# kmod/kmod.mk - kvmem.ko and its VM test harness (included by the top
# Makefile).
#   make kmod                 kmod/kvmem.ko against KDIR (default: the
#                             running kernel's headers, else the newest
#                             /lib/modules/*/build, said in one line;
#                             KDIR= overrides)
#   make kmod KVMEM_GPU=mock  also kmod/mock/kvmem_p2p_mock.ko (tests only)
#   make kmod KVMEM_GPU=nvidia NVIDIA_SRC=/path/to/kernel-open
# The VM suite always builds its own mock-enabled copy in $(BUILD)/vm.

# Rules here must not become the default goal of the top Makefile.
KMOD_SAVED_GOAL := $(.DEFAULT_GOAL)

# KDIR: the running kernel's headers when installed, else the newest
# /lib/modules/*/build, and the build says so in one line.
KMOD_RUNNING := $(shell uname -r)
ifeq ($(origin KDIR),undefined)
ifneq ($(wildcard /lib/modules/$(KMOD_RUNNING)/build/Makefile),)
KDIR := /lib/modules/$(KMOD_RUNNING)/build
else
KDIR := $(patsubst %/Makefile,%,$(lastword $(sort $(wildcard /lib/modules/*/build/Makefile))))
ifneq ($(KDIR),)
KMOD_KDIR_NOTE := kmod: no headers for the running kernel $(KMOD_RUNNING); building against $(KDIR)
endif
endif
endif
KVMEM_GPU ?= none
NVIDIA_SRC ?=
KMOD_SRCS := Kbuild $(filter-out %.mod.c,$(wildcard kmod/Kbuild kmod/*.[ch] kmod/uapi/*.h kmod/mock/Kbuild kmod/mock/*.[ch]))
KMOD_EXTRA := KVMEM_GPU=$(KVMEM_GPU)
ifeq ($(KVMEM_GPU),nvidia)
KMOD_EXTRA += NVIDIA_SRC=$(NVIDIA_SRC) KBUILD_EXTRA_SYMBOLS=$(NVIDIA_SRC)/Module.symvers
endif

VM_DIR := $(BUILD)/vm
VM_BINS := $(patsubst tests/vm/%.c,$(VM_DIR)/bin/%,$(sort $(wildcard tests/vm/kvt_*.c)))
# No sanitizers in the VM programs: they test signals (SIGBUS) and wild
# ioctl pointers on purpose, which ASan would intercept.
VM_CFLAGS := $(CFLAGS) $(filter-out -fsanitize% -fno-sanitize%,$(KV_CFLAGS)) -Ikmod/uapi -Itests/vm

.PHONY: kmod kmod-clean vm-kmod vm-kmod2 vm-bins
ifneq ($(KDIR),)
kmod:
	@$(if $(KMOD_KDIR_NOTE),echo '$(KMOD_KDIR_NOTE)')
	$(MAKE) -C $(KDIR) M=$(CURDIR) $(KMOD_EXTRA) modules

ALL_TARGETS += kmod

# The VM's own copy, always with the mock GPU provider.
$(VM_DIR)/kmod-mock/kmod/kvmem.ko: $(KMOD_SRCS)
	@$(if $(KMOD_KDIR_NOTE),echo '$(KMOD_KDIR_NOTE)')
	@rm -rf $(VM_DIR)/kmod-mock && mkdir -p $(VM_DIR)/kmod-mock
	cp --parents $(KMOD_SRCS) $(VM_DIR)/kmod-mock/
	$(MAKE) -C $(KDIR) M=$(VM_DIR)/kmod-mock KVMEM_GPU=mock modules
	modinfo -F vermagic $@ | cut -d' ' -f1 > $(VM_DIR)/kver

vm-kmod: $(VM_DIR)/kmod-mock/kmod/kvmem.ko
TEST_DEPS += vm-kmod

# The second guest kernel: Debian bookworm-backports' 6.12, exact version,
# fetched and unpacked under $(BUILD)/kernels (never installed on the
# host). Without network or apt the recipe says so and its suite skips.
VM_KVER2_BASE := 6.12.95+deb12
VM_KVER2_PKG := 6.12.95-1~bpo12+1
VM_KVER2 := $(VM_KVER2_BASE)-amd64
VM_ROOT2 := $(BUILD)/kernels/root-$(VM_KVER2)
VM_KMOD2 := $(VM_DIR)/kmod-mock-$(VM_KVER2)

$(VM_ROOT2)/.ready: tests/vm/fetch_kernel.sh
	-@KV_BUILD=$(BUILD) tests/vm/fetch_kernel.sh $(VM_KVER2_BASE) '$(VM_KVER2_PKG)'

$(VM_KMOD2)/kmod/kvmem.ko: $(KMOD_SRCS) $(VM_ROOT2)/.ready
	@if [ ! -e $(VM_ROOT2)/.ready ]; then echo "vm: no $(VM_KVER2) tree: test_kvmem_vm_612 will skip"; exit 0; fi; \
	rm -rf $(VM_KMOD2) && mkdir -p $(VM_KMOD2) && \
	cp --parents $(KMOD_SRCS) $(VM_KMOD2)/ && \
	$(MAKE) -C $(VM_ROOT2)/usr/src/linux-headers-$(VM_KVER2) M=$(VM_KMOD2) KVMEM_GPU=mock modules

vm-kmod2: $(VM_KMOD2)/kmod/kvmem.ko
TEST_DEPS += vm-kmod2
else
kmod vm-kmod:
	@echo "kmod: no kernel build tree: install linux-headers-$$(uname -r) (or linux-headers-amd64) or pass KDIR=" >&2; exit 1
endif

kmod-clean:
	$(if $(KDIR),$(MAKE) -C $(KDIR) M=$(CURDIR) clean)

# The kvt_* programs use only the ABI header, liburing and libibverbs.
$(VM_DIR)/bin/%: tests/vm/%.c tests/vm/kvt.h kmod/uapi/kvmem.h
	@mkdir -p $(dir $@)
	$(CC) $(VM_CFLAGS) -o $@ $< -luring -libverbs -lpthread

vm-bins: $(VM_BINS)
TEST_DEPS += vm-bins
TESTS += tests/vm/test_kvctl_proc.sh tests/vm/test_kvmem_vm.sh tests/vm/test_kvmem_vm_612.sh
BENCH_CMDS += && tests/vm/bench_rdma.sh
DEPS_TEST += qemu-system-x86 linux-image-amd64 linux-headers-amd64 \
	busybox-static cpio rdma-core ibverbs-providers ibverbs-utils perftest \
	libibverbs-dev kmod iproute2 e2fsprogs xz-utils

.DEFAULT_GOAL := $(KMOD_SAVED_GOAL)

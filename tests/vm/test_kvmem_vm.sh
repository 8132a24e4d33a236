#!/bin/bash
# kv-test-timeout: 900
# test_kvmem_vm.sh - boot the installed Debian kernel under QEMU (TCG),
# load kvmem.ko and the p2p mock, run tests/vm/suite.sh inside, and report
# its cases to tests/run.sh as "subtotal: N passed, N failed, N skipped".
# The guest sees the host's / read-only over 9p and writes its report into
# $KV_BUILD/vm/run.*/out (a second, writable 9p share; $KV_BUILD/vm/last
# points at the latest run).
# Env: KV_VM_KVER, KV_VM_ROOT, KV_VM_KMOD (the guest kernel's version, the
# tree it was unpacked into (/boot/vmlinuz-KVER and /lib/modules/KVER under
# it; default: the host's own /), and the directory of the kvmem.ko and
# kvmem_p2p_mock.ko built for it; default: the host headers' kernel and
# $KV_BUILD/vm/kmod-mock/kmod; test_kvmem_vm_612.sh sets them),
# KV_VM_MEM (MiB, default 2048), KV_VM_TIMEOUT (s, default 780),
# KV_VM_ONLY (space-separated case names to run, default all),
# KV_RDMA_SECONDS, KV_RDMA_ROUNDS (length and count of the remote tier's RDMA
# throughput runs).
set -u
src=${KV_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
build=${KV_BUILD:-$src/build}
vm=$build/vm

skip() { echo "SKIP: $*"; exit 77; }

qemu=$(command -v qemu-system-x86_64) ||
	skip "qemu-system-x86_64 not installed (make deps-test installs qemu-system-x86)"
kroot=${KV_VM_ROOT:-}
kmoddir=${KV_VM_KMOD:-$vm/kmod-mock/kmod}
if [ -n "${KV_VM_KVER:-}" ]; then
	kver=$KV_VM_KVER
else
	[ -r "$vm/kver" ] || skip "kvmem.ko not built: no kernel headers (linux-headers-amd64) at make time"
	kver=$(cat "$vm/kver")
fi
[ -r "$kmoddir/kvmem.ko" ] && [ -r "$kmoddir/mock/kvmem_p2p_mock.ko" ] ||
	skip "kvmem.ko not built for $kver ($kmoddir)"
kernel=$kroot/boot/vmlinuz-$kver
moddir=$kroot/lib/modules/$kver
[ -r "$kernel" ] || skip "no kernel image $kernel (linux-image-$kver) for the module's headers"
[ -r "$moddir/modules.dep" ] || skip "no $moddir/modules.dep for the guest"
busybox=$(command -v busybox) || skip "busybox not installed (busybox-static)"
file -L "$busybox" 2>/dev/null | grep -q 'statically linked' ||
	[ -x /bin/busybox ] || skip "busybox is not static (install busybox-static)"
command -v cpio >/dev/null || skip "cpio not installed"

# --- initramfs: busybox, the 9p modules, init ---
# Each run gets its own directory: concurrent `make test`s share $vm.
run=$(mktemp -d "$vm/run.XXXXXX") || exit 1
ird=$run/initramfs
out=$run/out
mkdir -p "$ird/bin" "$ird/lib/modules" "$ird/proc" "$ird/sys" "$ird/dev" \
	"$ird/mnt" "$out"
cp "$busybox" "$ird/bin/busybox"
# virtio-pci and 9p with what they depend on (modules.dep), in load order;
# whatever the kernel has built in is skipped.
mods=''
for want in virtio_pci 9pnet_virtio 9p; do
	if grep -q "/$want\.ko" "$moddir/modules.builtin" 2>/dev/null; then
		continue
	fi
	line=$(grep -E "/$want\.ko(\.xz|\.zst|\.gz)?:" "$moddir/modules.dep" | head -n 1)
	[ -n "$line" ] || skip "guest module $want missing from $moddir"
	deps=($(echo "${line#*:}" | tr ' ' '\n' | tac) "${line%%:*}")
	for f in "${deps[@]}"; do
		[ -n "$f" ] || continue
		m=$(basename "$f"); m=${m%%.ko*}
		[[ " $mods " == *" $m "* ]] && continue
		case $f in
		*.xz) xz -dc "$moddir/$f" >"$ird/lib/modules/$m.ko" ;;
		*.zst) zstd -dcq "$moddir/$f" >"$ird/lib/modules/$m.ko" ;;
		*) cp "$moddir/$f" "$ird/lib/modules/$m.ko" ;;
		esac || skip "cannot copy guest module $f"
		mods="$mods $m"
	done
done
hidden_src='' hidden_build=''
extra=()
case $src in /tmp/* | /run/* | /tmp | /run)
	hidden_src=1
	extra+=(-virtfs "local,path=$src,mount_tag=kvsrc,security_model=none,readonly=on,multidevs=remap") ;;
esac
case $build in
"$src"/*) ;;
/tmp/* | /run/*)
	hidden_build=1
	extra+=(-virtfs "local,path=$build,mount_tag=kvbuild,security_model=none,readonly=on,multidevs=remap") ;;
esac
cat >"$ird/init" <<INIT
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in $mods; do insmod /lib/modules/\$m.ko || echo "init: insmod \$m failed"; done
o=trans=virtio,version=9p2000.L,msize=262144
mount -t 9p -o \$o,ro hostroot /mnt || echo "init: cannot mount hostroot"
mount -t tmpfs tmp /mnt/tmp
mount -t tmpfs run /mnt/run
# a tree under /tmp or /run is hidden by those tmpfs: mount it again
[ -n "$hidden_src" ] && mkdir -p /mnt$src && mount -t 9p -o \$o,ro kvsrc /mnt$src
[ -n "$hidden_build" ] && mkdir -p /mnt$build && mount -t 9p -o \$o,ro kvbuild /mnt$build
mount -t 9p -o \$o results /mnt$out || echo "init: cannot mount results"
# a kernel unpacked under the build tree: its modules where modprobe looks
if [ -n "$kroot" ]; then
	mount -t tmpfs mods /mnt/lib/modules
	mkdir -p /mnt/lib/modules/$kver
	mount --bind /mnt$moddir /mnt/lib/modules/$kver
fi
mount --bind /proc /mnt/proc
mount --bind /sys /mnt/sys
mount --bind /dev /mnt/dev
mkdir -p /mnt/dev/shm /mnt/dev/pts 2>/dev/null
mount -t tmpfs shm /mnt/dev/shm
echo "init: running suite"
KV_SRC=$src KV_BUILD=$build KV_VM_OUT=$out KV_VM_ONLY="${KV_VM_ONLY:-}" KV_VM_KMOD=$kmoddir \
	KV_RDMA_SECONDS="${KV_RDMA_SECONDS:-}" KV_RDMA_ROUNDS="${KV_RDMA_ROUNDS:-}" PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/tmp \
	chroot /mnt /bin/bash $src/tests/vm/suite.sh
echo "init: suite exited \$?"
sync
poweroff -f
INIT
chmod 755 "$ird/init"
(cd "$ird" && find . | cpio -o -H newc --quiet | gzip -1) >"$run/initramfs.cpio.gz"

# --- boot: 2 vCPUs on 2 NUMA nodes ---
mem=${KV_VM_MEM:-2048}
echo "kernel $kver, kvmem.ko from $kmoddir"
echo "booting $kernel under TCG (2 vCPUs, 2 NUMA nodes, $mem MiB)"
start=$(date +%s)
timeout -k 10 "${KV_VM_TIMEOUT:-780}" "$qemu" \
	-accel tcg,thread=multi -cpu max -m "$mem" -smp 2 \
	-object memory-backend-ram,id=mem0,size=$((mem / 2))M \
	-object memory-backend-ram,id=mem1,size=$((mem - mem / 2))M \
	-numa node,nodeid=0,cpus=0,memdev=mem0 -numa node,nodeid=1,cpus=1,memdev=mem1 \
	-nographic -no-reboot -nic none \
	-kernel "$kernel" -initrd "$run/initramfs.cpio.gz" \
	-append "console=ttyS0 quiet panic=-1" \
	-virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap \
	-virtfs local,path="$out",mount_tag=results,security_model=none \
	"${extra[@]}" \
	</dev/null >"$run/console.log" 2>&1
qrc=$?
echo "qemu exited $qrc after $(( $(date +%s) - start )) s (console: $run/console.log)"

res=$out/results.txt
# keep this run as $vm/last and the previous ones only briefly
rm -rf "$ird"
ln -sfn "$(basename "$run")" "$vm/last"
find "$vm" -maxdepth 1 -name "run.*" -mmin +30 -exec rm -rf {} + 2>/dev/null
if [ ! -s "$res" ] || ! grep -q '^END' "$res"; then
	echo "FAIL vm: the suite did not finish (qemu rc $qrc)"
	tail -n 40 "$run/console.log"
	[ -s "$res" ] && cat "$res"
	p=$(grep -c '^PASS' "$res" 2>/dev/null); f=$(grep -c '^FAIL' "$res" 2>/dev/null)
	s=$(grep -c '^SKIP' "$res" 2>/dev/null)
	echo "subtotal: ${p:-0} passed, $(( ${f:-0} + 1 )) failed, ${s:-0} skipped"
	exit 1
fi
grep -E '^(PASS|FAIL|SKIP)' "$res"
p=$(grep -c '^PASS' "$res"); f=$(grep -c '^FAIL' "$res"); s=$(grep -c '^SKIP' "$res")
if [ "$f" -gt 0 ]; then
	echo "--- logs of failed cases ($out/logs) ---"
	for c in $(grep '^FAIL' "$res" | sed -E 's/^FAIL ([^:]*).*/\1/' | sort -u); do
		[ -r "$out/logs/$c.log" ] && tail -n 20 "$out/logs/$c.log" | sed "s/^/  $c| /"
	done
fi
echo "subtotal: $p passed, $f failed, $s skipped"
[ "$f" -eq 0 ]

#!/bin/bash
# fetch_kernel.sh VERSION PKGVERSION - a second guest kernel for the VM
# suite from Debian bookworm-backports, never installed on the host:
# `apt-get download` of the exact packages into $KV_BUILD/kernels/debs
# (kept: a second run downloads nothing), `dpkg -x` into
# $KV_BUILD/kernels/root-VERSION-amd64, the headers pointed at that tree,
# vmlinux dropped (no BTF for test modules; pahole may be missing), depmod.
# apt's lists live under $KV_BUILD/kernels/apt; /etc/apt is not touched.
# Exit 0 when the tree is ready, 1 (one line on stderr) when it cannot be.
set -u
ver=${1:?usage: fetch_kernel.sh VERSION PKGVERSION (e.g. 6.12.95+deb12 6.12.95-1~bpo12+1)}
pkgver=${2:?usage: fetch_kernel.sh VERSION PKGVERSION}
out=${KV_BUILD:?}/kernels
kver=$ver-amd64
root=$out/root-$kver
[ -e "$root/.ready" ] && exit 0
die() { echo "fetch_kernel: $*" >&2; exit 1; }

pkgs="linux-image-$kver-unsigned linux-headers-$kver linux-headers-$ver-common linux-kbuild-$ver"
mkdir -p "$out/debs" || die "cannot create $out/debs"
need=()
for p in $pkgs; do
	compgen -G "$out/debs/${p}_${pkgver}_*.deb" >/dev/null || need+=("$p=$pkgver")
done
if [ ${#need[@]} -gt 0 ]; then
	apt=$out/apt
	mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial"
	echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm-backports main" >"$apt/sources.list"
	opts=(-o Dir::Etc::sourcelist="$apt/sources.list" -o Dir::Etc::sourceparts=/nonexistent
		-o Dir::State::Lists="$apt/lists" -o Dir::Cache="$apt/cache"
		-o Debug::NoLocking=1 -o APT::Sandbox::User=root -qq)
	echo "fetch_kernel: downloading ${need[*]}"
	timeout 300 apt-get "${opts[@]}" update >"$apt/update.log" 2>&1 ||
		die "apt-get update of bookworm-backports failed (see $apt/update.log)"
	(cd "$out/debs" && timeout 600 apt-get "${opts[@]}" download "${need[@]}") >"$apt/download.log" 2>&1 ||
		die "apt-get download ${need[*]} failed (see $apt/download.log)"
fi
rm -rf "$root" && mkdir -p "$root" || die "cannot create $root"
for p in $pkgs; do
	dpkg -x "$(compgen -G "$out/debs/${p}_${pkgver}_*.deb" | head -n 1)" "$root" ||
		die "dpkg -x $p failed"
done
kdir=$root/usr/src/linux-headers-$kver
[ -r "$root/boot/vmlinuz-$kver" ] && [ -r "$kdir/Makefile" ] || die "unpacked tree lacks vmlinuz or headers"
sed -i "s|^include /usr/src/|include $root/usr/src/|" "$kdir/Makefile"
rm -f "$kdir/vmlinux"
depmod -b "$root" "$kver" || die "depmod -b $root $kver failed"
touch "$root/.ready"

#!/bin/bash
# Build everything the VM test boots, into vmtest/build/ (ignored by git):
#   kernel.elf        the Debian kernel's vmlinux (XZ stream of the bzImage, decompressed
#                     once here so TCG does not spend ~5 s per boot decompressing it)
#   initramfs.cpio    stage 0 = the bootloader: busybox, virtio/ext4/squashfs modules and
#                     our static `update-server boot` (DESIGN §2 selection + tries decrement)
#   usr/              the tiny OS that goes into a USR slot (busybox, our static binaries,
#                     os-init, os-release); images of it are made by mkusr() in lib.sh
#   bin/              our static binaries (also used on the host side by the runner)
# The kernel package is resolved at run time (`apt-cache depends linux-image-amd64`),
# downloaded with `apt-get download` and extracted, never installed.
set -euo pipefail

VMTEST_DIR=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$VMTEST_DIR/.." && pwd)
BUILD=${VMTEST_BUILD:-$VMTEST_DIR/build}
TARGET=x86_64-unknown-linux-gnu
# Order matters: busybox insmod resolves no dependencies.
MODULES=(virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci virtio_blk
         crc32c_generic crc16 mbcache jbd2 ext4 squashfs)
BINARIES=(update-server updatectl update-payload update-engine)

die() { echo "vmtest build: $*" >&2; exit 1; }
log() { echo "vmtest build: $*" >&2; }

# Host packages: installed when missing; a package that cannot be had is a hard failure.
need_packages() {
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    log "installing ${missing[*]}"
    if ! apt-get install -y --no-install-recommends "${missing[@]}" >"$BUILD/apt.log" 2>&1; then
        apt-get update >>"$BUILD/apt.log" 2>&1 || true
        apt-get install -y --no-install-recommends "${missing[@]}" >>"$BUILD/apt.log" 2>&1 ||
            die "cannot install ${missing[*]} (see $BUILD/apt.log); the VM test needs them and does not skip"
    fi
}

kernel() {
    local pkg ver deb
    pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-[0-9].*\)$/\1/p' | head -n1)
    [ -n "$pkg" ] || die "cannot resolve the kernel package: 'apt-cache depends linux-image-amd64' names no linux-image-N (run apt-get update?)"
    ver=${pkg#linux-image-}
    if [ -s "$BUILD/kernel.elf" ] && [ "$(cat "$BUILD/kernel.version" 2>/dev/null)" = "$ver" ]; then
        return 0
    fi
    log "kernel $pkg"
    rm -rf "$BUILD/kernel" && mkdir -p "$BUILD/kernel"
    (cd "$BUILD/kernel" && apt-get download "$pkg" >"$BUILD/kernel/download.log" 2>&1) ||
        die "cannot download $pkg (see $BUILD/kernel/download.log)"
    deb=$(ls "$BUILD"/kernel/*.deb)
    local globs=("./boot/vmlinuz-$ver") m
    for m in "${MODULES[@]}"; do globs+=("*/$m.ko"); done
    dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$BUILD/kernel" --wildcards "${globs[@]}" ||
        die "extracting vmlinuz and modules from $deb failed"
    mkdir -p "$BUILD/kernel/mods"
    for m in "${MODULES[@]}"; do
        local ko
        ko=$(find "$BUILD/kernel/lib" -name "$m.ko" | head -n1)
        [ -n "$ko" ] || die "module $m.ko is not in $pkg"
        cp "$ko" "$BUILD/kernel/mods/"
    done
    # The bzImage carries the kernel as one XZ stream; qemu boots the decompressed
    # ELF directly through its PVH entry point.
    local vmlinuz="$BUILD/kernel/boot/vmlinuz-$ver" off
    off=$(LC_ALL=C grep -obUaP '\xfd7zXZ\x00' "$vmlinuz" | head -n1 | cut -d: -f1)
    [ -n "$off" ] || die "no XZ stream in $vmlinuz"
    # (tail is cut off with SIGPIPE once xz has read the one stream it wants.)
    { tail -c +$((off + 1)) "$vmlinuz" || true; } | xz -dc --single-stream >"$BUILD/kernel.elf" ||
        die "decompressing the kernel from $vmlinuz failed"
    [ "$(head -c 4 "$BUILD/kernel.elf" | tail -c 3)" = ELF ] || die "$vmlinuz did not decompress to an ELF kernel"
    rm -f "$deb"
    echo "$ver" >"$BUILD/kernel.version"
}

binaries() {
    if [ -n "${VMTEST_BIN_DIR:-}" ]; then
        log "using prebuilt binaries from $VMTEST_BIN_DIR"
    else
        log "cargo build (static, release)"
        (cd "$REPO" && RUSTFLAGS='-C target-feature=+crt-static' \
            cargo build --release --locked --target "$TARGET" --bins) ||
            die "cargo build of the static binaries failed"
    fi
    local src=${VMTEST_BIN_DIR:-${CARGO_TARGET_DIR:-$REPO/target}/$TARGET/release}
    mkdir -p "$BUILD/bin"
    local b
    for b in "${BINARIES[@]}"; do
        if [ -x "$src/$b" ]; then
            # Debug info is not needed in the guest and triples the image size.
            strip -o "$BUILD/bin/$b.tmp" "$src/$b" && mv "$BUILD/bin/$b.tmp" "$BUILD/bin/$b"
        else
            rm -f "$BUILD/bin/$b"
        fi
    done
    [ -x "$BUILD/bin/update-server" ] && [ -x "$BUILD/bin/updatectl" ] ||
        die "update-server and updatectl were not built in $src"
    # Binaries given with VMTEST_BIN_DIR may be dynamic (e.g. the ones `cargo test`
    # just built): then their shared libraries go into the guest too.
    : >"$BUILD/bin/libs"
    for b in "$BUILD"/bin/*; do
        [ -x "$b" ] || continue
        if ! file -L "$b" | grep -q 'static'; then
            [ -n "${VMTEST_BIN_DIR:-}" ] || die "$b is not statically linked; build with RUSTFLAGS='-C target-feature=+crt-static' --target $TARGET"
            ldd "$b" | grep -o '/[^ ]*' >>"$BUILD/bin/libs" || die "ldd $b failed"
        fi
    done
}

# copy_libs ROOT: the shared libraries of dynamic binaries (see binaries()).
copy_libs() {
    local lib
    for lib in $(sort -u "$BUILD/bin/libs"); do
        mkdir -p "$1$(dirname "$lib")"
        cp -L "$lib" "$1$lib"
    done
}

initramfs() {
    local root="$BUILD/initramfs"
    rm -rf "$root" && mkdir -p "$root"/{bin,dev,proc,sys,sysroot,lib/modules}
    cp /bin/busybox "$root/bin/busybox"
    ln -s busybox "$root/bin/sh"
    cp "$BUILD/bin/update-server" "$root/bin/"
    cp "$BUILD"/kernel/mods/*.ko "$root/lib/modules/"
    printf '%s\n' "${MODULES[@]}" >"$root/lib/modules/order"
    copy_libs "$root"
    cp "$VMTEST_DIR/guest/stage0-init" "$root/init"
    chmod 755 "$root/init"
    (cd "$root" && find . | LC_ALL=C sort | busybox cpio -o -H newc -R 0:0 2>/dev/null) >"$BUILD/initramfs.cpio"
}

usr_tree() {
    local usr="$BUILD/usr"
    rm -rf "$usr" && mkdir -p "$usr"/{bin,lib/vmtest,lib64,share/update-engine/keys}
    cp /bin/busybox "$usr/bin/busybox"
    local a
    for a in $(busybox --list); do
        [ "$a" = busybox ] || ln -sf busybox "$usr/bin/$a"
    done
    # update-payload is a build-host tool; the OS does not need it.
    cp "$BUILD"/bin/update-server "$BUILD"/bin/updatectl "$usr/bin/"
    [ ! -x "$BUILD/bin/update-engine" ] || cp "$BUILD/bin/update-engine" "$usr/bin/"
    # The OS's /usr is the slot: /lib* of a dynamic binary resolve through
    # symlinks on ROOT made by stage 0 (lib -> usr/lib, lib64 -> usr/lib64).
    copy_libs "$usr"
    cp "$VMTEST_DIR/guest/os-init" "$usr/lib/vmtest/os-init"
    chmod 755 "$usr/lib/vmtest/os-init"
    # The engine's vendor configuration and trusted key live on the slot, as on
    # a real OS image (the payloads are signed with the insecure test key).
    mkdir -p "$usr/lib/update-engine/config.d"
    cp "$VMTEST_DIR/guest/10-vmtest.toml" "$usr/lib/update-engine/config.d/"
    cp "$REPO/fixtures/keys/insecure-test.pub" "$usr/share/update-engine/keys/"
}

main() {
    mkdir -p "$BUILD"
    local pkgs=(qemu-system-x86 busybox-static e2fsprogs gdisk cgpt xz-utils squashfs-tools jq file)
    need_packages "${pkgs[@]}"
    kernel
    binaries
    initramfs
    usr_tree
    log "done: $(du -h "$BUILD/kernel.elf" | cut -f1) kernel, $(du -h "$BUILD/initramfs.cpio" | cut -f1) initramfs"
}

main "$@"

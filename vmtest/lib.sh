# Host-side helpers of the VM test runner (sourced by vmtest/run).
# Disks are image files; qemu boots them with TCG (no KVM, see VMTEST-NOTES), no
# network (-nic none), -no-reboot (a guest reboot ends qemu: the runner boots
# again), and isa-debug-exit (a byte v written to port 0xf4 exits with (v<<1)|1).

BIN=$BUILD/bin
WORK=$BUILD/work
BOOT_TIMEOUT=${VMTEST_BOOT_TIMEOUT:-120}
PASSED=0
FAILED=0
BOOTS=0
BOOT_SECONDS_TOTAL=0
FAILURES=()

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

# check NAME COMMAND...: one assertion; the runner's verdict counts these.
check() {
    local name=$1; shift
    if "$@" >/dev/null 2>&1; then
        PASSED=$((PASSED + 1)); echo "  ok   $name"
    else
        FAILED=$((FAILED + 1)); FAILURES+=("$SCENARIO: $name"); echo "  FAIL $name"
    fi
}
eq() { [ "$1" = "$2" ]; }

# mkusr VERSION OUT [ext4|squashfs]: an image of the tiny OS for a USR slot.
mkusr() {
    local version=$1 out=$2 fs=${3:-ext4} tree
    tree=$(mktemp -d "$WORK/usr.XXXXXX")
    cp -a "$BUILD/usr/." "$tree/"
    printf 'ID=vmtest\nNAME="A/B VM test OS"\nVERSION_ID=%s\n' "$version" >"$tree/lib/os-release"
    rm -f "$out"
    local rc=0
    case $fs in
        ext4) mke2fs -q -F -t ext4 -O ^has_journal -b 4096 -L USR -d "$tree" "$out" "$USR_FS_SIZE" >/dev/null || rc=$? ;;
        squashfs) mksquashfs "$tree" "$out" -quiet -noappend -comp gzip -Xcompression-level 1 >/dev/null || rc=$? ;;
    esac
    rm -rf "$tree"
    [ $rc -eq 0 ] || echo "vmtest: making the $fs USR image $out failed (does the OS fit in $USR_FS_SIZE?)" >&2
    return $rc
}

# mkdisk OUT [make-disk flags...]: a fresh A/B disk with the v1 OS in USR-A and
# an empty ext4 ROOT (partition 9). make-disk lays partitions out back to back on
# 1 MiB boundaries, in the order EFI, USR-A, USR-B, ROOT, so ROOT starts where
# USR-B ends.
mkdisk() {
    local out=$1; shift
    "$BIN/update-server" make-disk --out "$out" --slot-size "$SLOT_SIZE" --usr-a "$WORK/usr-v1.ext4" \
        --root-size 24M "$@" >/dev/null && add_root "$out"
}

# add_root IMG: an empty ext4 in ROOT.
add_root() {
    local out=$1 b_end
    b_end=$(slots "$out" | jq '.slots[] | select(.slot == "B") | .offset_bytes + .size_bytes')
    [ -n "$b_end" ] || return 1
    # mke2fs straight into the image would wipe the GPT as a "foreign
    # signature"; make the file system apart and copy it in place.
    mke2fs -q -F -t ext4 -b 4096 -L ROOT "$WORK/root.ext4" 24M >/dev/null &&
        dd if="$WORK/root.ext4" of="$out" bs=1M seek="$((b_end >> 20))" conv=notrunc,sparse status=none &&
        rm -f "$WORK/root.ext4"
}

# slots IMG: `updatectl slots --disk IMG --json`.
slots() { "$BIN/updatectl" slots --disk "$1" --json 2>/dev/null; }
# field IMG SLOT KEY: one attribute of a slot.
field() { slots "$1" | jq -r ".slots[] | select(.slot == \"$2\") | .$3"; }
next_boot() { slots "$1" | jq -r '.next_boot'; }
# gpt_valid IMG: both GPT copies clean for sgdisk and cgpt (512-byte images) and
# for our own validation (problems = []).
gpt_valid() {
    [ "$(slots "$1" | jq '.problems | length')" = 0 ] || return 1
    [ "$(slots "$1" | jq '.sector_size')" = 4096 ] && return 0
    sgdisk -v "$1" | grep -q 'No problems found' && cgpt show "$1" >/dev/null
}

# step FILE <<SCRIPT: the script the guest sources this boot (second drive).
step() {
    cat >"$1"
    truncate -s %512 "$1"
}

# vm_start IMG STEP LOG [4k] [EXTRA_DRIVE]: start qemu in the background; QEMU_PID.
vm_start() {
    local img=$1 stepf=$2 log=$3 sector=${4:-512} extra=${5:-}
    local drives=()
    rm -f "$log.pid"
    drives+=(-drive "file=$img,format=raw,if=none,id=d0,cache=writeback")
    drives+=(-device "virtio-blk-pci,drive=d0,logical_block_size=$sector,physical_block_size=$sector")
    drives+=(-drive "file=$stepf,format=raw,if=none,id=d1,readonly=on" -device virtio-blk-pci,drive=d1)
    if [ -n "$extra" ]; then
        drives+=(-drive "file=$extra,format=raw,if=none,id=d2,readonly=on" -device virtio-blk-pci,drive=d2)
    fi
    # The subshell's stderr is dropped so that bash does not print "Killed"
    # when a power cut kills qemu (timeout re-raises its child's signal).
    (timeout -s KILL "$BOOT_TIMEOUT" qemu-system-x86_64 -accel tcg -m 512 -nodefaults -no-user-config \
        -display none -nic none -no-reboot -serial stdio \
        -kernel "$BUILD/kernel.elf" -initrd "$BUILD/initramfs.cpio" \
        -append "console=ttyS0 quiet panic=-1 vmtest" \
        -device isa-debug-exit,iobase=0xf4,iosize=0x04 -pidfile "$log.pid" "${drives[@]}" \
        </dev/null >"$log" 2>&1; exit $?) 2>/dev/null &
    QEMU_PID=$!
    BOOT_START=$(now)
}

# vm_cut LOG: power cut: SIGKILL the qemu of the running boot.
vm_cut() {
    local pid i=0
    while [ ! -s "$1.pid" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
    pid=$(cat "$1.pid")
    KILLED=1
    kill -KILL "$pid"
}

# vm_wait LOG: wait for qemu; sets BOOT_END (restart|powerdown|exit:N|noboot|
# killed|timeout|crash), BOOT_SLOT (A|B|none) and BOOT_VERSION.
vm_wait() {
    local log=$1 rc=0
    wait "$QEMU_PID" || rc=$?
    local dt; dt=$(secs "$BOOT_START" "$(now)")
    BOOTS=$((BOOTS + 1))
    BOOT_SECONDS_TOTAL=$(awk -v a="$BOOT_SECONDS_TOTAL" -v b="$dt" 'BEGIN { print a + b }')
    BOOT_SLOT=$(sed -n 's/.*VMTEST-STAGE0 USR-\([AB]\) .*/\1/p' "$log" | tail -n1)
    BOOT_VERSION=$(sed -n 's/.*VMTEST-OS version=\([^ ]*\) .*/\1/p' "$log" | tail -n1)
    [ -n "$BOOT_SLOT" ] || BOOT_SLOT=none
    if grep -q VMTEST-NOBOOT "$log"; then BOOT_END=noboot
    elif [ $rc -eq 137 ] && [ "${KILLED:-0}" = 1 ]; then BOOT_END=killed
    elif [ $rc -eq 137 ]; then BOOT_END=timeout
    elif [ $rc -eq 0 ] && grep -q 'reboot: Restarting system' "$log"; then BOOT_END=restart
    elif [ $rc -eq 0 ] && grep -q 'reboot: Power down' "$log"; then BOOT_END=powerdown
    elif [ $((rc & 1)) -eq 1 ]; then BOOT_END=exit:$((rc >> 1))
    else BOOT_END=crash
    fi
    KILLED=0
    echo "  boot $BOOTS: slot $BOOT_SLOT version ${BOOT_VERSION:-?} -> $BOOT_END (${dt}s) [$log]"
}

# vm_cycle NAME IMG STEP [4k] [EXTRA]: boot, and boot again for as long as the
# guest reboots (at most 6 boots). BOOT_SLOTS = the slots booted, in order.
vm_cycle() {
    local name=$1 img=$2 stepf=$3 sector=${4:-512} extra=${5:-} n=0
    BOOT_SLOTS="" BOOT_ENDS=""
    while :; do
        n=$((n + 1))
        vm_start "$img" "$stepf" "$WORK/$name.boot$n.log" "$sector" "$extra"
        vm_wait "$WORK/$name.boot$n.log"
        BOOT_SLOTS="$BOOT_SLOTS$BOOT_SLOT"
        BOOT_ENDS="${BOOT_ENDS:+$BOOT_ENDS }$BOOT_END"
        [ "$BOOT_END" = restart ] && [ $n -lt 6 ] || break
    done
    LAST_LOG=$WORK/$name.boot$n.log
}

# say_value LOG KEY: the value of the guest's `say KEY=VALUE` line.
say_value() { sed -n "s/.*VMTEST-SAY $2=\([^ ]*\).*/\1/p" "$1" | tail -n1 | tr -d '\r'; }

# mkpayloads: signed v2 payloads (full, and delta from v1) built with our
# update-payload and the insecure test key, plus a releases file for
# `update-server serve`, as a squashfs image: the guest mounts it read-only from
# the third drive and serves it on its own 127.0.0.1 (no guest network).
mkpayloads() {
    local srv=$WORK/srv key=$REPO/fixtures/keys/insecure-test.key
    rm -rf "$srv" && mkdir -p "$srv"
    "$BIN/update-payload" build --target "$WORK/usr-v2.ext4" --version 2.0.0 --key "$key" \
        --out "$srv/v2.payload" >/dev/null &&
    "$BIN/update-payload" build --target "$WORK/usr-v2.ext4" --version 2.0.0 --key "$key" \
        --source "$WORK/usr-v1.ext4" --source-version 1.0.0 --out "$srv/v1-to-v2.payload" >/dev/null ||
        return 1
    cat >"$srv/releases.toml" <<TOML
[[release]]
app_id = "{e96281a6-d1af-4bde-9a0a-97b76e56dc57}"
track = "stable"
version = "2.0.0"
payload = "v2.payload"
[[release.delta]]
from = "1.0.0"
payload = "v1-to-v2.payload"
TOML
    sed '/release.delta/,$d' "$srv/releases.toml" >"$srv/releases-full.toml"
    mksquashfs "$srv" "$WORK/srv.squashfs" -quiet -noappend >/dev/null
}

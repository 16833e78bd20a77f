# The scenarios of vmtest/run. Each makes its own disk in $WORK, boots it and
# asserts on the console and on the image between boots.

# (a) A fresh disk boots USR-A; the OS sees itself booted from A in host mode.
scenario_fresh_boot() {
    local img=$WORK/fresh.img
    mkdisk "$img"
    check "fresh disk has a valid GPT" gpt_valid "$img"
    step "$WORK/fresh.step" <<'S'
say booted=$(booted)
say json=$(slots_json)
vm_exit 16
S
    vm_cycle fresh "$img" "$WORK/fresh.step"
    check "bootloader picked A" eq "$BOOT_SLOT" A
    check "guest ended with its exit code" eq "$BOOT_END" exit:16
    check "host-mode updatectl in the guest says booted A" eq "$(say_value "$LAST_LOG" booted)" A
    check "GPT valid after the boot" gpt_valid "$img"
}

# install_ready IMG SLOT: what an installer does: write the v2 OS ($USR_IMAGE,
# default usr-v2.ext4) into the
# slot, then mark it install-ready (successful=0, tries=1, priority above the
# other) with cgpt, an independent implementation of the same attribute bits.
install_ready() {
    local part off
    part=$(slots "$1" | jq ".slots[] | select(.slot == \"$2\") | .partition")
    off=$(field "$1" "$2" offset_bytes)
    dd if="${USR_IMAGE:-$WORK/usr-v2.ext4}" of="$1" bs=1M seek=$((off >> 20)) conv=notrunc,sparse status=none &&
        cgpt add -i "$part" -S 0 -T 1 -P 2 "$1" && cgpt add -i "$(other_part "$1" "$2")" -P 1 "$1"
}
other_part() {
    slots "$1" | jq ".slots[] | select(.slot != \"$2\") | .partition"
}

# (c) The new slot is never marked good (the guest reboots during its trial
# boot): the next boot falls back to A.
scenario_fallback() {
    local img=$WORK/fallback.img
    mkdisk "$img" && install_ready "$img" B
    check "B install-ready: next boot B" eq "$(next_boot "$img")" B
    step "$WORK/fallback.step" <<'S'
if [ "$(booted)" = B ]; then
    say trial_tries=$(slot_attr B tries)
    reboot -f
fi
say booted=$(booted)
vm_exit 16
S
    vm_cycle fallback "$img" "$WORK/fallback.step"
    check "booted B (trial), then A" eq "$BOOT_SLOTS" BA
    check "trial boot used up B's try (tries 1->0)" eq "$(say_value "$WORK/fallback.boot1.log" trial_tries)" 0
    check "A reports booted A" eq "$(say_value "$LAST_LOG" booted)" A
    check "B unsuccessful, tries 0" eq "$(field "$img" B successful)/$(field "$img" B tries)" false/0
    check "next boot stays A" eq "$(next_boot "$img")" A
    check "GPT valid" gpt_valid "$img"
}

# (b) B install-ready: the bootloader picks B (tries 1->0); the guest marks it
# good (host mode); the next boot stays on B.
scenario_trial_good() {
    local img=$WORK/good.img
    mkdisk "$img" && install_ready "$img" B
    step "$WORK/good.step" <<'S'
if [ "$(booted)-$(slot_attr B successful)" = B-false ]; then
    say trial_tries=$(slot_attr B tries)
    updatectl slots mark-good B && say marked=B
    reboot -f
fi
say booted=$(booted)
vm_exit 16
S
    vm_cycle good "$img" "$WORK/good.step"
    check "booted B twice" eq "$BOOT_SLOTS" BB
    check "trial boot used up B's try (tries 1->0)" eq "$(say_value "$WORK/good.boot1.log" trial_tries)" 0
    check "guest marked B good" eq "$(say_value "$WORK/good.boot1.log" marked)" B
    check "B successful, tries 0" eq "$(field "$img" B successful)/$(field "$img" B tries)" true/0
    check "B has the higher priority" test "$(field "$img" B priority)" -gt "$(field "$img" A priority)"
    check "GPT valid" gpt_valid "$img"
}

# (e) A disk with 4096-byte logical sectors: the kernel reads our GPT, the
# bootloader boots A, host mode finds the disk and changes it.
scenario_sector4k() {
    local img=$WORK/4k.img
    mkdisk "$img" --sector-size 4096
    step "$WORK/4k.step" <<'S'
say booted=$(booted)
say sector=$(slots_json | sed -n 's/.*"sector_size":\([0-9]*\).*/\1/p')
updatectl slots prioritize A && updatectl slots mark-good A && say changed=yes
vm_exit 16
S
    vm_cycle 4k "$img" "$WORK/4k.step" 4096
    check "booted A" eq "$BOOT_SLOTS" A
    check "guest ended with its exit code" eq "$BOOT_END" exit:16
    check "guest sees 4096-byte sectors" eq "$(say_value "$LAST_LOG" sector)" 4096
    check "guest changed the slots (host mode)" eq "$(say_value "$LAST_LOG" changed)" yes
    check "GPT valid (our validation; sgdisk/cgpt read image files as 512)" gpt_valid "$img"
}

# (d) Power cut around the GPT flip: the guest flips priorities and marks slots
# good in a loop (host mode), qemu is SIGKILLed at several instants. After each
# cut the image must still be bootable (a valid copy naming A or B); our
# bootloader code run on a copy must repair it to a GPT sgdisk finds clean; and
# the next real boot (which cuts again) must come up on A or B.
scenario_powercut_flip() {
    local img=$WORK/cut.img
    mkdisk "$img" && install_ready "$img" B || return
    cgpt add -i "$(other_part "$img" A)" -S 1 -T 0 -P 1 "$img"
    step "$WORK/cut.step" <<'S'
say booted=$(booted)
echo VMTEST-FLIP-START
i=0
while :; do
    updatectl slots prioritize B >/dev/null
    updatectl slots mark-good A >/dev/null
    i=$((i + 1))
    echo "VMTEST-FLIPS $i"
done
S
    # Cut instants spread over a few flip periods (a flip takes ~0.1-0.3 s under TCG).
    local delays=(${VMTEST_CUT_DELAYS:-0.2 0.45 0.7 0.95 1.2 1.45})
    local k d log ok torn=0
    CUT_TRIED=0 CUT_VALID=0
    for k in "${!delays[@]}"; do
        d=${delays[$k]}
        log=$WORK/cut.boot$k.log
        vm_start "$img" "$WORK/cut.step" "$log"
        while ! grep -q VMTEST-FLIP-START "$log" && kill -0 "$QEMU_PID" 2>/dev/null; do
            sleep 0.05
        done
        sleep "$d"
        vm_cut "$log"
        vm_wait "$log"
        check "boot before cut $k came up on A or B" test "$BOOT_SLOT" != none
        echo "  cut $k after ${d}s, during flip $(($(sed -n 's/^VMTEST-FLIPS \([0-9]*\).*/\1/p' "$log" | tail -n1) + 1))"
        CUT_TRIED=$((CUT_TRIED + 1))
        ok=1
        [ "$(slots "$img" | jq '.problems | length')" = 0 ] || torn=$((torn + 1))
        case $(next_boot "$img") in A | B) ;; *) ok=0 ;; esac
        cp --sparse=always "$img" "$WORK/cut.copy.img"
        "$BIN/update-server" boot --disk "$WORK/cut.copy.img" >/dev/null 2>&1 || ok=0
        gpt_valid "$WORK/cut.copy.img" || ok=0
        rm -f "$WORK/cut.copy.img" "$WORK/cut.copy.img.last-boot"
        check "cut $k after ${d}s: bootable, valid after repair" test "$ok" = 1
        [ "$ok" = 1 ] && CUT_VALID=$((CUT_VALID + 1))
    done
    echo "  $torn of $CUT_TRIED cuts left the two GPT copies differing or one damaged"
    step "$WORK/cut-final.step" <<'S'
say booted=$(booted)
vm_exit 16
S
    vm_cycle cut-final "$img" "$WORK/cut-final.step"
    check "boot after the last cut came up on A or B" test "$BOOT_SLOT" != none
    check "GPT valid after the guest's repair" gpt_valid "$img"
}

# A squashfs USR (as Flatcar ships it): v1 in A, v2 installed into B; the
# bootloader picks B, the kernel mounts the squashfs slot, the guest marks it good.
scenario_squashfs() {
    local img=$WORK/squash.img
    mkusr 1.0.0 "$WORK/usr-v1.squashfs" squashfs && mkusr 2.0.0 "$WORK/usr-v2.squashfs" squashfs || return
    "$BIN/update-server" make-disk --out "$img" --slot-size "$SLOT_SIZE" --usr-a "$WORK/usr-v1.squashfs" \
        --root-size 24M >/dev/null && add_root "$img" || return
    USR_IMAGE=$WORK/usr-v2.squashfs install_ready "$img" B
    step "$WORK/squash.step" <<'S'
say fs=$(sed -n 's/^[^ ]* \/usr \([a-z0-9]*\) .*/\1/p' /proc/mounts)
say booted=$(booted)
updatectl slots mark-good "$(booted)" && say marked=yes
vm_exit 16
S
    vm_cycle squash "$img" "$WORK/squash.step"
    check "bootloader picked B" eq "$BOOT_SLOT" B
    check "B runs version 2.0.0" eq "$BOOT_VERSION" 2.0.0
    check "/usr is squashfs" eq "$(say_value "$LAST_LOG" fs)" squashfs
    check "guest marked B good" eq "$(say_value "$LAST_LOG" marked)" yes
    check "B successful" eq "$(field "$img" B successful)" true
    check "GPT valid" gpt_valid "$img"
}

# update-server serve inside the guest: payloads from the read-only third
# drive, on the guest's own 127.0.0.1. An Omaha check as update_engine sends it
# (busybox wget) gets the offer; the full payload downloads with the offered
# sha256; the delta is offered to a delta_okay client.
scenario_serve() {
    local img=$WORK/serve.img
    mkpayloads && mkdisk "$img" || { check "payloads and disk built" false; return; }
    step "$WORK/serve.step" <<'S'
serve_payloads
req() {
    echo "<?xml version=\"1.0\" encoding=\"UTF-8\"?><request protocol=\"3.0\" version=\"vmtest\" updaterversion=\"vmtest\" installsource=\"ondemandupdate\" ismachine=\"1\"><os version=\"vmtest\" platform=\"vmtest\" sp=\"1.0.0_x86_64\"></os><app appid=\"{e96281a6-d1af-4bde-9a0a-97b76e56dc57}\" version=\"1.0.0\" track=\"stable\" machineid=\"0123456789abcdef0123456789abcdef\" board=\"amd64-usr\" delta_okay=\"$1\"><updatecheck></updatecheck></app></request>" >/tmp/req.xml
    wget -q -O - --post-file /tmp/req.xml http://127.0.0.1:8080/v1/update/
}
full=$(req false)
name=$(echo "$full" | sed -n 's/.*<package name="\([^"]*\)".*/\1/p')
hash=$(echo "$full" | sed -n 's/.*hash_sha256="\([0-9a-f]*\)".*/\1/p')
say name=$name
wget -q -O /tmp/p "http://127.0.0.1:8080/payloads/$name"
say hash_ok=$([ -n "$hash" ] && [ "$(sha256sum /tmp/p | cut -d" " -f1)" = "$hash" ] && echo yes || echo no)
say delta=$(req true | sed -n 's/.*<package name="\([^"]*\)".*/\1/p')
vm_exit 16
S
    vm_cycle serve "$img" "$WORK/serve.step" 512 "$WORK/srv.squashfs"
    check "guest ended with its exit code" eq "$BOOT_END" exit:16
    check "Omaha offer names the full payload" eq "$(say_value "$LAST_LOG" name)" v2.payload
    check "downloaded payload has the offered sha256" eq "$(say_value "$LAST_LOG" hash_ok)" yes
    check "delta offered to a delta_okay client" eq "$(say_value "$LAST_LOG" delta)" v1-to-v2.payload
}

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
# bootloader boots A, host mode finds the disk (sector size 4096), the engine
# installs the update into B on it, the bootloader picks B and the engine marks
# it good.
scenario_sector4k() {
    need_engine || return
    local img=$WORK/4k.img
    payloads && mkdisk "$img" --sector-size 4096 || { check "payloads and disk built" false; return; }
    step "$WORK/4k.step" <<'S'
say sector=$(slots_json | sed -n 's/.*"sector_size":\([0-9]*\).*/\1/p')
serve_payloads
start_engine
case $(booted) in
A)  sleep 100 ;;
B)  if wait_for 120 has_event 3 2; then
        say b_successful=$(slot_attr B successful)
        vm_exit 16
    fi ;;
esac
say stuck=$(phase)
tail -n 30 /var/lib/vmtest/engine.log
vm_exit 1
S
    vm_cycle 4k "$img" "$WORK/4k.step" 4096 "$WORK/srv.squashfs"
    check "booted A, then B" eq "$BOOT_SLOTS" AB
    check "guest ended with its exit code" eq "$BOOT_END" exit:16
    check "guest sees 4096-byte sectors" eq "$(say_value "$LAST_LOG" sector)" 4096
    check "B runs 2.0.0 and was marked good" eq "$BOOT_VERSION/$(say_value "$LAST_LOG" b_successful)" 2.0.0/true
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
    local delays=(${VMTEST_CUT_DELAYS:-0.2 0.5 0.8 1.1 1.4})
    local k d log ok torn=0
    CUT_TRIED=0 CUT_VALID=0
    for k in "${!delays[@]}"; do
        d=${delays[$k]}
        log=$WORK/cut.boot$k.log
        vm_start "$img" "$WORK/cut.step" "$log"
        while ! grep -q VMTEST-FLIP-START "$log" 2>/dev/null && kill -0 "$QEMU_PID" 2>/dev/null; do
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
    payloads && mkdisk "$img" || { check "payloads and disk built" false; return; }
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

# --- The engine scenarios: update-engine in host mode inside the guest talks
# Omaha to update-server serve on the guest's 127.0.0.1; payloads come from
# the read-only third drive (mkpayloads). Each boot's console carries the
# engine's phase changes (VMTEST-PHASE) and, at the end, the server's events.
# While the engine works, a step script sleeps 100 s (less than the 120 s boot
# timeout): if the engine never reboots, the script prints its phase and log.

# events LOG: the server's events as TYPE/RESULT[/errorcode] lines, in order.
events() {
    sed -n 's/^VMTEST-EVENT //p' "$1" | tr -d '\r' |
        jq -r 'select(.kind == "event") | "\(.event_type)/\(.event_result)" + (if .error_code then "/\(.error_code)" else "" end)'
}
# checked_after_rollback LOG: true if an update check was recorded at or
# after the time of the first 3/0 event.
checked_after_rollback() {
    sed -n 's/^VMTEST-EVENT //p' "$1" | tr -d '\r' | jq -s '
        (map(select(.event_type == 3 and .event_result == 0)) | first | .time) as $t
        | $t != null and (map(select(.kind == "updatecheck" and .time >= $t)) | length > 0)'
}
has_engine() { [ -x "$BIN/update-engine" ]; }
need_engine() {
    has_engine && return 0
    check "update-engine is built (not on this branch yet)" false
    return 1
}
payloads() { [ -s "$WORK/srv.squashfs" ] || mkpayloads; }

# Happy path: A (1.0.0) → the engine installs 2.0.0 (the delta) into B, flips
# and reboots → the bootloader picks B (tries 1→0) → health ok → B marked good
# → another reboot stays on B; the server saw 13/1, 14/1, 3/1, 3/2.
scenario_update() {
    need_engine || return
    local img=$WORK/update.img
    payloads && mkdisk "$img" || { check "payloads and disk built" false; return; }
    step "$WORK/update.step" <<'S'
serve_payloads
[ "$(booted)" = B ] && [ ! -e /var/lib/vmtest/again ] && say trial=$(slot_attr B tries)/$(slot_attr B successful)
start_engine
case $(booted) in
A)  sleep 100 ;;  # the engine installs and reboots
B)  if wait_for 120 has_event 3 2; then
        say b_successful=$(slot_attr B successful)
        if [ ! -e /var/lib/vmtest/again ]; then touch /var/lib/vmtest/again; reboot -f; fi
        say installed_bytes=$(sed -n 's/.*"bytes":\([0-9]*\),"result":"installed".*/\1/p' /var/lib/update-engine/history.jsonl | tail -n1)
        show_events
        vm_exit 16
    fi ;;
esac
say stuck=$(phase)
tail -n 30 /var/lib/vmtest/engine.log
show_events
vm_exit 1
S
    vm_cycle update "$img" "$WORK/update.step" 512 "$WORK/srv.squashfs"
    check "booted A, B (trial), B" eq "$BOOT_SLOTS" ABB
    check "B runs 2.0.0" eq "$BOOT_VERSION" 2.0.0
    check "guest ended with its exit code" eq "$BOOT_END" exit:16
    check "trial boot of B used up its try (tries 0, not yet successful)" eq "$(say_value "$WORK/update.boot2.log" trial)" 0/false
    check "B marked good by the engine in the trial boot" eq "$(say_value "$WORK/update.boot2.log" b_successful)" true
    check "the delta payload was installed (history bytes = its size)" \
        eq "$(say_value "$LAST_LOG" installed_bytes)" "$(stat -c %s "$WORK/srv/v1-to-v2.payload")"
    check "server saw 13/1 14/1 3/1 3/2" eq "$(events "$LAST_LOG" | tr '\n' ' ')" "13/1 14/1 3/1 3/2 "
    check "B successful, tries 0" eq "$(field "$img" B successful)/$(field "$img" B tries)" true/0
    check "next boot B" eq "$(next_boot "$img")" B
    check "GPT valid" gpt_valid "$img"
}

# Failed health check: B's trial boot fails its health check → the engine
# marks B bad and reboots → A boots, the engine reports the rollback (3/0
# errorcode 44); B's priority is 0 and 2.0.0 is not downloaded again.
scenario_rollback() {
    need_engine || return
    local img=$WORK/rollback.img
    payloads && mkdisk "$img" || { check "payloads and disk built" false; return; }
    step "$WORK/rollback.step" <<'S'
serve_payloads
case $(booted) in
A)  if [ -e /var/lib/vmtest/tried-b ]; then
        rm -f /etc/vmtest-unhealthy
        start_engine
        wait_for 60 has_event 3 0 && say rollback_reported=yes
        # Ask for a check now: the server still offers 2.0.0, which must not be
        # taken again.
        timeout 90 updatectl check --wait >/run/check.out 2>&1
        say check_rc=$?
        sed 's/^/VMTEST-CHECK /' /run/check.out
        say phase=$(phase)
        show_events
        vm_exit 16
    fi
    start_engine
    sleep 100 ;;
B)  touch /var/lib/vmtest/tried-b /etc/vmtest-unhealthy
    start_engine
    sleep 100 ;;
esac
say stuck=$(phase)
tail -n 30 /var/lib/vmtest/engine.log
show_events
vm_exit 1
S
    vm_cycle rollback "$img" "$WORK/rollback.step" 512 "$WORK/srv.squashfs"
    check "booted A, B (failed trial), A" eq "$BOOT_SLOTS" ABA
    check "guest ended with its exit code" eq "$BOOT_END" exit:16
    check "engine reported the rollback" eq "$(say_value "$LAST_LOG" rollback_reported)" yes
    check "a 3/0 event with errorcode 44" grep -qx 3/0/44 <(events "$LAST_LOG")
    check "2.0.0 downloaded once only (one 13/1)" eq "$(events "$LAST_LOG" | grep -cx 13/1)" 1
    check "updatectl check --wait on A succeeded" eq "$(say_value "$LAST_LOG" check_rc)" 0
    check "checked for updates again with or after the rollback report" eq "$(checked_after_rollback "$LAST_LOG")" true
    check "B priority 0" eq "$(field "$img" B priority)" 0
    check "next boot A" eq "$(next_boot "$img")" A
    check "GPT valid" gpt_valid "$img"
}

# Power cut during apply: qemu is SIGKILLed at several instants while the
# engine streams the full payload into B (throttled by the server) → each next
# boot comes up on A with a valid GPT; the engine resumes or restarts and the
# update finishes: B boots and is marked good.
scenario_powercut_apply() {
    need_engine || return
    local img=$WORK/cutapply.img
    payloads && mkdisk "$img" || { check "payloads and disk built" false; return; }
    step "$WORK/cutapply.step" <<'S'
serve_payloads releases-full.toml --fault throttle:2M
start_engine
case $(booted) in
A)  sleep 100 ;;
B)  if wait_for 120 has_event 3 2; then
        say resumed=$(grep -c 'resuming interrupted install' /var/lib/vmtest/engine.log)
        show_events
        vm_exit 16
    fi ;;
esac
say stuck=$(phase)
tail -n 30 /var/lib/vmtest/engine.log
show_events
vm_exit 1
S
    local delays=(${VMTEST_APPLY_CUT_DELAYS:-0.8 2 3.2}) k d log
    APPLY_CUT_TRIED=0 APPLY_CUT_VALID=0
    for k in "${!delays[@]}"; do
        d=${delays[$k]}
        log=$WORK/cutapply.cut$k.log
        vm_start "$img" "$WORK/cutapply.step" "$log" 512 "$WORK/srv.squashfs"
        while ! grep -q 'VMTEST-PHASE downloading' "$log" 2>/dev/null && kill -0 "$QEMU_PID" 2>/dev/null; do
            sleep 0.1
        done
        sleep "$d"
        vm_cut "$log"
        vm_wait "$log"
        APPLY_CUT_TRIED=$((APPLY_CUT_TRIED + 1))
        check "cut $k (${d}s into the download): the boot was A" eq "$BOOT_SLOT" A
        if [ "$BOOT_END" = killed ] && [ "$(next_boot "$img")" = A ] && gpt_valid "$img"; then
            APPLY_CUT_VALID=$((APPLY_CUT_VALID + 1))
            check "cut $k: next boot A, GPT valid" true
        else
            check "cut $k: next boot A, GPT valid (end $BOOT_END)" false
        fi
    done
    vm_cycle cutapply "$img" "$WORK/cutapply.step" 512 "$WORK/srv.squashfs"
    check "after the cuts: A, then B" eq "$BOOT_SLOTS" AB
    check "guest ended with its exit code" eq "$BOOT_END" exit:16
    check "update finished: 3/1 and 3/2 reported" eq "$(events "$LAST_LOG" | grep -cE '^3/(1|2)$')" 2
    echo "  the engine log says 'resuming interrupted install' $(say_value "$LAST_LOG" resumed) time(s) (what survived the cuts)"
    check "B successful" eq "$(field "$img" B successful)" true
    check "GPT valid" gpt_valid "$img"
}

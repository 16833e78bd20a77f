#!/usr/bin/env bash
# Regenerate the tiny seed images of the gpt_parse fuzz target (fuzz/seeds/gpt_parse/).
# Each is a complete 64 KiB GPT disk with a 4-entry table (one sector per
# entry array) made by sgdisk, so the fuzzer starts from real-world bytes:
#   ab-512.img          USR-A (priority 1, successful) and USR-B, like a fresh Flatcar disk
#   ab-512-trial.img    USR-B install-ready (priority 2, tries 1), USR-A priority 1
#   ab-512-bad-primary.img  the same with a damaged primary header (exercises repair)
#   ab-512-bad-backup-entries.img  damaged backup entry array
#   ab-4096.img         the first layout with 4096-byte sectors (needs `losetup -b`; skipped otherwise)
set -euo pipefail
out="$(cd "$(dirname "$0")" && pwd)/seeds/gpt_parse"
mkdir -p "$out"
usr=5dfbf5f4-2848-4bac-aa5e-0d9a20b745a6

mkab() { # DEVICE FIRST_A LAST_A FIRST_B LAST_B
  sgdisk -o -S 4 "$1" >/dev/null
  sgdisk -a 1 -n "3:$2:$3" -t "3:$usr" -c 3:USR-A -n "4:$4:$5" -t "4:$usr" -c 4:USR-B \
    -A 3:set:48 -A 3:set:56 "$1" >/dev/null
}
flip() { # byte offset in file
  printf '\xff' | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}

img="$out/ab-512.img"
rm -f "$img" && truncate -s 64K "$img"
mkab "$img" 40 47 48 55

cp "$img" "$out/ab-512-trial.img"
# priority 2 = bit 49, tries 1 = bit 52 (cgpt refuses tables below the 16 KiB minimum)
sgdisk -A 4:set:49 -A 4:set:52 "$out/ab-512-trial.img" >/dev/null

cp "$img" "$out/ab-512-bad-primary.img"
flip "$out/ab-512-bad-primary.img" $((512 + 40))

cp "$img" "$out/ab-512-bad-backup-entries.img"
flip "$out/ab-512-bad-backup-entries.img" $((64 * 1024 - 2 * 512 + 20))

img4="$out/ab-4096.img"
rm -f "$img4" && truncate -s 64K "$img4"
if dev=$(losetup -f --show -b 4096 "$img4" 2>/dev/null); then
  trap 'losetup -d "$dev"' EXIT
  mkab "$dev" 4 7 8 11
else
  rm -f "$img4"
  echo "no loop devices: skipped the 4096-byte-sector seed" >&2
fi
ls -l "$out"

#!/usr/bin/env bash
# Update and rollback of a board example through its bootloader, played on the host by qemu-boot.
#
#   examples/run-boot.sh psoc6    # example-psoc6 on mps2-an386, Cypress MCUboot v1.8 swap
#   examples/run-boot.sh tfm      # example-tfm on mps2-an505, TF-M BL2 + FWU partition
#   examples/run-boot.sh same54   # example-same54 on mps2-an386, aws_bootloader (bank swap)
#   examples/run-boot.sh traveo   # example-traveo on mps2-an500, TRAVEO T2G Dual Bank Manager
#
# (examples/<board>/run.sh call this.) Builds `qemu-boot` (root workspace) and example-<board>
# three times: 1.0.0, 2.0.0, and 2.0.0 whose self-test fails. Each "reset" is `qemu-boot boot`
# on the flash file (the board crate's sim bootloader swaps, reverts, checks signatures, writes
# the flash back and hands over the firmware binary to run) followed by one QEMU run of that
# binary, loaded at the machine's code address, with the flash file attached through semihosting.
#
#   scenario update:   factory 1.0.0 -> boot: 1.0.0 Valid -> stage 2.0.0 -> boot: 2.0.0
#                      PendingCommit, confirms -> boot: 2.0.0 Valid
#   scenario rollback: factory 1.0.0 -> boot: 1.0.0 Valid -> stage bad 2.0.0 -> boot: 2.0.0
#                      PendingCommit, rejects -> boot: MCUboot reverts, 1.0.0 Valid
#
# Settings: RUN_TIMEOUT (60 s per QEMU run), ICOUNT_SHIFT (4), KEEP_WORKDIR=1. Exit 0 on PASS.
set -euo pipefail
board=${1:-}
case "$board" in
  psoc6) MACHINE=mps2-an386 ;;
  tfm) MACHINE=mps2-an505 ;;
  same54) MACHINE=mps2-an386 ;;
  traveo) MACHINE=mps2-an500 ;;
  *) echo "usage: $0 psoc6|tfm|same54|traveo" >&2; exit 2 ;;
esac
runner_name=run-$board
example=example-$board
source "$(dirname "${BASH_SOURCE[0]}")/qemu-lib.sh"
qemu_init
root_dir=$(cd "$qemu_examples_dir/.." && pwd)
# imgtool lives in the project's tools venv (scripts/setup.sh); find it when run on its own too.
PATH="${OTA_TOOLS_VENV:-$root_dir/target/tools-venv}/bin:$PATH"
command -v openssl >/dev/null 2>&1 || fail "openssl not found (it makes the test keys)"
run_start=$(now)

objcopy_bin=$(command -v llvm-objcopy || true)
if [ -z "$objcopy_bin" ]; then
  objcopy_bin="$(rustc --print sysroot)/lib/rustlib/$(rustc -vV | sed -n 's/^host: //p')/bin/rust-objcopy"
  [ -x "$objcopy_bin" ] || fail "no llvm-objcopy or rust-objcopy to turn the firmware ELF into a binary"
fi

say "building qemu-boot (host, release)"
run_waiting "$work/build-qemu-boot.log" bash -c 'cd "$1" && exec timeout 900 cargo build --release --quiet -p qemu-boot' _ "$root_dir" ||
  fail "cargo build of qemu-boot failed or took more than 900 s"
qemu_boot_bin="$root_dir/target/release/qemu-boot"

# build_firmware NAME VERSION SELF_TEST: $example with VERSION baked in, as $work/NAME.bin.
build_firmware() {
  export OTA_EXAMPLE_VERSION=$2 OTA_EXAMPLE_SELF_TEST=$3
  build_example "$example"
  "$objcopy_bin" -O binary "$elf" "$work/$1.bin" || fail "objcopy of $1 failed"
  unset OTA_EXAMPLE_VERSION OTA_EXAMPLE_SELF_TEST
}
build_firmware v1 1.0.0 pass
build_firmware v2 2.0.0 pass
build_firmware v2-bad 2.0.0 fail

say "test keys: bootloader key and OTA code-signing key (P-256; TRAVEO's DBM: RSA-2048)"
for key in mcuboot ota; do
  timeout 60 openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$work/$key.pem" 2>"$work/openssl.log" ||
    fail "openssl could not make $key.pem"
done
if [ "$board" = traveo ]; then
  timeout 60 openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$work/dbm.pem" 2>"$work/openssl.log" ||
    fail "openssl could not make dbm.pem"
fi

flash="$work/$board.flash"
# The key the bootloader trusts. SAME54's aws_bootloader checks the OTA code-signing signature
# itself (its descriptor carries it), so there both are the same key.
boot_key="$work/mcuboot.pem"
[ "$board" != same54 ] || boot_key="$work/ota.pem"
[ "$board" != traveo ] || boot_key="$work/dbm.pem"
# The state the old image reads after the rollback. pal-same54 reports Invalid while the upper
# descriptor still holds the refused image (its refinement of the vendor mapping, see its
# README): the agent reports the failed job from that; pal-traveo likewise from its trial
# record, which names the other mapping. The MCUboot-based PALs read Valid.
rolled_back_state=Valid
case "$board" in same54 | traveo) rolled_back_state=Invalid ;; esac
boot_image="$work/run.bin"
boots=0

# tool STEP ARGS...: one bounded qemu-boot call on the flash file, its output shown and kept.
tool() {
  local step=$1
  shift
  run_waiting "$work/qemu-boot-$step.log" timeout 30 "$qemu_boot_bin" "$@" --board "$board" ||
    fail "qemu-boot $1 ($step) failed: $(tail -n 1 "$work/qemu-boot-$step.log")"
  sed 's/^/  /' "$work/qemu-boot-$step.log"
}

# reset BIN VERSION STATE [LINE]: the bootloader must hand over exactly $work/BIN.bin (and,
# where the image header has one, report VERSION), then the firmware must run VERSION, read
# STATE from the PAL, and print LINE when given.
reset() {
  local bin=$1 version=$2 state=$3 line=${4:-} log rc=0
  boots=$((boots + 1))
  tool "boot$boots" boot --flash "$flash" --key "$boot_key" --out "$boot_image"
  cmp -s "$boot_image" "$work/$bin.bin" || fail "boot $boots: the bootloader did not hand over $bin"
  [ "$board" = same54 ] || grep -q "running $version from" "$work/qemu-boot-boot$boots.log" ||
    fail "boot $boots: the bootloader did not report $version"
  log="$work/qemu-run$boots.log"
  qemu_boot "$boots" "$log" || rc=$?
  check_boot_status "$boots" "$log" "$rc"
  grep -qx "running version $version state $state" "$log" ||
    fail "boot $boots: expected the firmware to run $version in state $state"
  [ -z "$line" ] || grep -qx "$line" "$log" || fail "boot $boots: no '$line' in the firmware log"
  grep -qx PASS "$log" || fail "boot $boots: the firmware did not reach PASS"
  say "boot $boots: $version $state (QEMU $boot_seconds s)"
}

# The OTA file the runner will hand to `ota job create` once the agent runs in the firmware: its
# signature must be what standard tools verify (DER ECDSA P-256 over SHA-256 of the file).
tool package package --image "$work/v2.bin" --version 2.0.0 --key "$boot_key" \
  --sign-key "$work/ota.pem" --out "$work/ota-v2.bin"
timeout 60 openssl pkey -in "$work/ota.pem" -pubout -out "$work/ota-pub.pem" 2>>"$work/openssl.log" ||
  fail "openssl could not extract the OTA public key"
timeout 60 openssl dgst -sha256 -verify "$work/ota-pub.pem" -signature "$work/ota-v2.bin.sig" \
  "$work/ota-v2.bin" >>"$work/openssl.log" 2>&1 || fail "openssl does not verify the package's signature"
say "package: ota-v2.bin and its signature verify with openssl"
case "$board" in
  psoc6 | tfm)
    # MCUboot's own tool must accept qemu-boot's image (header, TLVs, signature).
    command -v imgtool >/dev/null 2>&1 || fail "imgtool not found: run scripts/setup.sh (PyPI imgtool)"
    run_waiting "$work/imgtool.log" timeout 60 imgtool verify -k "$boot_key" "$work/ota-v2.bin" ||
      fail "imgtool does not verify qemu-boot's MCUboot image"
    say "package: imgtool verify: $(head -n 1 "$work/imgtool.log")"
    ;;
esac

scenario_start=$(now)
say "scenario update: 1.0.0 -> 2.0.0, confirmed"
rm -f "$flash"
tool factory1 factory --flash "$flash" --image "$work/v1.bin" --version 1.0.0 --key "$boot_key"
reset v1 1.0.0 Valid
tool stage1 stage --flash "$flash" --image "$work/v2.bin" --version 2.0.0 --key "$boot_key" --sign-key "$work/ota.pem"
reset v2 2.0.0 PendingCommit "state now Valid"
reset v2 2.0.0 Valid
say "scenario update passed in $(seconds_since "$scenario_start") s"

scenario_start=$(now)
say "scenario rollback: 1.0.0 -> 2.0.0 that fails its self-test -> 1.0.0"
rm -f "$flash"
tool factory2 factory --flash "$flash" --image "$work/v1.bin" --version 1.0.0 --key "$boot_key"
reset v1 1.0.0 Valid
tool stage2 stage --flash "$flash" --image "$work/v2-bad.bin" --version 2.0.0 --key "$boot_key" --sign-key "$work/ota.pem"
reset v2-bad 2.0.0 PendingCommit "state now Invalid"
reset v1 1.0.0 "$rolled_back_state"
if [ "$board" = psoc6 ]; then
  grep -q "bootloader action: Revert" "$work/qemu-boot-boot$boots.log" || fail "the last boot was not an MCUboot revert"
fi
say "scenario rollback passed in $(seconds_since "$scenario_start") s"

say "PASS: $board on $machine: update confirmed and rollback, $boots resets through the host-played bootloader, $(seconds_since "$run_start") s in all"

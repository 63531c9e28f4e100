#!/usr/bin/env bash
# Over-the-air update of a board example in QEMU: ota-core's agent in the firmware downloads a
# signed image over MQTT (mosquitto + `ota serve`), the runner reboots it through the board's
# bootloader (played on the flash file by qemu-boot), and the new image self-tests and confirms.
#
#   examples/run-ota.sh psoc6    # example-psoc6 on mps2-an386, Cypress MCUboot v1.8 swap
#   examples/run-ota.sh tfm      # example-tfm on mps2-an505, TF-M BL2 + PSA FWU
#   examples/run-ota.sh same54   # example-same54 on mps2-an386, aws_bootloader (bank swap)
#   examples/run-ota.sh traveo   # example-traveo on mps2-an500, TRAVEO T2G Dual Bank Manager
#
# (examples/<board>/run.sh call this.) Three scenarios, each from a factory-fresh flash file
# holding 1.0.0, each with its own job created by `ota job create`:
#
#   update:        job 2.0.0 signed by the OTA key -> boot 1: 1.0.0 downloads, verifies,
#                  requests the trial, resets -> boot 2 (bootloader: trial of 2.0.0): self-test
#                  passes, confirms, job SUCCEEDED -> boot 3: 2.0.0 runs Valid
#   bad-signature: job 2.0.0 signed by another key -> boot 1: the signature check fails, job
#                  FAILED, no reset -> boot 2: 1.0.0 still runs
#   rollback:      job 2.0.0 whose self-test fails -> boot 1: downloads, resets -> boot 2:
#                  2.0.0 on trial fails its self-test, rejects, job FAILED -> boot 3: the
#                  bootloader reverts, 1.0.0 runs
#   power-cut:     job 2.0.0 -> boot 1: QEMU is killed (SIGKILL) once the cloud has served
#                  half of the blocks -> boot 2: 1.0.0 resumes from its download journal (it
#                  must ask for fewer blocks than a fresh download; TF-M: its FWU partition
#                  dropped the candidate, the agent must download it all again), resets ->
#                  boot 3: 2.0.0 confirms, job SUCCEEDED
#
# A firmware run ends when it resets (it logs the reset line and QEMU exits with status 0) or,
# when the agent has nothing left to do, when the runner stops QEMU after the cloud reported
# what it waits for. Settings: RUN_TIMEOUT (120 s per QEMU run), JOB_TIMEOUT (120 s for a job
# outcome), ICOUNT_SHIFT (4), SCENARIOS ("update bad-signature rollback power-cut"),
# KEEP_WORKDIR=1.
set -euo pipefail
board=${1:-}
case "$board" in
  psoc6) MACHINE=mps2-an386 file_type=0 resumes=1 ;;
  # TF-M's FWU partition keeps its states in RAM: a reset drops a half-written candidate, and
  # the agent downloads the file afresh when the storage refuses the resume.
  tfm) MACHINE=mps2-an505 file_type=0 resumes=0 ;;
  same54) MACHINE=mps2-an386 file_type=0 resumes=1 ;;
  traveo) MACHINE=mps2-an500 file_type=141 resumes=1 ;;
  *) echo "usage: $0 psoc6|tfm|same54|traveo" >&2; exit 2 ;;
esac
export MACHINE
runner_name=run-ota-$board
example=example-$board
thing=ota-example-$board
reset_line="reset: reboot through the bootloader"
source "$(dirname "${BASH_SOURCE[0]}")/qemu-lib.sh"
RUN_TIMEOUT=${RUN_TIMEOUT:-120}
qemu_init
job_timeout=${JOB_TIMEOUT:-120}
scenarios=${SCENARIOS:-update bad-signature rollback power-cut}
run_start=$(now)
ota_runner_setup

say "test keys: bootloader key, OTA code-signing key, an untrusted signer (P-256; TRAVEO's DBM: RSA-2048)"
for key in mcuboot ota other; do
  timeout 60 openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$work/$key.pem" 2>"$work/openssl.log" ||
    fail "openssl could not make $key.pem"
done
timeout 60 openssl pkey -in "$work/ota.pem" -pubout -out "$work/ota-pub.pem" 2>>"$work/openssl.log" ||
  fail "openssl could not extract the OTA public key"
if [ "$board" = traveo ]; then
  timeout 60 openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$work/dbm.pem" 2>"$work/openssl.log" ||
    fail "openssl could not make dbm.pem"
fi
# The key the bootloader trusts. SAME54's aws_bootloader checks the OTA code-signing signature
# itself (its descriptor carries it), so there both are the same key.
boot_key="$work/mcuboot.pem"
[ "$board" != same54 ] || boot_key="$work/ota.pem"
[ "$board" != traveo ] || boot_key="$work/dbm.pem"

# The firmware checks job signatures with the OTA public key, baked in at build time.
export OTA_EXAMPLE_SIGNER_KEY="$work/ota-pub.pem"
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

flash="$work/$board.flash"
# The state the old image reads after the rollback. pal-same54 reports Invalid while the upper
# descriptor still holds the refused image (its refinement of the vendor mapping, see its
# README); pal-traveo likewise from its trial record. The MCUboot-based PALs read Valid.
rolled_back_state=Valid
case "$board" in same54 | traveo) rolled_back_state=Invalid ;; esac
boot_image="$work/run.bin"
boots=0

# tool STEP ARGS...: one bounded qemu-boot call, its output shown and kept.
tool() {
  local step=$1
  shift
  run_waiting "$work/qemu-boot-$step.log" timeout 30 "$qemu_boot_bin" "$@" --board "$board" ||
    fail "qemu-boot $1 ($step) failed: $(tail -n 1 "$work/qemu-boot-$step.log")"
  sed 's/^/  /' "$work/qemu-boot-$step.log"
}

# The OTA files the jobs carry (what a user uploads to AWS): the new firmware in the board's
# image format, signed for the bootloader, with the OTA signature beside it (.sig).
tool package-v2 package --image "$work/v2.bin" --version 2.0.0 --key "$boot_key" \
  --sign-key "$work/ota.pem" --out "$work/ota-v2.bin"
tool package-v2-bad package --image "$work/v2-bad.bin" --version 2.0.0 --key "$boot_key" \
  --sign-key "$work/ota.pem" --out "$work/ota-v2-bad.bin"
case "$board" in
  psoc6 | tfm)
    # MCUboot's own tool must accept qemu-boot's image (header, TLVs, signature).
    command -v imgtool >/dev/null 2>&1 || fail "imgtool not found: run scripts/setup.sh (PyPI imgtool)"
    run_waiting "$work/imgtool.log" timeout 60 imgtool verify -k "$boot_key" "$work/ota-v2.bin" ||
      fail "imgtool does not verify qemu-boot's MCUboot image"
    say "package: imgtool verify: $(head -n 1 "$work/imgtool.log")"
    ;;
esac

start_mosquitto
ota_state="$work/ota"
say "starting ota serve (Jobs + Streams stand-in) on mosquitto 127.0.0.1:$port"
"$ota_bin" serve --broker "127.0.0.1:$port" --state "$ota_state" >"$work/ota-serve.log" 2>&1 &
pids+=("$!")
for _ in $(seq 100); do
  [ -s "$ota_state/server.json" ] && break
  sleep 0.1
done
[ -s "$ota_state/server.json" ] || fail "ota serve did not start within 10 s"

# job_status ID: the thing's execution status of job AFR_OTA-ID (empty if none).
job_status() {
  timeout 10 "$ota_bin" job show --state "$ota_state" "AFR_OTA-$1" 2>/dev/null |
    awk -v t="$thing" '$1 == t { print $2 }'
}

# create_job ID FILE SIGN_KEY: a job for this thing, FILE signed with SIGN_KEY.
create_job() {
  run_waiting "$work/job-$1.log" timeout 30 "$ota_bin" job create --state "$ota_state" \
    --thing "$thing" --file "$2" --sign-key "$3" --file-type "$file_type" --id "$1" ||
    fail "ota job create $1 failed: $(tail -n 1 "$work/job-$1.log")"
  say "job AFR_OTA-$1: $(basename "$2") signed with $(basename "$3"), $(job_status "$1")"
}

# boot BIN VERSION STATE: reset through the bootloader, which must hand over exactly
# $work/BIN.bin; start QEMU on it in the background ($qemu_pid, log $qemu_log) and wait until
# the firmware reports VERSION running in STATE.
boot() {
  local bin=$1 version=$2 state=$3
  boots=$((boots + 1))
  tool "boot$boots" boot --flash "$flash" --key "$boot_key" --out "$boot_image"
  cmp -s "$boot_image" "$work/$bin.bin" || fail "boot $boots: the bootloader did not hand over $bin"
  [ "$board" = same54 ] || grep -q "running $version from" "$work/qemu-boot-boot$boots.log" ||
    fail "boot $boots: the bootloader did not report $version"
  qemu_log="$work/qemu-run$boots.log"
  boot_start=$(now)
  qemu_start "$qemu_log"
  await_line "running version $version state $state" 30 ||
    fail "boot $boots: expected the firmware to run $version in state $state"
  say "boot $boots: $version $state"
}

# await_line LINE SECONDS: until the firmware's log has LINE (false if QEMU ends first).
await_line() {
  local i
  for i in $(seq $(($2 * 10))); do
    grep -qxF "$1" "$qemu_log" && return 0
    kill -0 "$qemu_pid" 2>/dev/null || { grep -qxF "$1" "$qemu_log"; return; }
    sleep 0.1
  done
  return 1
}

# await_reset: QEMU must end by itself with status 0 after the reset line.
await_reset() {
  local rc=0
  wait "$qemu_pid" || rc=$?
  show_run
  check_boot_status "$boots" "$qemu_log" "$rc"
  grep -qxF "$reset_line" "$qemu_log" || fail "boot $boots: the firmware exited without resetting"
  say "boot $boots: the agent reset the device after $(seconds_since "$boot_start") s of QEMU"
}

# await_job ID STATUS: until the cloud reports the job STATUS (SUCCEEDED / FAILED) for this
# thing, while QEMU keeps running (a firmware that dies first fails the run).
await_job() {
  local id=$1 want=$2 got= i
  for i in $(seq $((job_timeout * 2))); do
    got=$(job_status "$id")
    case "$got" in SUCCEEDED | FAILED | REJECTED | CANCELED | TIMED_OUT | REMOVED) break ;; esac
    if ! kill -0 "$qemu_pid" 2>/dev/null; then
      local rc=0
      wait "$qemu_pid" || rc=$?
      show_run
      check_boot_status "$boots" "$qemu_log" "$rc"
      fail "boot $boots: the firmware stopped (status 0) before job $id ended (it is ${got:-not started})"
    fi
    sleep 0.5
  done
  say "job AFR_OTA-$id: ${got:-no execution} after $(seconds_since "$boot_start") s of QEMU"
  timeout 10 "$ota_bin" job show --state "$ota_state" "AFR_OTA-$id" | sed 's/^/  /' | grep -v '^  document' || true
  [ "$got" = "$want" ] || fail "job $id ended ${got:-nowhere within $job_timeout s}, expected $want"
}

# stop_qemu: the agent has nothing left to do; stop this run (as a power-off would).
stop_qemu() {
  kill "$qemu_pid" 2>/dev/null || true
  wait "$qemu_pid" 2>/dev/null || true
  show_run
  grep -E -q '^(FAIL|panic|hard fault)' "$qemu_log" && fail "boot $boots: $(grep -m1 -E '^(FAIL|panic|hard fault)' "$qemu_log")"
  return 0
}

show_run() { sed "s/^/  [boot $boots] /" "$qemu_log"; }

# stream_requests ID: GetStream requests `ota serve` answered for job AFR_OTA-ID so far.
stream_requests() {
  local stream
  stream=$(timeout 10 "$ota_bin" job show --state "$ota_state" "AFR_OTA-$1" | awk '$1 == "stream" { print $2 }')
  [ -n "$stream" ] || fail "job $1 has no stream"
  grep -c -F "/streams/$stream/get/cbor" "$work/ota-serve.log" || true
}

# power_cut: SIGKILL QEMU (timeout's child) as a power cut would stop the CPU: no clean-up.
power_cut() {
  pkill -KILL -P "$qemu_pid" 2>/dev/null || true
  wait "$qemu_pid" 2>/dev/null || true
  show_run
}

fresh_device() {
  rm -f "$flash" "$flash.mapping" "$work/$board.journal"
  tool "factory-$1" factory --flash "$flash" --image "$work/v1.bin" --version 1.0.0 --key "$boot_key"
}

scenario_update() {
  fresh_device update
  create_job update "$work/ota-v2.bin" "$work/ota.pem"
  boot v1 1.0.0 Valid
  await_reset
  boot v2 2.0.0 PendingCommit
  await_job update SUCCEEDED
  stop_qemu
  grep -qx "self-test passed" "$qemu_log" || fail "boot $boots: no self-test before SUCCEEDED"
  boot v2 2.0.0 Valid
  await_line "connected to the broker" 30 || fail "boot $boots: 2.0.0 did not connect"
  stop_qemu
}

scenario_bad_signature() {
  fresh_device bad-signature
  create_job bad-signature "$work/ota-v2.bin" "$work/other.pem"
  boot v1 1.0.0 Valid
  await_job bad-signature FAILED
  stop_qemu
  grep -qxF "$reset_line" "$qemu_log" && fail "boot $boots: the device reset after a refused signature"
  boot v1 1.0.0 Valid
  await_line "connected to the broker" 30 || fail "boot $boots: 1.0.0 did not connect"
  stop_qemu
}

scenario_rollback() {
  fresh_device rollback
  create_job rollback "$work/ota-v2-bad.bin" "$work/ota.pem"
  boot v1 1.0.0 Valid
  await_reset
  boot v2-bad 2.0.0 PendingCommit
  await_job rollback FAILED
  # The agent rejected the trial image (the bootloader's revert is armed), reported FAILED
  # and, once the cloud acknowledged that, resets.
  await_reset
  grep -qx "self-test failed (built with OTA_EXAMPLE_SELF_TEST=fail)" "$qemu_log" ||
    fail "boot $boots: the trial image did not fail its self-test"
  boot v1 1.0.0 "$rolled_back_state"
  await_line "connected to the broker" 30 || fail "boot $boots: 1.0.0 did not connect after the rollback"
  stop_qemu
}

scenario_power_cut() {
  local blocks half n i
  fresh_device power-cut
  blocks=$((($(stat -c %s "$work/ota-v2.bin") + 4095) / 4096))
  half=$((blocks / 2))
  create_job power-cut "$work/ota-v2.bin" "$work/ota.pem"
  boot v1 1.0.0 Valid
  for i in $(seq $((job_timeout * 10))); do
    [ "$(stream_requests power-cut)" -ge "$half" ] && break
    kill -0 "$qemu_pid" 2>/dev/null || fail "boot $boots: the firmware stopped before the power cut"
    sleep 0.1
  done
  power_cut
  n=$(stream_requests power-cut)
  [ "$n" -ge "$half" ] || fail "boot $boots: only $n of $blocks blocks were asked for within $job_timeout s"
  grep -qxF "$reset_line" "$qemu_log" && fail "boot $boots: the download ended before the power cut"
  say "boot $boots: power cut after $n of $blocks block requests"
  boot v1 1.0.0 Valid
  await_reset
  n=$(($(stream_requests power-cut) - n))
  if [ "$resumes" = 1 ]; then
    say "boot $boots: resumed: $n more block requests for the $blocks blocks of the file"
    [ "$n" -lt "$blocks" ] || fail "boot $boots: $n block requests after the cut: the download started over"
  else
    say "boot $boots: the storage dropped the candidate at the reset: $n block requests for the $blocks blocks"
    [ "$n" -ge "$blocks" ] || fail "boot $boots: only $n block requests after the cut, but the storage cannot resume"
  fi
  boot v2 2.0.0 PendingCommit
  await_job power-cut SUCCEEDED
  stop_qemu
}

for scenario in $scenarios; do
  scenario_start=$(now)
  say "scenario $scenario"
  type "scenario_${scenario//-/_}" >/dev/null 2>&1 || fail "unknown scenario $scenario"
  "scenario_${scenario//-/_}"
  say "scenario $scenario passed in $(seconds_since "$scenario_start") s"
done

say "PASS: $board on $machine: $scenarios; $boots boots through the host-played bootloader, $(seconds_since "$run_start") s in all"

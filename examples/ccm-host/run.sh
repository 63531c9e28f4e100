#!/usr/bin/env bash
# A host update through the ExpressLink module emulator, end to end, in QEMU (mps2-an386):
#
#   mosquitto <- ota serve --broker (Jobs + Streams)
#             <- ota module-sim --broker (the CCM module: downloads the 202 job, AT commands on a
#                loopback TCP port)  <- QEMU -chardev socket (UART0) <- example-ccm-host
#
#   factory 1.0.0 -> boot 1: 1.0.0 Valid, CONNECT, OTA? 2 (the job), ACCEPT, READ the 2.0.0 MCUboot
#   image into the secondary slot, signature checked with the baked-in OTA key, CLOSE (job
#   SUCCEEDED), trial requested, "RESET" -> qemu-boot (MCUboot swap) -> boot 2: 2.0.0
#   PendingCommit, self-test, confirm, no further update -> qemu-boot -> boot 3: 2.0.0 Valid.
#   Then a job for a 3.0.0 image signed by a rogue key: boot 4 (2.0.0) reads it, the signature
#   check fails, storage erased, FLUSH (job FAILED) -> boot 5: the bootloader does nothing, 2.0.0.
#
# Settings: RUN_TIMEOUT (180 s per QEMU run: an 80 KB image takes 8-16 s to read out over the
# emulated UART, more on a loaded host), ICOUNT_SHIFT (4), MAX_OTA_READ (1000: the module's
# READ cap, not a multiple of the 512-byte flash row, so the host re-blocks), KEEP_WORKDIR=1.
# Every step is bounded; any failure prints FAIL with the logs' tails and exits 1.
set -euo pipefail
MACHINE=mps2-an386
RUN_TIMEOUT=${RUN_TIMEOUT:-180}
runner_name=run-ccm-host
example=example-ccm-host
source "$(dirname "${BASH_SOURCE[0]}")/../qemu-lib.sh"
qemu_init
command -v base64 >/dev/null 2>&1 || fail "base64 (coreutils) not found"
max_ota_read=${MAX_OTA_READ:-1000}
thing=ccm-host-1
run_start=$(now)
ota_runner_setup

say "test keys: bootloader key, OTA code-signing key and a rogue signer's key (P-256)"
for key in mcuboot ota rogue; do
  timeout 60 openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$work/$key.pem" 2>>"$work/openssl.log" ||
    fail "openssl could not make $key.pem"
done
timeout 60 openssl pkey -in "$work/ota.pem" -pubout -out "$work/ota-pub.pem" 2>>"$work/openssl.log" ||
  fail "openssl could not extract the OTA public key"

# build_firmware NAME VERSION: the example with VERSION and the OTA public key baked in.
build_firmware() {
  export OTA_EXAMPLE_VERSION=$2 OTA_EXAMPLE_SIGNER_KEY="$work/ota-pub.pem"
  build_example "$example"
  "$objcopy_bin" -O binary "$elf" "$work/$1.bin" || fail "objcopy of $1 failed"
  unset OTA_EXAMPLE_VERSION OTA_EXAMPLE_SIGNER_KEY
}
build_firmware v1 1.0.0
build_firmware v2 2.0.0

start_mosquitto
broker_port=$port
port=

# start_bg NAME LOG PATTERN COMMAND...: COMMAND in the background (bounded by the runner's
# clean-up), waiting up to 30 s for PATTERN in LOG.
start_bg() {
  local name=$1 log=$2 pattern=$3 pid
  shift 3
  "$@" >"$log" 2>&1 &
  pid=$!
  pids+=("$pid")
  for _ in $(seq 300); do
    grep -q "$pattern" "$log" && return 0
    kill -0 "$pid" 2>/dev/null || fail "$name exited: $(tail -n 1 "$log")"
    sleep 0.1
  done
  fail "$name did not print '$pattern' within 30 s"
}

state_dir="$work/ota-state"
start_bg "ota serve" "$work/serve.log" "^ready" \
  "$ota_bin" serve --broker "127.0.0.1:$broker_port" --state "$state_dir"
say "ota serve up (Jobs + Streams over mosquitto 127.0.0.1:$broker_port)"
start_bg "ota module-sim" "$work/module-sim.log" "^module-sim listening on" \
  "$ota_bin" module-sim --listen 127.0.0.1:0 --broker "127.0.0.1:$broker_port" --thing "$thing" \
  --dialect ccm --max-ota-read "$max_ota_read"
modsim_port=$(sed -n 's/^module-sim listening on 127\.0\.0\.1:\([0-9]*\) .*/\1/p' "$work/module-sim.log" | head -n 1)
[ -n "$modsim_port" ] || fail "no port in module-sim's first line: $(head -n 1 "$work/module-sim.log")"
say "ota module-sim: thing $thing, CCM dialect, READ cap $max_ota_read bytes, UART on 127.0.0.1:$modsim_port"

flash="$work/ccm-host.flash"
boot_key="$work/mcuboot.pem"
boot_image="$work/run.bin"
boots=0

# tool STEP ARGS...: one bounded qemu-boot call, its output shown and kept.
tool() {
  local step=$1
  shift
  run_waiting "$work/qemu-boot-$step.log" timeout 30 "$qemu_boot_bin" "$@" --board psoc6 ||
    fail "qemu-boot $1 ($step) failed: $(tail -n 1 "$work/qemu-boot-$step.log")"
  sed 's/^/  /' "$work/qemu-boot-$step.log"
}

# reset BIN VERSION STATE: the bootloader must hand over exactly $work/BIN.bin reporting
# VERSION, then the firmware, its UART on the module, must run VERSION in STATE.
reset() {
  local bin=$1 version=$2 state=$3 log rc=0
  boots=$((boots + 1))
  tool "boot$boots" boot --flash "$flash" --key "$boot_key" --out "$boot_image"
  cmp -s "$boot_image" "$work/$bin.bin" || fail "boot $boots: the bootloader did not hand over $bin"
  grep -q "running $version from" "$work/qemu-boot-boot$boots.log" ||
    fail "boot $boots: the bootloader did not report $version"
  log="$work/qemu-run$boots.log"
  port=$modsim_port
  qemu_boot "$boots" "$log" || rc=$?
  port=
  check_boot_status "$boots" "$log" "$rc"
  grep -qx "running version $version state $state" "$log" ||
    fail "boot $boots: expected the firmware to run $version in state $state"
  say "boot $boots: $version $state (QEMU $boot_seconds s)"
}

# job_status JOB: the execution status of $thing in JOB.
job_status() {
  timeout 30 "$ota_bin" job show "$1" --state "$state_dir" 2>>"$work/ota-job.log" |
    awk -v t="$thing" '$1 == t { print $2 }'
}

# wait_job JOB STATUS: up to 10 s for the execution of $thing in JOB to reach STATUS.
wait_job() {
  local status=
  for _ in $(seq 100); do
    status=$(job_status "$1")
    [ "$status" = "$2" ] && return 0
    sleep 0.1
  done
  fail "job $1: execution of $thing is '${status:-unknown}', not $2"
}

# create_job FILE SIG: a file-type-202 job for $thing; prints the job id.
create_job() {
  local id
  id=$(timeout 30 "$ota_bin" job create --thing "$thing" --file "$1" \
    --signature "$(base64 -w0 "$2")" --file-type 202 --path host.bin \
    --state "$state_dir" 2>>"$work/ota-job.log") || fail "ota job create failed: $(tail -n 1 "$work/ota-job.log")"
  [ -n "$id" ] || fail "ota job create printed no job id"
  echo "$id"
}

tool package package --image "$work/v2.bin" --version 2.0.0 --key "$boot_key" \
  --sign-key "$work/ota.pem" --out "$work/ota-v2.bin"
timeout 60 openssl dgst -sha256 -verify "$work/ota-pub.pem" -signature "$work/ota-v2.bin.sig" \
  "$work/ota-v2.bin" >>"$work/openssl.log" 2>&1 || fail "openssl does not verify the package's signature"
say "package: ota-v2.bin ($(wc -c <"$work/ota-v2.bin") bytes, MCUboot image of 2.0.0), OTA signature verifies with openssl"
if command -v imgtool >/dev/null 2>&1; then
  run_waiting "$work/imgtool.log" timeout 60 imgtool verify -k "$boot_key" "$work/ota-v2.bin" ||
    fail "imgtool does not verify qemu-boot's MCUboot image"
  say "package: imgtool verify: $(head -n 1 "$work/imgtool.log")"
fi

tool factory factory --flash "$flash" --image "$work/v1.bin" --version 1.0.0 --key "$boot_key"

job_id=$(create_job "$work/ota-v2.bin" "$work/ota-v2.bin.sig")
say "job $job_id: file type 202, ota-v2.bin, signed with the OTA key"

reset v1 1.0.0 Valid
log1="$work/qemu-run1.log"
# The module connects to the cloud at the host's AT+CONNECT; the job is proposed after that.
grep -q "proposed (file type 202)" "$work/module-sim.log" || fail "boot 1: the module was never proposed the job"
grep -q "^host update proposed" "$log1" || fail "boot 1: the firmware saw no proposal"
grep -q "^host update: .* signature checked: true" "$log1" || fail "boot 1: no host update with a checked signature"
grep -qx "RESET for the trial boot of the host update" "$log1" || fail "boot 1: the firmware did not reset for the trial"
say "boot 1: $(sed -n 's/^host update: \([0-9]* bytes in [0-9]* READs\).*/\1/p' "$log1") through the module, trial requested"

wait_job "$job_id" SUCCEEDED
say "job $job_id: SUCCEEDED"

reset v2 2.0.0 PendingCommit
log2="$work/qemu-run2.log"
grep -qx "state now Valid" "$log2" || fail "boot 2: the trial image was not confirmed"
grep -qx PASS "$log2" || fail "boot 2: the firmware did not reach PASS"
reset v2 2.0.0 Valid
grep -qx PASS "$work/qemu-run3.log" || fail "boot 3: the firmware did not reach PASS"

wait_job "$job_id" SUCCEEDED
say "update passed: job SUCCEEDED, 2.0.0 confirmed and running"

say "refused update: a 3.0.0 image whose job is signed by a key the firmware does not trust"
tool package-rogue package --image "$work/v1.bin" --version 3.0.0 --key "$boot_key" \
  --sign-key "$work/rogue.pem" --out "$work/ota-rogue.bin"
rogue_job=$(create_job "$work/ota-rogue.bin" "$work/ota-rogue.bin.sig")
say "job $rogue_job: file type 202, signed with the rogue key"
reset v2 2.0.0 Valid
log4="$work/qemu-run$boots.log"
grep -q "^host update refused: signature check failed" "$log4" || fail "boot $boots: the firmware did not refuse the rogue image"
grep -qx PASS "$log4" || fail "boot $boots: the firmware did not reach PASS"
wait_job "$rogue_job" FAILED
say "job $rogue_job: FAILED (the host FLUSHed it)"
reset v2 2.0.0 Valid
grep -q "bootloader action: None" "$work/qemu-boot-boot$boots.log" || fail "boot $boots: the bootloader acted on the refused image"
grep -qx PASS "$work/qemu-run$boots.log" || fail "boot $boots: the firmware did not reach PASS"
say "refused update passed: job FAILED, 2.0.0 still running, the bootloader did nothing"

[ "$(job_status "$job_id")" = SUCCEEDED ] || fail "job $job_id did not stay SUCCEEDED"
timeout 30 "$ota_bin" job list --state "$state_dir" 2>>"$work/ota-job.log" | sed 's/^/  /'
say "PASS: ccm-host on $machine: 1.0.0 -> 2.0.0 through the ExpressLink emulator (AT+OTA READ, $max_ota_read-byte cap), job SUCCEEDED, 2.0.0 confirmed and running; a rogue-signed image refused, its job FAILED; $boots resets, $(seconds_since "$run_start") s in all"

#!/usr/bin/env bash
# Runs qemu-hello (or another example with the same protocol) in QEMU against a real mosquitto,
# twice (the second run is the reboot), and plays the cloud side with mosquitto_sub/_pub. Every
# step is bounded by `timeout`; any failure prints `run-qemu: FAIL: ...` with the logs and exits
# non-zero. The building blocks are in qemu-lib.sh for the board examples' own runners.
#
#   examples/run-qemu.sh [EXAMPLE]        (default: qemu-hello)
#
# Environment:
#   MACHINE        mps2-an386 (default), mps2-an500, mps2-an505 or mps3-an547; the example must
#                  have a cargo feature of that name selecting the machine
#   ICOUNT_SHIFT   -icount shift (default 4: 16 ns of emulated time per instruction)
#   RUN_TIMEOUT    wall-clock seconds allowed for one QEMU run (default 60)
#   REPLY_DELAY    seconds the cloud side waits before replying (default 0; > keep-alive tests PINGs)
#   KEEP_WORKDIR=1 keep the work directory (flash file, logs) and print where it is
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/qemu-lib.sh"

example=${1:-qemu-hello}
reply_delay=${REPLY_DELAY:-0}
topic_out="ota-rs/$example/out"
topic_in="ota-rs/$example/in"

qemu_init
start_mosquitto
build_example "$example"

# One boot: start the cloud side, wait until it is subscribed, run QEMU, check both sides.
boot() {
  local n=$1
  local qemu_log="$work/qemu-boot$n.log" cloud_log="$work/cloud-boot$n.log"
  local sub_id="run-qemu-cloud-$n" rc=0
  (
    set -e
    msg=$(timeout "$run_timeout" mosquitto_sub -h 127.0.0.1 -p "$port" -i "$sub_id" -q 1 -t "$topic_out" -C 1)
    echo "got '$msg'"
    [ "$msg" = "hello $n" ] || { echo "expected 'hello $n'"; exit 3; }
    sleep "$reply_delay"
    # First a 1-byte QoS 0 message: mqttrust 1.0 panics decoding it (packet.rs:70); the
    # transport's PacketReader must drop it, so the firmware only sees the reply after it.
    timeout 10 mosquitto_pub -h 127.0.0.1 -p "$port" -q 0 -t "$topic_in" -m "r"
    timeout 10 mosquitto_pub -h 127.0.0.1 -p "$port" -q 1 -t "$topic_in" -m "welcome back, boot $n"
    echo "replied"
  ) >"$cloud_log" 2>&1 &
  local cloud=$!
  pids+=("$cloud")
  wait_for_subscription "$sub_id" || fail "boot $n: the cloud side did not subscribe within 5 s"

  qemu_boot "$n" "$qemu_log" || rc=$?
  check_boot_status "$n" "$qemu_log" "$rc"
  grep -qx "boot $n" "$qemu_log" || fail "boot $n: the firmware did not report 'boot $n' (flash not persisted?)"
  grep -q '^PASS' "$qemu_log" || fail "boot $n: the firmware did not report PASS"
  for _ in $(seq 100); do kill -0 "$cloud" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$cloud" 2>/dev/null && fail "boot $n: the cloud side did not finish within 10 s of QEMU"
  wait "$cloud" || fail "boot $n: the cloud side failed ($(tr '\n' ' ' <"$cloud_log"))"
  say "boot $n passed: QEMU ran $boot_seconds s of wall-clock time"
}

boot 1
boot 2
say "PASS: $example booted twice on $machine (icount shift=$shift_n), boot counter 1 -> 2 from the persisted flash file, MQTT round trip through mosquitto on each boot"

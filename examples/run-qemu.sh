#!/usr/bin/env bash
# Runs an example firmware in QEMU against a real mosquitto, twice (the second run is the reboot),
# and plays the cloud side with mosquitto_sub/mosquitto_pub. Every step is bounded by `timeout`;
# any failure prints `run-qemu: FAIL: ...` with the logs and exits non-zero.
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

example=${1:-qemu-hello}
machine=${MACHINE:-mps2-an386}
case "$machine" in
  mps2-an386 | mps2-an500) target=thumbv7em-none-eabihf ;;
  mps2-an505 | mps3-an547) target=thumbv8m.main-none-eabihf ;;
  *) printf 'run-qemu: FAIL: unknown MACHINE %s\n' "$machine" >&2; exit 2 ;;
esac
shift_n=${ICOUNT_SHIFT:-4}
run_timeout=${RUN_TIMEOUT:-60}
reply_delay=${REPLY_DELAY:-0}
topic_out="ota-rs/$example/out"
topic_in="ota-rs/$example/in"
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

say() { printf 'run-qemu: %s\n' "$*"; }
now() { date +%s.%N; }
seconds_since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }
fail() {
  say "FAIL: $*" >&2
  for f in "${work:-/nonexistent}"/*.log; do
    [ -s "$f" ] || continue
    printf -- '--- %s (last 20 lines)\n' "$(basename "$f")" >&2
    tail -n 20 "$f" >&2
  done
  exit 1
}

mosquitto_bin=$(command -v mosquitto || true)
[ -n "$mosquitto_bin" ] || { [ -x /usr/sbin/mosquitto ] && mosquitto_bin=/usr/sbin/mosquitto; }
for tool in qemu-system-arm mosquitto_sub mosquitto_pub cargo timeout; do
  command -v "$tool" >/dev/null 2>&1 || fail "$tool not found: run scripts/setup.sh --qemu"
done
[ -n "$mosquitto_bin" ] || fail "mosquitto not found: run scripts/setup.sh --qemu"

work=$(mktemp -d "${TMPDIR:-/tmp}/run-qemu.XXXXXX")
# Started as root, mosquitto drops to its own user: let it reach and append to its log file.
chmod 711 "$work"
touch "$work/mosquitto.log"
chmod 666 "$work/mosquitto.log"
pids=()
cleanup() {
  local pid
  # Children first (the `timeout`s inside the cloud-side subshells pass the signal on).
  for pid in "${pids[@]}"; do pkill -P "$pid" 2>/dev/null || true; kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ "${KEEP_WORKDIR:-0}" = 1 ]; then say "work directory kept: $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'fail "interrupted"' INT TERM

# run_waiting LOG COMMAND...: runs COMMAND with its output in LOG, in the background, and waits
# for it, so that a TERM/INT reaches the trap at once instead of after the command (bash runs
# traps only between foreground commands). LOG is redirected here, not around the call, so that
# the trap's own messages still reach the terminal.
run_waiting() {
  local log=$1
  shift
  "$@" >"$log" 2>&1 &
  local pid=$!
  pids+=("$pid")
  wait "$pid"
}

port_is_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# mosquitto on a free loopback port: pick a random unused one, retry if another process takes
# it between the check and the bind.
port=
for _ in 1 2 3 4 5; do
  candidate=$((20000 + RANDOM % 40000))
  port_is_open "$candidate" && continue
  cat >"$work/mosquitto.conf" <<CONF
listener $candidate 127.0.0.1
allow_anonymous true
persistence false
log_dest file $work/mosquitto.log
log_type all
CONF
  "$mosquitto_bin" -c "$work/mosquitto.conf" >>"$work/mosquitto-stdio.log" 2>&1 &
  pid=$!
  for _ in $(seq 50); do
    port_is_open "$candidate" && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if port_is_open "$candidate" && kill -0 "$pid" 2>/dev/null; then
    pids+=("$pid"); port=$candidate; break
  fi
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
done
[ -n "$port" ] || fail "mosquitto did not start on a free port"
say "mosquitto listening on 127.0.0.1:$port"

say "building $example for $machine ($target, release)"
build_start=$(now)
run_waiting "$work/build.log" bash -c 'cd "$1" && shift && exec "$@"' _ "$here" timeout 900 cargo build --release --quiet -p "$example" \
  --no-default-features --features "$machine" --target "$target" ||
  fail "cargo build of $example failed or took more than 900 s"
elf="$here/target/$target/release/$example"
[ -f "$elf" ] || fail "no firmware at $elf"
say "built in $(seconds_since "$build_start") s; size:"
# GNU size (binutils) reads Arm ELF files as well as llvm-size does.
if command -v llvm-size >/dev/null 2>&1; then llvm-size "$elf"
elif command -v size >/dev/null 2>&1; then size "$elf"
else say "no llvm-size or size (binutils): size report skipped"; fi

# One boot: start the cloud side, wait until it is subscribed, run QEMU, check both sides.
boot() {
  local n=$1
  local qemu_log="$work/qemu-boot$n.log" cloud_log="$work/cloud-boot$n.log"
  local sub_id="run-qemu-cloud-$n" start took rc
  (
    set -e
    msg=$(timeout "$run_timeout" mosquitto_sub -h 127.0.0.1 -p "$port" -i "$sub_id" -q 1 -t "$topic_out" -C 1)
    echo "got '$msg'"
    [ "$msg" = "hello $n" ] || { echo "expected 'hello $n'"; exit 3; }
    sleep "$reply_delay"
    timeout 10 mosquitto_pub -h 127.0.0.1 -p "$port" -q 1 -t "$topic_in" -m "welcome back, boot $n"
    echo "replied"
  ) >"$cloud_log" 2>&1 &
  local cloud=$!
  pids+=("$cloud")
  for _ in $(seq 100); do
    grep -q "Received SUBSCRIBE from $sub_id" "$work/mosquitto.log" && break
    sleep 0.05
  done
  grep -q "Received SUBSCRIBE from $sub_id" "$work/mosquitto.log" ||
    fail "boot $n: the cloud side did not subscribe within 5 s"

  start=$(now)
  rc=0
  run_waiting "$qemu_log" bash -c 'cd "$1" && shift && exec "$@"' _ "$work" timeout "$run_timeout" qemu-system-arm \
    -M "$machine" -nographic -monitor none \
    -semihosting-config enable=on,target=native \
    -icount "shift=$shift_n,align=off,sleep=off" \
    -chardev "socket,id=mq,host=127.0.0.1,port=$port" -serial chardev:mq \
    -kernel "$elf" || rc=$?
  took=$(seconds_since "$start")
  sed "s/^/  [boot $n] /" "$qemu_log"
  [ "$rc" != 124 ] || fail "boot $n: QEMU still running after $run_timeout s"
  if [ "$rc" != 0 ]; then
    local why
    why=$(grep -m1 -E '^(FAIL|panic|hard fault)' "$qemu_log" || true)
    case "$rc" in
      101) why=${why:-a panic} ;;
      102) why=${why:-a hard fault} ;;
    esac
    fail "boot $n: QEMU exited with status $rc${why:+ (firmware: $why)}"
  fi
  grep -qx "boot $n" "$qemu_log" || fail "boot $n: the firmware did not report 'boot $n' (flash not persisted?)"
  grep -q '^PASS' "$qemu_log" || fail "boot $n: the firmware did not report PASS"
  for _ in $(seq 100); do kill -0 "$cloud" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$cloud" 2>/dev/null && fail "boot $n: the cloud side did not finish within 10 s of QEMU"
  wait "$cloud" || fail "boot $n: the cloud side failed ($(tr '\n' ' ' <"$cloud_log"))"
  say "boot $n passed: QEMU ran $took s of wall-clock time"
}

boot 1
boot 2
say "PASS: $example booted twice on $machine (icount shift=$shift_n), boot counter 1 -> 2 from the persisted flash file, MQTT round trip through mosquitto on each boot"

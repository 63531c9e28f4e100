# Shared by the example runners (source it; bash only). Provides a work directory, a mosquitto on
# a free loopback port, the firmware build, and one bounded QEMU boot, with clean-up on exit.
#
#   source "$(dirname "${BASH_SOURCE[0]}")/qemu-lib.sh"
#   qemu_init                       # work dir, traps, tool checks; MACHINE -> $machine, $target
#   start_mosquitto                 # -> $port
#   build_example qemu-hello        # -> $elf
#   qemu_boot 1 "$work/qemu-boot1.log" || rc=$?   # one boot, QEMU's status in rc
#   fail "message"                  # prints FAIL and the tail of every log, exits 1
#
# Settings (environment): MACHINE (mps2-an386), ICOUNT_SHIFT (4), RUN_TIMEOUT (60 s per boot),
# KEEP_WORKDIR=1. See examples/README.md for what each QEMU flag does.

qemu_examples_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

say() { printf '%s: %s\n' "${runner_name:-run-qemu}" "$*"; }
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

# Processes to stop on exit.
pids=()

qemu_cleanup() {
  local pid
  # Children first (a `timeout` passes the signal on to what it runs).
  for pid in "${pids[@]}"; do pkill -P "$pid" 2>/dev/null || true; kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ "${KEEP_WORKDIR:-0}" = 1 ]; then say "work directory kept: $work"; else rm -rf "$work"; fi
}

qemu_init() {
  machine=${MACHINE:-mps2-an386}
  case "$machine" in
    mps2-an386 | mps2-an500) target=thumbv7em-none-eabihf code_addr=0x00000000 ;;
    mps2-an505 | mps3-an547) target=thumbv8m.main-none-eabihf code_addr=0x10000000 ;;
    *) say "FAIL: unknown MACHINE $machine (mps2-an386, mps2-an500, mps2-an505, mps3-an547)" >&2; exit 2 ;;
  esac
  shift_n=${ICOUNT_SHIFT:-4}
  run_timeout=${RUN_TIMEOUT:-60}

  mosquitto_bin=$(command -v mosquitto || true)
  if [ -z "$mosquitto_bin" ] && [ -x /usr/sbin/mosquitto ]; then mosquitto_bin=/usr/sbin/mosquitto; fi
  local tool
  for tool in qemu-system-arm mosquitto_sub mosquitto_pub cargo timeout pkill; do
    command -v "$tool" >/dev/null 2>&1 || fail "$tool not found: run scripts/setup.sh --qemu"
  done
  [ -n "$mosquitto_bin" ] || fail "mosquitto not found: run scripts/setup.sh --qemu"

  work=$(mktemp -d "${TMPDIR:-/tmp}/run-qemu.XXXXXX")
  # Started as root, mosquitto drops to its own user: let it reach and append to its log file.
  chmod 711 "$work"
  touch "$work/mosquitto.log"
  chmod 666 "$work/mosquitto.log"
  trap qemu_cleanup EXIT
  trap 'fail "interrupted"' INT TERM
}

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
# it between the check and the bind. Logs everything (subscriptions included) to mosquitto.log.
start_mosquitto() {
  local candidate pid
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
      pids+=("$pid")
      port=$candidate
      say "mosquitto listening on 127.0.0.1:$port"
      return 0
    fi
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  fail "mosquitto did not start on a free port"
}

# wait_for_subscription CLIENT_ID: until mosquitto has logged CLIENT_ID's SUBSCRIBE (5 s at most).
wait_for_subscription() {
  for _ in $(seq 100); do
    grep -q "Received SUBSCRIBE from $1" "$work/mosquitto.log" && return 0
    sleep 0.05
  done
  return 1
}

# build_example EXAMPLE: release build for $machine; sets $elf and prints the size report.
build_example() {
  local example=$1 build_start
  say "building $example for $machine ($target, release)"
  build_start=$(now)
  run_waiting "$work/build.log" bash -c 'cd "$1" && shift && exec "$@"' _ "$qemu_examples_dir" \
    timeout 900 cargo build --release --quiet -p "$example" \
    --no-default-features --features "$machine" --target "$target" ||
    fail "cargo build of $example failed or took more than 900 s"
  elf="$qemu_examples_dir/target/$target/release/$example"
  [ -f "$elf" ] || fail "no firmware at $elf"
  say "built in $(seconds_since "$build_start") s; size:"
  # GNU size (binutils) reads Arm ELF files as well as llvm-size does.
  if command -v llvm-size >/dev/null 2>&1; then llvm-size "$elf"
  elif command -v size >/dev/null 2>&1; then size "$elf"
  else say "no llvm-size or size (binutils): size report skipped"; fi
}

# qemu_boot N LOG: one boot of $elf on $machine, UART0 wired to the broker, in $work (where the
# semihosting flash files live, so they persist to the next boot). Prints the firmware's log
# prefixed with [boot N] and returns QEMU's exit status (124: killed after RUN_TIMEOUT).
# With $boot_image set, QEMU runs that raw binary instead (what a bootloader chose), loaded at
# the machine's code address $code_addr, whose vector table gives the reset SP and PC; with
# $port empty, UART0 is not connected.
qemu_boot() {
  local n=$1 log=$2 start rc=0 load serial
  if [ -n "${boot_image:-}" ]; then load=(-device "loader,file=$boot_image,addr=$code_addr")
  else load=(-kernel "$elf"); fi
  if [ -n "${port:-}" ]; then serial=(-chardev "socket,id=mq,host=127.0.0.1,port=$port" -serial chardev:mq)
  else serial=(-serial null); fi
  start=$(now)
  run_waiting "$log" bash -c 'cd "$1" && shift && exec "$@"' _ "$work" \
    timeout "$run_timeout" qemu-system-arm \
    -M "$machine" -nographic -monitor none \
    -semihosting-config enable=on,target=native \
    -icount "shift=$shift_n,align=off,sleep=off" \
    "${serial[@]}" "${load[@]}" || rc=$?
  boot_seconds=$(seconds_since "$start")
  sed "s/^/  [boot $n] /" "$log"
  return "$rc"
}

# qemu_start LOG: like qemu_boot, in the background: sets $qemu_pid (QEMU under `timeout
# $run_timeout`); the caller waits for it or kills it (the signal reaches QEMU through timeout).
qemu_start() {
  local log=$1 load serial
  if [ -n "${boot_image:-}" ]; then load=(-device "loader,file=$boot_image,addr=$code_addr")
  else load=(-kernel "$elf"); fi
  if [ -n "${port:-}" ]; then serial=(-chardev "socket,id=mq,host=127.0.0.1,port=$port" -serial chardev:mq)
  else serial=(-serial null); fi
  (cd "$work" && exec timeout "$run_timeout" qemu-system-arm \
    -M "$machine" -nographic -monitor none \
    -semihosting-config enable=on,target=native \
    -icount "shift=$shift_n,align=off,sleep=off" \
    "${serial[@]}" "${load[@]}") >"$log" 2>&1 &
  qemu_pid=$!
  pids+=("$qemu_pid")
}

# ota_runner_setup: what the OTA runners share: the project's tools venv (imgtool) on PATH,
# openssl, an objcopy ($objcopy_bin), and `qemu-boot` + `ota` built from the root workspace
# ($qemu_boot_bin, $ota_bin; $root_dir is the repository).
ota_runner_setup() {
  root_dir=$(cd "$qemu_examples_dir/.." && pwd)
  # imgtool lives in the project's tools venv (scripts/setup.sh); find it when run on its own too.
  PATH="${OTA_TOOLS_VENV:-$root_dir/target/tools-venv}/bin:$PATH"
  command -v openssl >/dev/null 2>&1 || fail "openssl not found (it makes the test keys)"
  objcopy_bin=$(command -v llvm-objcopy || true)
  if [ -z "$objcopy_bin" ]; then
    objcopy_bin="$(rustc --print sysroot)/lib/rustlib/$(rustc -vV | sed -n 's/^host: //p')/bin/rust-objcopy"
    [ -x "$objcopy_bin" ] || fail "no llvm-objcopy or rust-objcopy to turn the firmware ELF into a binary"
  fi
  say "building qemu-boot and ota (host, release)"
  run_waiting "$work/build-host.log" bash -c 'cd "$1" && exec timeout 900 cargo build --release --quiet -p qemu-boot -p ota-tool' _ "$root_dir" ||
    fail "cargo build of qemu-boot and ota-tool failed or took more than 900 s"
  qemu_boot_bin="$root_dir/target/release/qemu-boot"
  ota_bin="$root_dir/target/release/ota"
}

# check_boot_status N LOG RC: fails with the firmware's own reason unless RC is 0.
check_boot_status() {
  local n=$1 log=$2 rc=$3 why
  [ "$rc" != 124 ] || fail "boot $n: QEMU still running after $run_timeout s"
  [ "$rc" = 0 ] && return 0
  why=$(grep -m1 -E '^(FAIL|panic|hard fault)' "$log" || true)
  case "$rc" in
    101) why=${why:-a panic} ;;
    102) why=${why:-a hard fault} ;;
  esac
  fail "boot $n: QEMU exited with status $rc${why:+ (firmware: $why)}"
}

#!/usr/bin/env bash
# Counted instructions per operation of the wire layer and the PAL helpers (BENCHMARKS.md).
#
# Instruction counts are repeatable where times are not: the same binary on the same input
# executes the same instructions on any x86-64 machine, loaded or idle. For each operation the
# bench binaries `wire_instructions` (ota-core) and `pal_instructions` (ota-pal-traits, over the
# RAM flash simulator) run it N1 and N2 times under `valgrind --tool=callgrind`; the difference
# of the two totals divided by N2 - N1 is the cost of one operation, without process start-up
# and input set-up.
#
#   scripts/bench-instructions.sh            every operation, a table on stdout
#   scripts/bench-instructions.sh FILTER     only the operations whose name contains FILTER
#   scripts/bench-instructions.sh --markdown the table as Markdown (for BENCHMARKS.md)
#
# Needs valgrind (installed with apt-get when missing and running as root). Builds with the
# `bench` profile (the workspace release profile: opt-level "s", fat LTO), for the host.
set -euo pipefail
cd "$(dirname "$0")/.."

FILTER=""
MARKDOWN=0
for arg in "$@"; do
  case "$arg" in
    --markdown) MARKDOWN=1 ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    -*) echo "bench-instructions.sh: unknown option '$arg'" >&2; exit 2 ;;
    *) FILTER="$arg" ;;
  esac
done

if ! command -v valgrind >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing valgrind" >&2
    apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind >&2
  else
    echo "bench-instructions.sh: valgrind is missing (apt-get install valgrind)" >&2
    exit 1
  fi
fi

export CARGO_TERM_COLOR=never
# Build one bench target and print the path of its executable.
build() {
  cargo bench --no-run --message-format=json "$@" 2>/dev/null \
    | grep -o '"executable":"[^"]*"' | tail -n 1 | cut -d'"' -f4
}
echo "building the counters (bench profile)" >&2
WIRE=$(build -p ota-core --bench wire_instructions)
PAL=$(build -p ota-pal-traits --features sim --bench pal_instructions)
[ -x "$WIRE" ] && [ -x "$PAL" ] || { echo "bench-instructions.sh: build failed" >&2; exit 1; }

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

# Total instructions of `BIN OP N` under callgrind.
count() {
  local out="$TMP/callgrind.out"
  valgrind --tool=callgrind --callgrind-out-file="$out" "$@" >/dev/null 2>"$TMP/valgrind.log" \
    || { cat "$TMP/valgrind.log" >&2; return 1; }
  awk '/^(summary|totals):/ { print $2; exit }' "$out"
}

if [ "$MARKDOWN" = 1 ]; then
  printf '| operation | instructions per run | per unit | what one run does |\n'
  printf '|---|---:|---:|---|\n'
else
  printf '%-42s %14s %16s  %s\n' "operation" "instr/run" "instr/unit" "what one run does"
fi

for bin in "$WIRE" "$PAL"; do
  while IFS=$'\t' read -r name units unit what; do
    [ -n "$FILTER" ] && [[ "$name" != *"$FILTER"* ]] && continue
    # Few repetitions for the heavy operation (1 MiB verify), more for the light ones.
    case "$name" in
      verify/sha256*) n1=1; n2=3 ;;
      verify/*) n1=2; n2=12 ;;
      # 944 records past the first compaction hold exactly two compactions (472 records
      # per half once a 512-byte snapshot is in it): the amortised steady-state cost.
      journal/*) n1=600; n2=1544 ;;
      bitmap/mark_all*) n1=2; n2=22 ;;
      *) n1=10; n2=210 ;;
    esac
    c1=$(count "$bin" "$name" "$n1")
    c2=$(count "$bin" "$name" "$n2")
    per_run=$(( (c2 - c1) / (n2 - n1) ))
    per_unit=$(( per_run / units ))
    if [ "$MARKDOWN" = 1 ]; then
      printf '| `%s` | %s | %s / %s | %s |\n' "$name" "$per_run" "$per_unit" "$unit" "$what"
    else
      printf '%-42s %14s %16s  %s\n' "$name" "$per_run" "$per_unit/$unit" "$what"
    fi
  done < <("$bin" --list)
done

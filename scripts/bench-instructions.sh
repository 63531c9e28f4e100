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
#   scripts/bench-instructions.sh --size     instead: code size of the wire layer on Cortex-M4
#
# --size builds a throw-away no_std staticlib (in target/bench-size) that calls the job parser
# and signature decode ("job"), the stream path ("stream": DataBlock decode and validate,
# bitmap mark and window, GetStream request encode, progress payload) or both, for
# thumbv7em-none-eabihf with the workspace release profile, and prints `.text` and `.rodata`
# of its LTO object (compiler_builtins excluded) with llvm-size.
#
# Needs valgrind (installed with apt-get when missing and running as root). Builds with the
# `bench` profile (the workspace release profile: opt-level "s", fat LTO), for the host.
set -euo pipefail
cd "$(dirname "$0")/.."

FILTER=""
MARKDOWN=0
SIZE=0
for arg in "$@"; do
  case "$arg" in
    --markdown) MARKDOWN=1 ;;
    --size) SIZE=1 ;;
    -h|--help) sed -n '2,23p' "$0"; exit 0 ;;
    -*) echo "bench-instructions.sh: unknown option '$arg'" >&2; exit 2 ;;
    *) FILTER="$arg" ;;
  esac
done

export CARGO_TERM_COLOR=never

# --- code size -----------------------------------------------------------------------------
if [ "$SIZE" = 1 ]; then
  command -v llvm-size >/dev/null || { echo "bench-instructions.sh: llvm-size is missing (apt-get install llvm)" >&2; exit 1; }
  rustup target add thumbv7em-none-eabihf >/dev/null 2>&1 || true
  root=$PWD
  dir=$root/target/bench-size
  mkdir -p "$dir/src"
  cat > "$dir/Cargo.toml" <<EOF
[package]
name = "wire-size"
version = "0.0.0"
edition = "2021"
publish = false

[lib]
crate-type = ["staticlib"]
path = "src/lib.rs"

[features]
job = []
stream = []

[dependencies]
ota-core = { path = "$root/ota-core" }
ota-pal-traits = { path = "$root/ota-pal-traits" }

# The workspace release profile.
[profile.release]
opt-level = "s"
lto = "fat"
codegen-units = 1
panic = "abort"
debug = 1
incremental = false

[workspace]
EOF
  cat > "$dir/src/lib.rs" <<'EOF'
//! Calls the wire layer the way the agent does, so that LTO keeps exactly that code.
#![no_std]
#![allow(unsafe_code)]

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    loop {}
}

/// Parse a job and decode the first file's ECDSA signature.
#[cfg(feature = "job")]
#[no_mangle]
pub extern "C" fn job_parse(p: *const u8, n: usize, out: *mut u8) -> usize {
    use ota_core::wire::job::{self, JobMessage, MAX_SIGNATURE_LEN};
    let payload = unsafe { core::slice::from_raw_parts(p, n) };
    let out = unsafe { core::slice::from_raw_parts_mut(out, MAX_SIGNATURE_LEN) };
    match job::parse::<1>(payload) {
        Ok(JobMessage::Ota(doc)) => doc
            .files
            .first()
            .and_then(|f| f.signature(ota_pal_traits::SignatureKind::SHA256_ECDSA))
            .and_then(|s| s.decode_into(out).ok())
            .map_or(0, |d| d.len()),
        _ => 0,
    }
}

#[cfg(feature = "stream")]
static mut BITMAP: Option<ota_core::wire::bitmap::BlockBitmap<512>> = None;

/// Decode and validate a DataBlock, mark it, encode the next request and a progress update.
#[cfg(feature = "stream")]
#[no_mangle]
pub extern "C" fn stream_block(p: *const u8, n: usize, out: *mut u8, out_len: usize) -> usize {
    use ota_core::wire::bitmap::BlockBitmap;
    use ota_core::wire::cbor::{DataBlock, StreamRequest, CLIENT_TOKEN};
    use ota_core::wire::status::StatusUpdate;
    let msg = unsafe { core::slice::from_raw_parts(p, n) };
    let out = unsafe { core::slice::from_raw_parts_mut(out, out_len) };
    let bitmap = unsafe { &mut *core::ptr::addr_of_mut!(BITMAP) };
    let bitmap = match bitmap {
        Some(b) => b,
        None => match BlockBitmap::for_file(1 << 20, 4096) {
            Ok(b) => bitmap.insert(b),
            Err(_) => return 0,
        },
    };
    let Ok(block) = DataBlock::decode(msg) else { return 0 };
    if block.validate(0, 1 << 20, 4096).is_err() {
        return 0;
    }
    let _ = bitmap.mark_received(block.block_index);
    let Some((offset, bits)) = bitmap.window_limited(128, 1) else { return 0 };
    let request = StreamRequest {
        client_token: CLIENT_TOKEN,
        file_id: 0,
        block_size: 4096,
        block_offset: offset,
        bitmap: bits,
        number_of_blocks: 1,
    };
    let a = request.encode(out).unwrap_or(0);
    let update = StatusUpdate::Progress { received: bitmap.received(), total: bitmap.block_count() };
    a + update.write(out.get_mut(a..).unwrap_or(&mut [])).unwrap_or(0)
}
EOF
  printf '%-12s %8s %8s\n' "part" ".text" ".rodata"
  for features in job stream "job stream"; do
    cargo build -q --release --manifest-path "$dir/Cargo.toml" --target thumbv7em-none-eabihf \
      --features "$features" --target-dir "$dir/target"
    llvm-size -A "$dir/target/thumbv7em-none-eabihf/release/libwire_size.a" | awk -v part="$features" '
      /^wire_size-/ { ours = 1; next }
      /\(ex .*\.a\):$/ { ours = 0 }
      ours && $1 ~ /^\.text/ { text += $2 }
      ours && $1 ~ /^\.rodata/ { rodata += $2 }
      END { printf "%-12s %8d %8d\n", part, text, rodata }'
  done
  exit 0
fi

# --- instructions --------------------------------------------------------------------------
if ! command -v valgrind >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing valgrind" >&2
    apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind >&2
  else
    echo "bench-instructions.sh: valgrind is missing (apt-get install valgrind)" >&2
    exit 1
  fi
fi

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

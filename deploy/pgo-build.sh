#!/usr/bin/env bash
# A release build of the gateway optimised with a profile of its own work (profile-guided
# optimisation, PGO), for production images and for measuring speed.
#
# Why: a record's whole path (parse, validate, map, validate, write) runs through more code
# than fits the CPU's first-level caches, and `jsonschema` dispatches each keyword through a
# trait object; the compiler lays out code and branches better when it knows which paths are
# hot. Measured in README.md (Speed, session 16).
#
# Steps: (1) an instrumented build, (2) training on records that are not the benchmarks' own:
# every valid profile example mapped both ways, many times over, every invalid example
# refused, and the service under a short SQLite load; (3) merging the profiles with the
# toolchain's own llvm-profdata (`rustup component add llvm-tools`; a system llvm-profdata
# of another LLVM version cannot read them); (4) the optimised build.
#
# Usage: deploy/pgo-build.sh [--bench] [--load] [--install DEST]
#   The binary is target/pgo/optimised/release/gateway (PGO_TARGET_DIR moves target/pgo);
#   --install also installs it at DEST (deploy/build-release.sh, the image's build, does).
#   --bench also builds and runs `mapping_ratio` (the decision, plan and visit whole paths
#   against a bare serde_json parse and serialize) and the criterion bench `mapping -- decision/`
#   with the same profile.
#   --load also builds the load benchmark with the same profile and runs it (its LOAD_*
#   variables apply: LOAD_BACKEND=postgres LOAD_ONLY=ndjson for the PostgreSQL stream alone).
# Needs: python3; about 15 minutes on two cores for each of the two builds.
set -euo pipefail
bench=false
run_load=false
install=
while [ $# -gt 0 ]; do
  case $1 in
    --bench) bench=true ;;
    --load) run_load=true ;;
    --install) install=$(realpath -m "${2:?--install needs a path}"); shift ;;
    *) echo "usage: deploy/pgo-build.sh [--bench] [--load] [--install DEST]" >&2; exit 2 ;;
  esac
  shift
done
cd "$(dirname "$0")/.."
root=$(pwd)
target=${PGO_TARGET_DIR:-$root/target/pgo}
data=$target/profile-data
profile=$target/gateway.profdata

sysroot=$(rustc --print sysroot)
host=$(rustc -vV | sed -n 's/^host: //p')
profdata=$sysroot/lib/rustlib/$host/bin/llvm-profdata
if [ ! -x "$profdata" ]; then
  echo "llvm-profdata of this toolchain is missing; installing the llvm-tools component"
  rustup component add llvm-tools
fi

# Builds with RUSTFLAGS ($1) into a target directory ($2) the targets named after them, and
# writes the path of each executable built, one per line as "<target name> <path>", to
# $work/built (cargo's own report, so a stale binary left by an earlier run is never taken).
build() {
  local flags=$1 dir=$2
  shift 2
  RUSTFLAGS="$flags" CARGO_TARGET_DIR="$dir" \
    cargo build --release --locked -p sosku-gateway "$@" --message-format=json-render-diagnostics \
    | python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable"):
        print(m["target"]["name"], m["executable"])' > "$work/built"
}
built() { sed -n "s/^$1 //p" "$work/built"; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "== 1/4 instrumented build ($target/instrumented)"
rm -rf "$data" && mkdir -p "$data"
# Build scripts are instrumented too; their profiles go elsewhere.
LLVM_PROFILE_FILE="$target/build-scripts-%p.profraw" \
  build "-Cprofile-generate=$data" "$target/instrumented" --bin gateway --bench load
gateway=$(built gateway)
instrumented_load=$(built load)

echo "== 2/4 training"
python3 - "$work" <<'PY'
import glob, json, sys
out = sys.argv[1]
for side, pattern in (("apotti", "profiles/examples/apotti/SOSKU_*/valid/*.json"),
                      ("kanta", "profiles/examples/kanta/*/valid/*.json")):
    lines = [json.dumps(json.load(open(f)), ensure_ascii=False) for f in sorted(glob.glob(pattern))]
    with open(f"{out}/{side}.ndjson", "w") as f:
        for _ in range(400):
            f.write("\n".join(lines) + "\n")
    print(f"{side}: {len(lines)} examples, {400 * len(lines)} records")
PY
export LLVM_PROFILE_FILE="$data/train-%p-%m.profraw"
# Exit status 1 is "some records refused" (a few valid examples cannot be mapped, and the
# invalid ones are refused, so the paths that report issues are trained too); 2 and up fail.
train() {
  local status=0
  "$gateway" "$@" > /dev/null 2>&1 || status=$?
  if [ "$status" -gt 1 ]; then
    echo "training step failed (exit $status): gateway $*" >&2
    exit 1
  fi
}
train map --from apotti "$work/apotti.ndjson"
train map --from kanta "$work/kanta.ndjson"
train validate profiles/examples/*/*/invalid/*.json
train map --from apotti profiles/examples/apotti/SOSKU_*/invalid/*.json
# The same training whatever LOAD_* the caller set for --load.
env -u LOAD_ONLY -u LOAD_KEEP_DATA LOAD_BACKEND=sqlite LOAD_SECONDS=3 LOAD_RECORDS=20000 \
  "$instrumented_load" --bench
unset LLVM_PROFILE_FILE

echo "== 3/4 merging the profiles"
"$profdata" merge -o "$profile" "$data"/train-*.profraw
ls -l "$profile"

echo "== 4/4 optimised build ($target/optimised)"
# The benchmark is built in the same build (release profile), not by `cargo bench`, whose
# own profile would compile every crate a second time.
benches=()
if $bench; then benches+=(--bench mapping_ratio --bench mapping); fi
if $run_load; then benches+=(--bench load); fi
build "-Cprofile-use=$profile" "$target/optimised" --bin gateway "${benches[@]}"
echo "the PGO build: $(built gateway)"
if [ -n "$install" ]; then
  install -m 0755 "$(built gateway)" "$install"
fi
if $bench; then
  "$(built mapping_ratio)" --bench
  "$(built mapping)" --bench decision/
fi
if $run_load; then
  (cd gateway && "$(built load)" --bench)
fi

#!/usr/bin/env bash
# The gateway binary an image ships, installed at DEST: profile-guided (deploy/pgo-build.sh)
# by default, a plain release build with PGO=0.
#
# Why PGO by default: the profile-guided build runs a decision's whole path (validate, map,
# validate, write) in about five sixths of the plain build's time, and is the build that holds
# the 100 000 records/s target on this project's slower days (README, Speed). It costs about
# twice the build time (an instrumented build, a few minutes of training on the profile
# examples, the optimised build), and it never changes what the binary does: the profile only
# guides code layout and inlining. PGO=0 is for quick images and for toolchains without
# `rustup` (the llvm-tools component comes from it).
#
# Usage: [PGO=0|1] deploy/build-release.sh DEST
# The Dockerfile's build stage runs exactly this.
set -euo pipefail
dest=$(realpath -m "${1:?usage: deploy/build-release.sh DEST}")
cd "$(dirname "$0")/.."

if [ "${PGO:-1}" = 0 ]; then
  cargo build --release --locked -p sosku-gateway --bin gateway
  install -m 0755 "${CARGO_TARGET_DIR:-target}/release/gateway" "$dest"
  kind=plain
else
  if ! command -v python3 > /dev/null; then
    # pgo-build.sh writes its training records with python3; slim images lack it.
    apt-get update && apt-get install -y --no-install-recommends python3
  fi
  deploy/pgo-build.sh --install "$dest"
  kind=profile-guided
fi
echo "installed $("$dest" --version) at $dest ($kind build)"

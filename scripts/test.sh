#!/usr/bin/env bash
# The project's test command (README): unit, integration and doc tests;
# `cargo test` also builds every example, which the example tests run.
set -euo pipefail
cd "$(dirname "$0")/.."
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
cargo test "$@"

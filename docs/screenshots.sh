#!/usr/bin/env bash
# Takes the screenshots of docs/web.md (docs/img/gallery.png, viewer.png, picking.png) from
# the demo, in headless Chromium: starts `gphotos-dav demo` on a free port, runs
# examples/screenshots.rs against it, stops the demo.
#
#   bash docs/screenshots.sh
#
# Needs Debian's `chromium` and `chromium-driver` (as tests/browser.rs does).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --quiet --bin gphotos-dav --example screenshots

log=$(mktemp)
target/debug/gphotos-dav demo --listen 127.0.0.1:0 >"$log" 2>&1 &
demo=$!
trap 'kill "$demo" 2>/dev/null; rm -f "$log"' EXIT

# The demo prints its address once it listens ("WebDAV: http://127.0.0.1:PORT/").
url=
for _ in $(seq 1200); do
    url=$(sed -n 's/^WebDAV: //p' "$log")
    [ -n "$url" ] && break
    kill -0 "$demo" 2>/dev/null || { cat "$log"; echo "the demo exited" >&2; exit 1; }
    sleep 0.1
done
[ -n "$url" ] || { cat "$log"; echo "the demo did not start in 120 s" >&2; exit 1; }

target/debug/examples/screenshots "$url" docs/img

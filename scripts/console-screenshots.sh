#!/usr/bin/env bash
# Screenshots of the web console's main pages (`meshctl serve`), as docs/console-*.png.
#
# Runs the console's browser test (meshctl/tests/it/console_browser.rs): a real redis-server, a
# real worker that dead-letters a poison event, the real `meshctl serve` binary and a real
# headless Chromium driven over WebDriver. The test saves a PNG of each page it visits when
# CONSOLE_SCREENSHOTS_DIR is set. Needs Debian's `chromium` and `chromium-driver`
# (`apt-get install chromium chromium-driver`) and `redis-server`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

for bin in chromedriver redis-server; do
    command -v "$bin" >/dev/null || { echo "$0: $bin not found (apt-get install chromium chromium-driver redis-server)" >&2; exit 1; }
done
out="${1:-docs}"
mkdir -p "$out"
CONSOLE_SCREENSHOTS_DIR="$(cd "$out" && pwd)" \
    cargo test -p meshctl --all-features --test it -- --exact \
    console_browser::an_operator_replays_a_dead_letter_in_a_real_browser_and_sees_it_handled
ls -l "$out"/console-*.png

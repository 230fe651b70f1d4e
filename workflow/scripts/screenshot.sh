#!/usr/bin/env bash
# A headless Chromium screenshot of a local HTML page (vnas report, `dvc plots show`), to
# look at a page as a reader would without a desktop. Needs Debian's chromium
# (`apt-get install chromium`); nothing is fetched: the page must work offline.
#
#   workflow/scripts/screenshot.sh results/report/synthetic.html report.png [WIDTH,HEIGHT]
set -euo pipefail
if [ $# -lt 2 ]; then
    echo "usage: $0 PAGE.html OUT.png [WIDTH,HEIGHT (default 1400,3000)]" >&2
    exit 2
fi
page=$1
out=$2
size=${3:-1400,3000}
[ -f "$page" ] || { echo "screenshot: $page: no such file" >&2; exit 1; }
browser=$(command -v chromium || command -v chromium-browser || command -v google-chrome) ||
    { echo "screenshot: no chromium on PATH (apt-get install chromium)" >&2; exit 1; }
profile=$(mktemp -d)  # a throwaway profile: no state shared with the user's browser
trap 'rm -rf "$profile"' EXIT
"$browser" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$profile" --screenshot="$(realpath -m "$out")" --window-size="$size" \
    "file://$(realpath "$page")" 2>/dev/null
echo "screenshot of $page written to $out"

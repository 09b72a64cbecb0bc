#!/usr/bin/env bash
# Rebuild dvc_plots/template.html: DVC's plot page with vega, vega-lite and vega-embed inlined,
# so `dvc plots show --html-template dvc_plots/template.html` renders with no network.
# The versions match the vega-lite v5 specs DVC 3.x writes.
set -euo pipefail
cd "$(dirname "$0")"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent vega@5.33.1 vega-lite@5.23.0 vega-embed@6.29.0 >/dev/null)
for tgz in "$work"/*.tgz; do tar xzf "$tgz" -C "$work" --transform "s#^package#$(basename "$tgz" .tgz)#"; done
{
  echo '<!DOCTYPE html>'
  echo '<html>'
  echo '<head>'
  echo '    {refresh_tag}'
  echo '    <meta charset="utf-8">'
  echo '    <title>toolorch plots</title>'
  for lib in vega-5.33.1/build/vega vega-lite-5.23.0/build/vega-lite vega-embed-6.29.0/build/vega-embed; do
    printf '    <script>'; cat "$work/$lib.min.js"; echo '</script>'
  done
  echo '    <style>table { border-spacing: 15px; } body { font-family: sans-serif; }</style>'
  echo '</head>'
  echo '<body>'
  echo '    {plot_divs}'
  echo '</body>'
  echo '</html>'
} > template.html
echo "wrote $(pwd)/template.html ($(wc -c < template.html) bytes)"

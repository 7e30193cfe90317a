#!/usr/bin/env bash
# Rewrites the generated key tables of docs/config.md (between `<!-- options:begin -->` and
# `<!-- options:end -->`) from the option tables, as `flowfeed options` prints them; the prose
# around them is kept. tests/options_doc_test.cc fails until this has been run after a change
# to engine/src/config/option_table.cc.
#   usage: tools/gen_config_reference.sh [path/to/flowfeed]   (default: build/flowfeed)
set -euo pipefail
cd "$(dirname "$0")/.."
flowfeed="${1:-build/flowfeed}"
doc=docs/config.md
grep -q '^<!-- options:begin -->$' "$doc" && grep -q '^<!-- options:end -->$' "$doc" || {
  echo "$doc: no <!-- options:begin --> / <!-- options:end --> lines" >&2
  exit 1
}
generated="$(mktemp)"
trap 'rm -f "$generated" "$doc.tmp"' EXIT
"$flowfeed" options > "$generated"
awk -v gen="$generated" '
  /^<!-- options:begin -->$/ { print; while ((getline line < gen) > 0) print line; skip = 1; next }
  /^<!-- options:end -->$/ { skip = 0 }
  !skip { print }
' "$doc" > "$doc.tmp"
mv "$doc.tmp" "$doc"
echo "rewrote the key tables of $doc"

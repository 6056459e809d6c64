#!/usr/bin/env bash
# The fast checks CI runs before the build (seconds): every tracked C++ and
# CUDA source is formatted as .clang-format says (Google style, 100
# columns), and each .cc includes its own header first, then <system>
# headers, then project headers (clang-format sorts within each group).
# Warnings are the build's job: scripts/test.sh builds with QUIVER_WERROR=ON.
# Fix formatting with: git ls-files '*.cc' '*.h' '*.cu' | xargs clang-format -i
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v clang-format >/dev/null; then
  echo "lint: clang-format not found (Debian package clang-format)" >&2
  exit 1
fi
status=0
mapfile -t files < <(git ls-files '*.cc' '*.h' '*.cu')
report=$(mktemp)
trap 'rm -f "$report"' EXIT
if ! clang-format --dry-run --Werror "${files[@]}" 2>"$report"; then
  grep -E '^[^ ].*(warning|error):' "$report" | cut -d: -f1 | sort -u |
    sed 's/^/lint: not clang-formatted: /'
  status=1
fi
# Own header first: foo/bar.cc starts its includes with "foo/bar.h" when
# that header exists.
for f in "${files[@]}"; do
  [[ "$f" == *.cc ]] || continue
  h="${f%.cc}.h"
  [[ -f "$h" ]] || continue
  first=$(grep -m1 -E '^#include ' "$f" || true)
  if [[ "$first" != "#include \"$h\"" ]]; then
    echo "lint: $f: the first include should be \"$h\" (found: ${first:-none})"
    status=1
  fi
done
if [[ $status -eq 0 ]]; then echo "lint: ${#files[@]} files clean"; fi
exit $status

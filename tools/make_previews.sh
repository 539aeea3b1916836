#!/usr/bin/env bash
# make_previews.sh: one preview PNG per shipped recipe, for the documentation.
#
# For each recipe in configs/recipes/, generate one case into a temporary directory with
# `raresynth generate ... --cases 1 --preview` and copy its preview to
# docs/previews/<name>.png, where <name> is the recipe's lesion prior (several priors are
# joined with "+"; a recipe without lesions uses its file name). Two recipes with the same
# prior get "<prior>-<recipe>". Run from the repository root after `make`:
#
#   tools/make_previews.sh                  # every recipe
#   tools/make_previews.sh configs/recipes/brain-glioblastoma-mri.json
#
# Environment: RARESYNTH (default build/raresynth), PYTHON (default python3), JOBS (default 2),
# OUT (default docs/previews). The generator is deterministic, so rerunning gives the same
# bytes for the same version. Needs the `--preview` flag of `raresynth generate` (docs/previews.md).
set -euo pipefail

RARESYNTH=${RARESYNTH:-build/raresynth}
PYTHON=${PYTHON:-$(test -x /usr/bin/python3 && echo /usr/bin/python3 || echo python3)}
JOBS=${JOBS:-2}
OUT=${OUT:-docs/previews}

die() { echo "make_previews.sh: $*" >&2; exit 1; }

[ -x "$RARESYNTH" ] || die "$RARESYNTH not found or not executable (run make first, or set RARESYNTH)"
"$RARESYNTH" generate --help 2>/dev/null | grep -q -- '--preview' ||
    die "$RARESYNTH generate has no --preview flag yet (see docs/previews.md, 'Command line')"

if [ $# -gt 0 ]; then recipes=("$@"); else recipes=(configs/recipes/*.json); fi
[ -e "${recipes[0]}" ] || die "no recipe found (run from the repository root)"

mkdir -p "$OUT"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/rsy-previews-XXXXXX")
trap 'rm -rf "$tmp"' EXIT

declare -A taken=()
for recipe in "${recipes[@]}"; do
    stem=$(basename "$recipe" .json)
    # The lesion priors of the recipe, in order, without repeats; none: the recipe's name.
    name=$("$PYTHON" - "$recipe" <<'PY'
import json, sys
with open(sys.argv[1]) as f:
    r = json.load(f)
seen = []
for l in r.get("lesions") or []:
    p = l.get("prior") if isinstance(l, dict) else None
    if isinstance(p, str) and p not in seen:
        seen.append(p)
print("+".join(seen))
PY
    ) || die "$recipe: cannot read the recipe"
    [ -n "$name" ] || name=$stem
    if [ -n "${taken[$name]:-}" ]; then name="$name-$stem"; fi
    taken[$name]=1

    dir="$tmp/$stem"
    echo "== $recipe -> $OUT/$name.png"
    "$RARESYNTH" generate --recipe "$recipe" --out "$dir" --cases 1 -j "$JOBS" --preview -q ||
        die "$recipe: generate failed"
    png="$dir/previews/case_0000.png"
    [ -f "$png" ] || die "$recipe: no preview at $png"
    cp "$png" "$OUT/$name.png.part"
    mv "$OUT/$name.png.part" "$OUT/$name.png"
done
echo "previews written to $OUT/"

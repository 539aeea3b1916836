#!/usr/bin/env bash
# Integration tests: the raresynth program as a user runs it, and its output read back with
# nibabel (tests/check_dataset.py) as nnU-Net users would. Run from the repository root:
#   RARESYNTH=build/raresynth bash tests/integration.sh
# Prints one line per check and closes with "N passed, M failed".
set -u
RARESYNTH=${RARESYNTH:-build/raresynth}
PYTHON=${PYTHON:-/usr/bin/python3}
REPO=$(pwd)
RARESYNTH=$(readlink -f "$RARESYNTH")
WORK=$(mktemp -d "${TMPDIR:-/tmp}/rsy-integration-XXXXXX")
trap 'umount "$WORK/full" 2>/dev/null; rm -rf "$WORK"' EXIT

passed=0
failed=0
# make as a user runs it (release build), whatever make and variant run these tests: a parent
# make exports MAKEFLAGS and its command-line variables (VARIANT=asan ...) to the environment.
CLEAN_MAKE="env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL -u MAKEOVERRIDES -u VARIANT -u BUILD -u OPTFLAGS make"
ok() { passed=$((passed + 1)); echo "ok   - $1"; }
bad() { failed=$((failed + 1)); echo "FAIL - $1"; [ -n "${2:-}" ] && sed 's/^/       /' "$2" | head -20; }

# A recipe directory laid out like configs/ (recipes/ beside priors/ and tissues/), so priors
# named in a recipe are found the way a user's own recipe finds them.
mkdir -p "$WORK/configs/recipes"
ln -s "$REPO/configs/priors" "$WORK/configs/priors"
ln -s "$REPO/configs/tissues" "$WORK/configs/tissues"
ln -s "$REPO/configs/scanners" "$WORK/configs/scanners"
# derive RECIPE_OUT KEY=JSONVALUE...: a copy of the demo recipe with keys replaced (dotted paths).
# The copies draw texture from the brain-mri preset (the demo's fallback) unless an edit sets
# "texture", so they do not need the fitted Colin27 model (make texture-model).
derive() {
    local out=$1
    shift
    "$PYTHON" - "$REPO/configs/recipes/brain-glioblastoma-mri.json" "$out" "$@" <<'EOF'
import json, sys
src, dst, *edits = sys.argv[1:]
r = json.load(open(src))
r["texture"] = {"model": "preset", "preset": "brain-mri"}
for e in edits:
    key, val = e.split("=", 1)
    node = r
    parts = key.split(".")
    for p in parts[:-1]:
        node = node[int(p)] if isinstance(node, list) else node[p]
    node[parts[-1]] = json.loads(val)
json.dump(r, open(dst, "w"), indent=2)
EOF
}
SMALL="$WORK/configs/recipes/small.json"
derive "$SMALL" 'phantom.dims=[64,64,64]' 'phantom.spacing_mm=[3.5,3.5,3.5]' 'cases=3'

# ---- command line basics -------------------------------------------------------------------
"$RARESYNTH" --version >"$WORK/out" 2>&1 && grep -q '^raresynth [0-9]' "$WORK/out" \
    && ok "--version" || bad "--version" "$WORK/out"
"$RARESYNTH" --help >"$WORK/out" 2>&1 && grep -q 'generate' "$WORK/out" \
    && ok "--help" || bad "--help" "$WORK/out"
"$RARESYNTH" generate --help >"$WORK/out" 2>&1 && grep -q -- '--recipe' "$WORK/out" \
    && ok "generate --help" || bad "generate --help" "$WORK/out"
"$RARESYNTH" frobnicate >"$WORK/out" 2>&1; [ $? -eq 2 ] && ok "unknown command exits 2" \
    || bad "unknown command exits 2" "$WORK/out"
"$RARESYNTH" generate --recipe "$SMALL" >"$WORK/out" 2>&1; [ $? -eq 2 ] \
    && ok "missing --out exits 2" || bad "missing --out exits 2" "$WORK/out"
"$RARESYNTH" generate --recipe "$SMALL" --out "$WORK/x" --cases abc >"$WORK/out" 2>&1
[ $? -eq 2 ] && [ ! -e "$WORK/x" ] && ok "bad --cases exits 2" || bad "bad --cases exits 2" "$WORK/out"

# ---- the lesion catalogue: priors list / show -------------------------------------------------
"$RARESYNTH" priors list >"$WORK/out" 2>&1 && grep -q '^glioblastoma  *brain  *mri ' "$WORK/out" \
    && ok "priors list shows glioblastoma" || bad "priors list shows glioblastoma" "$WORK/out"
"$RARESYNTH" priors list --dir "$REPO/configs" >"$WORK/out" 2>&1 \
    && [ "$(grep -vc '^NAME' "$WORK/out")" -eq "$(ls "$REPO"/configs/priors/*.json | wc -l)" ] \
    && ok "priors list --dir: one line per disease file" \
    || bad "priors list --dir: one line per disease file" "$WORK/out"
"$RARESYNTH" priors show glioblastoma >"$WORK/out" 2>&1 \
    && grep -q 'necrotic_core' "$WORK/out" && grep -q 'oedema' "$WORK/out" \
    && grep -q 'enhancing_tumour' "$WORK/out" && grep -q 'MRI: relative to white_matter' "$WORK/out" \
    && grep -q '^sources:' "$WORK/out" \
    && ok "priors show glioblastoma prints its compartments, properties and sources" \
    || bad "priors show glioblastoma prints its compartments" "$WORK/out"
"$RARESYNTH" priors show no-such-disease >"$WORK/out" 2>&1; rc=$?
[ $rc -eq 3 ] && [ "$(grep -c . "$WORK/out")" -eq 1 ] && grep -q 'no-such-disease' "$WORK/out" \
    && ok "priors show of an unknown prior: exit 3, one line naming it" \
    || bad "priors show of an unknown prior (exit $rc)" "$WORK/out"
"$RARESYNTH" priors >"$WORK/out" 2>&1; rc=$?
[ $rc -eq 2 ] && ok "priors without a subcommand exits 2" || bad "priors without a subcommand (exit $rc)" "$WORK/out"

# ---- a small dataset, read back as a user would --------------------------------------------
D1="$WORK/d1"
if "$RARESYNTH" generate --recipe "$SMALL" --out "$D1" --seed 7 -j 2 >"$WORK/gen.log" 2>&1; then
    ok "generate 3 cases at 64^3"
else
    bad "generate 3 cases at 64^3" "$WORK/gen.log"
fi
"$PYTHON" tests/check_dataset.py "$D1" >"$WORK/check.log" 2>&1 \
    && ok "nibabel re-read: $(tail -1 "$WORK/check.log")" || bad "nibabel re-read" "$WORK/check.log"
"$RARESYNTH" validate "$D1" >"$WORK/val.log" 2>&1 && ok "validate accepts the dataset" \
    || bad "validate accepts the dataset" "$WORK/val.log"
n_img=$(ls "$D1"/Dataset501_BrainGBM/imagesTr | wc -l)
[ "$n_img" -eq 12 ] && ok "3 cases x 4 channels in imagesTr" || bad "3 cases x 4 channels (got $n_img)"

# ---- determinism ------------------------------------------------------------------------------
D2="$WORK/d2"
"$RARESYNTH" generate --recipe "$SMALL" --out "$D2" --seed 7 -j 1 -q >"$WORK/gen2.log" 2>&1
diff -r "$D1" "$D2" >"$WORK/diff.log" 2>&1 && ok "byte-identical for -j 1 and -j 2" \
    || bad "byte-identical for -j 1 and -j 2" "$WORK/diff.log"
D3="$WORK/d3"
"$RARESYNTH" generate --recipe "$SMALL" --out "$D3" --seed 8 -j 2 -q >"$WORK/gen3.log" 2>&1
if ! cmp -s "$D1/Dataset501_BrainGBM/imagesTr/case_0000_0000.nii.gz" \
            "$D3/Dataset501_BrainGBM/imagesTr/case_0000_0000.nii.gz"; then
    ok "a different seed gives different data"
else
    bad "a different seed gives different data"
fi

# ---- the output directory is protected -------------------------------------------------------
"$RARESYNTH" generate --recipe "$SMALL" --out "$D1" -q >"$WORK/out" 2>&1; rc=$?
[ $rc -eq 4 ] && grep -q 'not empty' "$WORK/out" && ok "non-empty output refused (exit 4)" \
    || bad "non-empty output refused (exit 4, got $rc)" "$WORK/out"
"$RARESYNTH" generate --recipe "$SMALL" --out "$D1" --seed 7 -j 2 --force -q >"$WORK/out" 2>&1 \
    && diff -r "$D1" "$D2" >/dev/null && ok "--force replaces an earlier run" \
    || bad "--force replaces an earlier run" "$WORK/out"
mkdir -p "$WORK/userdir" && echo keep >"$WORK/userdir/notes.txt"
"$RARESYNTH" generate --recipe "$SMALL" --out "$WORK/userdir" --force -q >"$WORK/out" 2>&1; rc=$?
[ $rc -ne 0 ] && [ -f "$WORK/userdir/notes.txt" ] && [ "$(ls -A "$WORK/userdir" | wc -l)" -eq 1 ] \
    && ok "--force never deletes a directory raresynth did not make" \
    || bad "--force never deletes a directory raresynth did not make (rc $rc)" "$WORK/out"

# ---- validate finds damage --------------------------------------------------------------------
cp -r "$D1" "$WORK/damaged"
f="$WORK/damaged/Dataset501_BrainGBM/imagesTr/case_0001_0002.nii.gz"
printf '\x00\x01\x02' | dd of="$f" bs=1 seek=100 conv=notrunc status=none
"$RARESYNTH" validate "$WORK/damaged" >"$WORK/out" 2>&1; rc=$?
[ $rc -eq 6 ] && grep -q 'case_0001_0002' "$WORK/out" && ok "validate names a damaged file (exit 6)" \
    || bad "validate names a damaged file (exit 6, got $rc)" "$WORK/out"
rm "$WORK/damaged/Dataset501_BrainGBM/labelsTr/case_0002.nii.gz"
"$RARESYNTH" validate "$WORK/damaged" >"$WORK/out" 2>&1
grep -q 'case_0002' "$WORK/out" && ok "validate names a missing label file" \
    || bad "validate names a missing label file" "$WORK/out"
"$RARESYNTH" validate "$WORK/nonexistent" >"$WORK/out" 2>&1; rc=$?
[ $rc -ne 0 ] && grep -q 'nonexistent' "$WORK/out" && ok "validate of a missing directory fails clearly" \
    || bad "validate of a missing directory fails clearly" "$WORK/out"

# ---- malformed recipes: one clear line, exit 3, no output ------------------------------------
nbad=0
for r in tests/recipes_bad/*.json; do
    [ -e "$r" ] || continue
    case "$(basename "$r")" in fixture_*) continue ;; esac
    nbad=$((nbad + 1))
    out="$WORK/bad-$(basename "$r" .json)"
    "$RARESYNTH" generate --recipe "$r" --out "$out" >"$WORK/out" 2>&1; rc=$?
    lines=$(grep -c . "$WORK/out")
    if [ $rc -eq 3 ] && [ "$lines" -eq 1 ] && grep -q "$(basename "$r")" "$WORK/out" && [ ! -e "$out" ]; then
        ok "bad recipe $(basename "$r"): $(cat "$WORK/out")"
    else
        bad "bad recipe $(basename "$r") (exit $rc, $lines lines, output dir $( [ -e "$out" ] && echo created || echo absent))" "$WORK/out"
    fi
done
[ $nbad -ge 12 ] && ok "$nbad malformed recipes checked" || bad "only $nbad malformed recipes (want >= 12)"
"$RARESYNTH" generate --recipe "$WORK/none.json" --out "$WORK/none" >"$WORK/out" 2>&1; rc=$?
[ $rc -eq 4 ] && grep -q 'none.json' "$WORK/out" && [ ! -e "$WORK/none" ] \
    && ok "missing recipe file: exit 4, named" || bad "missing recipe file (exit $rc)" "$WORK/out"
HUGE="$WORK/configs/recipes/huge.json"
derive "$HUGE" 'phantom.dims=[2048,2048,2048]' 'phantom.spacing_mm=[1,1,1]'
"$RARESYNTH" generate --recipe "$HUGE" --out "$WORK/huge" -j 2 >"$WORK/out" 2>&1; rc=$?
[ $rc -eq 3 ] && grep -qi 'memory' "$WORK/out" && [ "$(grep -c . "$WORK/out")" -eq 1 ] && [ ! -e "$WORK/huge" ] \
    && ok "volume too large for memory refused before work: $(head -1 "$WORK/out")" \
    || bad "volume too large for memory (exit $rc)" "$WORK/out"

# ---- recipe problems only the generator sees are refused before the directory is touched -----
mkdir -p "$WORK/tables/tissues" "$WORK/tables/recipes"
"$PYTHON" - "$REPO/configs/tissues/mri-brain.json" "$WORK/tables/tissues/partial.json" <<'EOF'
import json, sys
t = json.load(open(sys.argv[1]))
t["name"] = "partial"
del t["tissues"]["cerebellum"]
json.dump(t, open(sys.argv[2], "w"))
EOF
ln -s "$REPO/configs/priors" "$WORK/tables/priors"
derive "$WORK/tables/recipes/notissue.json" 'acquisition.tissues="partial"' 'phantom.dims=[32,32,32]' \
    'phantom.spacing_mm=[7,7,7]'
cp -r "$D2" "$WORK/keep" # an earlier complete run that --force would replace
"$RARESYNTH" generate --recipe "$WORK/tables/recipes/notissue.json" --out "$WORK/keep" --force \
    >"$WORK/out" 2>&1; rc=$?
[ $rc -eq 3 ] && grep -q 'cerebellum' "$WORK/out" && diff -r "$D2" "$WORK/keep" >/dev/null \
    && ok "tissue table missing a phantom class: exit 3, earlier dataset untouched even with --force" \
    || bad "tissue table missing a phantom class (exit $rc)" "$WORK/out"

# ---- a full disk: clear error, only complete cases left ---------------------------------------
FULL="$WORK/full"
mkdir -p "$FULL"
if mount -t tmpfs -o size=2m tmpfs "$FULL" 2>/dev/null; then
    "$RARESYNTH" generate --recipe "$SMALL" --out "$FULL/d" -j 1 -q >"$WORK/out" 2>&1; rc=$?
    [ $rc -eq 4 ] && grep -q 'No space left on device' "$WORK/out" \
        && [ -z "$(find "$FULL/d" -name '*.nii.gz' -o -name '*.part*' -o -name 'case_*.json')" ] \
        && ok "disk full before any case: exit 4, named, no file of any case" \
        || bad "disk full before any case (exit $rc)" "$WORK/out"
    umount "$FULL"
    mount -t tmpfs -o size=6m tmpfs "$FULL"
    "$RARESYNTH" generate --recipe "$SMALL" --out "$FULL/d" -j 1 -q >"$WORK/out" 2>&1; rc=$?
    n_man=$(ls "$FULL/d/manifests" 2>/dev/null | wc -l)
    n_img=$(ls "$FULL/d/Dataset501_BrainGBM/imagesTr" 2>/dev/null | wc -l)
    n_part=$(find "$FULL/d" -name '*.part*' | wc -l)
    [ $rc -eq 5 ] && [ "$n_man" -ge 1 ] && [ "$n_img" -eq $((4 * n_man)) ] && [ "$n_part" -eq 0 ] \
        && [ ! -e "$FULL/d/raresynth.json" ] \
        && ok "disk full mid-run: exit 5, $n_man complete case(s), no partial case" \
        || bad "disk full mid-run (exit $rc, $n_man manifests, $n_img images, $n_part temporaries)" "$WORK/out"
    "$RARESYNTH" validate "$FULL/d" >"$WORK/out" 2>&1; rc=$?
    [ $rc -eq 6 ] && grep -qi 'incomplete' "$WORK/out" && ! grep -q 'sha256\|checksum' "$WORK/out" \
        && ok "validate: the cases left by a full disk are consistent, the dataset incomplete" \
        || bad "validate after a full disk (exit $rc)" "$WORK/out"
    umount "$FULL"
else
    echo "skip - full-disk checks: cannot mount a tmpfs here (needs root)"
fi

# ---- Ctrl-C stops cleanly and leaves an incomplete, consistent dataset --------------------------
MANY="$WORK/configs/recipes/many.json"
derive "$MANY" 'phantom.dims=[64,64,64]' 'phantom.spacing_mm=[3.5,3.5,3.5]' 'cases=400'
"$RARESYNTH" generate --recipe "$MANY" --out "$WORK/intr" -j 2 -q >"$WORK/out" 2>&1 &
pid=$!
for _ in $(seq 1 100); do
    [ -n "$(ls "$WORK/intr/manifests" 2>/dev/null)" ] && break
    sleep 0.1
done
kill -INT $pid
wait $pid; rc=$?
left=$(find "$WORK/intr" -name '*.part-*' | wc -l)
[ $rc -eq 130 ] && [ ! -e "$WORK/intr/raresynth.json" ] && [ "$left" -eq 0 ] \
    && ok "Ctrl-C: exit 130, no dataset manifest, no temporary files" \
    || bad "Ctrl-C (exit $rc, $left temporary files)" "$WORK/out"
"$RARESYNTH" validate "$WORK/intr" >"$WORK/out" 2>&1; rc=$?
[ $rc -eq 6 ] && grep -qi 'incomplete' "$WORK/out" && ok "validate reports the interrupted run as incomplete" \
    || bad "validate reports the interrupted run as incomplete (exit $rc)" "$WORK/out"

# ---- resume, shards and merge ------------------------------------------------------------------
# tree_sums DIR: every file (hidden ones included) with its SHA-256, and every folder, sorted;
# two trees with equal listings hold byte-identical files.
tree_sums() {
    (cd "$1" && find . -type f -print0 | sort -z | xargs -0 -r sha256sum && find . -type d | sort)
}
since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }
same_tree() { tree_sums "$1" >"$WORK/sums-a" && tree_sums "$2" >"$WORK/sums-b" \
    && diff "$WORK/sums-a" "$WORK/sums-b" >"$WORK/sums.diff"; }
SIX="$WORK/configs/recipes/six.json"
derive "$SIX" 'phantom.dims=[64,64,64]' 'phantom.spacing_mm=[3.5,3.5,3.5]' 'cases=6'
REF="$WORK/ref6"
t_start=$(date +%s.%N)
"$RARESYNTH" generate --recipe "$SIX" --out "$REF" --seed 11 -j 2 -q >"$WORK/out" 2>&1 \
    && ok "reference: 6 cases, uninterrupted" || bad "reference: 6 cases, uninterrupted" "$WORK/out"
t_ref=$(since "$t_start")

# kill -9 at three random moments of a -j 2 run (early, middle, late), then --resume.
t0=$(date +%s.%N)
for slot in 0 1 2; do
    case $slot in
        0) delay=$(printf '0.%02d' $((RANDOM % 30 + 1))) ;;
        1) delay=$(awk -v t="$t_ref" -v p=$((30 + RANDOM % 30)) 'BEGIN { printf "%.2f", t * p / 100 }') ;;
        *) delay=$(awk -v t="$t_ref" -v p=$((60 + RANDOM % 35)) 'BEGIN { printf "%.2f", t * p / 100 }') ;;
    esac
    K="$WORK/killed$slot"
    "$RARESYNTH" generate --recipe "$SIX" --out "$K" --seed 11 -j 2 -q >"$WORK/out" 2>&1 &
    pid=$!
    sleep "$delay"
    kill -9 $pid 2>/dev/null
    wait $pid 2>/dev/null
    left=$(ls "$K/manifests" 2>/dev/null | wc -l)
    "$RARESYNTH" generate --recipe "$SIX" --out "$K" --seed 11 -j 2 --resume -q >"$WORK/out" 2>&1; rc=$?
    if [ $rc -eq 0 ] && same_tree "$REF" "$K"; then
        ok "kill -9 after ${delay} s ($left case manifests left), then --resume: every file byte-identical"
    else
        bad "kill -9 after ${delay} s ($left case manifests left), then --resume (exit $rc)" "$WORK/out"
        [ $rc -eq 0 ] && sed 's/^/       /' "$WORK/sums.diff" | head -10
    fi
done
t_kill=$(since "$t0")
"$RARESYNTH" generate --recipe "$SIX" --out "$WORK/killed0" --seed 12 -j 2 --resume -q >"$WORK/out" 2>&1; rc=$?
[ $rc -eq 3 ] && grep -q 'seed' "$WORK/out" && same_tree "$REF" "$WORK/killed0" \
    && ok "--resume of another seed: exit 3 naming the seed, directory untouched" \
    || bad "--resume of another seed (exit $rc)" "$WORK/out"
"$RARESYNTH" generate --recipe "$SIX" --out "$WORK/fresh" --seed 11 -j 2 --resume -q >"$WORK/out" 2>&1 \
    && same_tree "$REF" "$WORK/fresh" && ok "--resume on a new directory is a plain run" \
    || bad "--resume on a new directory is a plain run" "$WORK/out"

# Shards: N = 1, 2, 3, merged (shards given in reverse order) equal the single run.
t0=$(date +%s.%N)
for n in 1 2 3; do
    dirs=""
    gen_ok=1
    for k in $(seq 0 $((n - 1))); do
        "$RARESYNTH" generate --recipe "$SIX" --out "$WORK/sh$n-$k" --seed 11 -j 2 --shard $k/$n -q \
            >"$WORK/out" 2>&1 || gen_ok=0
        dirs="$WORK/sh$n-$k $dirs"
    done
    # shellcheck disable=SC2086
    if [ $gen_ok -eq 1 ] && "$RARESYNTH" merge $dirs --out "$WORK/merged$n" -j 2 -q >"$WORK/out" 2>&1 \
        && same_tree "$REF" "$WORK/merged$n"; then
        ok "$n shard(s) merged: every file byte-identical to the single run"
    else
        bad "$n shard(s) merged equal the single run" "$WORK/out"
        sed 's/^/       /' "$WORK/sums.diff" 2>/dev/null | head -10
    fi
done
t_shard=$(since "$t0")
n_sh=$(ls "$WORK/sh3-1/manifests" 2>/dev/null | wc -l)
[ "$n_sh" -eq 2 ] && [ ! -e "$WORK/sh3-1/manifests/case_0000.json" ] \
    && [ -e "$WORK/sh3-1/manifests/case_0004.json" ] && ok "shard 1/3 holds exactly cases 1 and 4" \
    || bad "shard 1/3 holds exactly cases 1 and 4 (has $n_sh)"

# --shard auto: Slurm job array and Kubernetes Indexed Job.
env SLURM_ARRAY_TASK_ID=3 SLURM_ARRAY_TASK_MIN=2 SLURM_ARRAY_TASK_COUNT=3 \
    "$RARESYNTH" generate --recipe "$SIX" --out "$WORK/slurm" --seed 11 -j 2 --shard auto -q \
    >"$WORK/out" 2>&1 && same_tree "$WORK/sh3-1" "$WORK/slurm" \
    && ok "--shard auto from SLURM_ARRAY_TASK_ID=3 (MIN 2, COUNT 3) is shard 1/3" \
    || bad "--shard auto from Slurm variables" "$WORK/out"
env -u SLURM_ARRAY_TASK_ID JOB_COMPLETION_INDEX=2 RARESYNTH_SHARD_COUNT=3 \
    "$RARESYNTH" generate --recipe "$SIX" --out "$WORK/k8s" --seed 11 -j 2 --shard auto -q \
    >"$WORK/out" 2>&1 && same_tree "$WORK/sh3-2" "$WORK/k8s" \
    && ok "--shard auto from JOB_COMPLETION_INDEX=2, RARESYNTH_SHARD_COUNT=3 is shard 2/3" \
    || bad "--shard auto from JOB_COMPLETION_INDEX" "$WORK/out"
shard_env_bad() { # expected-variable env-assignments...
    local want=$1
    shift
    env -u SLURM_ARRAY_TASK_ID -u SLURM_ARRAY_TASK_COUNT -u SLURM_ARRAY_TASK_MIN \
        -u SLURM_ARRAY_TASK_STEP -u JOB_COMPLETION_INDEX -u RARESYNTH_SHARD_COUNT "$@" \
        "$RARESYNTH" generate --recipe "$SIX" --out "$WORK/envbad" --shard auto >"$WORK/out" 2>&1
    local rc=$?
    [ $rc -eq 2 ] && grep -q "$want" "$WORK/out" && [ ! -e "$WORK/envbad" ] \
        && ok "--shard auto, ${*:-no variable set}: exit 2 naming $want" \
        || bad "--shard auto, ${*:-no variable set} (exit $rc, want 2 naming $want)" "$WORK/out"
}
shard_env_bad JOB_COMPLETION_INDEX
shard_env_bad SLURM_ARRAY_TASK_COUNT SLURM_ARRAY_TASK_ID=1
shard_env_bad SLURM_ARRAY_TASK_ID SLURM_ARRAY_TASK_ID=7 SLURM_ARRAY_TASK_COUNT=3
shard_env_bad RARESYNTH_SHARD_COUNT JOB_COMPLETION_INDEX=0
shard_env_bad JOB_COMPLETION_INDEX JOB_COMPLETION_INDEX=-1 RARESYNTH_SHARD_COUNT=3

# Hostile or mismatched merge inputs: a clear error, a documented exit code, the output absent
# and the shards unchanged.
t0=$(date +%s.%N)
hostile() { # description expected-exit grep-pattern -- merge arguments (output is $WORK/hm)
    local what=$1 want=$2 pat=$3
    shift 4
    rm -rf "$WORK/hm"
    local before after
    before=$(for d in "$@"; do [ -d "$d" ] && tree_sums "$d"; done | sha256sum)
    "$RARESYNTH" merge "$@" --out "$WORK/hm" -j 2 >"$WORK/out" 2>&1
    local rc=$?
    after=$(for d in "$@"; do [ -d "$d" ] && tree_sums "$d"; done | sha256sum)
    if [ $rc -eq "$want" ] && grep -q -- "$pat" "$WORK/out" && [ ! -e "$WORK/hm" ] \
        && [ "$before" = "$after" ]; then
        ok "merge, $what: exit $rc, $(head -1 "$WORK/out" | cut -c1-150)"
    else
        bad "merge, $what (exit $rc, want $want; output $( [ -e "$WORK/hm" ] && echo left || echo absent))" "$WORK/out"
    fi
}
H="$WORK/hostile"
fresh_copy() { rm -rf "$H" && mkdir -p "$H" && cp -a "$WORK/sh2-0" "$H/s0" && cp -a "$WORK/sh2-1" "$H/s1"; }
fresh_copy
rm "$H/s1/Dataset501_BrainGBM/imagesTr/case_0003_0002.nii.gz"
hostile "a missing image" 6 'case_0003_0002.nii.gz' -- "$H/s0" "$H/s1"
fresh_copy
truncate -s 200 "$H/s0/Dataset501_BrainGBM/labelsTr/case_0002.nii.gz"
hostile "a truncated .nii.gz" 6 'case_0002.nii.gz' -- "$H/s0" "$H/s1"
fresh_copy
# A case manifest whose label checksum disagrees with the shard manifest, the shard manifest
# updated to the new manifest's checksum so only the disagreement remains.
"$PYTHON" - "$H/s1" <<'EOF'
import hashlib, json, sys
d = sys.argv[1]
p = d + "/manifests/case_0001.json"
m = json.load(open(p))
m["files"]["label"]["sha256"] = "0" * 64
open(p, "w").write(json.dumps(m, indent="\t") + "\n")
s = json.load(open(d + "/raresynth.json"))
for c in s["cases"]:
    if c["case_id"] == "case_0001":
        c["manifest_sha256"] = hashlib.sha256(open(p, "rb").read()).hexdigest()
json.dump(s, open(d + "/raresynth.json", "w"), indent="\t")
EOF
hostile "a case manifest that disagrees with the shard manifest" 6 'disagree' -- "$H/s0" "$H/s1"
fresh_copy
"$PYTHON" - "$H/s0" <<'EOF'
import json, sys
p = sys.argv[1] + "/raresynth.json"
s = json.load(open(p))
s["cases"][1]["case_id"] = "../../x"
json.dump(s, open(p, "w"), indent="\t")
EOF
hostile "a case id with path traversal" 6 '\.\./\.\./x' -- "$H/s0" "$H/s1"
fresh_copy
ln -sf /etc/hostname "$H/s0/Dataset501_BrainGBM/imagesTr/case_0000_0001.nii.gz"
hostile "a file replaced by a symbolic link" 6 'case_0000_0001.nii.gz' -- "$H/s0" "$H/s1"
fresh_copy
rm "$H/s1/raresynth.json"
hostile "an incomplete shard" 6 'incomplete' -- "$H/s0" "$H/s1"
hostile "the same shard twice" 3 'both shard 0' -- "$WORK/sh2-0" "$WORK/sh2-0"
hostile "a shard missing" 3 'shard 1 of 2 is missing' -- "$WORK/sh2-0"
hostile "shards of different counts" 3 'count' -- "$WORK/sh2-0" "$WORK/sh3-1"
"$RARESYNTH" generate --recipe "$SIX" --out "$WORK/other-seed" --seed 12 -j 2 --shard 1/2 -q >/dev/null 2>&1
hostile "a shard of another seed" 3 'seed' -- "$WORK/sh2-0" "$WORK/other-seed"
hostile "a directory that is no shard" 4 'no .raresynth-run.json' -- "$WORK/sh2-0" "$WORK/userdir"
hostile "a shard that does not exist" 4 'nonexistent' -- "$WORK/sh2-0" "$WORK/nonexistent"
hostile "another recipe given with --recipe" 3 'not the recipe' -- "$WORK/sh2-0" "$WORK/sh2-1" --recipe "$SMALL"
"$RARESYNTH" merge "$WORK/sh2-0" "$WORK/sh2-1" >"$WORK/out" 2>&1; rc=$?
[ $rc -eq 2 ] && grep -q 'required' "$WORK/out" && ok "merge without --out: exit 2" \
    || bad "merge without --out (exit $rc)" "$WORK/out"
mkdir -p "$WORK/hm-full" && echo keep >"$WORK/hm-full/notes.txt"
"$RARESYNTH" merge "$WORK/sh2-0" "$WORK/sh2-1" --out "$WORK/hm-full" >"$WORK/out" 2>&1; rc=$?
[ $rc -eq 4 ] && grep -q 'not empty' "$WORK/out" && [ "$(ls -A "$WORK/hm-full")" = notes.txt ] \
    && ok "merge into a non-empty directory: exit 4, untouched" \
    || bad "merge into a non-empty directory (exit $rc)" "$WORK/out"
"$RARESYNTH" merge "$WORK/sh2-0" "$WORK/sh2-1" --out "$WORK/sh2-0/inner" >"$WORK/out" 2>&1; rc=$?
[ $rc -eq 4 ] && grep -q 'overlap' "$WORK/out" && [ ! -e "$WORK/sh2-0/inner" ] \
    && ok "merge into a folder inside a shard: exit 4, the shard untouched" \
    || bad "merge into a folder inside a shard (exit $rc)" "$WORK/out"
"$RARESYNTH" merge "$REF" --out "$WORK/hm" >"$WORK/out" 2>&1; rc=$?
[ $rc -eq 2 ] && grep -q -- '--recipe' "$WORK/out" && [ ! -e "$WORK/hm" ] \
    && ok "merge of a plain dataset without --recipe: exit 2 asking for it" \
    || bad "merge of a plain dataset without --recipe (exit $rc)" "$WORK/out"
"$RARESYNTH" merge "$REF" --out "$WORK/merged-plain" --recipe "$SIX" -q >"$WORK/out" 2>&1 \
    && same_tree "$REF" "$WORK/merged-plain" \
    && ok "merge of a plain dataset with --recipe: byte-identical copy" \
    || bad "merge of a plain dataset with --recipe" "$WORK/out"
# The recipe moved away from the path the shards recorded: --recipe names it.
mkdir -p "$WORK/moved/configs/recipes"
for x in priors tissues scanners; do ln -s "$REPO/configs/$x" "$WORK/moved/configs/$x"; done
cp "$SIX" "$WORK/moved/configs/recipes/six.json"
mv "$SIX" "$SIX.away"
hostile "the recorded recipe gone" 2 '\-\-recipe' -- "$WORK/sh2-0" "$WORK/sh2-1"
"$RARESYNTH" merge "$WORK/sh2-1" "$WORK/sh2-0" --out "$WORK/merged-r" \
    --recipe "$WORK/moved/configs/recipes/six.json" -q >"$WORK/out" 2>&1 && same_tree "$REF" "$WORK/merged-r" \
    && ok "merge --recipe with the recipe moved: byte-identical to the single run" \
    || bad "merge --recipe with the recipe moved" "$WORK/out"
mv "$SIX.away" "$SIX"
t_hostile=$(since "$t0")
# Every layout, HDF5 and previews: generated, validated, re-read, and the same through shards.
t0=$(date +%s.%N)
ALL="--layout all --format nifti,hdf5 --preview"
# shellcheck disable=SC2086
if "$RARESYNTH" generate --recipe "$SMALL" --out "$WORK/all" --seed 7 -j 2 $ALL -q >"$WORK/out" 2>&1 \
    && [ -f "$WORK/all/msd/dataset.json" ] && [ -f "$WORK/all/Task501_BrainGBM/dataset.json" ] \
    && [ -f "$WORK/all/Dataset501_BrainGBM.h5" ] && [ "$(ls "$WORK/all/previews" | wc -l)" -eq 3 ]; then
    ok "--layout all --format nifti,hdf5 --preview: MSD, nnDetection, HDF5 and 3 previews written"
else
    bad "--layout all --format nifti,hdf5 --preview" "$WORK/out"
fi
"$RARESYNTH" validate "$WORK/all" >"$WORK/out" 2>&1 && ok "validate accepts every layout: $(tail -1 "$WORK/out")" \
    || bad "validate accepts every layout" "$WORK/out"
"$PYTHON" tests/check_dataset.py "$WORK/all" >"$WORK/out" 2>&1 \
    && ok "every layout re-read by the client checks: $(tail -1 "$WORK/out")" \
    || bad "every layout re-read by the client checks" "$WORK/out"
for k in 0 1; do
    # shellcheck disable=SC2086
    "$RARESYNTH" generate --recipe "$SMALL" --out "$WORK/all-s$k" --seed 7 -j 2 $ALL --shard $k/2 -q \
        >"$WORK/out" 2>&1
done
"$RARESYNTH" merge "$WORK/all-s1" "$WORK/all-s0" --out "$WORK/all-m" -q >"$WORK/out" 2>&1 \
    && same_tree "$WORK/all" "$WORK/all-m" \
    && ok "every layout, HDF5 and previews: 2 shards merged byte-identical to the single run" \
    || bad "every layout, HDF5 and previews: 2 shards merged" "$WORK/out"
cp -a "$WORK/all" "$WORK/all-r"
rm -f "$WORK/all-r/raresynth.json" "$WORK/all-r/Dataset501_BrainGBM.h5" "$WORK/all-r/previews/case_0001.png" \
    "$WORK/all-r/msd/imagesTr/case_0002_0001.nii.gz" "$WORK/all-r/manifests/case_0000.json"
# shellcheck disable=SC2086
"$RARESYNTH" generate --recipe "$SMALL" --out "$WORK/all-r" --seed 7 -j 2 $ALL --resume -q >"$WORK/out" 2>&1 \
    && same_tree "$WORK/all" "$WORK/all-r" \
    && ok "every layout: --resume remakes a lost case, preview, link and HDF5 file byte-identically" \
    || bad "every layout: --resume after losing files" "$WORK/out"
t_all=$(since "$t0")
echo "info - timings: kill/resume ${t_kill} s, shards and merges ${t_shard} s, hostile merges ${t_hostile} s, all layouts ${t_all} s"

# ---- the default fitted texture model (Colin27, make texture-model) --------------------------
# A clean make environment, as the install check below; the model is written to
# configs/textures/brain-colin27.h5, where the demo recipe (and the install below) find it.
ln -s "$REPO/configs/textures" "$WORK/configs/textures"
FITTED="$WORK/configs/recipes/fitted.json"
if $CLEAN_MAKE -s texture-model >"$WORK/fit.log" 2>&1; then
    ok "make texture-model fits Colin27 into configs/textures/brain-colin27.h5"
    "$PYTHON" - "$REPO/configs/recipes/brain-glioblastoma-mri.json" "$FITTED" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
r["phantom"]["dims"] = [64, 64, 64]
r["phantom"]["spacing_mm"] = [3.5, 3.5, 3.5]
r["cases"] = 1
json.dump(r, open(sys.argv[2], "w"), indent=2)
EOF
    DF="$WORK/dfit"
    if "$RARESYNTH" generate --recipe "$FITTED" --out "$DF" -j 2 -q >"$WORK/out" 2>&1 \
        && grep -q 'texture model fitted \\"brain-colin27\\"' "$DF/raresynth.json"; then
        ok "one 64^3 case with the fitted Colin27 texture model, named in raresynth.json"
    else
        bad "one 64^3 case with the fitted Colin27 texture model" "$WORK/out"
    fi
    "$PYTHON" tests/check_dataset.py "$DF" >"$WORK/check.log" 2>&1 \
        && ok "fitted texture: nibabel re-read: $(tail -1 "$WORK/check.log")" \
        || bad "fitted texture: nibabel re-read" "$WORK/check.log"
    "$RARESYNTH" validate "$DF" >"$WORK/val.log" 2>&1 && ok "fitted texture: validate accepts it" \
        || bad "fitted texture: validate accepts it" "$WORK/val.log"
else
    bad "make texture-model" "$WORK/fit.log"
fi

# ---- CT: paired full- and quarter-dose channels of an abdomen --------------------------------
CT="$WORK/configs/recipes/abdomen-ct-small.json"
"$PYTHON" - "$REPO/configs/recipes/abdomen-ct.json" "$CT" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
r["cases"] = 2
r["phantom"]["dims"] = [64, 64, 32]
r["phantom"]["spacing_mm"] = [6.0, 6.0, 6.0]
json.dump(r, open(sys.argv[2], "w"), indent=2)
EOF
DCT="$WORK/dct"
if "$RARESYNTH" generate --recipe "$CT" --out "$DCT" -j 2 -q >"$WORK/out" 2>&1; then
    ok "generate 2 abdomen CT cases at 64x64x32, doses 1 and 0.25"
else
    bad "generate 2 abdomen CT cases" "$WORK/out"
fi
"$PYTHON" tests/check_dataset.py "$DCT" >"$WORK/check.log" 2>&1 \
    && ok "CT: nibabel re-read: $(tail -1 "$WORK/check.log")" || bad "CT: nibabel re-read" "$WORK/check.log"
"$RARESYNTH" validate "$DCT" >"$WORK/val.log" 2>&1 && ok "CT: validate accepts the dataset" \
    || bad "CT: validate accepts the dataset" "$WORK/val.log"
"$PYTHON" - "$DCT" >"$WORK/out" 2>&1 <<'EOF'
import glob, json, sys
import nibabel as nib
d = sys.argv[1]
dj = json.load(open(glob.glob(d + "/Dataset*/dataset.json")[0]))
assert dj["channel_names"] == {"0": "CT", "1": "CT"}, dj["channel_names"]
m = json.load(open(d + "/raresynth.json"))
assert m["paired"]["by"] == "dose" and m["paired"]["dose_fractions"] == [1, 0.25], m["paired"]
imgs = sorted(glob.glob(d + "/Dataset*/imagesTr/*.nii.gz"))
assert len(imgs) == 4, imgs
for f in imgs:
    assert str(nib.load(f).get_data_dtype()) == "int16", f
acq = json.load(open(d + "/manifests/case_0000.json"))["acquisition"]
assert acq["channel_1.dose_fraction"] == 0.25, acq
assert acq["channel_1.noise_sd_hu"] > acq["channel_0.noise_sd_hu"], acq
subject = json.load(open(d + "/manifests/case_0000.json"))["subject"]
for organ in ("liver_ml", "spleen_ml", "kidneys_ml", "pancreas_ml"):
    assert subject.get(organ, 0) > 0, subject
assert "intracranial_ml" not in subject, subject
EOF
[ $? -eq 0 ] && ok "CT: int16 channels all named \"CT\", paired by dose, organ volumes recorded" \
    || bad "CT: int16 channels all named \"CT\", paired by dose, organ volumes recorded" "$WORK/out"
DCT2="$WORK/dct2"
"$RARESYNTH" generate --recipe "$CT" --out "$DCT2" -j 1 -q >"$WORK/out" 2>&1
diff -r "$DCT" "$DCT2" >"$WORK/diff.log" 2>&1 && ok "CT: byte-identical for -j 1 and -j 2" \
    || bad "CT: byte-identical for -j 1 and -j 2" "$WORK/diff.log"

# ---- every shipped recipe works: one case at reduced size, generated and validated -------------
# The CLI overrides the case count only, so each recipe is copied beside the catalogue with a
# coarser grid (the field of view, lesion sizes in mm and everything else unchanged; MRI at
# 2 mm, CT at most ~80 pixels in plane) and one case. A lesion smaller than the coarse
# voxels may vanish (the exporter drops it with a warning); the recipe must still load,
# generate and validate.
for recipe in "$REPO"/configs/recipes/*.json; do
    stem=$(basename "$recipe" .json)
    small="$WORK/configs/recipes/ship-$stem.json"
    "$PYTHON" - "$recipe" "$small" <<'EOF2'
import json, math, sys
r = json.load(open(sys.argv[1]))
ph = r["phantom"]
dims = ph["dims"]
sp = ph["spacing_mm"] if isinstance(ph["spacing_mm"], list) else [ph["spacing_mm"]] * 3
fov = [d * x for d, x in zip(dims, sp)]
if r["acquisition"]["modality"] == "mri":
    # Brain placement rules ask for distances down to 2 mm (juxtacortical), which a coarser
    # grid cannot resolve: MRI cases at 2 mm.
    new = [max(x, 2.0) for x in sp]
else:
    # CT: at most ~80 pixels in plane (square), slices coarsened alike up to 10 mm.
    f = max(1.0, max(fov[0], fov[1]) / 80.0 / sp[0])
    new = [sp[0] * f, sp[1] * f, min(10.0, max(sp[2], sp[2] * f))]
ph["dims"] = [max(8, int(round(l / x))) for l, x in zip(fov, new)]
ph["spacing_mm"] = new
r["cases"] = 1
json.dump(r, open(sys.argv[2], "w"), indent=2)
EOF2
    out="$WORK/ship-$stem"
    if "$RARESYNTH" generate --recipe "$small" --out "$out" -j 2 -q >"$WORK/out" 2>&1 \
        && "$RARESYNTH" validate "$out" >>"$WORK/out" 2>&1 \
        && "$PYTHON" tests/check_dataset.py "$out" >>"$WORK/out" 2>&1; then
        ok "shipped recipe $stem: one reduced case generates, validates and re-reads ($(
            "$PYTHON" -c 'import json,sys; m=json.load(open(sys.argv[1])); print(sum(c["n_lesions"] for c in m["cases"]), "lesions")' "$out/raresynth.json"))"
    else
        bad "shipped recipe $stem: one reduced case" "$WORK/out"
    fi
done

# ---- install: a program and a library a user can build against ------------------------------
# The installed data include configs/textures/brain-colin27.h5, made by the check above.
# A plain release install, whatever variant (and MAKEFLAGS) the tests run under.
if $CLEAN_MAKE -s install PREFIX="$WORK/inst" >"$WORK/inst.log" 2>&1; then
    printf '%s\n' '#include <stdio.h>' '#include <rsy_core.h>' '#include <rsy_generator.h>' \
        'int main(void) { printf("%s\n", rsy_version()); return rsy_init() == RSY_OK ? 0 : 1; }' \
        >"$WORK/use.c"
    pc="$WORK/inst/lib/pkgconfig"
    if cc "$WORK/use.c" $(PKG_CONFIG_PATH=$pc pkg-config --cflags raresynth) -o "$WORK/use" \
           $(PKG_CONFIG_PATH=$pc pkg-config --libs raresynth) -Wl,-rpath,"$WORK/inst/lib" \
           >>"$WORK/inst.log" 2>&1 && "$WORK/use" >>"$WORK/inst.log" 2>&1; then
        ok "installed library links through pkg-config"
    else
        bad "installed library links through pkg-config" "$WORK/inst.log"
    fi
    mkdir -p "$WORK/elsewhere"
    cp "$REPO/configs/recipes/brain-glioblastoma-mri.json" "$WORK/elsewhere/r.json"
    if "$WORK/inst/bin/raresynth" generate --recipe "$WORK/elsewhere/r.json" \
           --out "$WORK/elsewhere/d" --cases 1 -q >"$WORK/out" 2>&1; then
        ok "installed program finds the installed priors for a recipe kept elsewhere"
    else
        bad "installed program finds the installed priors" "$WORK/out"
    fi
else
    bad "make install" "$WORK/inst.log"
fi

echo "$passed passed, $failed failed"
[ $failed -eq 0 ]

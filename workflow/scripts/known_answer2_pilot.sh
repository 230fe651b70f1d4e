#!/usr/bin/env bash
# The pilot of EXPERIMENTS.md's "Known answer 2" (cost only: it prints CPU seconds, never a
# code, loss or DSC). At patch 64x32x32 and widths 0.0625 and 0.125: CPU seconds (user+sys,
# /usr/bin/time) of a retraining and a search of N1 and N2 iterations (per-iteration cost
# = the difference / (N2 - N1), so start-up is not counted per iteration), and of one PT
# scoring (a search of N1 iterations with --pt-patches 32 minus the same without); last,
# one evaluation of the last model trained (all-3D, width 0.125) on the fold's test cases
# (its `iterations` column holds the number of test cases).
#
#   nice -n 15 bash workflow/scripts/known_answer2_pilot.sh OUT_DIR > pilot.tsv
set -euo pipefail
out=${1:?usage: known_answer2_pilot.sh OUT_DIR}
n1=10
n2=40
mkdir -p "$out"
vnas synth --kind tubes --cue through-plane --cases 8 --seed 0 --shape 64 96 96 \
    --no-progress --out "$out/raw" 2>/dev/null
vnas preprocess --raw "$out/raw" --out "$out/pre" --preset synthetic-tubes --jobs 1 2>/dev/null
vnas split --preprocessed "$out/pre" --n-folds 2 --seed 0 --out "$out/folds.json" 2>/dev/null
common=(--preprocessed "$out/pre" --folds "$out/folds.json" --fold 0 --patch 64 32 32
    --batch-size 2 --loss dice_ce --device cpu --workers 0 --no-progress --force)
cpu() {  # prints user+sys CPU seconds of the command
    /usr/bin/time -f "%U %S" -o "$out/time.txt" env OMP_NUM_THREADS=1 "$@" >/dev/null 2>&1
    awk '{print $1 + $2}' "$out/time.txt"
}
printf "width\tjob\titerations\tcpu_s\n"
for width in 0.0625 0.125; do
    for n in $n1 $n2; do
        for arch in manual:2d/2d manual:3d/3d; do
            s=$(cpu vnas train --arch "$arch" --iterations "$n" --width "$width" \
                --test-patch 64 64 64 --out "$out/train" "${common[@]}")
            printf "%s\ttrain-%s\t%s\t%s\n" "$width" "${arch#manual:}" "$n" "$s"
        done
        s=$(cpu vnas search --iterations "$n" --warmup-fraction 0.3333 --width "$width" \
            --out "$out/search" "${common[@]}")
        printf "%s\tsearch\t%s\t%s\n" "$width" "$n" "$s"
    done
    s=$(cpu vnas search --iterations "$n1" --warmup-fraction 0.3333 --width "$width" \
        --pt-patches 32 --out "$out/search" "${common[@]}")
    printf "%s\tsearch+pt\t%s\t%s\n" "$width" "$n1" "$s"
done
cases=$(python -c "import json,sys; print(len(json.load(open(sys.argv[1]))['folds'][0]['test']))" \
    "$out/folds.json")
s=$(cpu vnas evaluate --model "$out/train" --preprocessed "$out/pre" --folds "$out/folds.json" \
    --fold 0 --out "$out/eval" --raw "$out/raw" --device cpu)
printf "%s\tevaluate-3d/3d\t%s\t%s\n" 0.125 "$cases" "$s"

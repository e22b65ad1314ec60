#!/usr/bin/env bash
# ablation_trust.sh — can the ablation be trusted on this machine? Runs the
# default ablation of `gemmac bench` on the real Gemma 3 270M RUNS times
# (default 10) and reports:
#   - in how many runs the A/A row (-O2 measured twice, as two rows) is
#     within noise, for prefill and for decode (the goal: at least 9 of 10);
#   - for every pass, in how many runs its effect against the row above was
#     significant, and whether those effects all had the same sign.
# Ten repetitions: with the ten rows of the ablation, the balanced order
# (bench_stats.h) puts each row after every other once. A benchmark, not a
# test: some 25 minutes on two cores.
#
#   bench/ablation_trust.sh [RUNS] [OUT_DIR]      (default 10, build/ablation-trust)
#
# Needs build/gemmac, the model (scripts/fetch-model.sh gemma-3-270m) and jq.
# Each run's JSON and chart are kept in OUT_DIR; the summary goes to stdout
# and OUT_DIR/summary.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-10}
out=${2:-build/ablation-trust}
model=$(scripts/fetch-model.sh gemma-3-270m)
command -v jq >/dev/null || { echo "ablation_trust.sh: needs jq (apt-get install jq)" >&2; exit 1; }
mkdir -p "$out"
for i in $(seq 1 "$runs"); do
  echo "run $i of $runs" >&2
  build/gemmac bench "$model" --prompt-tokens 128 --gen-tokens 16 --reps 10 --json --svg "$out/run-$i.svg" > "$out/run-$i.json"
done

# One line per (run, row, measure): config, measure, effect, lo, hi, within_noise, aa.
effects() {
  jq -r '.ablation[] | select(.vs_previous) | . as $r | ["prefill", "decode"][] as $m
         | [$r.config, $m, $r.vs_previous[$m].effect, $r.vs_previous[$m].ci[0], $r.vs_previous[$m].ci[1],
            $r.vs_previous[$m].within_noise, $r.aa] | @tsv' "$out"/run-*.json
}

{
  echo "gemmac bench on $(basename "$model"), $runs runs of --prompt-tokens 128 --gen-tokens 16 --reps 10"
  echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; $(date -u +%Y-%m-%d)"
  echo
  echo "A/A row (-O2 again against -O2): runs within noise"
  effects | awk -F'\t' '$7 == "true" { n[$2]++; w[$2] += ($6 == "true") }
                        END { for (m in n) printf "  %-8s %d of %d\n", m, w[m], n[m] }'
  echo
  echo "each pass against the row above: runs where significant, and the signs of those effects"
  effects | awk -F'\t' '$7 != "true" {
      k = $1 " | " $2; if (!(k in n)) order[++count] = k; n[k]++
      if ($6 == "false") { s[k]++; if ($3 > 0) up[k]++; else down[k]++; sum[k] += $3 }
    }
    END {
      for (i = 1; i <= count; i++) {
        k = order[i]
        sign = !s[k] ? "-" : up[k] && down[k] ? "MIXED" : up[k] ? "all +" : "all -"
        printf "  %-44s significant in %2d of %d  %-6s %s\n", k, s[k], n[k], sign,
               s[k] ? sprintf("mean %+.1f %%", 100 * sum[k] / s[k]) : ""
      }
    }'
} | tee "$out/summary.txt"

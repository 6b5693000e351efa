#!/usr/bin/env bash
# Benchmark: boot-to-fio time and per-sample overhead of kab's guest runs
# (targets on a 2-core TCG host: boot ≤ 5 s, overhead ≤ 10 s), and the CV of
# bandwidth per arm. Prints figures; asserts nothing.
#   tests/bench/guest_overhead.sh [SCENARIO] [REPETITIONS]
set -euo pipefail
cd "$(dirname "$0")/../.."
scenario=${1:-scenarios/quick.yaml}
reps=${2:-3}
kab=${KAB:-build/harness/kab}
db=$(mktemp -d)/bench.db
$kab run "$scenario" --db "$db" --repetitions "$reps" --json > "$db.run.json"
run=$(python3 -c "import json;print(json.load(open('$db.run.json'))['run'])")
runtime=$(python3 - "$scenario" <<'PY'
import re,sys
m=re.search(r'^\s*runtime:\s*(\d+)', open(sys.argv[1]).read(), re.M)
print(m.group(1) if m else 0)
PY
)
$kab show "$run" --db "$db" --json | python3 -c "
import json,statistics as st,sys
s=[x for x in json.load(sys.stdin) if x['status']=='ok']
rt=float($runtime)
def f(v): return '%.2f'%v
print('samples ok:', len(s), ' fio runtime per sample:', rt, 's')
print('boot to fio start  s: median', f(st.median(x['boot_s'] for x in s)), ' max', f(max(x['boot_s'] for x in s)))
ov=[x['total_s']-rt for x in s]
print('per-sample overhead s (total - fio runtime): median', f(st.median(ov)), ' max', f(max(ov)))
print('fio wall incl. layout s: median', f(st.median(x['fio_s'] for x in s)))
for arm in sorted({x['arm'] for x in s}):
    bw=[x['bw_bytes']/2**20 for x in s if x['arm']==arm]
    cv=st.stdev(bw)/st.mean(bw)*100 if len(bw)>1 else float('nan')
    wbt=max(x['writeback_tmp_peak_kb'] for x in s if x['arm']==arm)
    print(f'{arm:8s} n={len(bw)} median {st.median(bw):.1f} MiB/s  CV {cv:.1f}%  WritebackTmp peak {wbt:.0f} kB')
"

# gpu-dev/table.py — join bench.cu's kernels.csv with peers.py's CSV into the short ratio table.
import csv
import sys

ours, peers = {}, {}
for r in csv.DictReader(open(sys.argv[1])):
    if r['kind'] in ('is', 'fs', 'pc', 'w4a16'):
        ours[(int(r['M']), int(r['K']), int(r['N']), r['kind'])] = float(r['us'])
for line in open(sys.argv[2]):
    if line.startswith('M,') or line.startswith('#') or not line.strip():
        continue
    m, k, n, kind, us = line.strip().split(',')
    peers[(int(m), int(k), int(n), kind.replace('_m32', ''))] = float(us)
print(f"{'M':>5} {'K':>6} {'N':>6} | {'IS':>7} {'FS':>7} {'PC':>7} {'W4A16':>7} | {'fp16':>7} {'int8':>7} | "
      f"{'fp16/IS':>7} {'int8/IS':>7} {'FS/IS':>6} {'PC/IS':>6} {'GB/s':>6}")
for (m, k, n, kind), t in sorted(ours.items()):
    if kind != 'is':
        continue
    g = lambda kd: ours.get((m, k, n, kd), float('nan'))
    f16 = peers.get((m, k, n, 'cublas_fp16'), float('nan'))
    i8 = peers.get((m, k, n, 'cublaslt_int8'), float('nan'))
    gbs = n * k / 2 / (t * 1e-6) / 1e9
    print(f"{m:>5} {k:>6} {n:>6} | {t:7.1f} {g('fs'):7.1f} {g('pc'):7.1f} {g('w4a16'):7.1f} | {f16:7.1f} {i8:7.1f} | "
          f"{f16 / t:7.2f} {i8 / t:7.2f} {g('fs') / t:6.2f} {g('pc') / t:6.2f} {gbs:6.0f}")

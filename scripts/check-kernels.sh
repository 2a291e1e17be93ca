#!/usr/bin/env bash
# scripts/check-kernels.sh — CI compile check of every CUDA kernel (no GPU needed): each
# src/gpu/kernels/*.cu is compiled with nvcc for sm_80 and sm_90a with `-Xptxas -v`; any compile
# error or register spill fails the check (exit 1, naming the kernel). Prints one line per kernel
# and arch: registers, static shared memory, stack frame, spills. A wgmma pipeline that ptxas
# serializes (warning C75xx "... are serialized") fails too. Runs the builds in parallel.
set -uo pipefail
cd "$(dirname "$0")/.."
if ! command -v nvcc >/dev/null; then echo "check-kernels: nvcc not found" >&2; exit 1; fi
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
archs=("sm_80:-arch=sm_80" "sm_90a:-gencode=arch=compute_90a,code=sm_90a")
pids=()
for f in src/gpu/kernels/*.cu; do
  for a in "${archs[@]}"; do
    name=$(basename "$f" .cu)_${a%%:*}
    ( nvcc -cubin ${a#*:} -Xptxas -v -o "$tmp/$name.cubin" "$f" > "$tmp/$name.log" 2>&1; echo $? > "$tmp/$name.rc" ) &
    pids+=($!)
  done
done
for p in "${pids[@]}"; do wait "$p"; done
status=0
for f in src/gpu/kernels/*.cu; do
  for a in "${archs[@]}"; do
    arch=${a%%:*}; name=$(basename "$f" .cu)_$arch
    if [ "$(cat "$tmp/$name.rc")" != 0 ]; then
      echo "FAIL $f ($arch): compile error"; grep -E "error" "$tmp/$name.log" | head -5; status=1; continue
    fi
    # ptxas -v: "Compiling entry function 'X'" / "Function properties for X" / "N bytes stack frame, S bytes spill stores, L bytes spill loads" / "Used R registers, ... B bytes smem"
    awk -v arch="$arch" '
      /Function properties for/ { fn=$NF }
      /bytes stack frame/ { stack=$1; ss=$5; sl=$9 }
      /Used [0-9]+ registers/ {
        regs=$0; sub(/.*Used /,"",regs); sub(/ registers.*/,"",regs)
        smem="0"; if (match($0,/[0-9]+ bytes smem/)) { smem=substr($0,RSTART,RLENGTH); sub(/ bytes smem/,"",smem) }
        flag=(ss+0>0 || sl+0>0) ? "SPILL" : "ok"
        printf "%-5s %-34s %-6s regs %3d  smem %5d  stack %4d  spill st/ld %d/%d\n", flag, fn, arch, regs, smem, stack, ss, sl
      }' "$tmp/$name.log" > "$tmp/$name.sum"
    cat "$tmp/$name.sum"
    if grep -q "^SPILL" "$tmp/$name.sum"; then
      echo "FAIL $f ($arch): register spills in $(grep '^SPILL' "$tmp/$name.sum" | awk '{print $2}' | tr '\n' ' ')"; status=1
    fi
    if grep -q "serialized" "$tmp/$name.log"; then  # ptxas C75xx: wgmma pipeline serialized
      echo "FAIL $f ($arch): ptxas serialized wgmma: $(grep -m1 serialized "$tmp/$name.log")"; status=1
    fi
    if [ ! -s "$tmp/$name.sum" ]; then echo "FAIL $f ($arch): no kernels found in ptxas output"; status=1; fi
  done
done
[ $status = 0 ] && echo "check-kernels: all kernels compile for sm_80 and sm_90a without spills"
exit $status

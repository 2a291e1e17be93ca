# gpu-dev/peers.py — peer timings for the kernel table: cuBLAS fp16 (torch.matmul, x @ Wᵀ),
# cuBLASLt int8 (torch._int_mm) and tinygemm W4A16 g128 (torch._weight_int4pack_mm, bf16
# activations: the W4A16 peer the issue names), same shapes as bench.cu's timing table, weights
# rotated through >= 200 MB so L2 does not hold them. Prints CSV to stdout (M,K,N,kind,us).
import sys
import torch

SHAPES = [(4096, 12288), (4096, 4096), (4096, 22016), (11008, 4096), (4096, 6144), (4096, 28672), (14336, 4096)]
MS = [int(m) for m in sys.argv[1].split(',')] if len(sys.argv) > 1 else [1, 16, 128, 512, 4096]
if len(sys.argv) > 2:  # optional KxN list, e.g. 4096x22016,4096x4096
    SHAPES = [tuple(int(v) for v in s.split('x')) for s in sys.argv[2].split(',')]


def bench(fn, nbuf, iters):
    for i in range(3):
        fn(i % nbuf)
    a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    ts = []
    for _ in range(5):
        a.record()
        for i in range(iters):
            fn(i % nbuf)
        b.record()
        b.synchronize()
        ts.append(a.elapsed_time(b) * 1000 / iters)
    return sorted(ts)[2]


print('M,K,N,kind,us')
torch.manual_seed(0)
for K, N in SHAPES:
    nbuf16 = max(2, (200 << 20) // (N * K * 2) + 1)
    nbuf8 = max(2, (200 << 20) // (N * K) + 1)
    w16 = [torch.randn(N, K, device='cuda', dtype=torch.float16) for _ in range(nbuf16)]
    w8 = [torch.randint(-127, 128, (N, K), device='cuda', dtype=torch.int8) for _ in range(nbuf8)]
    for M in MS:
        iters = 10 if M >= 4096 else 50
        x = torch.randn(M, K, device='cuda', dtype=torch.float16)
        t16 = bench(lambda i: torch.matmul(x, w16[i].t()), nbuf16, iters)
        print(f'{M},{K},{N},cublas_fp16,{t16:.2f}', flush=True)
        Mp = max(M, 32)  # _int_mm needs M > 16
        a = torch.randint(-127, 128, (Mp, K), device='cuda', dtype=torch.int8)
        try:
            t8 = bench(lambda i: torch._int_mm(a, w8[i].t()), nbuf8, iters)
            print(f'{M},{K},{N},cublaslt_int8{"_m32" if Mp != M else ""},{t8:.2f}', flush=True)
        except Exception as e:  # noqa: BLE001
            print(f'# int8 failed at M={M}: {e}', file=sys.stderr)
    del w16, w8
    torch.cuda.empty_cache()
    try:
        nbuf4 = max(2, (200 << 20) // (N * K // 2) + 1)
        w4 = []
        for _ in range(nbuf4):
            q = torch.randint(0, 16, (N, K), device='cuda', dtype=torch.int32)
            w4.append(torch._convert_weight_to_int4pack((q[:, ::2] << 4 | q[:, 1::2]).to(torch.uint8), 8))
        sz = torch.randn(K // 128, N, 2, device='cuda', dtype=torch.bfloat16)
        for M in MS:
            iters = 10 if M >= 4096 else 50
            xb = torch.randn(M, K, device='cuda', dtype=torch.bfloat16)
            t4 = bench(lambda i: torch._weight_int4pack_mm(xb, w4[i], 128, sz), nbuf4, iters)
            print(f'{M},{K},{N},tinygemm_w4a16,{t4:.2f}', flush=True)
        del w4
        torch.cuda.empty_cache()
    except Exception as e:  # noqa: BLE001
        print(f'# tinygemm failed at K={K} N={N}: {e}', file=sys.stderr)

"""PyTorch baseline for bench/gemm.ts: FP32 torch.matmul GFLOP/s on square sizes (TF32 off, so it is the same
arithmetic as the WebGPU kernels).

Usage: python3 bench/gemm_torch.py DEVICE SIZES MIN_SECONDS    (DEVICE cuda or cpu, SIZES e.g. 1024,2048)
Prints one JSON line {"gflops": {size: GFLOP/s}, "torch": version, "device": name}.
"""

import json
import sys
import time

import torch


def sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def main():
    device, sizes, min_seconds = sys.argv[1], [int(s) for s in sys.argv[2].split(",")], float(sys.argv[3])
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    out = {}
    for n in sizes:
        a = torch.rand(n, n, device=device) - 0.5
        b = torch.rand(n, n, device=device) - 0.5
        torch.matmul(a, b)
        sync(device)
        reps, batch = 0, 1
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < min_seconds:
            for _ in range(batch):
                torch.matmul(a, b)
            sync(device)
            reps += batch
            batch *= 2
        out[n] = 2 * n**3 / ((time.perf_counter() - t0) / reps) / 1e9
    name = torch.cuda.get_device_name() if device == "cuda" else "cpu"
    print(json.dumps({"gflops": out, "torch": torch.__version__, "device": name}))


if __name__ == "__main__":
    main()

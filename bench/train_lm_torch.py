"""PyTorch baseline for bench/train-lm.ts: the same FastVLM training step (forward, next-token loss, backward,
AdamW) on the same weights and batch, read from the safetensors file the TypeScript side wrote.

Usage: python3 bench/train_lm_torch.py CONFIG_JSON IN.safetensors STEPS THREADS [DEVICE]   (DEVICE cpu or cuda)
Uses the oracle's functional model (test/train-bridge/model/torch_fastvlm.py); prints one JSON line with the mean
seconds per step after one warm-up step.
"""

import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "test", "train-bridge", "model"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_device import use_device  # noqa: E402
from torch_fastvlm import fastvlm_loss, read_safetensors, split  # noqa: E402


def main():
    config = json.loads(sys.argv[1])
    steps = int(sys.argv[3])
    torch.set_num_threads(int(sys.argv[4]))
    device = sys.argv[5] if len(sys.argv) > 5 else "cpu"
    use_device(device)
    sd = {k: v.to(device) for k, v in read_safetensors(sys.argv[2]).items()}
    batch, params = split(sd)
    opt = torch.optim.AdamW(list(params.values()), lr=1e-4, weight_decay=0)
    times = []
    for i in range(steps + 1):
        t0 = time.perf_counter()
        loss = fastvlm_loss(sd, batch, config)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        loss.item()
        if i > 0:
            times.append(time.perf_counter() - t0)
    print(json.dumps({"seconds": sum(times) / len(times), "torch": torch.__version__, "loss": loss.item(), "device": device}))


if __name__ == "__main__":
    main()

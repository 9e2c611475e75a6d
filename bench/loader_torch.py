"""Baseline for bench/loader.ts: a PyTorch DataLoader with PIL doing LLaVA's pad + resize + to-tensor.

Reads the LLaVA export (JSON + images folder), pads each image to a square with the processor mean colour (black,
FastVLM) at source size (LLaVA's expand2square), resizes to RxR with BICUBIC, converts to float32 CHW in [0, 1]
(numpy divide, as torchvision's to_tensor does), and collates batches. Prints one JSON line with the timings.

  /usr/bin/python3 bench/loader_torch.py --json DIR/mixture.json --root DIR --workers 2 --batch 8 --res 1024
"""
import argparse
import json
import os
import resource
import time

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset


def expand2square(img, background):
    w, h = img.size
    if w == h:
        return img
    side = max(w, h)
    out = Image.new(img.mode, (side, side), background)
    out.paste(img, ((side - w) // 2, (side - h) // 2))
    return out


class LlavaImages(Dataset):
    def __init__(self, records, root, res):
        self.records = [r for r in records if "image" in r]
        self.root = root
        self.res = res

    def __len__(self):
        return len(self.records)

    def __getitem__(self, i):
        rec = self.records[i]
        img = Image.open(os.path.join(self.root, rec["image"])).convert("RGB")
        img = expand2square(img, (0, 0, 0)).resize((self.res, self.res), Image.BICUBIC)
        x = torch.from_numpy(np.asarray(img, dtype=np.float32).transpose(2, 0, 1) / 255.0)
        return x, rec["conversations"][-1]["value"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", required=True)
    ap.add_argument("--root", required=True)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--res", type=int, default=1024)
    a = ap.parse_args()
    torch.set_num_threads(1)
    with open(a.json) as f:
        records = json.load(f)
    ds = LlavaImages(records, a.root, a.res)
    loader = DataLoader(ds, batch_size=a.batch, num_workers=a.workers, shuffle=False, collate_fn=lambda b: (
        torch.stack([x for x, _ in b]), [c for _, c in b]))
    def cpu_seconds():
        # This process and its reaped children (the DataLoader's workers, once the loop has ended and joined them).
        own = resource.getrusage(resource.RUSAGE_SELF)
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime

    cpu0 = cpu_seconds()
    t0 = time.perf_counter()
    t_first = None
    images = batches = first_images = 0
    checksum = 0.0
    for x, captions in loader:
        images += x.shape[0]
        batches += 1
        checksum += float(x[:, :, ::64, ::64].sum())
        if t_first is None:
            # Steady state is timed from here: worker start-up and the pipeline filling up are behind us.
            t_first = time.perf_counter()
            first_images = images
    dt = time.perf_counter() - t0
    steady = {"images": images - first_images, "batches": batches - 1, "seconds": time.perf_counter() - t_first}
    # The loop has ended, so the workers have been shut down and reaped: their CPU time is in RUSAGE_CHILDREN.
    cpu = cpu_seconds() - cpu0
    print(json.dumps({"images": images, "batches": batches, "seconds": dt, "steady": steady, "checksum": checksum,
                      "cpuSeconds": cpu}))


if __name__ == "__main__":
    main()

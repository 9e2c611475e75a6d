"""PyTorch baseline for bench/train.ts: one training step of the same FastViTHD architecture and batch.

Usage: python3 bench/train_torch.py CONFIG_JSON RESOLUTION BATCH STEPS THREADS [DEVICE]   (DEVICE cpu or cuda)
Builds the train-time form with the functional model of test/train-bridge/model/torch_fastvithd.py (the
cross-check oracle), random weights of the reference shapes, BatchNorm in training mode, loss = sum(out * probe),
backward and torch.optim.AdamW; prints one JSON line with the mean seconds per step after one warm-up step.
"""

import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "test", "train-bridge", "model"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_fastvithd import FastViTHD  # noqa: E402
from torch_device import sync, use_device  # noqa: E402


def state_dict(config):
    """Parameters and BN buffers of the train-time form, named as the reference (shapes only matter here)."""
    w = config["widths"]
    sd = {}

    def conv(p, cin, cout, k, groups=1, bias=False):
        sd[p + "weight"] = torch.randn(cout, cin // groups, k, k) * (1.0 / (cin // groups * k * k) ** 0.5)
        if bias:
            sd[p + "bias"] = torch.zeros(cout)

    def bn(p, c):
        sd[p + "weight"], sd[p + "bias"] = torch.ones(c), torch.zeros(c)
        sd[p + "running_mean"], sd[p + "running_var"] = torch.zeros(c), torch.ones(c)
        sd[p + "num_batches_tracked"] = torch.zeros((), dtype=torch.int64)

    def conv_bn(p, cin, cout, k, groups=1):
        conv(p + "conv.", cin, cout, k, groups)
        bn(p + "bn.", cout)

    def mobileone(p, cin, cout, k, stride=1, groups=1, scale=True, se=False):
        if se:
            conv(p + "se.reduce.", cout, int(cout * 0.0625), 1, bias=True)
            conv(p + "se.expand.", int(cout * 0.0625), cout, 1, bias=True)
        if cin == cout and stride == 1:
            bn(p + "rbr_skip.", cin)
        conv_bn(p + "rbr_conv.0.", cin, cout, k, groups)
        if k > 1 and scale:
            conv_bn(p + "rbr_scale.", cin, cout, 1, groups)

    def ffn(p, c):
        conv_bn(p + "conv.", c, c, 7, c)
        conv(p + "fc1.", c, 4 * c, 1, bias=True)
        conv(p + "fc2.", 4 * c, c, 1, bias=True)

    mobileone("patch_embed.0.", 3, w[0], 3, 2, scale=False)
    mobileone("patch_embed.1.", w[0], w[0], 3, 2, w[0], scale=False)
    mobileone("patch_embed.2.", w[0], w[0], 1, scale=False)
    idx = 0
    for i, c in enumerate(w):
        if config["positionalEncoding"][i]:
            conv(f"network.{idx}.pe.", c, c, 7, c, bias=True)
            idx += 1
        for b in range(config["depths"][i]):
            p = f"network.{idx}.{b}."
            if config["tokenMixers"][i] == "repmixer":
                sd[p + "token_mixer.layer_scale"] = torch.full((c, 1, 1), 1e-5)
                mobileone(p + "token_mixer.norm.", c, c, 3, groups=c, scale=False)
                sd.pop(p + "token_mixer.norm.rbr_conv.0.conv.weight")
                for s in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"):
                    sd.pop(p + "token_mixer.norm.rbr_conv.0.bn." + s)
                mobileone(p + "token_mixer.mixer.", c, c, 3, groups=c)
            else:
                sd[p + "norm.weight"], sd[p + "norm.bias"] = torch.ones(c), torch.zeros(c)
                sd[p + "token_mixer.qkv.weight"] = torch.randn(3 * c, c) * 0.02
                sd[p + "token_mixer.proj.weight"] = torch.randn(c, c) * 0.02
                sd[p + "token_mixer.proj.bias"] = torch.zeros(c)
                sd[p + "layer_scale_1"] = torch.full((c, 1, 1), 1e-5)
                sd[p + "layer_scale_2"] = torch.full((c, 1, 1), 1e-5)
            if config["tokenMixers"][i] == "repmixer":
                sd[p + "layer_scale"] = torch.full((c, 1, 1), 1e-5)
            ffn(p + "convffn.", c)
        idx += 1
        if i + 1 < len(w):
            p = f"network.{idx}.proj."
            conv_bn(p + "0.lkb_origin.", c, 2 * c, 7, c)
            conv_bn(p + "0.small_conv.", c, 2 * c, 3, c)
            mobileone(p + "1.", 2 * c, 2 * c, 1)
            idx += 1
    mobileone("conv_exp.", w[-1], 2 * w[-1], 3, groups=w[-1], se=True)
    return sd


def main():
    config = json.loads(sys.argv[1])
    r, batch, steps, threads = (int(a) for a in sys.argv[2:6])
    device = sys.argv[6] if len(sys.argv) > 6 else "cpu"
    torch.set_num_threads(threads)
    use_device(device)
    torch.manual_seed(0)
    sd = state_dict(config)
    params = [t for n, t in sd.items() if t.is_floating_point() and not n.endswith(("running_mean", "running_var"))]
    for t in params:
        t.requires_grad_(True)
    opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.0)
    images = torch.rand(batch, 3, r, r)
    model = FastViTHD(sd, config, True)
    out_shape = model.forward(images).shape
    probe = torch.rand(out_shape) - 0.5
    times = []
    for i in range(steps + 1):
        t0 = time.perf_counter()
        loss = (model.forward(images) * probe).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sync(device)
        if i > 0:
            times.append(time.perf_counter() - t0)
    print(json.dumps({"seconds": sum(times) / len(times), "params": sum(t.numel() for t in params), "torch": torch.__version__, "device": device}))


if __name__ == "__main__":
    main()

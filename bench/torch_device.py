"""Puts the oracle models of test/train-bridge/model on a device without touching them: they create their masks
and constants with plain torch.ones/zeros/arange, so the default device is switched instead."""

import torch


def use_device(device):
    if device == "cpu":
        return
    if not torch.cuda.is_available():
        raise SystemExit(f"device {device}: this PyTorch ({torch.__version__}) sees no CUDA device")
    if hasattr(torch, "set_default_device"):  # torch >= 2.0
        torch.set_default_device(device)
    else:
        torch.set_default_tensor_type(torch.cuda.FloatTensor)


def sync(device):
    if device != "cpu":
        torch.cuda.synchronize()

"""FastVLM (FastViTHD -> mlp2x_gelu projector -> Qwen2) loss and gradients in plain PyTorch, from a state_dict with
the published LLaVA-Qwen2 names: the independent oracle for the TypeScript engine's objective.

Usage: python3 torch_fastvlm.py CONFIG_JSON IN.safetensors OUT.safetensors

CONFIG_JSON: {"vision": <FastViTHD config>, "lm": <Hugging Face Qwen2 config.json fields>, "visionTrain": bool}.
IN: the state_dict plus the batch: `images` [N,3,R,R], `token_ids`, `labels`, `position_ids`, `attention_mask`
([B,L], stored as F32), `image_slots` [n,3] (sample, start, count; images in this order).
OUT: `loss` [1] and `grad.<name>` for every parameter that received a gradient. Written from the model's
definition in Hugging Face's modeling_qwen2 (RMSNorm, rotate-half RoPE, repeat_kv, causal mask, shifted
cross-entropy averaged over non-ignored labels) and LLaVA's splice of image features at the image positions.
"""

import json
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_fastvithd import FastViTHD, read_safetensors, write_safetensors  # noqa: E402

VISION = "model.vision_tower.vision_tower.model."


def rms_norm(x, w, eps):
    return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def rotary(position_ids, hd, theta):
    inv_freq = 1.0 / (theta ** (torch.arange(0, hd, 2, dtype=torch.int64).float() / hd))
    freqs = position_ids.float()[..., None] * inv_freq[None, None, :]
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos(), emb.sin()  # [B, L, hd]


def decoder(sd, lm, x, position_ids, attention_mask):
    b, l, _ = x.shape
    h, kv = lm["num_attention_heads"], lm["num_key_value_heads"]
    hd = lm["hidden_size"] // h
    eps = lm["rms_norm_eps"]
    cos, sin = rotary(position_ids, hd, lm["rope_theta"])
    cos, sin = cos[:, None], sin[:, None]  # broadcast over heads
    causal = torch.ones(l, l, dtype=torch.bool).tril()
    allowed = causal[None, None] & attention_mask.bool()[:, None, None, :]
    bias = torch.zeros(b, 1, l, l).masked_fill(~allowed, torch.finfo(torch.float32).min)
    for i in range(lm["num_hidden_layers"]):
        p = f"model.layers.{i}."
        n = rms_norm(x, sd[p + "input_layernorm.weight"], eps)
        q = F.linear(n, sd[p + "self_attn.q_proj.weight"], sd[p + "self_attn.q_proj.bias"]).view(b, l, h, hd).transpose(1, 2)
        k = F.linear(n, sd[p + "self_attn.k_proj.weight"], sd[p + "self_attn.k_proj.bias"]).view(b, l, kv, hd).transpose(1, 2)
        v = F.linear(n, sd[p + "self_attn.v_proj.weight"], sd[p + "self_attn.v_proj.bias"]).view(b, l, kv, hd).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        k = k.repeat_interleave(h // kv, dim=1)
        v = v.repeat_interleave(h // kv, dim=1)
        scores = (q @ k.transpose(-2, -1)) * hd**-0.5 + bias
        o = (torch.softmax(scores, dim=-1) @ v).transpose(1, 2).reshape(b, l, h * hd)
        x = x + F.linear(o, sd[p + "self_attn.o_proj.weight"])
        n = rms_norm(x, sd[p + "post_attention_layernorm.weight"], eps)
        act = F.silu(F.linear(n, sd[p + "mlp.gate_proj.weight"])) * F.linear(n, sd[p + "mlp.up_proj.weight"])
        x = x + F.linear(act, sd[p + "mlp.down_proj.weight"])
    return rms_norm(x, sd["model.norm.weight"], eps)


BATCH_KEYS = ["images", "token_ids", "labels", "position_ids", "attention_mask", "image_slots"]


def split(sd):
    """The batch tensors out of a loaded file, and the float parameters (made leaves that require grad)."""
    batch = {k: sd.pop(k) for k in BATCH_KEYS if k in sd}
    params = {k: v.requires_grad_(True) for k, v in sd.items() if v.dtype == torch.float32 and not k.endswith(("running_mean", "running_var"))}
    return batch, params


def fastvlm_loss(sd, batch, config):
    """Mean next-token cross-entropy over the non-ignored labels of the batch."""
    lm = config["lm"]
    embed = sd["model.embed_tokens.weight"]
    ids = batch["token_ids"].long()
    x = F.embedding(ids.clamp(min=0), embed)
    slots = batch["image_slots"].long().tolist() if "image_slots" in batch else []
    if slots:
        vision = {k[len(VISION):]: v for k, v in sd.items() if k.startswith(VISION)}
        feats = FastViTHD(vision, config["vision"], config["visionTrain"]).forward(batch["images"])
        # The gradient reaching the encoder is a transposed (non-contiguous) view; Debian's torch CPU kernels
        # get some convolution backward passes wrong on such strides, so it is made contiguous first.
        if feats.requires_grad:
            feats.register_hook(lambda g: g.contiguous())
        tokens = feats.flatten(2).transpose(1, 2)
        tokens = F.linear(tokens, sd["model.mm_projector.0.weight"], sd["model.mm_projector.0.bias"])
        tokens = F.linear(F.gelu(tokens), sd["model.mm_projector.2.weight"], sd["model.mm_projector.2.bias"])
        x = x.clone()
        for i, (sample, start, count) in enumerate(slots):
            x[sample, start : start + count] = tokens[i, :count]
    hidden = decoder(sd, lm, x, batch["position_ids"].long(), batch["attention_mask"])
    head = sd["lm_head.weight"] if not lm["tie_word_embeddings"] else embed
    logits = hidden @ head.t()
    labels = batch["labels"].long()
    return F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1), ignore_index=-100)


def main():
    config = json.loads(sys.argv[1])
    sd = read_safetensors(sys.argv[2])
    torch.set_num_threads(1)
    batch, params = split(sd)
    loss = fastvlm_loss(sd, batch, config)
    loss.backward()
    out = {"loss": loss.detach().reshape(1)}
    for name, p in params.items():
        if p.grad is not None:
            out["grad." + name] = p.grad
    write_safetensors(sys.argv[3], out)


if __name__ == "__main__":
    main()

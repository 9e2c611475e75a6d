"""FastViTHD forward in PyTorch, straight from a state_dict: the independent oracle for the TypeScript model.

Usage: python3 torch_fastvithd.py CONFIG_JSON IN.safetensors OUT.safetensors

IN holds the model's state_dict (train or folded form, reference names, NCHW/OIHW) and an `input` tensor.
OUT receives `eval` (BatchNorm on running statistics), and, for the train form, `train` (BatchNorm on batch
statistics) plus every BN's updated running statistics under their own names. Safetensors is read and written
here from the format's spec with struct/json, so the file format is checked by a second implementation too.
"""

import json
import struct
import sys

import torch
import torch.nn.functional as F

DTYPES = {"F32": (torch.float32, 4), "I64": (torch.int64, 8), "F16": (torch.float16, 2), "BF16": (torch.bfloat16, 2)}


def read_safetensors(path):
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8 : 8 + n].decode("utf-8"))
    header.pop("__metadata__", None)
    data = blob[8 + n :]
    out = {}
    for name, info in header.items():
        dtype, size = DTYPES[info["dtype"]]
        begin, end = info["data_offsets"]
        count = (end - begin) // size
        t = torch.frombuffer(bytearray(data[begin:end]), dtype=dtype, count=count) if count else torch.empty(0, dtype=dtype)
        out[name] = t.reshape(info["shape"]).clone()
    return out


def write_safetensors(path, tensors):
    header, chunks, offset = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name].contiguous()
        dtype = {torch.float32: "F32", torch.int64: "I64"}[t.dtype]
        raw = t.numpy().tobytes()
        header[name] = {"dtype": dtype, "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    text = json.dumps(header).encode("utf-8")
    text += b" " * ((8 - (8 + len(text)) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(chunks))


class FastViTHD:
    def __init__(self, sd, config, training):
        self.sd, self.c, self.training = sd, config, training

    def has(self, name):
        return name in self.sd

    def conv(self, p, x, stride=1, padding=0, groups=1):
        return F.conv2d(x, self.sd[p + "weight"], self.sd.get(p + "bias"), stride, padding, 1, groups)

    def bn(self, p, x):
        # F.batch_norm updates running_mean/var in place in training mode (momentum 0.1, unbiased variance).
        if self.training:
            self.sd[p + "num_batches_tracked"] += 1
        return F.batch_norm(x, self.sd[p + "running_mean"], self.sd[p + "running_var"], self.sd[p + "weight"],
                            self.sd[p + "bias"], self.training, 0.1, 1e-5)

    def conv_bn(self, p, x, stride, padding, groups):
        return self.bn(p + "bn.", self.conv(p + "conv.", x, stride, padding, groups))

    def mobileone(self, p, x, k, stride=1, groups=1, act=True, se=False):
        pad = k // 2
        if self.has(p + "reparam_conv.weight"):
            out = self.conv(p + "reparam_conv.", x, stride, pad, groups)
        else:
            out = 0
            if self.has(p + "rbr_scale.conv.weight"):
                out = out + self.conv_bn(p + "rbr_scale.", x, stride, 0, groups)
            if self.has(p + "rbr_skip.weight"):
                out = out + self.bn(p + "rbr_skip.", x)
            i = 0
            while self.has(p + f"rbr_conv.{i}.conv.weight"):
                out = out + self.conv_bn(p + f"rbr_conv.{i}.", x, stride, pad, groups)
                i += 1
        if se:
            g = F.relu(self.conv(p + "se.reduce.", out.mean(dim=(2, 3), keepdim=True)))
            out = out * torch.sigmoid(self.conv(p + "se.expand.", g))
        return F.gelu(out) if act else out

    def large_kernel(self, p, x, groups):
        if self.has(p + "lkb_reparam.weight"):
            out = self.conv(p + "lkb_reparam.", x, 2, 3, groups)
        else:
            out = self.conv_bn(p + "lkb_origin.", x, 2, 3, groups) + self.conv_bn(p + "small_conv.", x, 2, 1, groups)
        return F.gelu(out)

    def ffn(self, p, x, c):
        y = self.conv_bn(p + "conv.", x, 1, 3, c)
        return self.conv(p + "fc2.", F.gelu(self.conv(p + "fc1.", y)))

    def repmixer_block(self, p, x, c):
        t = p + "token_mixer."
        if self.has(t + "reparam_conv.weight"):
            x = self.conv(t + "reparam_conv.", x, 1, 1, c)
        else:
            mixed = self.mobileone(t + "mixer.", x, 3, groups=c, act=False) - self.mobileone(t + "norm.", x, 3, groups=c, act=False)
            x = x + self.sd[t + "layer_scale"] * mixed
        return x + self.sd[p + "layer_scale"] * self.ffn(p + "convffn.", x, c)

    def attention_block(self, p, x, c):
        n, _, h, w = x.shape
        u = x.mean(1, keepdim=True)
        var = ((x - u) ** 2).mean(1, keepdim=True)
        y = (x - u) / torch.sqrt(var + 1e-5) * self.sd[p + "norm.weight"][:, None, None] + self.sd[p + "norm.bias"][:, None, None]
        heads, hd = c // self.c["headDim"], self.c["headDim"]
        tokens = y.flatten(2).transpose(1, 2)
        qkv = F.linear(tokens, self.sd[p + "token_mixer.qkv.weight"]).reshape(n, h * w, 3, heads, hd).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = torch.softmax((q * hd ** -0.5) @ k.transpose(-2, -1), dim=-1)
        o = (attn @ v).transpose(1, 2).reshape(n, h * w, c)
        o = F.linear(o, self.sd[p + "token_mixer.proj.weight"], self.sd[p + "token_mixer.proj.bias"])
        x = x + self.sd[p + "layer_scale_1"] * o.transpose(1, 2).reshape(n, c, h, w)
        return x + self.sd[p + "layer_scale_2"] * self.ffn(p + "convffn.", x, c)

    def forward(self, x):
        w = self.c["widths"]
        x = self.mobileone("patch_embed.0.", x, 3, stride=2)
        x = self.mobileone("patch_embed.1.", x, 3, stride=2, groups=w[0])
        x = self.mobileone("patch_embed.2.", x, 1)
        idx = 0
        for i, c in enumerate(w):
            if self.c["positionalEncoding"][i]:
                p = f"network.{idx}."
                x = self.conv(p + "reparam_conv.", x, 1, 3, c) if self.has(p + "reparam_conv.weight") else self.conv(p + "pe.", x, 1, 3, c) + x
                idx += 1
            for b in range(self.c["depths"][i]):
                p = f"network.{idx}.{b}."
                x = self.repmixer_block(p, x, c) if self.c["tokenMixers"][i] == "repmixer" else self.attention_block(p, x, c)
            idx += 1
            if i + 1 < len(w):
                x = self.large_kernel(f"network.{idx}.proj.0.", x, c)
                x = self.mobileone(f"network.{idx}.proj.1.", x, 1)
                idx += 1
        return self.mobileone("conv_exp.", x, 3, groups=w[-1], se=True)


def main():
    config = json.loads(sys.argv[1])
    sd = read_safetensors(sys.argv[2])
    images = sd.pop("input")
    torch.set_num_threads(1)
    out = {}
    with torch.no_grad():
        out["eval"] = FastViTHD(sd, config, False).forward(images)
        if "patch_embed.0.rbr_conv.0.conv.weight" in sd:
            out["train"] = FastViTHD(sd, config, True).forward(images)
            for name, t in sd.items():
                if name.endswith(("running_mean", "running_var", "num_batches_tracked")):
                    out[name] = t
    write_safetensors(sys.argv[3], out)


if __name__ == "__main__":
    main()

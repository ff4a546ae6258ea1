#!/usr/bin/python3
"""torch_conv_ref.py: PyTorch reference values of the convolutional VAE for test_torch_conv.c: the module
of scripts/vae_mpi_torch.py (plain nn.Conv2d / nn.ConvTranspose2d / nn.Linear, the checkpoint's
contract) in float64, its forward outputs, per-image loss terms and every parameter's gradient.

Usage: /usr/bin/python3 tests/torch_conv_ref.py OUT.bin   (Debian's python3 with python3-torch)

loss = sum_b (recon_b + kl_b). File format (little-endian):
  magic    8 bytes  b"VAECNV01"
  ncases   int32
  per case:
    ints     int32[32]: decoder (0 bernoulli, 1 gaussian, 2 gaussian-learned), H, W, C, n_conv,
                        conv[8], kernel, stride, padding, n_hidden, hidden[8], latent, B, ntensors, 0...
    floats   float32[2]: sigma, logvar_min
    ntensors x (int32 name length, name bytes, int32 ndim, int32 dims[ndim], float32 values)  params
    x        float32[B*D]    images, channels last (B, H, W, C), in [0, 1]
    eps      float32[B*L]
    mulv     float32[B*2L]   [mu | logvar] per image
    out      float32[B*k*D]  decoder output per image, channels last: [out (H, W, C) | raw logvar]
    recon    float32[B]
    kl       float32[B]
    ntensors x (same record)  gradients, PyTorch layouts
"""
import os
import struct
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
import vae_mpi_torch  # noqa: E402

DECODERS = {"bernoulli": 0, "gaussian": 1, "gaussian-learned": 2}


def f32(t):
    return t.detach().to(torch.float32).contiguous().view(-1).numpy().tobytes()


def tensor_record(f, name, t):
    b = name.encode()
    f.write(struct.pack("<i", len(b)) + b + struct.pack("<i", t.dim()) + struct.pack(f"<{t.dim()}i", *t.shape))
    f.write(f32(t))


def case(f, seed, decoder, shape, conv, k, s, p, hidden, latent, B, sigma=1.0, logvar_min=-6.0, gain=1.0):
    torch.manual_seed(seed)
    H, W, C = shape
    m = vae_mpi_torch.VAE(shape, hidden, latent, decoder, sigma, logvar_min, conv, k, s, p).double()
    with torch.no_grad():
        for q in m.parameters():  # round to float32 so that both sides start from the same values
            q.mul_(gain).copy_(q.float().double())
    x = torch.rand(B, H, W, C, dtype=torch.float64).float().double()
    eps = torch.randn(B, latent, dtype=torch.float64).float().double()
    xn = x.permute(0, 3, 1, 2)
    mu, logvar = m.encode(xn)
    out = m.decode(mu + torch.exp(0.5 * logvar) * eps)
    recon = m.recon_nll(xn, out)
    kl = -0.5 * (1 + logvar - mu ** 2 - torch.exp(logvar)).sum(1)
    (recon + kl).sum().backward()
    heads = out if isinstance(out, tuple) else (out,)
    rows = torch.cat([h.permute(0, 2, 3, 1).reshape(B, -1) for h in heads], 1)  # vae_mpi's output rows
    named = list(m.state_dict(keep_vars=True).items())
    pad8 = lambda v: list(v) + [0] * (8 - len(v))
    ints = [DECODERS[decoder], H, W, C, len(conv), *pad8(conv), k, s, p, len(hidden), *pad8(hidden), latent, B,
            len(named)]
    f.write(struct.pack("<32i", *(ints + [0] * (32 - len(ints)))))
    f.write(struct.pack("<2f", sigma, logvar_min))
    for name, t in named:
        tensor_record(f, name.replace(".", "/"), t)
    for t in (x, eps, torch.cat([mu, logvar], 1), rows, recon, kl):
        f.write(f32(t))
    for name, t in named:
        tensor_record(f, name.replace(".", "/"), t.grad)


def main():
    cases = [
        # the Fashion-MNIST quality model (--conv 32,64 --hidden 256 --latent 20, k4 s2 p1)
        dict(seed=1, decoder="bernoulli", shape=(28, 28, 1), conv=[32, 64], k=4, s=2, p=1, hidden=[256], latent=20,
             B=4),
        # colour, non-square, k3 s2 p1 (12x10 -> 6x5 -> 3x3: output_padding 1 then 0 on the width), no hidden
        dict(seed=2, decoder="gaussian", shape=(12, 10, 3), conv=[8, 16], k=3, s=2, p=1, hidden=[], latent=6, B=5,
             sigma=0.3, gain=1.5),
        # stride 1, kernel 5, padding 2, two hidden layers, the learned variance straddling its floor
        dict(seed=3, decoder="gaussian-learned", shape=(9, 11, 2), conv=[4], k=5, s=1, p=2, hidden=[16, 8], latent=3,
             B=3, logvar_min=-0.3, gain=2.0),
        # three conv layers (16 -> 8 -> 4 -> 2), colour
        dict(seed=4, decoder="bernoulli", shape=(16, 16, 3), conv=[8, 8, 16], k=4, s=2, p=1, hidden=[32], latent=4,
             B=2, gain=1.5),
        # colour non-square with the learned variance (two fused transposed-conv heads)
        dict(seed=5, decoder="gaussian-learned", shape=(12, 10, 3), conv=[8, 16], k=3, s=2, p=1, hidden=[12],
             latent=5, B=3, logvar_min=-1.0, gain=1.5),
    ]
    with open(sys.argv[1], "wb") as f:
        f.write(b"VAECNV01")
        f.write(struct.pack("<i", len(cases)))
        for c in cases:
            case(f, **c)


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""torch_ref.py: writes PyTorch reference values of the VAE's loss terms and gradients for
test_torch_ref.c, which runs our forward/backward on the same inputs and compares tensor by tensor.

Usage: /usr/bin/python3 tests/torch_ref.py OUT.bin   (Debian's python3 with python3-torch)

The model is built from nn.Linear layers exactly as PyTorch's examples/vae (fc1, fc21/fc22, fc3, fc4)
generalised to several hidden layers and three decoders; the reference runs in float64 and the results
are cast to float32 when written. loss = sum_b (recon_b + kl_b) (kl_weight 1, scale 1).

File format (little-endian):
  magic    8 bytes  b"VAEREF01"
  ncases   int32
  per case:
    ints     int32[16]: decoder (0 bernoulli, 1 gaussian, 2 gaussian-learned), in_h, in_w, in_c,
                        n_hidden, hidden[8] (unused = 0), latent, B, 0
    floats   float32[2]: sigma, logvar_min
    P        int64: number of parameters
    params   float32[P]     flat, in vae.h's layout order (weights (out, in) row-major)
    x        float32[B*D]   images in [0, 1]
    eps      float32[B*L]   reparameterization noise
    recon    float32[B]     -log p(x|z) per image
    kl       float32[B]     KL(q(z|x) || N(0, I)) per image
    grad     float32[P]     d loss / d params, same layout as params
"""
import math
import struct
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

BERNOULLI, GAUSSIAN, LEARNED = 0, 1, 2


class VAE(nn.Module):
    def __init__(self, D, hidden, latent, decoder):
        super().__init__()
        widths = [D] + list(hidden)
        self.enc = nn.ModuleList(nn.Linear(widths[i], widths[i + 1]) for i in range(len(hidden)))
        h = widths[-1]
        self.mu = nn.Linear(h, latent)
        self.logvar = nn.Linear(h, latent)
        rev = [latent] + list(reversed(hidden))
        self.dec = nn.ModuleList(nn.Linear(rev[i], rev[i + 1]) for i in range(len(hidden)))
        self.out = nn.Linear(rev[-1], D)
        self.out_logvar = nn.Linear(rev[-1], D) if decoder == LEARNED else None

    def flat(self):
        """Parameters in vae.h's layout order: fused heads put both weights before both biases."""
        t = []
        for l in self.enc:
            t += [l.weight, l.bias]
        t += [self.mu.weight, self.logvar.weight, self.mu.bias, self.logvar.bias]
        for l in self.dec:
            t += [l.weight, l.bias]
        if self.out_logvar is None:
            t += [self.out.weight, self.out.bias]
        else:
            t += [self.out.weight, self.out_logvar.weight, self.out.bias, self.out_logvar.bias]
        return t


def losses(model, x, eps, decoder, sigma, logvar_min):
    h = x
    for l in model.enc:
        h = F.relu(l(h))
    mu, logvar = model.mu(h), model.logvar(h)
    z = mu + torch.exp(0.5 * logvar) * eps
    h = z
    for l in model.dec:
        h = F.relu(l(h))
    out = model.out(h)
    if decoder == BERNOULLI:
        recon = F.binary_cross_entropy_with_logits(out, x, reduction="none").sum(1)
    elif decoder == GAUSSIAN:
        s2 = sigma * sigma
        recon = ((x - out) ** 2 / (2 * s2) + 0.5 * math.log(2 * math.pi * s2)).sum(1)
    else:
        # the same smooth floor as loss.c: lv = logvar_min + softplus(r - logvar_min)
        r = model.out_logvar(h)
        lv = logvar_min + F.softplus(r - logvar_min)
        recon = ((x - out) ** 2 / (2 * torch.exp(lv)) + 0.5 * (math.log(2 * math.pi) + lv)).sum(1)
    kl = -0.5 * (1 + logvar - mu ** 2 - torch.exp(logvar)).sum(1)
    return recon, kl


def f32(t):
    return t.detach().to(torch.float32).contiguous().view(-1).numpy().tobytes()


def case(f, seed, decoder, shape, hidden, latent, B, sigma=1.0, logvar_min=-6.0, weight_gain=1.0):
    torch.manual_seed(seed)
    D = shape[0] * shape[1] * shape[2]
    model = VAE(D, hidden, latent, decoder).double()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(weight_gain)
    x = torch.rand(B, D, dtype=torch.float64)
    eps = torch.randn(B, latent, dtype=torch.float64)
    # round the inputs to float32 first, so both sides start from identical values
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.float().double())
    x, eps = x.float().double(), eps.float().double()
    recon, kl = losses(model, x, eps, decoder, sigma, logvar_min)
    (recon + kl).sum().backward()
    flat = model.flat()
    P = sum(t.numel() for t in flat)
    hid = list(hidden) + [0] * (8 - len(hidden))
    f.write(struct.pack("<16i", decoder, *shape, len(hidden), *hid, latent, B, 0))
    f.write(struct.pack("<2f", sigma, logvar_min))
    f.write(struct.pack("<q", P))
    for t in flat:
        f.write(f32(t))
    f.write(f32(x))
    f.write(f32(eps))
    f.write(f32(recon))
    f.write(f32(kl))
    for t in flat:
        f.write(f32(t.grad))


def main():
    cases = [
        # PyTorch examples/vae: 784-400-20-400-784, batch 16
        dict(seed=1, decoder=BERNOULLI, shape=(28, 28, 1), hidden=[400], latent=20, B=16),
        dict(seed=2, decoder=GAUSSIAN, shape=(28, 28, 1), hidden=[400], latent=20, B=16, sigma=0.7),
        dict(seed=3, decoder=LEARNED, shape=(28, 28, 1), hidden=[400], latent=20, B=16),
        # two hidden layers, an RGB-like shape; larger weights; the learned floor straddled
        dict(seed=4, decoder=BERNOULLI, shape=(6, 5, 2), hidden=[32, 16], latent=4, B=5, weight_gain=2.0),
        dict(seed=5, decoder=GAUSSIAN, shape=(6, 5, 2), hidden=[32, 16], latent=4, B=5, sigma=0.3,
             weight_gain=2.0),
        dict(seed=6, decoder=LEARNED, shape=(6, 5, 2), hidden=[32, 16], latent=4, B=5, logvar_min=-0.3,
             weight_gain=2.0),
    ]
    with open(sys.argv[1], "wb") as f:
        f.write(b"VAEREF01")
        f.write(struct.pack("<i", len(cases)))
        for c in cases:
            case(f, **c)


if __name__ == "__main__":
    main()

"""`vae_mpi import-images --size HxW`: centre crop and resize checked against a direct computation.

For every output pixel, the expected value is computed here from the definitions, in exact fractions,
not from the C code's separable passes: the crop is torchvision's CenterCrop of the largest region
with the target's aspect ratio (the other side rounded to nearest, the corner int(round(d / 2)));
along an axis that shrinks, an output pixel is the mean of the input area it covers (partial pixels
by overlap); along one that grows, bilinear interpolation at the half-pixel centre
((i + 0.5) n / m - 0.5, clamped to the edge pixels). The C result must be that value rounded to
nearest (within 1e-9 of a tie either way). Pillow's resize is a second opinion where it implements
the same filter (BILINEAR when enlarging both axes, BOX for whole-number shrink factors), within one
level. Folders of mixed sizes and grey images go through too. Env: VAE_MPI."""
import atexit
import os
import shutil
import subprocess
import sys
import tempfile
from fractions import Fraction

import h5py
import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vaetest import VAE_MPI, check, done  # noqa: E402

tmp = tempfile.mkdtemp(prefix="vae_image_resize_")
atexit.register(shutil.rmtree, tmp, True)  # also when a check raises
rng = np.random.default_rng(5)


def crop_box(h, w, H, W):
    ch, cw = h, w
    if w * H > h * W:
        cw = int(Fraction(h * W, H) + Fraction(1, 2))  # nearest (halves up)
    elif w * H < h * W:
        ch = int(Fraction(w * H, W) + Fraction(1, 2))
    return int(round((h - ch) / 2.0)), int(round((w - cw) / 2.0)), max(ch, 1), max(cw, 1)


def weights(n, m):
    """(m, n) matrix: output pixel i's weight on input pixel j, from the definitions."""
    wt = [[Fraction(0)] * n for _ in range(m)]
    for i in range(m):
        if m < n:  # the area of [i n/m, (i+1) n/m) that pixel [j, j+1) covers, over its length
            lo, hi = Fraction(i * n, m), Fraction((i + 1) * n, m)
            for j in range(n):
                ov = min(hi, j + 1) - max(lo, j)
                if ov > 0:
                    wt[i][j] = ov / (hi - lo)
        elif m > n:
            x = min(max(Fraction(2 * i + 1, 2) * n / m - Fraction(1, 2), 0), n - 1)
            j0 = int(x)
            t = x - j0
            wt[i][j0] += 1 - t
            if t:
                wt[i][j0 + 1] += t
        else:
            wt[i][i] = Fraction(1)
    return wt


def direct(img, H, W):
    """The float expected image (H, W, C): every output pixel summed over the 2-d footprint."""
    h, w, c = img.shape
    top, left, ch, cw = crop_box(h, w, H, W)
    region = img[top : top + ch, left : left + cw].astype(np.float64)
    wy = np.array([[float(v) for v in r] for r in weights(ch, H)])
    wx = np.array([[float(v) for v in r] for r in weights(cw, W)])
    out = np.zeros((H, W, c))
    for y in range(H):
        for x in range(W):
            out[y, x] = np.tensordot(np.outer(wy[y], wx[x]), region, axes=([0, 1], [0, 1]))
    return out


def import_size(name, images, H, W, mode):
    d = os.path.join(tmp, name)
    os.makedirs(os.path.join(d, "k"))
    for i, a in enumerate(images):
        Image.fromarray(a.squeeze(), mode).save(os.path.join(d, "k", f"{i:02d}.png"))
    out = os.path.join(tmp, name + ".h5")
    p = subprocess.run([VAE_MPI, "import-images", "--dir", d, "--out", out, "--size", f"{H}x{W}"],
                       capture_output=True, text=True, timeout=120)
    check(p.returncode == 0, f"{name}: exit {p.returncode}: {p.stderr}")
    if p.returncode:
        return None
    with h5py.File(out, "r") as f:
        check("centre-cropped" in f["train/images"].attrs["size_policy"], "size_policy names the crop")
        return f["train/images"][...]


# (source sizes h x w, target H x W): crops of width and of height, shrink by whole and by fractional
# factors, enlarge, one axis of each, and the identity.
cases = [
    ([(9, 13), (6, 6), (12, 8), (5, 5), (7, 3)], 4, 4),
    ([(6, 6), (10, 10), (4, 4), (3, 9)], 3, 3),
    ([(4, 5), (2, 3), (5, 4)], 9, 11),
    ([(10, 4), (3, 8), (8, 3)], 3, 8),
    ([(7, 7), (11, 5)], 5, 5),
]
worst = 0.0
for k, (sizes, H, W) in enumerate(cases):
    for c, mode in ((3, "RGB"), (1, "L")):
        imgs = [rng.integers(0, 256, (h, w, c), dtype=np.uint8) for h, w in sizes]
        got = import_size(f"case{k}_{mode}", imgs, H, W, mode)
        if got is None:
            continue
        check(got.shape == (len(imgs), H, W, c), f"case {k} {mode}: shape {got.shape}")
        for i, a in enumerate(imgs):
            ref = direct(a, H, W)
            err = np.abs(got[i].astype(np.float64) - ref)
            worst = max(worst, float(err.max()))
            check(err.max() <= 0.5 + 1e-9, f"{sizes[i]} -> {H}x{W} {mode}: off by {err.max():.3f} from the direct value")
            # Pillow, where its filter is the same one.
            h, w = sizes[i]
            top, left, ch, cw = crop_box(h, w, H, W)
            pil = Image.fromarray(a.squeeze(), mode).crop((left, top, left + cw, top + ch))
            if H >= ch and W >= cw:
                pr = np.array(pil.resize((W, H), Image.BILINEAR)).reshape(H, W, c)
            elif ch % H == 0 and cw % W == 0:
                pr = np.array(pil.resize((W, H), Image.BOX)).reshape(H, W, c)
            else:
                continue
            pd = np.abs(pr.astype(int) - got[i].astype(int)).max()
            check(pd <= 1, f"{sizes[i]} -> {H}x{W} {mode}: {pd} levels from Pillow's resize")
print(f"test_image_resize: worst distance from the direct value {worst:.4f} levels (<= 0.5: correctly rounded)")

# The crop corner on ties is Python's round (to even), as torchvision: h - ch = 1, 3, 5 -> 0, 2, 2.
for h, want_top in ((5, 0), (7, 2), (9, 2)):
    check(crop_box(h, 4, 1, 1)[0] == want_top, f"reference crop corner for h = {h}")
a = np.zeros((9, 4, 3), np.uint8)
a[2:6] = 200  # rows 2..5 are the crop torchvision takes (top = round(5 / 2) = 2)
got = import_size("tie", [a], 2, 2, "RGB")
check(got is not None and int(got.min()) == 200, "crop corner on a tie: rows 2..5 (round half to even)")

done("test_image_resize")

"""Test images made by integer arithmetic (no random-number library whose stream could change between
numpy versions): 8 binary prototypes with a few percent of the pixels flipped by a splitmix64 hash of
(image, pixel). Used where a test's expected numbers are stored or must be reproduced exactly."""
import h5py
import numpy as np


def splitmix64(x):
    """splitmix64 over a uint64 array (Steele, Lea and Flood 2014)."""
    with np.errstate(over="ignore"):
        z = x + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def images(n, first, side, flip_percent=4):
    """n images of side x side, uint8 0 or 255; image k = first + i, so a test set can follow the train set."""
    k = np.arange(first, first + n, dtype=np.uint64)[:, None]
    pix = np.arange(side * side, dtype=np.uint64)[None, :]
    protos = splitmix64(np.arange(8 * side * side, dtype=np.uint64)) % np.uint64(100) < np.uint64(35)
    protos = protos.reshape(8, side * side)
    cls = (splitmix64(k[:, 0] * np.uint64(7919)) % np.uint64(8)).astype(np.int64)
    flip = splitmix64(k * np.uint64(1 << 20) + pix) % np.uint64(100) < np.uint64(flip_percent)
    return ((protos[cls] ^ flip).astype(np.uint8) * 255).reshape(n, side, side)


def write(path, n_train, n_test, side, dtype="uint8"):
    """train/images and test/images, uint8 or float32 in [0, 1]."""
    with h5py.File(path, "w") as f:
        for name, n, first in (("train/images", n_train, 0), ("test/images", n_test, n_train)):
            x = images(n, first, side)
            f.create_dataset(name, data=x if dtype == "uint8" else (x / 255.0).astype(np.float32))

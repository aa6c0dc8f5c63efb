"""graft's random streams in numpy (engine/rng.h, engine/finetune.c), so that a
PyTorch reference can take the same random choices as a graft run: the new
classifier's initial weights, each epoch's shuffle and each step's dropout.

Every value is a pure function of (seed, counter): SplitMix64's finaliser over
a seed-keyed counter. Vectorised over counters with numpy's wrapping uint64
arithmetic.
"""
import numpy as np

M64 = (1 << 64) - 1
C1, C2, C3 = 0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB

# engine/finetune.c's stream tags
TAG_INIT, TAG_SHUFFLE, TAG_AUGMENT, TAG_DROPOUT = 1, 2, 3, 4


def u64(seed, counter):
    """graft_rng_u64 of one Python int counter."""
    z = (seed * C1 + (counter + 1) * C2) & M64
    z ^= z >> 30
    z = (z * C2) & M64
    z ^= z >> 27
    z = (z * C3) & M64
    z ^= z >> 31
    return z


def u64_array(seed, first, count):
    """graft_rng_u64(seed, first + i) for i in range(count), as a uint64 array."""
    with np.errstate(over="ignore"):
        c = np.arange(first + 1, first + 1 + count, dtype=np.uint64)
        z = np.uint64(seed * C1 & M64) + c * np.uint64(C2)
        z ^= z >> np.uint64(30)
        z *= np.uint64(C2)
        z ^= z >> np.uint64(27)
        z *= np.uint64(C3)
        z ^= z >> np.uint64(31)
    return z


def stream(seed, tag, a, b):
    """engine/finetune.c's stream(): the seed of one kind of choice at one position."""
    return u64(u64(seed, tag), ((a << 32) ^ b) & M64)


def uniform_doubles(seed, first, count):
    """graft_rng_double of a sequential generator from counter `first`."""
    return (u64_array(seed, first, count) >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


def uniform_floats(seed, first, count):
    """graft_rng_uniform (24 bits) for counters first .. first + count - 1."""
    return (u64_array(seed, first, count) >> np.uint64(40)).astype(np.float32) * np.float32(
        1.0 / (1 << 24))


def linear_init(seed, j, out_features, in_features, chunk=1 << 23):
    """The j-th Linear from the end of a new classifier (j = 0: the last), as
    finetune initialises it: weight then bias uniform in +-1/sqrt(in), from
    stream(seed, TAG_INIT, j, 0). Returns float32 (weight [out, in], bias [out])."""
    s = stream(seed, TAG_INIT, j, 0)
    bound = 1.0 / np.sqrt(float(in_features))
    n = out_features * in_features
    w = np.empty(n, dtype=np.float32)
    for first in range(0, n, chunk):
        k = min(chunk, n - first)
        w[first:first + k] = ((uniform_doubles(s, first, k) * 2 - 1) * bound).astype(np.float32)
    b = ((uniform_doubles(s, n, out_features) * 2 - 1) * bound).astype(np.float32)
    return w.reshape(out_features, in_features), b


def shuffle(seed, epoch, n):
    """The training order of an epoch: Fisher-Yates with graft_rng_below."""
    s, counter = stream(seed, TAG_SHUFFLE, epoch, 0), 0
    order = list(range(n))
    for i in range(n - 1, 0, -1):
        bound = i + 1
        limit = M64 - M64 % bound
        while True:
            v = u64(s, counter)
            counter += 1
            if v < limit:
                break
        j = v % bound
        order[i], order[j] = order[j], order[i]
    return order


def dropout_keep(seed, epoch, step, offset, count, p):
    """The keep mask graft draws for `count` activations from `offset` of a
    training step's dropout stream (uniform >= p)."""
    s = stream(seed, TAG_DROPOUT, epoch, step)
    return uniform_floats(s, offset, count) >= np.float32(p)

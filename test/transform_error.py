#!/usr/bin/env python3
"""How many bits FFT and Winograd convolutions cost in float32: the measured
bound behind test_cuda_ops' fp32-strict tolerances for cuDNN engines whose
numerical notes say FFT or WINOGRAD.

For the convolutions test_cuda_ops runs (the same shapes, inputs uniform in
[-1, 1], weights and bias uniform in +-1/sqrt(fan_in)), each computed in
float32 arithmetic four ways and compared with a float64 direct convolution
by the relative L2 error ||y - ref|| / ||ref||:
  direct   torch's float32 convolution (a GEMM)
  fft      the whole padded image through rfft2/irfft2, channels summed in the
           frequency domain, complex64 throughout (cuDNN's FFT engines; its
           FFT_TILING ones use 32x32 tiles, shorter transforms, less error)
  wino2/4/6  Winograd F(2x2,3x3), F(4x4,3x3), F(6x6,3x3) with the usual
           interpolation points (0, +-1, +-2, +-1/2), transforms and the
           channel sum in float32 (3x3, stride 1 layers only)
Prints one row per shape and the largest error of each method over 3 seeds.

    /usr/bin/python3 test/transform_error.py
"""
import torch

torch.set_default_dtype(torch.float64)

SHAPES = [  # n, c, h, w, k, r, stride, pad (test_cuda_ops.c, convs[])
    (1, 3, 224, 224, 64, 11, 4, 2), (2, 64, 27, 27, 192, 5, 1, 2),
    (4, 64, 56, 56, 128, 3, 1, 1), (3, 16, 13, 15, 8, 3, 1, 1),
    (8, 512, 14, 14, 512, 3, 1, 1), (2, 3, 256, 300, 64, 11, 4, 2)]


def rel(y, ref):
    return float((y.double() - ref).norm() / ref.norm())


def fft_conv(x, w, stride, pad):
    n, c, h, wd = x.shape
    k, _, r, _ = w.shape
    xp = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    H, W = xp.shape[2], xp.shape[3]
    X = torch.fft.rfft2(xp, s=(H, W))                       # [n, c, H, W/2+1] complex64
    Wf = torch.fft.rfft2(w.flip(2, 3), s=(H, W))            # [k, c, ...]: correlation
    Y = torch.einsum("nchw,kchw->nkhw", X, Wf)              # channel sum in complex64
    y = torch.fft.irfft2(Y, s=(H, W))
    return y[:, :, r - 1::stride, r - 1::stride][:, :, :(H - r) // stride + 1, :(W - r) // stride + 1]


def poly(roots):
    """Coefficients, lowest first, of prod (x - r)."""
    c = [1.0]
    for r in roots:
        c = [(c[i - 1] if i > 0 else 0.0) - r * (c[i] if i < len(c) else 0.0)
             for i in range(len(c) + 1)]
    return c


def winograd_mats(m, r=3):
    """A^T, G, B^T of F(m x m, r x r): the modified Toom-Cook construction with
    finite points 0, +-1, +-2, +-1/2 (as many as needed) and the point at infinity."""
    n = m + r - 1
    pts = [0.0, 1.0, -1.0, 2.0, -2.0, 0.5, -0.5][:n - 1]
    At = torch.zeros(m, n)
    G = torch.zeros(n, r)
    Bt = torch.zeros(n, n)
    for j, p in enumerate(pts):
        f = 1.0
        for q in pts:
            f *= (p - q) if q != p else 1.0
        At[:, j] = torch.tensor([p ** i for i in range(m)])
        G[j] = torch.tensor([p ** i / f for i in range(r)])
        Bt[j, :n - 1] = torch.tensor(poly([q for q in pts if q != p]))
    At[m - 1, n - 1] = 1.0
    G[n - 1, r - 1] = 1.0
    Bt[n - 1] = torch.tensor(poly(pts))
    return At, G, Bt


def winograd_conv(x, w, b, m):
    """F(m x m, 3 x 3), stride 1, in float32 (transforms from float64 constants)."""
    At, G, Bt = (t.to(x.dtype) for t in winograd_mats(m))
    a = m + 2
    n, c, h, wd = x.shape
    k = w.shape[0]
    xp = torch.nn.functional.pad(x, (1, 1, 1, 1))
    oh, ow = h, wd
    th, tw = -(-oh // m), -(-ow // m)
    xp = torch.nn.functional.pad(xp, (0, tw * m + 2 - xp.shape[3], 0, th * m + 2 - xp.shape[2]))
    U = torch.einsum("ij,kcjl,ml->kcim", G, w, G)           # [k, c, a, a]
    tiles = xp.unfold(2, a, m).unfold(3, a, m)              # [n, c, th, tw, a, a]
    V = torch.einsum("ij,nctujl,ml->nctuim", Bt, tiles, Bt)  # input transform
    M = torch.einsum("kcim,nctuim->nktuim", U, V)           # channel sum, float32
    Y = torch.einsum("ij,nktujl,ml->nktuim", At, M, At)     # [n, k, th, tw, m, m]
    y = Y.permute(0, 1, 2, 4, 3, 5).reshape(n, k, th * m, tw * m)[:, :, :oh, :ow]
    return y + b.view(1, -1, 1, 1)


def self_check():
    """The transforms are exact in float64: the errors measured are float32's."""
    g = torch.Generator().manual_seed(9)
    x, w, b = torch.rand(2, 5, 13, 15, generator=g), torch.rand(4, 5, 3, 3, generator=g), torch.rand(4)
    ref = torch.nn.functional.conv2d(x, w, b, 1, 1)
    for m in (2, 4, 6):
        assert rel(winograd_conv(x, w, b, m), ref) < 1e-12, "Winograd F(%d,3) is wrong" % m
    for stride, pad in ((1, 1), (2, 1)):
        ref = torch.nn.functional.conv2d(x, w, b, stride, pad)
        assert rel(fft_conv(x, w, stride, pad) + b.view(1, -1, 1, 1), ref) < 1e-12, "FFT is wrong"


def main():
    self_check()
    worst = {}
    print("%-34s %10s %10s %10s %10s %10s" % ("shape", "direct", "fft", "wino2", "wino4",
                                               "wino6"))
    for seed in range(3):
        g = torch.Generator().manual_seed(seed)
        for (n, c, h, w_, k, r, stride, pad) in SHAPES:
            bound = 1.0 / (c * r * r) ** 0.5
            x = torch.rand(n, c, h, w_, generator=g) * 2 - 1
            wt = (torch.rand(k, c, r, r, generator=g) * 2 - 1) * bound
            bias = (torch.rand(k, generator=g) * 2 - 1) * bound
            ref = torch.nn.functional.conv2d(x, wt, bias, stride, pad)
            xf, wf, bf = x.float(), wt.float(), bias.float()
            errs = {"direct": rel(torch.nn.functional.conv2d(xf, wf, bf, stride, pad), ref),
                    "fft": rel(fft_conv(xf, wf, stride, pad) + bf.view(1, -1, 1, 1), ref)}
            if r == 3 and stride == 1 and pad == 1:
                for m in (2, 4, 6):
                    errs["wino%d" % m] = rel(winograd_conv(xf, wf, bf, m), ref)
            for key, v in errs.items():
                worst[key] = max(worst.get(key, 0.0), v)
            if seed == 0:
                print("%-34s " % ("%dx%dx%dx%d k%d %dx%d/%d" % (n, c, h, w_, k, r, r, stride)) +
                      " ".join("%10.2e" % errs[m] if m in errs else "%10s" % "-"
                               for m in ("direct", "fft", "wino2", "wino4", "wino6")))
    print("largest over 3 seeds: " + ", ".join("%s %.2e" % kv for kv in sorted(worst.items())))


if __name__ == "__main__":
    main()

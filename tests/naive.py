"""Slow, obviously correct direct convolutions used as independent models by the tests."""

import numpy as np


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def conv2d(image, kernel, stride=1, padding=0, dilation=1, groups=1):
    """torch.nn.functional.conv2d on (H, W, C) with a (KH, KW, C/groups, F) kernel."""
    image = np.asarray(image, dtype=np.int64)
    kernel = np.asarray(kernel, dtype=np.int64)
    (sy, sx), (py, px), (dy, dx) = _pair(stride), _pair(padding), _pair(dilation)
    H, W, C = image.shape
    KH, KW, CG, F = kernel.shape
    FG = F // groups
    OH = (H + 2 * py - dy * (KH - 1) - 1) // sy + 1
    OW = (W + 2 * px - dx * (KW - 1) - 1) // sx + 1
    out = np.zeros((OH, OW, F), dtype=np.int64)
    for oy in range(OH):
        for ox in range(OW):
            for f in range(F):
                g = f // FG
                acc = 0
                for ky in range(KH):
                    for kx in range(KW):
                        iy = oy * sy - py + ky * dy
                        ix = ox * sx - px + kx * dx
                        if not (0 <= iy < H and 0 <= ix < W):
                            continue  # zero padding
                        for cc in range(CG):
                            acc += int(image[iy, ix, g * CG + cc]) * int(kernel[ky, kx, cc, f])
                out[oy, ox, f] = acc
    return out


def conv_transpose2d(image, kernel, stride=1, padding=0, dilation=1, groups=1):
    """torch.nn.functional.conv_transpose2d (output_padding 0) on (H, W, C) with a
    (KH, KW, C, F/groups) kernel, written as a scatter: every input pixel adds its
    contribution to the output pixels oy = iy·s − p + ky·d."""
    image = np.asarray(image, dtype=np.int64)
    kernel = np.asarray(kernel, dtype=np.int64)
    (sy, sx), (py, px), (dy, dx) = _pair(stride), _pair(padding), _pair(dilation)
    H, W, C = image.shape
    KH, KW, _, FG = kernel.shape
    CG = C // groups
    F = FG * groups
    OH = (H - 1) * sy - 2 * py + dy * (KH - 1) + 1
    OW = (W - 1) * sx - 2 * px + dx * (KW - 1) + 1
    out = np.zeros((OH, OW, F), dtype=np.int64)
    for iy in range(H):
        for ix in range(W):
            for c in range(C):
                g = c // CG
                for ky in range(KH):
                    for kx in range(KW):
                        oy = iy * sy - py + ky * dy
                        ox = ix * sx - px + kx * dx
                        if not (0 <= oy < OH and 0 <= ox < OW):
                            continue
                        for j in range(FG):
                            out[oy, ox, g * FG + j] += int(image[iy, ix, c]) * int(kernel[ky, kx, c, j])
    return out

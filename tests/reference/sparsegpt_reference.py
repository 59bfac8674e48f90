#!/usr/bin/env python3
"""Independent NumPy reference for SparseGPT (Frantar and Alistarh 2023, Algorithm 1).

Makes a weight matrix W (R, K) and correlated calibration inputs X (N, K) from a fixed
NumPy seed, prunes W with SparseGPT in float64 for several patterns, and writes into
--out DIR:
  weight.f64 (R, K), gram.f64 (K, K) = X^T X   raw little-endian float64
  pruned_<name>.f64 (R, K)                     one per pattern
  cases.json                                   shapes, patterns, block size, dampening
Deviation from the published code, shared with the C++ implementation: an unstructured
block removes exactly its cumulative-rounding share of round(s * R * K) weights (the
published code keeps every weight <= a threshold, which can remove one more).
"""
import argparse
import json
import os

import numpy as np

R, K, N = 48, 96, 2048
BLOCK = 32
DAMPENING = 0.01
CASES = [("s50", 0.5, 0, 0), ("s75", 0.75, 0, 0), ("s90", 0.9, 0, 0), ("nm24", 0.0, 2, 4), ("nm78", 0.0, 7, 8)]


def make_data():
    """Correlated inputs of uneven scale and a random weight matrix."""
    rng = np.random.default_rng(1234)
    sources = rng.standard_normal((N, K // 4))
    mix = rng.standard_normal((K // 4, K))
    x = (sources @ mix + 0.1 * rng.standard_normal((N, K))) * np.linspace(0.2, 3.0, K)
    w = rng.standard_normal((R, K))
    return w, x.T @ x


def inverse_hessian_factor(gram):
    """Upper Cholesky factor of (2 gram + dampening * mean diag * I)^-1."""
    h = 2.0 * gram.copy()
    dead = np.diag(h) == 0
    h[dead, dead] = 1.0
    h += DAMPENING * np.mean(np.diag(h)) * np.eye(K)
    hinv = np.linalg.inv(h)
    return np.linalg.cholesky(hinv).T  # upper: hinv = U^T U


def sparsegpt(w, gram, sparsity, n, m):
    """Prune w (R, K) column block by column block with OBS updates."""
    w = w.copy()
    w[:, np.diag(gram) == 0] = 0
    u = inverse_hessian_factor(gram)
    removed_so_far = 0
    for start in range(0, K, BLOCK):
        end = min(start + BLOCK, K)
        w1 = w[:, start:end].copy()
        u1 = u[start:end, start:end]
        err1 = np.zeros_like(w1)
        mask = np.zeros(w1.shape, dtype=bool)
        if m == 0:
            target = int(np.floor(sparsity * R * end + 0.5))
            count = target - removed_so_far
            removed_so_far = target
            scores = (w1 ** 2 / np.diag(u1)[None, :] ** 2).ravel()
            order = np.argsort(scores, kind="stable")
            mask.ravel()[order[:count]] = True
        for i in range(end - start):
            if m and i % m == 0:
                scores = w1[:, i:i + m] ** 2 / np.diag(u1)[i:i + m][None, :] ** 2
                smallest = np.argsort(scores, axis=1, kind="stable")[:, :n]
                np.put_along_axis(mask[:, i:i + m], smallest, True, axis=1)
            col = w1[:, i]
            q = np.where(mask[:, i], 0.0, col)
            err = (col - q) / u1[i, i]
            w1[:, i:] -= np.outer(err, u1[i, i:])
            w1[:, i] = q
            err1[:, i] = err
        w[:, start:end] = w1
        w[:, end:] -= err1 @ u[start:end, end:]
    return w


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    out = parser.parse_args().out
    os.makedirs(out, exist_ok=True)
    w, gram = make_data()
    w.astype("<f8").tofile(os.path.join(out, "weight.f64"))
    gram.astype("<f8").tofile(os.path.join(out, "gram.f64"))
    for name, sparsity, n, m in CASES:
        pruned = sparsegpt(w, gram, sparsity, n, m)
        pruned.astype("<f8").tofile(os.path.join(out, "pruned_%s.f64" % name))
        err = np.sqrt(np.trace((w - pruned) @ gram @ (w - pruned).T) / np.trace(w @ gram @ w.T))
        print("%-5s zeros %d of %d, relative error %.4f" % (name, np.sum(pruned == 0), pruned.size, err))
    cases = [{"name": c[0], "sparsity": c[1], "n": c[2], "m": c[3]} for c in CASES]
    with open(os.path.join(out, "cases.json"), "w") as f:
        json.dump({"rows": R, "cols": K, "block_size": BLOCK, "dampening": DAMPENING, "cases": cases}, f)


if __name__ == "__main__":
    main()

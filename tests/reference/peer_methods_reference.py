#!/usr/bin/env python3
"""Independent NumPy reference for the peer methods' prompted forward (issue 18): LoRA, IA3,
prefix tuning and multitask prompt tuning on a random llama2.c model, in float64.

Writes, into --out DIR:
  model.bin                      a random llama2.c v0 checkpoint (tied classifier)
  METHOD.safetensors             the method's state under mops' /state/ names (float32)
  METHOD.logits.f32              raw little-endian float32 (T, vocab): the logits of the tokens
  peers.json                     ids, task, the methods' settings, logits_shape

The forward is written from the papers and PEFT's definitions, not from mops' code: the first
prompts P0 (K0, C) go in front of the token embeddings at positions 0 .. K0 - 1 and run through the
layers below L_mid unchanged; from L_mid on
  lora:   every projection y = W x gains (alpha / r) B (A x) (all seven matrices here);
  ia3:    keys (before RoPE), values and the SwiGLU hidden units are scaled elementwise;
  prefix: N learned keys and values without position are put in front of each layer's own, and
          every query attends to all of them;
  mpt:    P0's rows are replaced by the shared prompts times u_t v_t^T (elementwise) for the
          example's task t, which then take positions 0 .. N - 1.
NumPy only; llama2c_reference.py's RMSNorm, RoPE angles and safetensors writer.
"""
import argparse
import json
import os
import sys

import numpy as np

from llama2c_reference import CheckError, check, rmsnorm, rope_angles, write_safetensors

CONFIG = {"dim": 32, "hidden_dim": 48, "n_layers": 4, "n_heads": 4, "n_kv_heads": 2, "vocab_size": 64, "seq_len": 96}
MID = 2            # L_mid = L / 2: the layers 2 and 3 adapt
K0, E, P = 3, 4, 2  # first prompts, experts, prompts per expert: N = E P = 8 prefix or mid prompts
RANK, ALPHA = 4, 8.0
TARGETS = ["wq", "wk", "wv", "wo", "w1", "w2", "w3"]
TASKS, TASK = 3, 1
IDS = [1, 17, 5, 33, 60, 2, 9, 41, 12, 7, 50, 3, 28, 19]
METHODS = ("lora", "ia3", "prefix", "mpt")


def random_model(rng):
    """llama2.c weights (out, in) with per-matrix scale 1/sqrt(in), norms near 1."""
    d, hid, L, H, KVH, V = (CONFIG[k] for k in ("dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size"))
    kvd = d * KVH // H

    def matrices(out, inp):
        return rng.standard_normal((L, out, inp)) / np.sqrt(inp)

    return {"tok_emb": rng.standard_normal((V, d)), "rms_att": 1 + 0.1 * rng.standard_normal((L, d)),
            "wq": matrices(d, d), "wk": matrices(kvd, d), "wv": matrices(kvd, d), "wo": matrices(d, d),
            "rms_ffn": 1 + 0.1 * rng.standard_normal((L, d)), "w1": matrices(hid, d), "w2": matrices(d, hid),
            "w3": matrices(hid, d), "rms_final": 1 + 0.1 * rng.standard_normal(d)}


def write_llama2c(path, w):
    """A llama2.c v0 file: 7 int32 header fields, then float32 tensors (tied: positive vocab)."""
    hs = CONFIG["dim"] // CONFIG["n_heads"]
    angles = rope_angles(CONFIG["seq_len"], hs)
    order = ["tok_emb", "rms_att", "wq", "wk", "wv", "wo", "rms_ffn", "w1", "w2", "w3", "rms_final"]
    with open(path, "wb") as f:
        f.write(np.array([CONFIG[k] for k in ("dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads",
                                              "vocab_size", "seq_len")], "<i4").tobytes())
        for name in order:
            f.write(np.ascontiguousarray(w[name], "<f4").tobytes())
        f.write(np.cos(angles).astype("<f4").tobytes() + np.sin(angles).astype("<f4").tobytes())
    # The file holds float32: the reference computes with exactly those values.
    return {k: v.astype(np.float32).astype(np.float64) for k, v in w.items()}


def rope(x, start):
    """llama2.c RoPE on interleaved pairs: x (S, heads, hs) at positions start .. start + S - 1."""
    ang = rope_angles(start + x.shape[0], x.shape[-1])[start:, None, :]  # (S, 1, hs/2)
    cos, sin = np.cos(ang), np.sin(ang)
    a, b = x[..., 0::2], x[..., 1::2]
    return np.stack([a * cos - b * sin, a * sin + b * cos], axis=-1).reshape(x.shape)


def attention(q, k, v):
    """q (S, H, hs), k/v (N + S, KVH, hs): query i sees the N leading (prefix) keys and keys <= i."""
    S, H, hs = q.shape
    N = k.shape[0] - S
    rep = H // k.shape[1]
    k, v = np.repeat(k, rep, axis=1), np.repeat(v, rep, axis=1)
    scores = np.einsum("thd,shd->hts", q, k) / np.sqrt(hs)  # (H, S, N + S)
    visible = np.arange(N + S)[None, :] <= np.arange(S)[:, None] + N
    scores = np.where(visible, scores, -np.inf)
    p = np.exp(scores - scores.max(axis=-1, keepdims=True))
    p /= p.sum(axis=-1, keepdims=True)
    return np.einsum("hts,shd->thd", p, v).reshape(S, H * hs)


def layer(w, i, x, adapter):
    """One block on x (S, d) at positions 0 .. S - 1; `adapter` maps names to this layer's tensors."""
    H, KVH = CONFIG["n_heads"], CONFIG["n_kv_heads"]
    hs = CONFIG["dim"] // H
    S = x.shape[0]

    def project(name, inp):
        y = inp @ w[name][i].T
        if f"{name}_lora_a" in adapter:
            y = y + (ALPHA / RANK) * (inp @ adapter[f"{name}_lora_a"].T) @ adapter[f"{name}_lora_b"].T
        return y

    h = rmsnorm(x, w["rms_att"][i])
    q = rope(project("wq", h).reshape(S, H, hs), 0)
    k = project("wk", h) * adapter.get("ia3_keys", 1.0)
    v = project("wv", h) * adapter.get("ia3_values", 1.0)
    k, v = rope(k.reshape(S, KVH, hs), 0), v.reshape(S, KVH, hs)
    if "prefix_keys" in adapter:
        k = np.concatenate([adapter["prefix_keys"].reshape(-1, KVH, hs), k])
        v = np.concatenate([adapter["prefix_values"].reshape(-1, KVH, hs), v])
    x = x + project("wo", attention(q, k, v))
    g = rmsnorm(x, w["rms_ffn"][i])
    a = project("w1", g)
    hidden = (a / (1 + np.exp(-a))) * project("w3", g) * adapter.get("ia3_hidden", 1.0)
    return x + project("w2", hidden)


def prompted_logits(w, state, method):
    """(T, vocab) logits of the tokens of IDS with the method's state (name -> float64 array)."""
    x = np.concatenate([state["first_prompts"], w["tok_emb"][IDS]])  # (K0 + T, d)
    for i in range(MID):
        x = layer(w, i, x, {})
    if method == "mpt":
        prompts = state["mid_prompts"] * np.outer(state["mpt_task_rows"][TASK], state["mpt_task_columns"][TASK])
        x = np.concatenate([prompts, x[K0:]])  # (N + T, d)
    for i in range(MID, CONFIG["n_layers"]):
        prefix = f"layer{i}_"
        x = layer(w, i, x, {n[len(prefix):]: t for n, t in state.items() if n.startswith(prefix)})
    return rmsnorm(x[-len(IDS):], w["rms_final"]) @ w["tok_emb"].T


def random_state(rng, method):
    """The method's tensors, away from their identity start, under mops' names."""
    d, hid = CONFIG["dim"], CONFIG["hidden_dim"]
    kvd = d * CONFIG["n_kv_heads"] // CONFIG["n_heads"]
    shapes = {"wq": (d, d), "wk": (kvd, d), "wv": (kvd, d), "wo": (d, d), "w1": (hid, d), "w2": (d, hid), "w3": (hid, d)}
    state = {"first_prompts": rng.standard_normal((K0, d))}
    if method == "mpt":
        state["mid_prompts"] = rng.standard_normal((E * P, d))
        state["mpt_task_rows"] = 1 + 0.5 * rng.standard_normal((TASKS, E * P))
        state["mpt_task_columns"] = 1 + 0.5 * rng.standard_normal((TASKS, d))
        return state
    for i in range(MID, CONFIG["n_layers"]):
        p = f"layer{i}_"
        if method == "lora":
            for name in TARGETS:
                out, inp = shapes[name]
                state[p + name + "_lora_a"] = rng.standard_normal((RANK, inp)) / np.sqrt(inp)
                state[p + name + "_lora_b"] = 0.3 * rng.standard_normal((out, RANK))
        elif method == "ia3":
            state[p + "ia3_keys"] = 1 + 0.3 * rng.standard_normal(kvd)
            state[p + "ia3_values"] = 1 + 0.3 * rng.standard_normal(kvd)
            state[p + "ia3_hidden"] = 1 + 0.3 * rng.standard_normal(hid)
        else:
            state[p + "prefix_keys"] = rng.standard_normal((E * P, kvd))
            state[p + "prefix_values"] = rng.standard_normal((E * P, kvd))
    return {k: v.astype(np.float32).astype(np.float64) for k, v in state.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="directory for the outputs")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    rng = np.random.default_rng(18)
    w = write_llama2c(os.path.join(args.out, "model.bin"), random_model(rng))
    for method in METHODS:
        state = random_state(rng, method)
        write_safetensors(os.path.join(args.out, f"{method}.safetensors"),
                          {k: v.astype("<f4") for k, v in state.items()}, "F32")
        logits = prompted_logits(w, state, method)
        check(np.isfinite(logits).all(), f"{method}: non-finite logits")
        logits.astype("<f4").tofile(os.path.join(args.out, f"{method}.logits.f32"))
        print(f"{method}: {len(state)} tensors, logits {logits.shape}, max |logit| {np.abs(logits).max():.3f}")
    with open(os.path.join(args.out, "peers.json"), "w") as f:
        json.dump({"ids": IDS, "task": TASK, "tasks": TASKS, "mid_layer": MID, "first_prompts": K0, "experts": E,
                   "prompts_per_expert": P, "lora_rank": RANK, "lora_alpha": ALPHA, "lora_targets": TARGETS,
                   "methods": list(METHODS), "logits_shape": [len(IDS), CONFIG["vocab_size"]]}, f, indent=1)


if __name__ == "__main__":
    try:
        main()
    except CheckError as error:
        print(f"peer_methods_reference: {error}", file=sys.stderr)
        sys.exit(1)

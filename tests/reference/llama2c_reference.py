#!/usr/bin/env python3
"""Independent NumPy reference for the llama2.c / Hugging Face Llama loaders.

Reads a llama2.c legacy (v0) checkpoint, runs a float64 Llama forward pass and
writes, into --out DIR:
  logits.f32, logits_bf16.f32, logits_f16.f32   raw little-endian float32 (T, vocab)
  reference.json                                ids, greedy generation, config
  hf/, hf_sharded/, hf_bf16/, hf_f16/           Hugging Face style safetensors checkpoints
It self-checks the HF q/k permutation, the file's RoPE tables and every safetensors
file it writes, and exits non-zero with a message on any failure. NumPy only.
"""
import argparse
import json
import os
import sys
import time

import numpy as np

IDS = [1, 403, 35, 260, 9, 310, 18, 511, 0, 42, 128, 256, 77, 2, 300, 64]
GREEDY_PROMPT = [1]
GREEDY_STEPS = 40
EPS = 1e-5
ROPE_THETA = 10000.0
CONFIG_KEYS = ["dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size", "seq_len"]


class CheckError(Exception):
    """A failed validation or self-check."""


def check(cond, msg):
    """Raise CheckError(msg) unless cond."""
    if not cond:
        raise CheckError(msg)


def load_llama2c(path):
    """Parse a llama2.c v0 file -> (cfg dict, weights dict of float32 arrays, (out, in) layout)."""
    raw = open(path, "rb").read()
    check(len(raw) >= 28, f"{path}: too short for the 28-byte header")
    cfg = dict(zip(CONFIG_KEYS, np.frombuffer(raw[:28], "<i4").tolist()))
    cfg["tied"] = cfg["vocab_size"] > 0
    cfg["vocab_size"] = abs(cfg["vocab_size"])
    d, hid, L, H, KVH, V, S = (cfg[k] for k in CONFIG_KEYS)
    check(min(d, hid, L, H, KVH, V, S) > 0, f"bad header {cfg}")
    check(d % H == 0 and H % KVH == 0 and (d // H) % 2 == 0, f"inconsistent head layout {cfg}")
    hs, kvd = d // H, d * KVH // H
    shapes = [("tok_emb", (V, d)), ("rms_att", (L, d)), ("wq", (L, d, d)), ("wk", (L, kvd, d)),
              ("wv", (L, kvd, d)), ("wo", (L, d, d)), ("rms_ffn", (L, d)), ("w1", (L, hid, d)),
              ("w2", (L, d, hid)), ("w3", (L, hid, d)), ("rms_final", (d,)),
              ("freq_cis_real", (S, hs // 2)), ("freq_cis_imag", (S, hs // 2))]
    if not cfg["tied"]:
        shapes.append(("wcls", (V, d)))
    expected = 28 + 4 * sum(int(np.prod(s)) for _, s in shapes)
    check(len(raw) == expected, f"{path}: size {len(raw)} bytes, header {cfg} implies {expected}")
    w, off = {}, 28
    for name, shape in shapes:
        n = int(np.prod(shape))
        w[name] = np.frombuffer(raw, "<f4", n, off).reshape(shape)
        check(np.isfinite(w[name]).all(), f"{path}: non-finite values in {name}")
        off += 4 * n
    if cfg["tied"]:
        w["wcls"] = w["tok_emb"]
    return cfg, w


def rope_angles(T, head_size):
    """angle[pos, i] = pos * theta^(-2i/head_size), shape (T, head_size/2), float64."""
    inv_freq = ROPE_THETA ** (-np.arange(0, head_size, 2, dtype=np.float64) / head_size)
    return np.outer(np.arange(T, dtype=np.float64), inv_freq)


def rmsnorm(x, weight):
    """x (T, d) / sqrt(mean(x^2) + eps) * weight (d,)."""
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + EPS) * weight


def attention(q, k, v, n_rep):
    """Causal GQA: q (T, H, hs), k/v (T, KVH, hs) -> (T, H*hs). Query head h uses kv head h // n_rep."""
    T, H, hs = q.shape
    k, v = np.repeat(k, n_rep, axis=1), np.repeat(v, n_rep, axis=1)  # (T, H, hs)
    scores = np.einsum("thd,shd->hts", q, k) / np.sqrt(hs)           # (H, T, T)
    scores = np.where(np.tril(np.ones((T, T), bool)), scores, -np.inf)
    p = np.exp(scores - scores.max(axis=-1, keepdims=True))
    p /= p.sum(axis=-1, keepdims=True)
    return np.einsum("hts,shd->thd", p, v).reshape(T, H * hs)


def llama_forward(cfg, layers, emb, norm, wcls, ids, rope):
    """Shared Llama skeleton in float64. layers: list of dicts with float64 (out, in) matrices
    wq wk wv wo w1 w2 w3 and norms rms_att rms_ffn; rope(x (T, heads, hs)) applies positions.
    Returns logits (T, vocab)."""
    H, KVH = cfg["n_heads"], cfg["n_kv_heads"]
    hs = cfg["dim"] // H
    x = emb[np.asarray(ids)]                                       # (T, d)
    T = len(ids)
    for lw in layers:
        h = rmsnorm(x, lw["rms_att"])
        q = rope((h @ lw["wq"].T).reshape(T, H, hs))
        k = rope((h @ lw["wk"].T).reshape(T, KVH, hs))
        v = (h @ lw["wv"].T).reshape(T, KVH, hs)
        x = x + attention(q, k, v, H // KVH) @ lw["wo"].T
        g = rmsnorm(x, lw["rms_ffn"])
        a = g @ lw["w1"].T                                         # (T, hidden)
        x = x + ((a / (1 + np.exp(-a))) * (g @ lw["w3"].T)) @ lw["w2"].T
    return rmsnorm(x, norm) @ wcls.T                               # (T, vocab)


def forward_llama2c(cfg, w, ids):
    """llama2.c forward: RoPE rotates interleaved pairs (2i, 2i+1) of each head."""
    ang = rope_angles(len(ids), cfg["dim"] // cfg["n_heads"])[:, None, :]  # (T, 1, hs/2)
    cos, sin = np.cos(ang), np.sin(ang)

    def rope(x):                                                   # x (T, heads, hs)
        a, b = x[..., 0::2], x[..., 1::2]
        return np.stack([a * cos - b * sin, a * sin + b * cos], axis=-1).reshape(x.shape)

    f = {k: v.astype(np.float64) for k, v in w.items()}
    names = ["rms_att", "wq", "wk", "wv", "wo", "rms_ffn", "w1", "w2", "w3"]
    layers = [{n: f[n][i] for n in names} for i in range(cfg["n_layers"])]
    return llama_forward(cfg, layers, f["tok_emb"], f["rms_final"], f["wcls"], ids, rope)


def forward_hf(cfg, t, ids):
    """Independent HF-style forward from HF tensor names: rotate-half RoPE on permuted q/k."""
    ang = rope_angles(len(ids), cfg["dim"] // cfg["n_heads"])
    ang = np.concatenate([ang, ang], axis=-1)[:, None, :]         # (T, 1, hs): freq i in both halves
    cos, sin = np.cos(ang), np.sin(ang)

    def rope(x):                                                   # x (T, heads, hs)
        half = x.shape[-1] // 2
        return x * cos + np.concatenate([-x[..., half:], x[..., :half]], axis=-1) * sin

    f = {k: v.astype(np.float64) for k, v in t.items()}
    hf = {"rms_att": "input_layernorm", "wq": "self_attn.q_proj", "wk": "self_attn.k_proj",
          "wv": "self_attn.v_proj", "wo": "self_attn.o_proj", "rms_ffn": "post_attention_layernorm",
          "w1": "mlp.gate_proj", "w2": "mlp.down_proj", "w3": "mlp.up_proj"}
    layers = [{n: f[f"model.layers.{i}.{m}.weight"] for n, m in hf.items()}
              for i in range(cfg["n_layers"])]
    emb = f["model.embed_tokens.weight"]
    wcls = f.get("lm_head.weight", emb)                            # tied when lm_head is absent
    return llama_forward(cfg, layers, emb, f["model.norm.weight"], wcls, ids, rope)


def permute(w, n_heads, dim1, dim2):
    """HF convert_llama_weights_to_hf.py: interleaved-pair rows -> rotate-half rows, per head."""
    return w.reshape(n_heads, dim1 // n_heads // 2, 2, dim2).transpose(0, 2, 1, 3).reshape(dim1, dim2)


def to_hf(cfg, w, untied=False):
    """llama2.c weights -> ordered dict of HF tensor name -> float32 array."""
    d, H, KVH = cfg["dim"], cfg["n_heads"], cfg["n_kv_heads"]
    t = {"model.embed_tokens.weight": w["tok_emb"]}
    for i in range(cfg["n_layers"]):
        p = f"model.layers.{i}."
        t[p + "self_attn.q_proj.weight"] = permute(w["wq"][i], H, d, d)
        t[p + "self_attn.k_proj.weight"] = permute(w["wk"][i], KVH, d * KVH // H, d)
        t[p + "self_attn.v_proj.weight"] = w["wv"][i]
        t[p + "self_attn.o_proj.weight"] = w["wo"][i]
        t[p + "mlp.gate_proj.weight"] = w["w1"][i]
        t[p + "mlp.up_proj.weight"] = w["w3"][i]
        t[p + "mlp.down_proj.weight"] = w["w2"][i]
        t[p + "input_layernorm.weight"] = w["rms_att"][i]
        t[p + "post_attention_layernorm.weight"] = w["rms_ffn"][i]
    t["model.norm.weight"] = w["rms_final"]
    if untied:
        t["lm_head.weight"] = w["wcls"].copy()
    return {k: np.ascontiguousarray(v, np.float32) for k, v in t.items()}


def f32_to_bf16_bits(x):
    """float32 -> bfloat16 bit patterns (uint16), round to nearest, ties to even (finite inputs;
    uint64 so the carry out of the low 16 bits cannot overflow)."""
    u = np.ascontiguousarray(x, np.float32).view(np.uint32).astype(np.uint64)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)


def bf16_bits_to_f32(b):
    """bfloat16 bit patterns (uint16) -> exact float32 values."""
    return (b.astype(np.uint32) << 16).view(np.float32)


# safetensors dtype tag <-> numpy storage dtype (BF16 is stored as raw uint16 bit patterns).
ST_DTYPES = {"F32": np.dtype("<f4"), "F16": np.dtype("<f2"), "BF16": np.dtype("<u2")}


def write_safetensors(path, tensors, tag):
    """Write {name: array already in ST_DTYPES[tag]} as safetensors; returns data byte count."""
    header, blobs, off = {"__metadata__": {"format": "pt"}}, [], 0
    for name, a in tensors.items():
        b = np.ascontiguousarray(a, ST_DTYPES[tag]).tobytes()
        header[name] = {"dtype": tag, "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    hjson = json.dumps(header, separators=(",", ":")).encode()
    hjson += b" " * (-len(hjson) % 8)
    with open(path, "wb") as f:
        f.write(len(hjson).to_bytes(8, "little") + hjson + b"".join(blobs))
    return off


def read_safetensors(path):
    """Parse a safetensors file -> (header dict, {name: array in storage dtype})."""
    raw = open(path, "rb").read()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    out = {}
    for name, e in header.items():
        if name != "__metadata__":
            b, end = e["data_offsets"]
            data = raw[8 + n + b:8 + n + end]
            out[name] = np.frombuffer(data, ST_DTYPES[e["dtype"]]).reshape(e["shape"])
    return header, out


def verify_safetensors(path, intended, tag):
    """Self-check (c): the file holds exactly `intended` (names, dtype, shape, bits)."""
    header, got = read_safetensors(path)
    check(set(got) == set(intended), f"{path}: tensor names differ from those written")
    for name, a in intended.items():
        check(header[name]["dtype"] == tag and got[name].shape == a.shape
              and got[name].tobytes() == np.ascontiguousarray(a, ST_DTYPES[tag]).tobytes(),
              f"{path}: tensor {name} does not read back as written")
    return len(got)


def hf_config(cfg, tied, dtype):
    """Hugging Face LlamaForCausalLM config.json contents."""
    return {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_act": "silu",
            "hidden_size": cfg["dim"], "intermediate_size": cfg["hidden_dim"],
            "num_hidden_layers": cfg["n_layers"], "num_attention_heads": cfg["n_heads"],
            "num_key_value_heads": cfg["n_kv_heads"], "vocab_size": cfg["vocab_size"],
            "max_position_embeddings": cfg["seq_len"], "rms_norm_eps": EPS, "rope_theta": ROPE_THETA,
            "tie_word_embeddings": tied, "torch_dtype": dtype}


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")


def write_hf_single(out, sub, cfg, tensors, tag, dtype):
    """One-file tied HF checkpoint in out/sub; returns the number of tensors verified."""
    os.makedirs(os.path.join(out, sub), exist_ok=True)
    write_json(os.path.join(out, sub, "config.json"), hf_config(cfg, True, dtype))
    path = os.path.join(out, sub, "model.safetensors")
    write_safetensors(path, tensors, tag)
    return verify_safetensors(path, tensors, tag)


def write_hf_sharded(out, cfg, tensors):
    """Two-shard untied F32 checkpoint: embeddings + layers 0-2 | layers 3+ + norm + lm_head."""
    d = os.path.join(out, "hf_sharded")
    os.makedirs(d, exist_ok=True)
    write_json(os.path.join(d, "config.json"), hf_config(cfg, False, "float32"))
    files = [f"model-0000{i}-of-00002.safetensors" for i in (1, 2)]
    def in_first(n):
        layer = int(n.split(".")[2]) if n.startswith("model.layers.") else None
        return n == "model.embed_tokens.weight" or (layer is not None and layer < 3)
    shards = [{n: a for n, a in tensors.items() if in_first(n) == (i == 0)} for i in (0, 1)]
    weight_map, total = {}, 0
    for fname, shard in zip(files, shards):
        total += write_safetensors(os.path.join(d, fname), shard, "F32")
        verify_safetensors(os.path.join(d, fname), shard, "F32")
        weight_map.update({n: fname for n in shard})
    check(set(weight_map) == set(tensors), "hf_sharded: shards do not cover all tensors")
    write_json(os.path.join(d, "model.safetensors.index.json"),
               {"metadata": {"total_size": total}, "weight_map": weight_map})
    return len(weight_map)


def write_f32(path, a):
    """Raw little-endian float32, row-major."""
    np.ascontiguousarray(a, "<f4").tofile(path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="llama2.c v0 checkpoint (e.g. stories260K.bin)")
    ap.add_argument("--out", required=True, help="output directory (created)")
    args = ap.parse_args()
    t0 = time.time()
    os.makedirs(args.out, exist_ok=True)
    cfg, w = load_llama2c(args.model)
    print("config:", {k: cfg[k] for k in CONFIG_KEYS}, "tied" if cfg["tied"] else "untied")
    check(max(IDS) < cfg["vocab_size"] and len(IDS) <= cfg["seq_len"], "IDS do not fit the model")

    # (b) the file's RoPE tables must agree with our own angles.
    ang = rope_angles(cfg["seq_len"], cfg["dim"] // cfg["n_heads"])
    rope_err = max(np.abs(w["freq_cis_real"] - np.cos(ang)).max(),
                   np.abs(w["freq_cis_imag"] - np.sin(ang)).max())
    print(f"check (b) freq_cis vs computed cos/sin: max abs diff {rope_err:.3e} (limit 1e-5)")
    check(rope_err <= 1e-5, f"freq_cis tables disagree with computed angles by {rope_err:.3e}")

    # Reference logits for IDS.
    logits = forward_llama2c(cfg, w, IDS)                         # (T, vocab) float64
    write_f32(os.path.join(args.out, "logits.f32"), logits)

    # (a) HF layout (permuted q/k, rotate-half RoPE) must reproduce the interleaved forward.
    hf32 = to_hf(cfg, w)
    perm_err = np.abs(forward_hf(cfg, hf32, IDS) - logits).max()
    print(f"check (a) HF rotate-half forward vs llama2.c forward: max abs diff {perm_err:.3e} "
          "(limit 1e-9)")
    check(perm_err <= 1e-9, f"HF permutation forward differs by {perm_err:.3e}")

    # Greedy decoding from GREEDY_PROMPT, full forward each step.
    seq, min_gap = list(GREEDY_PROMPT), np.inf
    for _ in range(GREEDY_STEPS):
        last = forward_llama2c(cfg, w, seq)[-1]
        top2 = np.sort(last)[-2:]
        min_gap = min(min_gap, top2[1] - top2[0])
        seq.append(int(np.argmax(last)))
    greedy = seq[len(GREEDY_PROMPT):]
    print("greedy ids:", greedy)
    print(f"smallest top-1/top-2 logit gap over {GREEDY_STEPS} steps: {min_gap:.6f}")
    if min_gap < 1e-3:
        print("WARNING: top-1/top-2 gap below 1e-3 -- greedy test would be FRAGILE", file=sys.stderr)

    # (c) HF checkpoints, each read back and compared bit for bit.
    n = write_hf_single(args.out, "hf", cfg, hf32, "F32", "float32")
    n_sh = write_hf_sharded(args.out, cfg, to_hf(cfg, w, untied=True))
    bf_bits = {k: f32_to_bf16_bits(v) for k, v in hf32.items()}
    n_bf = write_hf_single(args.out, "hf_bf16", cfg, bf_bits, "BF16", "bfloat16")
    f16 = {k: v.astype(np.float16) for k, v in hf32.items()}
    check(all(np.isfinite(v).all() for v in f16.values()), "weights overflow float16")
    n_f16 = write_hf_single(args.out, "hf_f16", cfg, f16, "F16", "float16")
    print(f"check (c) safetensors read-back bit-exact: hf {n}, hf_sharded {n_sh}, "
          f"hf_bf16 {n_bf}, hf_f16 {n_f16} tensors")

    # Reference logits from the rounded weights (computed in float64).
    logits_bf = forward_hf(cfg, {k: bf16_bits_to_f32(v) for k, v in bf_bits.items()}, IDS)
    logits_f16 = forward_hf(cfg, f16, IDS)
    write_f32(os.path.join(args.out, "logits_bf16.f32"), logits_bf)
    write_f32(os.path.join(args.out, "logits_f16.f32"), logits_f16)
    print(f"rounded-weight logits vs f32: bf16 max abs diff {np.abs(logits_bf - logits).max():.3e}, "
          f"f16 {np.abs(logits_f16 - logits).max():.3e}")

    write_json(os.path.join(args.out, "reference.json"), {
        "ids": IDS, "logits_shape": list(logits.shape), "greedy_prompt": GREEDY_PROMPT,
        "greedy_ids": greedy, "hf_logits_bf16_file": "logits_bf16.f32",
        "hf_logits_f16_file": "logits_f16.f32", "config": {k: cfg[k] for k in CONFIG_KEYS}})
    print("wrote:")
    for root, _, names in sorted(os.walk(args.out)):
        for name in sorted(names):
            p = os.path.join(root, name)
            print(f"  {p} ({os.path.getsize(p)} bytes)")
    print(f"done in {time.time() - t0:.2f} s")


if __name__ == "__main__":
    try:
        main()
    except (CheckError, OSError, ValueError, KeyError) as e:
        print(f"ERROR: {e}", file=sys.stderr)
        sys.exit(1)

#!/usr/bin/env python3
"""Writes the generated seed inputs of the checkpoint fuzz targets (standard library only):
fuzz/corpus/safetensors/*.safetensors, fuzz/corpus/llama2c_header/*.bin (28-byte header +
8-byte little-endian file size, see fuzz/targets/llama2c_header.cpp) and
fuzz/corpus/hf_config/*.json. Small (under 1 KB each); deterministic. Run from anywhere:
    python3 fuzz/make_seeds.py
"""
import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.path.join(HERE, "..", "..", "shared")
DTYPE_BYTES = {"F32": 4, "F16": 2, "BF16": 2, "F64": 8, "I8": 1, "U8": 1, "I32": 4, "I64": 8}


def write(target, name, data):
    os.makedirs(os.path.join(HERE, "corpus", target), exist_ok=True)
    with open(os.path.join(HERE, "corpus", target, name), "wb") as f:
        f.write(data)


def safetensors(tensors, metadata=None, pad=True, hole=0):
    """tensors: [(name, dtype, shape)] laid out in order; data bytes are a counting pattern."""
    header, offset = {}, 0
    for i, (name, dtype, shape) in enumerate(tensors):
        n = DTYPE_BYTES[dtype]
        for d in shape:
            n *= d
        if i == 1:
            offset += hole  # a hole before the second tensor (an invalid seed)
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + n]}
        offset += n
    if metadata is not None:
        header["__metadata__"] = metadata
    text = json.dumps(header, separators=(",", ":")).encode()
    if pad:  # the reference writer pads the header with spaces to a multiple of 8
        text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + bytes(i % 251 for i in range(offset))


def llama2c(dim, hidden, layers, heads, kv_heads, vocab, seq_len, tied=True, size=None):
    head_dim = dim // heads
    floats = vocab * dim + layers * dim * 2 + layers * (2 * dim * dim + 2 * dim * kv_heads * head_dim)
    floats += 3 * layers * dim * hidden + dim + seq_len * head_dim
    if not tied:
        floats += vocab * dim
    file_size = 28 + 4 * floats if size is None else size
    fields = (dim, hidden, layers, heads, kv_heads, vocab if tied else -vocab, seq_len)
    return struct.pack("<7i", *fields) + struct.pack("<Q", file_size)


def main():
    write("safetensors", "tiny.safetensors",
          safetensors([("a", "F32", [2, 3]), ("b", "BF16", [3]), ("c", "I64", [1])], {"format": "pt"}))
    write("safetensors", "empty.safetensors", safetensors([], None))
    write("safetensors", "all-dtypes.safetensors",
          safetensors([(d.lower(), d, [2]) for d in DTYPE_BYTES] + [("zero", "F32", [0, 4]), ("scalar", "F16", [])],
                      {"mops_model_config": "{\"dim\": 8}"}, pad=False))
    write("safetensors", "hole.safetensors", safetensors([("x", "U8", [4]), ("y", "U8", [4])], hole=2))
    write("safetensors", "llama-names.safetensors",
          safetensors([("model.embed_tokens.weight", "F16", [4, 2]),
                       ("model.layers.0.self_attn.q_proj.weight", "F16", [2, 2]),
                       ("model.norm.weight", "F32", [2])], {"format": "pt", "total_size": "28"}))

    stories = os.path.join(SHARED, "models", "stories260K.bin")
    if os.path.exists(stories):  # the real llama2.c checkpoint's header and size
        with open(stories, "rb") as f:
            write("llama2c_header", "stories260K-header.bin", f.read(28) + struct.pack("<Q", os.path.getsize(stories)))
    write("llama2c_header", "tiny-tied.bin", llama2c(8, 16, 1, 2, 2, 32, 16))
    write("llama2c_header", "tiny-untied-gqa.bin", llama2c(16, 32, 2, 4, 2, 64, 8, tied=False))
    write("llama2c_header", "wrong-size.bin", llama2c(8, 16, 1, 2, 2, 32, 16, size=1000))
    write("llama2c_header", "versioned-magic.bin", struct.pack("<7i", 0x616B3432, 1, 0, 0, 0, 0, 0) + struct.pack("<Q", 256))
    write("llama2c_header", "short.bin", struct.pack("<3i", 8, 16, 1))

    config = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_act": "silu",
              "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
              "num_key_value_heads": 2, "vocab_size": 64, "max_position_embeddings": 32,
              "rms_norm_eps": 1e-06, "rope_theta": 10000.0, "tie_word_embeddings": False,
              "attention_bias": False, "torch_dtype": "float32", "bos_token_id": 1, "eos_token_id": 2}
    write("hf_config", "config.json", json.dumps(config, indent=2).encode())
    minimal = {k: config[k] for k in ("hidden_size", "intermediate_size", "num_hidden_layers",
                                      "num_attention_heads", "vocab_size", "max_position_embeddings")}
    minimal.update({"tie_word_embeddings": True, "head_dim": 4, "rope_scaling": None})
    write("hf_config", "config-minimal.json", json.dumps(minimal).encode())
    index = {"metadata": {"total_size": 1024},
             "weight_map": {"model.embed_tokens.weight": "model-00001-of-00002.safetensors",
                            "model.norm.weight": "model-00002-of-00002.safetensors",
                            "lm_head.weight": "model-00002-of-00002.safetensors"}}
    write("hf_config", "model.safetensors.index.json", json.dumps(index, indent=2).encode())
    own = {"dim": 16, "hidden_dim": 32, "n_layers": 2, "n_heads": 4, "n_kv_heads": 2, "vocab_size": 64,
           "max_seq_len": 32, "norm_eps": 1e-05, "rope_theta": 10000.0, "tied_classifier": True}
    write("hf_config", "mops-model-config.json", json.dumps(own).encode())


if __name__ == "__main__":
    main()

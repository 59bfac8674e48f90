#!/usr/bin/env python3
"""Hugging Face transformers on models `mops convert --to hf` exported (issue 19): the logits of
fixed ids and a greedy generation, for the C++ test ReferenceTransformers.* to hold mops to.

    transformers_peer.py --model NAME=DIR [--model NAME=DIR ...] --out DIR

Writes, per model NAME, into --out DIR:
  NAME.logits.f32   raw little-endian float32 (T, vocab): LlamaForCausalLM's logits of IDS
  NAME.json         ids, logits_shape, greedy_prompt, greedy_ids (GREEDY_STEPS argmax tokens
                    with transformers' KV cache), the transformers and torch versions
Runs offline, on the CPU, in float32.
"""
import argparse
import json
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402

IDS = [1, 403, 35, 260, 9, 310, 18, 511, 0, 42, 128, 256, 77, 2, 300, 64]
GREEDY_PROMPT = [1, 35]
GREEDY_STEPS = 40


def greedy(model, prompt, steps):
    """STEPS argmax tokens after PROMPT, with transformers' KV cache (past_key_values), EOS not
    special (model.generate would stop there, or with min_new_tokens suppress it)."""
    out = model(torch.tensor([prompt]), use_cache=True)
    ids = []
    for _ in range(steps):
        ids.append(int(out.logits[0, -1].argmax()))
        out = model(torch.tensor([[ids[-1]]]), past_key_values=out.past_key_values, use_cache=True)
    return torch.tensor(ids)


def run(name, directory, out):
    """Logits and greedy ids of the model in DIRECTORY, written as NAME.* into OUT."""
    model = transformers.LlamaForCausalLM.from_pretrained(directory, dtype=torch.float32)
    model.eval()
    vocab = model.config.vocab_size
    ids = [i % vocab for i in IDS]
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0]  # (T, V)
        generated = greedy(model, GREEDY_PROMPT, GREEDY_STEPS)
    logits.numpy().astype("<f4").tofile(os.path.join(out, f"{name}.logits.f32"))
    with open(os.path.join(out, f"{name}.json"), "w") as f:
        json.dump({"ids": ids, "logits_shape": list(logits.shape), "greedy_prompt": GREEDY_PROMPT,
                   "greedy_ids": generated.tolist(), "transformers": transformers.__version__,
                   "torch": torch.__version__}, f, indent=1)
    print(f"{name}: transformers {transformers.__version__}, logits {tuple(logits.shape)}, "
          f"max |logit| {float(np.abs(logits.numpy()).max()):.3f}, greedy {generated.tolist()[:8]}...")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", action="append", required=True, help="NAME=DIR, an exported model")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    for spec in args.model:
        name, _, directory = spec.partition("=")
        if not name or not os.path.isfile(os.path.join(directory, "config.json")):
            print(f"transformers_peer: --model {spec}: not NAME=DIR of an exported model", file=sys.stderr)
            return 1
        run(name, directory, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

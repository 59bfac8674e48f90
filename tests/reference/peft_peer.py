#!/usr/bin/env python3
"""PEFT on what `mops convert --to hf` and `--to peft` exported (issue 19): the logits of fixed ids
through transformers' LlamaForCausalLM with PEFT's prompt-tuning adapter (P0), and with PEFT's LoRA
adapter and P0's embeddings in front of the tokens' (PEFT stacks no prompt tuning on LoRA), for
the C++ test PeftExport.* to hold mops to.

    peft_peer.py --model HF_DIR --adapters PEFT_DIR --ids "1 5 9" --out DIR

Writes into DIR: prompt_tuning.logits.f32 and, when PEFT_DIR/lora exists, lora.logits.f32, raw
little-endian float32 (T, vocab), the tokens' rows only; and peft.json (versions, shapes).
Runs offline, on the CPU, in float32.
"""
import argparse
import json
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import peft  # noqa: E402
import safetensors.torch  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402


def base_model(directory):
    model = transformers.LlamaForCausalLM.from_pretrained(directory, dtype=torch.float32)
    return model.eval()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="the Hugging Face export of the backbone")
    parser.add_argument("--adapters", required=True, help="the --to peft export of a run")
    parser.add_argument("--ids", required=True, help="token ids, space separated")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    ids = torch.tensor([[int(i) for i in args.ids.split()]])  # (1, T)
    T = ids.shape[1]
    shapes = {}
    with torch.no_grad():
        prompt_dir = os.path.join(args.adapters, "prompt_tuning")
        tuned = peft.PeftModel.from_pretrained(base_model(args.model), prompt_dir).eval()
        logits = tuned(input_ids=ids).logits[0, -T:]  # (T, V): PEFT puts the virtual tokens first
        logits.numpy().astype("<f4").tofile(os.path.join(args.out, "prompt_tuning.logits.f32"))
        shapes["prompt_tuning"] = list(logits.shape)
        lora_dir = os.path.join(args.adapters, "lora")
        if os.path.isdir(lora_dir):
            p0 = safetensors.torch.load_file(os.path.join(prompt_dir, "adapter_model.safetensors"))["prompt_embeddings"]
            lora = peft.PeftModel.from_pretrained(base_model(args.model), lora_dir).eval()
            embeds = lora.get_input_embeddings()(ids)  # (1, T, C)
            logits = lora(inputs_embeds=torch.cat([p0.unsqueeze(0), embeds], 1)).logits[0, -T:]  # (T, V)
            logits.numpy().astype("<f4").tofile(os.path.join(args.out, "lora.logits.f32"))
            shapes["lora"] = list(logits.shape)
    with open(os.path.join(args.out, "peft.json"), "w") as f:
        json.dump({"peft": peft.__version__, "transformers": transformers.__version__, "shapes": shapes}, f, indent=1)
    print(f"peft {peft.__version__}: {', '.join(f'{k} {tuple(v)}' for k, v in shapes.items())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Centralized performance peer of `mops train` (issue 19): PEFT prompt tuning or LoRA on the same
model, data, batch size and steps, trained with a plain PyTorch loop as PEFT's documentation shows
(get_peft_model; torch.optim.Adam over the trainable parameters; the loss from
model(input_ids, attention_mask, labels)); prints steps/s, tokens/s and the final test perplexity.

    peft_train.py --data EXPORT.jsonl --model HF_DIR --method prompt|lora --steps N --out FILE.json
    peft_train.py --data EXPORT.jsonl --model HF_DIR --self-check

The model is transformers.LlamaForCausalLM.from_pretrained(HF_DIR, dtype=float32) (what
`mops convert --to hf` writes), on the CPU, offline (HF_HUB_OFFLINE=1, TRANSFORMERS_OFFLINE=1).
The data is what `mops data export` writes (JSON Lines, one tokenized example a line, read by
bench/peft_loop.py): training on the "train" lines, the final evaluation on the one held-out
split ("test" or "validation").

- --method prompt: PEFT's PromptTuningConfig (CAUSAL_LM, --virtual-tokens P, 70, init
  SAMPLE_VOCAB: P rows of the token embeddings at random ids). PEFT's prompts enter at the
  input embeddings, in front of the tokens, through every layer; mops' baseline instead trains
  its 70 prompts at the middle layer (they replace the prompt positions at the input of layer
  L/2) behind 10 frozen first-layer prompts (P0), so the lower half needs no backward pass.
  This peer is what a PEFT user would run instead, not the same computation.
- --method lora: PEFT's LoraConfig (CAUSAL_LM, --lora-rank 8, --lora-alpha 16,
  --lora-dropout 0, --lora-targets q_proj,v_proj, --lora-layers 2,3 (layers_to_transform; "all"
  = every layer), bias none). No prompts in front (mops' `--method lora` also keeps P0 there).
- Training: Adam (--lr 1e-3, torch's betas and eps, no weight decay, no scheduler, no gradient
  clipping), --steps N of --batch-size B examples, batches from a seeded shuffle of the train
  examples, reshuffled when used up (a batch may span two shuffles); right-padded with pad id 0
  and an attention mask. Loss: the mean NLL of the batch's response tokens (HF's labels loss,
  labels -100 before response_begin), mops' response loss.
- Final evaluation once, after the last step (--eval-batch-size 16): test perplexity = exp(sum
  of the response tokens' NLL / their number), overall and per task.
- Seeded (--seed): torch.manual_seed (the prompt init, LoRA's A, dropout masks) and a numpy
  Generator for the batch order; the same seed and --threads give the same numbers.

Timing: `seconds` is the training loop plus the final evaluation (as mops' figure includes its
final evaluation); `train_seconds` the loop alone; steps_per_second = steps / train_seconds;
tokens_per_second = train_tokens / train_seconds, train_tokens = the sum over the steps of the
batch's padded B x T (virtual tokens not counted); `import_seconds` (torch, transformers, peft)
and `load_seconds` (data and model) come before and are not in `seconds`. Peak memory is
measured from outside; the JSON has this process's ru_maxrss (`self_max_rss_kib`).

Output: a progress line on stderr about every 5 % of the steps (loss, steps/s, ETA), a summary
table on stdout, and --out FILE.json (refused if it exists, unless --overwrite) with every option
and figure. --self-check instead checks the evaluation against a hand computation (logits,
log_softmax) on one held-out example of a fresh prompt-tuning model and exits 0 if they agree to
1e-5 relative, 1 if not.

Requires the project's venv (.venv/bin/python: torch, transformers, peft of requirements.txt).
"""
import argparse
import os
import sys
import time

STARTED = time.perf_counter()
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import peft_loop  # noqa: E402  (light: torch and the rest are imported below, after the options are checked)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog=__doc__[__doc__.index("\n\n") + 2:],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--method", choices=("prompt", "lora"), default="prompt", help="PEFT method (prompt)")
    parser.add_argument("--steps", type=int, default=20000, help="training steps (20000, mops train's default)")
    peft_loop.add_common_options(parser)
    parser.add_argument("--lora-rank", type=int, default=8, help="LoRA's r (8)")
    parser.add_argument("--lora-alpha", type=float, default=16.0, help="LoRA's alpha (16)")
    parser.add_argument("--lora-dropout", type=float, default=0.0, help="LoRA's dropout (0)")
    parser.add_argument("--lora-targets", default="q_proj,v_proj",
                        help=f"LoRA's target modules, comma separated, of {','.join(peft_loop.LLAMA_LINEAR)} "
                             "(q_proj,v_proj)")
    parser.add_argument("--lora-layers", default="2,3",
                        help='layers_to_transform, comma separated 0-based layers, or "all" (2,3)')
    parser.add_argument("--self-check", action="store_true",
                        help="check the evaluation against a hand computation and exit (no training)")
    args = parser.parse_args()
    config = peft_loop.check_common_options(parser, args, need_out=not args.self_check)
    peft_loop.check_range(parser, "--steps", args.steps, 1, peft_loop.MAX_COUNT)
    peft_loop.check_range(parser, "--lora-rank", args.lora_rank, 1, config["hidden_size"])
    peft_loop.check_range(parser, "--lora-alpha", args.lora_alpha, 0.0, None, low_open=True)
    peft_loop.check_range(parser, "--lora-dropout", args.lora_dropout, 0.0, 0.999)
    targets = [t for t in args.lora_targets.split(",") if t]
    unknown = [t for t in targets if t not in peft_loop.LLAMA_LINEAR]
    if not targets or unknown:
        parser.error(f"--lora-targets must be a comma list of {', '.join(peft_loop.LLAMA_LINEAR)}, "
                     f"got {args.lora_targets!r}")
    args.lora_targets = targets
    layers = config["num_hidden_layers"]
    if args.lora_layers == "all":
        args.lora_layer_list = None
    else:
        try:
            args.lora_layer_list = sorted({int(x) for x in args.lora_layers.split(",")})
        except ValueError:
            parser.error(f'--lora-layers must be "all" or a comma list of layers in [0, {layers - 1}], '
                         f"got {args.lora_layers!r}")
        for layer in args.lora_layer_list:
            peft_loop.check_range(parser, "--lora-layers", layer, 0, layers - 1)
    return parser, args, config


def main():
    parser, args, config = parse_args()
    t = time.perf_counter()
    import numpy as np
    import peft  # noqa: F401
    import torch
    import transformers  # noqa: F401
    import_seconds = time.perf_counter() - t
    torch.set_num_threads(args.threads)

    t = time.perf_counter()
    try:
        export = peft_loop.read_export(args.data)
        prefix = args.virtual_tokens if args.method == "prompt" or args.self_check else 0
        peft_loop.check_export_fits(export, config, prefix)
    except ValueError as e:
        parser.error(f"--data: {e}")
    if args.self_check:
        return 0 if peft_loop.check_evaluation(args.model, export, args.virtual_tokens, args.eval_batch_size,
                                               args.seed) else 1
    torch.manual_seed(args.seed)
    model = peft_loop.build_model(args.model, args.method, virtual_tokens=args.virtual_tokens,
                                  lora_rank=args.lora_rank, lora_alpha=args.lora_alpha,
                                  lora_dropout=args.lora_dropout, lora_targets=args.lora_targets,
                                  lora_layers=args.lora_layer_list)
    trainable = peft_loop.trainable_parameters(model)
    load_seconds = time.perf_counter() - t
    startup_seconds = time.perf_counter() - STARTED
    what = (f"PEFT prompt tuning ({args.virtual_tokens} virtual tokens)" if args.method == "prompt" else
            f"PEFT LoRA (r {args.lora_rank}, alpha {args.lora_alpha:g}, {','.join(args.lora_targets)}, "
            f"layers {args.lora_layers})")
    print(f"{what}: {trainable} trainable parameters; {len(export.train)} train, {len(export.held_out)} "
          f"{export.held_out_split} examples; {args.steps} steps x batch {args.batch_size}, "
          f"{torch.get_num_threads()} thread(s); startup {startup_seconds:.1f} s", file=sys.stderr, flush=True)

    rng = np.random.default_rng(args.seed)
    start = time.perf_counter()
    run = peft_loop.train_steps(model, export.train, args.steps, args.batch_size, args.lr, rng,
                                progress=peft_loop.Progress(args.steps))
    trained = time.perf_counter()
    evaluation = peft_loop.evaluate(model, export.held_out, args.eval_batch_size, export.tasks)
    end = time.perf_counter()

    train_seconds = trained - start
    options = {k: v for k, v in vars(args).items() if k != "lora_layer_list"}
    result = {
        "impl": "peft", "method": args.method,
        "seconds": end - start, "train_seconds": train_seconds, "eval_seconds": end - trained,
        "steps": args.steps, "batch_size": args.batch_size,
        "steps_per_second": args.steps / train_seconds, "tokens_per_second": run["train_tokens"] / train_seconds,
        "train_tokens": run["train_tokens"], "final_train_loss": peft_loop.mean_of_last(run["losses"]),
        "test_perplexity": evaluation["test_perplexity"], "held_out_split": export.held_out_split,
        "response_tokens": evaluation["response_tokens"], "trainable_parameters": trainable,
        "train_examples": len(export.train), "held_out_examples": len(export.held_out),
        "threads": torch.get_num_threads(),
        "import_seconds": import_seconds, "load_seconds": load_seconds, "startup_seconds": startup_seconds,
        "self_max_rss_kib": peft_loop.max_rss_kib(),
        "versions": peft_loop.versions(), "options": options,
    }
    peft_loop.write_json(args.out, result, args.overwrite)
    peft_loop.print_summary(
        f"{what}, {args.steps} steps x batch {args.batch_size}, {result['threads']} thread(s)",
        [("steps/s", f"{result['steps_per_second']:.3f}"),
         ("tokens/s", f"{result['tokens_per_second']:.1f} ({run['train_tokens']} padded tokens)"),
         ("train seconds", f"{train_seconds:.2f}"),
         ("eval seconds", f"{result['eval_seconds']:.2f}"),
         ("seconds", f"{result['seconds']:.2f} (training + final evaluation)"),
         ("final train loss", f"{result['final_train_loss']:.4f} (mean of the last {min(100, args.steps)} steps)"),
         ("trainable", str(trainable)),
         ("startup seconds", f"{startup_seconds:.2f} (imports {import_seconds:.2f}, data and model {load_seconds:.2f})"),
         ("results", args.out)],
        evaluation, export.held_out_split)
    return 0


if __name__ == "__main__":
    sys.exit(main())

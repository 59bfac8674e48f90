#!/usr/bin/env python3
"""Chooses MoPs' gate settings on a validation split, then reports them on the test split.

For each setting of the spec (compressed once, as jobs/sweep.py does) and each seed, centralized:
  1. validation: the prompt baseline and every [variant NAME] of the spec (MoPs with the variant's
     options over [prompt]'s), each `mops train` with `--validation-fraction F`: trained on the
     training records less a validation split carved from them, evaluated on that split (the test
     split is not read);
  2. choice: the variant with the lowest validation perplexity (all tasks), mean over seeds;
  3. test: the baseline, the chosen variant and the variant `paper` (the paper's gate, which the
     spec must have), trained on all training records and evaluated on the test split.
Every run of a seed pretrains the same P0 (same seed, same data) and the baseline has no gate, so it
is run once per split. Gain (%) = 100 x (baseline - MoPs) / baseline per seed, then mean ± sample
std over seeds.

    .venv/bin/python jobs/gate_settings.py jobs/gate_settings.ini --out out/gate [--steps N]
    .venv/bin/python jobs/gate_settings.py SPEC --out DIR --report-only   (tables from what is there)

Layout of DIR: models/<setting>.safetensors, <setting>/<validation|test>/<variant>-seed<S>.h5
(variant "baseline" for the prompt baseline), logs/, gate_settings.md. Finished runs are skipped,
unfinished ones run again; progress lines give an ETA. The test stage of a setting starts once all
its validation runs have finished.
"""
import argparse
import os
import statistics
import sys

import h5py

import interference
import sweep

BASELINE = "baseline"
PAPER = "paper"


def run_path(out, setting, split, variant, seed):
    return os.path.join(out, setting, split, f"{variant}-seed{seed}.h5")


def train_command(spec, args, model, seed, split, variant, out):
    """`mops train` of one variant (or the baseline) on one split."""
    method = "prompt" if variant == BASELINE else "mop"
    prompt = dict(spec["options"]["prompt"], **spec["variants"].get(variant, {}))
    steps = str(args.steps)
    return ([args.mops, "train", "--method", method, "--model", model, "--tokenizer", spec["tokenizer"], "--data",
             spec["data"], "--seed", str(seed), "--steps", steps, "--eval-every", steps, "--out", out, "--overwrite"]
            + (["--validation-fraction", str(args.validation_fraction)] if split == "validation" else [])
            + sweep.command_options(spec["options"]["common"]) + sweep.command_options(prompt))


def overall(path):
    """The last /eval/ppl_all of a finished results file, else None."""
    if sweep.status_of(path) != "finished":
        return None
    with h5py.File(path, "r") as f:
        return float(f["eval/ppl_all"][-1])


def run_stage(spec, args, runner, setting, model, split, variants):
    """Runs `variants` (and the baseline) of one split for every seed; returns
    {variant: [overall perplexity per seed, None where unfinished]}."""
    values = {}
    for variant in [BASELINE] + variants:
        values[variant] = []
        for seed in spec["seeds"]:
            path = run_path(args.out, setting, split, variant, seed)
            log = os.path.join(args.out, "logs", f"{setting}-{split}-{variant}-seed{seed}.log")
            runner.run(f"{setting} {split} {variant} seed {seed}",
                       train_command(spec, args, model, seed, split, variant, path), path, log)
            values[variant].append(overall(path))
    return values


def paired_gains(baseline, mop):
    """Per seed where both finished: 100 x (baseline - MoPs) / baseline."""
    return [100 * (b - m) / b for b, m in zip(baseline, mop) if b is not None and m is not None]


def finished(values):
    return [v for v in values if v is not None]


def choose(values):
    """The MoPs variant with the lowest mean validation perplexity, among those finished for every seed."""
    complete = {v: statistics.mean(p) for v, p in values.items()
                if v != BASELINE and p and all(x is not None for x in p)}
    return min(complete, key=complete.get) if complete else None


def stage_table(title, values, spec, marked=None):
    lines = [f"#### {title}", "", "| variant | options | perplexity (all tasks) | gain over the baseline (%) | seeds |",
             "|---|---|---|---|---|"]
    for variant, per_seed in values.items():
        options = " ".join(sweep.command_options(spec["variants"].get(variant, {}))) or ("(prompt baseline)" if variant == BASELINE else "")
        gains = "" if variant == BASELINE else interference.gain_text(paired_gains(values[BASELINE], per_seed))
        name = f"**{variant}** (chosen)" if variant == marked else variant
        lines.append(f"| {name} | `{options}` | {interference.mean_std(finished(per_seed))} | {gains} | "
                     f"{len(finished(per_seed))}/{len(per_seed)} |")
    return lines + [""]


def setting_report(spec, args, runner, setting):
    model = os.path.join(args.out, "models", setting + ".safetensors")
    if not args.report_only:
        model = sweep.compressed_model(spec, args, setting, runner.env)
    lines = [f"### {setting}", ""]
    if not os.path.exists(model):
        return lines + ["(no compressed model yet)", ""]
    validation = run_stage(spec, args, runner, setting, model, "validation", list(spec["variants"]))
    chosen = choose(validation)
    lines += stage_table(f"Validation ({args.validation_fraction:g} of the training records)", validation, spec, chosen)
    if chosen is None or any(None in p for p in validation.values()):
        return lines + ["(the test stage runs once every validation run has finished)", ""]
    test = run_stage(spec, args, runner, setting, model, "test", sorted({PAPER, chosen}, key=list(spec["variants"]).index))
    lines += stage_table(f"Test: the chosen variant ({chosen}) and the paper's gate", test, spec, chosen)
    return lines


def check_spec(spec, args):
    if PAPER not in spec["variants"]:
        raise sweep.SpecError(f"{args.spec}: needs a [variant {PAPER}] section (the paper's gate, reported on test)")
    if BASELINE in spec["variants"]:
        raise sweep.SpecError(f"{args.spec}: '{BASELINE}' names the prompt baseline; give the variant another name")
    if "centralized" not in spec["modes"]:
        raise sweep.SpecError(f"{args.spec}: the gate settings are chosen on centralized runs (modes = centralized)")
    if not 0 < args.validation_fraction < 1:
        raise sweep.SpecError(f"--validation-fraction {args.validation_fraction} is outside (0, 1)")
    if args.steps < 1:
        raise sweep.SpecError(f"{args.spec}: give [train] steps = N or --steps N (at least 1)")
    if not args.report_only and not os.access(args.mops, os.X_OK):
        raise sweep.SpecError(f"--mops {args.mops} is not an executable (build it: bash scripts/build.sh)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("spec", help="sweep spec (INI) with [variant NAME] sections, one of them [variant paper]")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--mops", default=os.environ.get("MOPS", "build/mops"), help="the mops binary (default build/mops)")
    parser.add_argument("--steps", type=int, help="training steps of every run (default: the spec's [train] steps)")
    parser.add_argument("--validation-fraction", type=float, default=0.1,
                        help="share of the training records held out for validation (default 0.1)")
    parser.add_argument("--report-only", action="store_true", help="run nothing; tables from the finished files")
    args = parser.parse_args()
    args.printed, args.dry_run = set(), False
    try:
        spec = sweep.read_spec(args.spec)
        args.steps = args.steps or int(spec["options"]["train"].get("steps", "0"))
        check_spec(spec, args)
        os.makedirs(os.path.join(args.out, "logs"), exist_ok=True)
        os.makedirs(os.path.join(args.out, "models"), exist_ok=True)
        runs_per_setting = len(spec["seeds"]) * (len(spec["variants"]) + 1 + 3)
        runner = interference.Runner(args, len(spec["settings"]) * runs_per_setting)
        lines = [f"# Gate settings: {spec['description']}", "",
                 f"Centralized, {args.steps} steps per run; perplexity mean ± sample std over seeds; gain paired "
                 "by seed. Chosen: the lowest validation perplexity.", ""]
        for setting in spec["settings"]:
            lines += setting_report(spec, args, runner, setting)
    except (sweep.SpecError, RuntimeError) as error:
        print(f"gate_settings: {error}", file=sys.stderr)
        return 1
    interference.write_markdown(os.path.join(args.out, "gate_settings.md"), lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())

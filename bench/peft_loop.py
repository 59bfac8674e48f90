"""What bench/peft_train.py and bench/flower_fedprompt.py share (issue 19's performance peers):
reading the data export, batching, the loss, one Adam run of N steps, the test-perplexity
evaluation, building the PEFT model, the options both take and how they are checked, the
progress line, the summary table and the JSON result file.

Not a command; imported by the two scripts (and, in the Flower simulation, by every Ray actor).
torch, transformers and peft are imported inside the functions that need them, so that --help
and a wrong option answer at once.

The export (`mops data export`): JSON Lines, one example per line,
    {"split": "train"|"test"|"validation", "index": i, "task": NAME, "task_id": t,
     "ids": [BOS, prompt..., response..., EOS], "question_begin": a, "question_end": b,
     "response_begin": r, "client": c}
with "client" on train lines only, and only in an export made with --clients N. Exactly one
held-out split ("test", or "validation" when the export was made with a validation fraction).
The loss and the perplexity are over the response tokens ids[r:] (response and EOS), each
predicted from the position before it: HF labels = ids with -100 at the positions < r (and at the
padding). Training loss = mean NLL over the batch's response tokens (HF's labels loss, mops'
response_loss); test perplexity = exp(sum of the response tokens' NLL / their number), overall
and per task.

Letters: B batch, T tokens (padded), P virtual tokens, V vocabulary.
"""
import json
import math
import os
import platform
import resource
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

HELD_OUT_SPLITS = ("test", "validation")
SPLITS = ("train",) + HELD_OUT_SPLITS
PAD_ID = 0
IGNORE = -100  # HF's ignore_index for labels
LLAMA_LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
MAX_COUNT = 10**9
MAX_SEED = 2**63 - 1


# ---------------------------------------------------------------------------------------------
# The export

class Example:
    """One line of the export; `line` is its 1-based line number in the file."""

    __slots__ = ("split", "index", "task", "task_id", "ids", "question_begin", "question_end",
                 "response_begin", "client", "line")

    def __init__(self, **fields):
        for name in self.__slots__:
            setattr(self, name, fields.get(name))

    def response_tokens(self):
        return len(self.ids) - self.response_begin


class Export:
    """The examples of an export: train (list), held_out (list), held_out_split ("test" or
    "validation"), tasks {task_id: name}, clients (list of lists of train examples, client c at c;
    None when the export has no "client" field)."""

    def __init__(self, path, train, held_out, held_out_split, tasks, clients):
        self.path, self.train, self.held_out, self.held_out_split = path, train, held_out, held_out_split
        self.tasks, self.clients = tasks, clients


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def read_export(path):
    """Reads and checks an export; a malformed line raises ValueError('PATH:LINE: what')."""
    required = ("split", "index", "task", "task_id", "ids", "question_begin", "question_end", "response_begin")
    by_split = {s: [] for s in SPLITS}
    seen = set()
    task_names = {}  # task_id -> (name, first line)
    with_client = None  # whether train lines carry "client" (decided by the first train line)
    with open(path, encoding="utf-8") as f:
        for number, text in enumerate(f, 1):
            def bad(what):
                raise ValueError(f"{path}:{number}: {what}")
            if not text.strip():
                bad("empty line")
            try:
                d = json.loads(text)
            except json.JSONDecodeError as e:
                bad(f"not JSON ({e.msg} at column {e.colno})")
            if not isinstance(d, dict):
                bad("not a JSON object")
            for key in required:
                if key not in d:
                    bad(f'no "{key}"')
            split = d["split"]
            if split not in SPLITS:
                bad(f'"split" is {split!r}, not one of {", ".join(SPLITS)}')
            for key in ("index", "task_id", "question_begin", "question_end", "response_begin"):
                if not _is_int(d[key]) or d[key] < 0:
                    bad(f'"{key}" is {d[key]!r}, not an integer >= 0')
            if not isinstance(d["task"], str) or not d["task"]:
                bad(f'"task" is {d["task"]!r}, not a non-empty string')
            ids = d["ids"]
            if not isinstance(ids, list) or len(ids) < 2 or not all(_is_int(i) and i >= 0 for i in ids):
                bad('"ids" is not a list of at least 2 integers >= 0')
            a, b, r = d["question_begin"], d["question_end"], d["response_begin"]
            if not (a <= b <= r and 1 <= r < len(ids)):
                bad(f"needs question_begin <= question_end <= response_begin and 1 <= response_begin < "
                    f"len(ids); got {a}, {b}, {r} with {len(ids)} ids")
            client = d.get("client")
            if split == "train":
                if with_client is None:
                    with_client = client is not None
                if with_client != (client is not None):
                    bad('"client" on some train lines but not on others')
                if client is not None and (not _is_int(client) or client < 0):
                    bad(f'"client" is {client!r}, not an integer >= 0')
            elif client is not None:
                bad(f'"client" on a {split} line (only train lines have one)')
            if (split, d["index"]) in seen:
                bad(f'a second {split} example with "index" {d["index"]}')
            seen.add((split, d["index"]))
            t = d["task_id"]
            if t in task_names and task_names[t][0] != d["task"]:
                bad(f'task_id {t} is "{d["task"]}" here but "{task_names[t][0]}" on line {task_names[t][1]}')
            task_names.setdefault(t, (d["task"], number))
            by_split[split].append(Example(split=split, index=d["index"], task=d["task"], task_id=t, ids=ids,
                                           question_begin=a, question_end=b, response_begin=r,
                                           client=client, line=number))
    present = [s for s in HELD_OUT_SPLITS if by_split[s]]
    if not by_split["train"]:
        raise ValueError(f"{path}: no train lines")
    if len(present) != 1:
        raise ValueError(f"{path}: needs exactly one held-out split (test or validation), found "
                         f"{' and '.join(present) or 'none'}")
    names = {}
    for t, (name, line) in task_names.items():
        if name in names:
            raise ValueError(f'{path}:{line}: task "{name}" has task_ids {names[name]} and {t}')
        names[name] = t
    for examples in by_split.values():
        examples.sort(key=lambda e: e.index)
    clients = None
    if with_client:
        count = 1 + max(e.client for e in by_split["train"])
        clients = [[] for _ in range(count)]
        for e in by_split["train"]:
            clients[e.client].append(e)
        empty = [c for c, examples in enumerate(clients) if not examples]
        if empty:
            raise ValueError(f"{path}: clients are numbered 0..{count - 1} but client {empty[0]} has no train line")
    tasks = {t: name for t, (name, _) in sorted(task_names.items())}
    return Export(path, by_split["train"], by_split[present[0]], present[0], tasks, clients)


def check_export_fits(export, config, prefix_tokens):
    """Every id below the model's vocabulary and every example, with `prefix_tokens` virtual
    tokens in front, within its max_position_embeddings."""
    vocab, positions = config["vocab_size"], config.get("max_position_embeddings")
    for e in export.train + export.held_out:
        top = max(e.ids)
        if top >= vocab:
            raise ValueError(f"{export.path}:{e.line}: id {top} is outside the model's vocabulary (size {vocab})")
        if positions is not None and len(e.ids) + prefix_tokens > positions:
            raise ValueError(f"{export.path}:{e.line}: {len(e.ids)} ids + {prefix_tokens} virtual tokens exceed "
                             f"the model's max_position_embeddings {positions}")


# ---------------------------------------------------------------------------------------------
# Batches, the loss, training

class BatchOrder:
    """Batches of example indices from a seeded shuffle (a numpy Generator), reshuffled when it
    runs out (epochs); a batch may span the end of one shuffle and the start of the next."""

    def __init__(self, count, rng):
        self.count, self.rng = count, rng
        self.order, self.at = rng.permutation(count), 0

    def take(self, size):
        out = []
        while len(out) < size:
            if self.at == self.count:
                self.order, self.at = self.rng.permutation(self.count), 0
            n = min(size - len(out), self.count - self.at)
            out.extend(int(i) for i in self.order[self.at:self.at + n])
            self.at += n
        return out


def make_batch(examples):
    """Right-padded (pad id 0) input_ids, attention_mask and labels (B, T): labels = ids with
    -100 before response_begin and at the padding."""
    import torch
    T = max(len(e.ids) for e in examples)
    ids = torch.full((len(examples), T), PAD_ID, dtype=torch.long)  # (B, T)
    mask = torch.zeros((len(examples), T), dtype=torch.long)  # (B, T)
    labels = torch.full((len(examples), T), IGNORE, dtype=torch.long)  # (B, T)
    for b, e in enumerate(examples):
        n = len(e.ids)
        ids[b, :n] = torch.tensor(e.ids)
        mask[b, :n] = 1
        labels[b, e.response_begin:n] = ids[b, e.response_begin:n]
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def batch_loss(model, batch):
    """The training loss: HF's labels loss, mean NLL over the batch's response tokens (PEFT's
    prompt tuning puts -100 labels in front for the virtual tokens)."""
    return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"]).loss


def trainable(model):
    return [p for p in model.parameters() if p.requires_grad]


def trainable_parameters(model):
    return sum(p.numel() for p in trainable(model))


def train_steps(model, examples, steps, batch_size, lr, rng, progress=None):
    """One training run: a fresh torch.optim.Adam (lr, torch's betas and eps, no weight decay)
    over the model's trainable parameters, `steps` steps on batches of `batch_size` examples in
    BatchOrder(rng). Returns {"losses": [per step], "train_tokens": sum of B*T over the steps
    (padded tokens, virtual tokens not counted), "seconds": the loop's wall time}."""
    import torch
    optimizer = torch.optim.Adam(trainable(model), lr=lr)
    order = BatchOrder(len(examples), rng)
    model.train()
    losses, tokens = [], 0
    start = time.perf_counter()
    for step in range(1, steps + 1):
        batch = make_batch([examples[i] for i in order.take(batch_size)])
        loss = batch_loss(model, batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        tokens += batch["input_ids"].numel()
        if progress is not None:
            progress.tick(step, f"loss {losses[-1]:.4f}")
    return {"losses": losses, "train_tokens": tokens, "seconds": time.perf_counter() - start}


def mean_of_last(values, count=100):
    tail = values[-count:]
    return sum(tail) / len(tail) if tail else float("nan")


# ---------------------------------------------------------------------------------------------
# Evaluation

def response_nll(logits, labels):
    """Per-example sums of the response tokens' NLL (float64, (B,)) and their counts (B,):
    logits (B, T, V) for the T token positions, labels (B, T) with -100 where not scored; the
    token at t is predicted from position t - 1."""
    import torch
    import torch.nn.functional as F
    B, T, V = logits.shape
    nll = F.cross_entropy(logits[:, :-1].reshape(-1, V).float(), labels[:, 1:].reshape(-1),
                          ignore_index=IGNORE, reduction="none").view(B, T - 1)  # (B, T-1), 0 where ignored
    return nll.double().sum(1), (labels[:, 1:] != IGNORE).sum(1)


def evaluate(model, examples, batch_size, tasks, per_example=False):
    """Test perplexity over the examples' response tokens, overall and per task (names from
    `tasks`, {task_id: name}), in batches of `batch_size` in the given order, no grad, eval mode.
    Returns {"test_perplexity": {"overall": x, name: x, ...}, "response_tokens": n, "nll": sum}
    (and "per_example": [NLL sum of each example] with per_example)."""
    import torch
    model.eval()
    nll_task, count_task, per = {}, {}, []
    with torch.no_grad():
        for at in range(0, len(examples), batch_size):
            chunk = examples[at:at + batch_size]
            batch = make_batch(chunk)
            T = batch["input_ids"].shape[1]
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            nll, count = response_nll(logits[:, -T:], batch["labels"])  # PEFT's prompt tuning puts P rows first
            for e, x, n in zip(chunk, nll.tolist(), count.tolist()):
                nll_task[e.task_id] = nll_task.get(e.task_id, 0.0) + x
                count_task[e.task_id] = count_task.get(e.task_id, 0) + n
                per.append(x)
    total, tokens = sum(nll_task.values()), sum(count_task.values())
    ppl = {"overall": math.exp(total / tokens)}
    for t in sorted(nll_task):
        ppl[tasks[t]] = math.exp(nll_task[t] / count_task[t])
    out = {"test_perplexity": ppl, "response_tokens": tokens, "nll": total}
    if per_example:
        out["per_example"] = per
    return out


def check_evaluation(model_dir, export, virtual_tokens, eval_batch_size, seed):
    """evaluate()'s summed NLL of one held-out example (of the first evaluation batch's examples
    shorter than its longest, so padded there, the one with the most response tokens) against
    the same computed by hand from a fresh PEFT prompt-tuning model's logits for that example
    alone, unpadded, with log_softmax. Prints both; True when they agree to 1e-5 relative."""
    import torch
    torch.manual_seed(seed)
    model = build_model(model_dir, "prompt", virtual_tokens=virtual_tokens)
    chunk = export.held_out[:eval_batch_size]
    longest = max(len(x.ids) for x in chunk)
    padded = [i for i in range(len(chunk)) if len(chunk[i].ids) < longest] or list(range(len(chunk)))
    k = max(padded, key=lambda i: chunk[i].response_tokens())
    e = chunk[k]
    ours = evaluate(model, chunk, eval_batch_size, export.tasks, per_example=True)["per_example"][k]
    with torch.no_grad():
        ids = torch.tensor([e.ids])  # (1, T)
        logits = model(input_ids=ids).logits[0, -len(e.ids):]  # (T, V)
        logp = torch.log_softmax(logits, dim=-1)  # (T, V)
        by_hand = -sum(logp[t - 1, e.ids[t]].item() for t in range(e.response_begin, len(e.ids)))
    rel = abs(ours - by_hand) / abs(by_hand)
    ok = rel <= 1e-5
    print(f"check_evaluation: {export.held_out_split} example index {e.index} ({e.response_tokens()} response "
          f"tokens, {len(e.ids)} ids, in a batch of {len(chunk)} padded to {max(len(x.ids) for x in chunk)})")
    print(f"  evaluate() summed NLL   {ours:.10g}")
    print(f"  by hand (log_softmax)   {by_hand:.10g}")
    print(f"  relative difference     {rel:.3g} ({'OK' if ok else 'FAILED'}, tolerance 1e-5)")
    return ok


# ---------------------------------------------------------------------------------------------
# The model

def read_model_config(model_dir):
    with open(os.path.join(model_dir, "config.json"), encoding="utf-8") as f:
        return json.load(f)


def build_model(model_dir, method, virtual_tokens=70, lora_rank=8, lora_alpha=16, lora_dropout=0.0,
                lora_targets=("q_proj", "v_proj"), lora_layers=(2, 3)):
    """transformers.LlamaForCausalLM.from_pretrained(model_dir, dtype=float32) wrapped by
    peft.get_peft_model: prompt tuning (PromptTuningConfig, CAUSAL_LM, `virtual_tokens`,
    SAMPLE_VOCAB init: rows of the token embeddings at torch.randint ids, so seed torch first) or
    LoRA (LoraConfig, CAUSAL_LM, r, alpha, dropout, target modules, layers_to_transform: a list,
    or None for every layer; bias none). The base weights are frozen."""
    import warnings
    import peft
    import torch
    import transformers
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()  # "Loading weights" on stderr
    # peft 0.21 calls transformers 5's deprecated is_gradient_checkpointing
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
    base = transformers.LlamaForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    if method == "prompt":
        config = peft.PromptTuningConfig(task_type=peft.TaskType.CAUSAL_LM, num_virtual_tokens=virtual_tokens,
                                         prompt_tuning_init=peft.PromptTuningInit.SAMPLE_VOCAB)
    elif method == "lora":
        config = peft.LoraConfig(task_type=peft.TaskType.CAUSAL_LM, r=lora_rank, lora_alpha=lora_alpha,
                                 lora_dropout=lora_dropout, target_modules=list(lora_targets),
                                 layers_to_transform=None if lora_layers is None else list(lora_layers),
                                 bias="none")
    else:
        raise ValueError(f"unknown method {method!r}")
    return peft.get_peft_model(base, config)


def prompt_embedding(model):
    """The (P, C) parameter of a PEFT prompt-tuning model's virtual tokens."""
    return model.prompt_encoder[model.active_adapter].embedding.weight


# ---------------------------------------------------------------------------------------------
# Options

def add_common_options(parser, steps_name=None):
    """The options both scripts take (--batch-size's help names `steps_name`, what a batch is
    a step of)."""
    parser.add_argument("--data", required=True, metavar="FILE.jsonl", help="the export (`mops data export`)")
    parser.add_argument("--model", required=True, metavar="HF_DIR",
                        help="a Hugging Face Llama directory (`mops convert --to hf`)")
    parser.add_argument("--out", metavar="FILE.json", help="the JSON result file (required unless --self-check)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    parser.add_argument("--seed", type=int, default=0, help="torch.manual_seed and the batch order's seed (0)")
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (1)")
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam's learning rate (1e-3)")
    parser.add_argument("--batch-size", type=int, default=1, help=f"examples per {steps_name or 'step'} (1)")
    parser.add_argument("--eval-batch-size", type=int, default=16, help="examples per evaluation batch (16)")
    parser.add_argument("--virtual-tokens", type=int, default=70, help="prompt tuning's virtual tokens (70)")


def check_range(parser, option, value, low, high, low_open=False):
    """parser.error naming the option and its range unless low <= value <= high (low < value
    with low_open; high None: no upper bound)."""
    below = value <= low if low_open else value < low
    above = high is not None and value > high
    if below or above or (isinstance(value, float) and not math.isfinite(value)):
        lo = f"({low}" if low_open else f"[{low}"
        hi = "inf)" if high is None else f"{high}]"
        parser.error(f"{option} must be in {lo}, {hi}, got {value}")


def check_common_options(parser, args, need_out=True):
    """Checks what add_common_options added, before anything is loaded: ranges, that --data is a
    file, --model has a config.json, and --out does not exist (unless --overwrite) in an existing
    directory. Returns the model's config.json."""
    check_range(parser, "--seed", args.seed, 0, MAX_SEED)
    check_range(parser, "--threads", args.threads, 1, 1024)
    check_range(parser, "--lr", args.lr, 0.0, None, low_open=True)
    check_range(parser, "--batch-size", args.batch_size, 1, 65536)
    check_range(parser, "--eval-batch-size", args.eval_batch_size, 1, 65536)
    if not os.path.isfile(args.data):
        parser.error(f"--data {args.data}: no such file")
    if not os.path.isfile(os.path.join(args.model, "config.json")):
        parser.error(f"--model {args.model}: no config.json there (a Hugging Face model directory is needed)")
    try:
        config = read_model_config(args.model)
    except (OSError, ValueError) as e:
        parser.error(f"--model {args.model}: config.json unreadable ({e})")
    positions = config.get("max_position_embeddings", 1 << 30)
    check_range(parser, "--virtual-tokens", args.virtual_tokens, 1, positions - 2)
    if need_out:
        if not args.out:
            parser.error("--out FILE.json is required")
        if os.path.exists(args.out) and not args.overwrite:
            parser.error(f"--out {args.out} exists (add --overwrite to replace it)")
        parent = os.path.dirname(os.path.abspath(args.out))
        if not os.path.isdir(parent):
            parser.error(f"--out {args.out}: no directory {parent}")
    return config


# ---------------------------------------------------------------------------------------------
# Reporting

def versions(*extra):
    """python, torch, transformers, peft and numpy versions, and those of the modules named in extra."""
    import importlib
    out = {"python": platform.python_version()}
    for name in ("torch", "transformers", "peft", "numpy") + extra:
        out[name] = importlib.import_module(name).__version__
    return out


def max_rss_kib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


def duration(seconds):
    seconds = max(0, int(round(seconds)))
    h, m, s = seconds // 3600, seconds // 60 % 60, seconds % 60
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


class Progress:
    """A line on stderr about every 5 % of `total` (and at the end): done/total, what the caller
    adds, rate and ETA."""

    def __init__(self, total, unit="step"):
        self.total, self.unit = total, unit
        self.every = max(1, math.ceil(total / 20))
        self.start = time.perf_counter()

    def tick(self, done, extra=""):
        if done % self.every and done != self.total:
            return
        elapsed = time.perf_counter() - self.start
        rate = done / elapsed if elapsed > 0 else float("inf")
        eta = (self.total - done) / rate if rate > 0 else 0.0
        rate_text = f"{rate:.2f} {self.unit}s/s" if rate >= 1 else f"{1 / rate:.2f} s/{self.unit}"
        print(f"{self.unit} {done}/{self.total} ({100 * done / self.total:3.0f}%)"
              f"{' ' + extra if extra else ''} | {rate_text} | ETA {duration(eta)}", file=sys.stderr, flush=True)


def print_summary(title, rows, evaluation, split):
    """The table on stdout: title, (label, value) rows, then the perplexities."""
    print(title)
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        print(f"  {label:<{width}}  {value}")
    ppl = evaluation["test_perplexity"]
    print(f"{split} perplexity ({evaluation['response_tokens']} response tokens)")
    width = max(len(name) for name in ppl)
    for name, x in ppl.items():
        print(f"  {name:<{width}}  {x:.4f}")


def write_json(path, result, overwrite):
    """Writes the result; refuses an existing file unless overwrite (checked again here, as it
    may have appeared during the run)."""
    with open(path, "w" if overwrite else "x", encoding="utf-8") as f:
        json.dump(result, f, indent=1)
        f.write("\n")

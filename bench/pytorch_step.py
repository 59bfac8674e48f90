#!/usr/bin/env python3
"""The MoPs training step of bench/mops_step_bench.cpp in PyTorch, eager or torch.compile'd, for a side-by-side timing.

Same model and step as src/model/llama.cpp, src/prompts/prompted_forward.cpp and src/prompts/prompt_training.cpp:
Llama (RMSNorm, RoPE on interleaved pairs, grouped-query attention, SwiGLU, tied classifier),
K0 zero first-layer prompts, a no-grad lower half [0, L_mid), the gate on the mean layer-L_mid
hidden state of the question tokens, E x P mid prompts replacing the prompt positions at L_mid,
attention probabilities to expert e's columns scaled by E * G_e in every layer >= L_mid, loss =
mean NLL of the response tokens, Adam (lr 1e-3) on the mid prompts and the gate.
Written as a Python user would write it, op for op the same as the C++ step; the random weights
and tokens differ from the C++ run (same shapes and FLOPs).

--compile: torch.compile (default inductor backend, CPU: C++/OpenMP kernels built with g++) of
two pieces of the same step: the forward + loss (prompted_forward and response_loss as one
function; AOTAutograd derives and inductor compiles its backward too, so loss.backward() runs
compiled kernels) and Adam's optimizer.step(). zero_grad(), the loss.backward() call and
loss.item() stay eager Python (backward cannot be traced into a torch.compile'd function without
compiled autograd). Compilation happens in the first warm-up step, so --compile needs
--warmup >= 1; that step's wall time is reported as "compile_seconds" (compiling forward,
backward and the Adam step, plus one step's work) and is not among the timed steps. A timed step
that compiles again (a recompile) is reported in "recompiles_in_timed_steps" (0 expected).
The compile is cold: unless TORCHINDUCTOR_CACHE_DIR is set, inductor's caches go to a fresh
temporary directory (removed at exit), so no earlier run's kernels are reused; with a warm cache
(TORCHINDUCTOR_CACHE_DIR set to one a run of the same shapes filled) compilation is several times
shorter. "compile_cache" in --json says which.
If torch.compile fails, the script prints why (the exception's type and message, with
"impl": "python-compile" and "error" in --json) and exits with status 1.

Requires the project's venv (torch 2.11.0 from requirements.txt, made by scripts/setup.sh); from
the repository root:
    .venv/bin/python bench/pytorch_step.py [--dim 128] [--layers 6] ... [--compile] [--json]   (as mops_step_bench)
    .venv/bin/python bench/pytorch_step.py --sgemm [--threads N] [--json]
--threads N (default: all cores) sets LibTorch's intra-op threads (torch.set_num_threads), which
also run MKL's matrix products and inductor's OpenMP kernels.

Letters: B batch, T tokens, S = prompts + T, C width, H heads, G kv heads, D head dim, V vocabulary.
"""
import argparse
import atexit
import json
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
import traceback

USER_COMPILE_CACHE = os.environ.get("TORCHINDUCTOR_CACHE_DIR")  # read before torch, which sets its default there
import torch  # noqa: E402
import torch.nn as nn
import torch.nn.functional as F


class RMSNorm(nn.Module):
    def __init__(self, dim, eps=1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))  # (C)

    def forward(self, x):  # (..., C) -> (..., C), in float32 for a bfloat16 x (as src/model/llama.cpp)
        x32 = x.float()
        return (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)).to(x.dtype) * self.weight


class Rope:
    """Rotary embedding on interleaved pairs (x[2i], x[2i+1]), as src/model/rope.cpp."""

    def __init__(self, head_dim, length, theta=10000.0):
        pair = torch.arange(0, head_dim // 2, dtype=torch.float64)              # (D/2)
        inv_freq = torch.pow(theta, -2.0 * pair / head_dim)                      # (D/2)
        angles = torch.outer(torch.arange(0, length, dtype=torch.float64), inv_freq)  # (N, D/2)
        self.cos, self.sin = angles.cos().float(), angles.sin().float()

    def apply(self, x):  # (B, h, S, D) -> (B, h, S, D)
        S = x.size(2)
        cos, sin = self.cos[:S].to(x.device), self.sin[:S].to(x.device)         # (S, D/2)
        pairs = x.float().unflatten(-1, (x.size(-1) // 2, 2))                    # (B, h, S, D/2, 2), float32
        a, b = pairs[..., 0], pairs[..., 1]                                      # (B, h, S, D/2)
        return torch.stack((a * cos - b * sin, a * sin + b * cos), -1).flatten(-2).to(x.dtype)


class Attention(nn.Module):
    def __init__(self, dim, n_heads, n_kv_heads):
        super().__init__()
        self.H, self.G, self.D = n_heads, n_kv_heads, dim // n_heads
        self.wq = nn.Linear(dim, dim, bias=False)
        self.wk = nn.Linear(dim, n_kv_heads * self.D, bias=False)
        self.wv = nn.Linear(dim, n_kv_heads * self.D, bias=False)
        self.wo = nn.Linear(dim, dim, bias=False)

    def forward(self, x, rope, prompt_columns, column_weights):  # (B, S, C) -> (B, S, C)
        B, S, _ = x.shape
        H, G, D = self.H, self.G, self.D
        q = rope.apply(self.wq(x).view(B, S, H, D).transpose(1, 2))  # (B, H, S, D)
        k = rope.apply(self.wk(x).view(B, S, G, D).transpose(1, 2))  # (B, G, S, D)
        v = self.wv(x).view(B, S, G, D).transpose(1, 2)              # (B, G, S, D)
        if G != H:
            k = k.repeat_interleave(H // G, 1)                        # (B, H, S, D)
            v = v.repeat_interleave(H // G, 1)
        scores = torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(D)  # (B, H, S, S)
        future = torch.ones(S, S, dtype=torch.bool, device=x.device).triu(1)  # (S, S)
        probs = torch.softmax(scores.masked_fill(future, float("-inf")), -1)  # (B, H, S, S)
        if column_weights is not None:
            token_columns = torch.ones(B, S - prompt_columns, device=x.device, dtype=probs.dtype)
            weights = torch.cat((column_weights.to(probs.dtype), token_columns), 1)  # (B, S)
            probs = probs * weights.view(B, 1, 1, S)
        out = torch.matmul(probs, v).transpose(1, 2).reshape(B, S, H * D)  # (B, S, C)
        return self.wo(out)


class Block(nn.Module):
    def __init__(self, dim, hidden, n_heads, n_kv_heads):
        super().__init__()
        self.attention_norm, self.ffn_norm = RMSNorm(dim), RMSNorm(dim)
        self.attention = Attention(dim, n_heads, n_kv_heads)
        self.w1 = nn.Linear(dim, hidden, bias=False)
        self.w2 = nn.Linear(hidden, dim, bias=False)
        self.w3 = nn.Linear(dim, hidden, bias=False)

    def forward(self, x, rope, prompt_columns, column_weights):  # (B, S, C) -> (B, S, C)
        h = x + self.attention(self.attention_norm(x), rope, prompt_columns, column_weights)
        f = self.ffn_norm(h)
        return h + self.w2(F.silu(self.w1(f)) * self.w3(f))


class Llama(nn.Module):
    def __init__(self, a):
        super().__init__()
        self.tok_embeddings = nn.Embedding(a.vocab, a.dim)
        self.layers = nn.ModuleList(Block(a.dim, a.hidden, a.heads, a.kv_heads) for _ in range(a.layers))
        self.norm = RMSNorm(a.dim)
        self.rope = Rope(a.dim // a.heads, max(a.first_prompts, a.experts * a.prompts_per_expert) + a.seq)
        self.init_weights(a.layers)

    def init_weights(self, n_layers):  # llama2.c's scheme, as LlamaImpl::init_weights
        residual_std = 0.02 / math.sqrt(2.0 * n_layers)
        with torch.no_grad():
            for name, p in self.named_parameters():
                if p.dim() == 1:
                    p.fill_(1.0)
                else:
                    p.normal_(0.0, residual_std if ("wo." in name or "w2." in name) else 0.02)
        self.requires_grad_(False)

    def run_layers(self, h, begin, end, prompt_columns, column_weights=None):  # (B, S, C) -> (B, S, C)
        for layer in self.layers[begin:end]:
            h = layer(h, self.rope, prompt_columns, column_weights)
        return h

    def classify(self, h, prompt_columns):  # (B, S, C) -> (B, T, V)
        return torch.matmul(self.norm(h[:, prompt_columns:]), self.tok_embeddings.weight.t())


class PromptState(nn.Module):
    def __init__(self, a):
        super().__init__()
        self.K0, self.E, self.P, self.mid_layer = a.first_prompts, a.experts, a.prompts_per_expert, a.layers // 2
        self.first_prompts = nn.Parameter(torch.zeros(self.K0, a.dim), requires_grad=False)  # (K0, C)
        self.mid_prompts = nn.Parameter(torch.zeros(self.E * self.P, a.dim))                  # (E * P, C)
        self.gate = nn.Sequential(nn.Linear(a.dim, 32), nn.ReLU(), nn.Linear(32, self.E)) if a.method == "mop" else None

    def gate_output(self, tokens, question_mask):  # (B, T, C), (B, T) -> (B, E)
        counts = question_mask.sum(1, keepdim=True)                       # (B, 1)
        mean = (tokens * question_mask.unsqueeze(-1)).sum(1) / counts     # (B, C)
        return torch.softmax(self.gate(mean), -1)

    def column_weights(self, gate):  # (B, E) -> (B, E * P)
        return gate.repeat_interleave(self.P, 1) * float(self.E)


def prompted_forward(model, state, ids, question_mask):  # (B, T) -> (B, T, V)
    B = ids.size(0)
    with torch.no_grad():
        prompts = state.first_prompts.detach().unsqueeze(0).expand(B, -1, -1)              # (B, K0, C)
        tokens = model.tok_embeddings(ids)                                                 # (B, T, C)
        h = torch.cat((prompts.to(tokens.dtype), tokens), 1)                               # (B, K0 + T, C)
        lower = model.run_layers(h, 0, state.mid_layer, state.K0)
    tokens = lower[:, state.K0:]                                                            # (B, T, C)
    weights = state.column_weights(state.gate_output(tokens.float(), question_mask)) if state.gate else None  # (B, E * P)
    mid = state.mid_prompts.unsqueeze(0).expand(B, -1, -1).to(tokens.dtype)               # (B, E * P, C)
    h = model.run_layers(torch.cat((mid, tokens), 1), state.mid_layer, len(model.layers), state.E * state.P, weights)
    return model.classify(h, state.E * state.P)


def response_loss(logits, ids, response_mask):  # (B, T, V), (B, T), (B, T - 1) -> ()
    logp = torch.log_softmax(logits[:, :-1].float(), -1)                                 # (B, T-1, V), float32
    nll = -(logp.gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1) * response_mask).sum(1)  # (B)
    return nll.sum() / response_mask.sum().clamp_min(1)


def random_batch(a):
    """B examples of T random tokens: BOS, question [1, T/2), response [T/2, T), as the C++ bench."""
    ids = torch.randint(3, a.vocab, (a.batch, a.seq))  # (B, T)
    ids[:, 0] = 1
    question_mask = torch.zeros(a.batch, a.seq)       # (B, T)
    question_mask[:, 1:a.seq // 2] = 1
    response_mask = torch.zeros(a.batch, a.seq - 1)   # (B, T - 1): position t predicts token t + 1
    response_mask[:, a.seq // 2 - 1:] = 1
    return ids, question_mask, response_mask


def make_optimizer(state):
    groups = [{"params": [state.mid_prompts]}]
    if state.gate is not None:
        groups.append({"params": list(state.gate.parameters())})
    return torch.optim.Adam(groups, lr=1e-3)


def forward_loss(model, state, batch):  # the step's forward and loss: () with autograd to the mid prompts and the gate
    ids, question_mask, response_mask = batch
    return response_loss(prompted_forward(model, state, ids, question_mask), ids, response_mask)


class TrainStep:
    """forward + loss, zero_grad, backward, Adam step; with compile=True the forward + loss and the
    Adam step are torch.compile'd (see the module's docstring)."""

    def __init__(self, model, state, optimizer, compile=False):
        self.model, self.state, self.optimizer = model, state, optimizer
        self.loss_of = lambda batch: forward_loss(model, state, batch)
        self.optimizer_step = optimizer.step
        if compile:
            self.loss_of = torch.compile(self.loss_of)
            self.optimizer_step = torch.compile(optimizer.step)

    def __call__(self, batch):
        loss = self.loss_of(batch)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer_step()
        return loss.item()


def seconds_of(work):
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def sgemm_gflops():
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)  # (1024, 1024)
    for _ in range(3):
        torch.mm(a, b)
    return 2.0 * 1024 ** 3 / statistics.median(seconds_of(lambda: torch.mm(a, b)) for _ in range(10)) / 1e9


def impl_name(a):
    return "python-compile" if a.compile else "python"


def report_steps(a, seconds, loss, compile_info):
    ms = 1e3 * statistics.median(seconds)
    result = {"impl": impl_name(a), "method": a.method, "dim": a.dim, "layers": a.layers, "seq": a.seq,
              "batch": a.batch, "experts": a.experts, "prompts_per_expert": a.prompts_per_expert,
              "steps": a.steps, "ms_per_step": round(ms, 3), "tokens_per_s": round(a.batch * a.seq / (ms / 1e3), 1),
              "loss": round(loss, 4), "threads": torch.get_num_threads(), "torch": torch.__version__,
              "device": a.device, "dtype": a.dtype}
    result.update(compile_info)
    if a.json:
        print(json.dumps(result))
    else:
        compiled = (f", torch.compile: {compile_info['compile_seconds']:.1f} s in the first warm-up step, "
                    f"{compile_info['recompiles_in_timed_steps']} recompiles in the timed steps") if a.compile else ""
        print(f"{a.method} d={a.dim} L={a.layers} T={a.seq} B={a.batch} {a.experts}x{a.prompts_per_expert} prompts "
              f"({impl_name(a)}): {ms:.2f} ms/step (median of {a.steps}), {result['tokens_per_s']:.0f} tokens/s, "
              f"last loss {loss:.4f}{compiled}")


def report_failure(a, what, error):
    """torch.compile (or a step) failed: say exactly why, on stdout in --json, and exit 1."""
    message = f"{type(error).__name__}: {error}".strip()
    traceback.print_exc(file=sys.stderr)
    if a.json:
        print(json.dumps({"impl": impl_name(a), "method": a.method, "error": f"{what}: {message}"}))
    else:
        print(f"pytorch_step.py: {what}: {message}")
    sys.exit(1)


def use_compile_cache():
    """A fresh inductor cache directory, removed at exit, unless TORCHINDUCTOR_CACHE_DIR is set;
    returns what "compile_cache" reports."""
    if USER_COMPILE_CACHE:
        return "TORCHINDUCTOR_CACHE_DIR=" + USER_COMPILE_CACHE
    directory = tempfile.mkdtemp(prefix="pytorch_step_inductor_")
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = directory
    from torch._inductor.utils import clear_caches  # as torch._inductor's temporary_cache_dir does
    clear_caches()
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    return "cold (fresh directory)"


def compiled_graphs():
    """Frames compiled by torch.compile so far in this process (TorchDynamo's counter)."""
    from torch._dynamo.utils import counters
    return counters["stats"]["unique_graphs"]


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name, default in [("dim", 128), ("layers", 6), ("heads", 4), ("kv-heads", 2), ("hidden", 0), ("vocab", 1024),
                          ("seq", 64), ("batch", 8), ("experts", 7), ("prompts-per-expert", 4), ("first-prompts", 10),
                          ("steps", 10), ("warmup", 2), ("threads", 0)]:
        p.add_argument("--" + name, type=int, default=default)
    p.add_argument("--method", choices=["mop", "prompt"], default="mop")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="where the step runs (as mops_step_bench)")
    p.add_argument("--dtype", choices=["auto", "float32", "bfloat16"], default="auto",
                   help="the frozen backbone's dtype (auto: bfloat16 on cuda, float32 on cpu); prompts, gate, Adam "
                        "and the loss stay float32, as in mops"),
    p.add_argument("--json", action="store_true")
    p.add_argument("--sgemm", action="store_true")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the forward + loss (and so its backward) and the Adam step (inductor, CPU)")
    a = p.parse_args()
    if a.compile and a.warmup < 1:
        p.error("--compile compiles in the first warm-up step: it needs --warmup >= 1")
    if a.steps < 1:
        p.error("--steps must be >= 1")
    if a.hidden <= 0:  # llama_hidden_dim(dim, 32)
        a.hidden = 32 * ((2 * 4 * a.dim // 3 + 31) // 32)
    return a


def main():
    a = parse_args()
    torch.set_num_threads(a.threads if a.threads > 0 else os.cpu_count())
    if not a.json:
        print(f"# torch {torch.__version__}: intra-op threads {torch.get_num_threads()} "
              f"(OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}), MKL {torch.backends.mkl.is_available()}")
    if a.sgemm:
        gflops = sgemm_gflops()
        print(json.dumps({"impl": "python", "sgemm_gflops": round(gflops, 2), "threads": torch.get_num_threads()})
              if a.json else f"sgemm 1024^3: {gflops:.2f} GFLOP/s")
        return
    torch.manual_seed(0)
    device = torch.device(a.device)
    dtype = torch.bfloat16 if a.dtype == "bfloat16" or (a.dtype == "auto" and a.device == "cuda") else torch.float32
    model, state = Llama(a).to(device, dtype), PromptState(a).to(device)
    optimizer, batch = make_optimizer(state), tuple(t.to(device) for t in random_batch(a))
    compile_cache = use_compile_cache() if a.compile else None
    step = TrainStep(model, state, optimizer, compile=a.compile)
    warmup_seconds = []
    for i in range(a.warmup):
        try:
            warmup_seconds.append(seconds_of(lambda: step(batch)))
        except Exception as error:  # torch.compile's failures surface here, in the first call
            report_failure(a, f"warm-up step {i + 1}" + (" (torch.compile)" if a.compile else ""), error)
    graphs_after_warmup = compiled_graphs() if a.compile else 0
    seconds, losses = [], []
    for _ in range(a.steps):
        seconds.append(seconds_of(lambda: losses.append(step(batch))))
    compile_info = {}
    if a.compile:
        compile_info = {"compile_seconds": round(warmup_seconds[0], 3), "compile_cache": compile_cache,
                        "recompiles_in_timed_steps": compiled_graphs() - graphs_after_warmup}
    report_steps(a, seconds, losses[-1], compile_info)


if __name__ == "__main__":
    main()

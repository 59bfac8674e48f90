#!/usr/bin/env python3
"""Federated performance peer of `mops federate --method fedprompt` (issue 19): FedPrompt (FedAvg of
PEFT prompt-tuning embeddings) as a Flower simulation, flwr's simulation engine on its Ray backend,
on the same model, data, clients, rounds and local steps; prints seconds per round and the final
test perplexity.

    flower_fedprompt.py --data EXPORT-clients.jsonl --model HF_DIR --rounds 10 \\
        --clients-per-round 10 --local-steps 250 --out FILE.json

The data is an export made with `mops data export --clients N` (train lines carry "client"; read
by bench/peft_loop.py); the model transformers.LlamaForCausalLM.from_pretrained(HF_DIR,
dtype=float32) with PEFT's prompt tuning (PromptTuningConfig, CAUSAL_LM, --virtual-tokens 70,
SAMPLE_VOCAB init), as bench/peft_train.py --method prompt. PEFT's prompts enter at the input
embeddings, in front of the tokens, through every layer; mops' FedPrompt instead averages 70
prompts at the middle layer behind 10 frozen first-layer prompts (P0). CPU, float32, offline
(HF_HUB_OFFLINE, TRANSFORMERS_OFFLINE, FLWR_TELEMETRY_ENABLED=0, RAY_USAGE_STATS_ENABLED=0).

The Flower app (flwr 1.42's message API; flwr.simulation.run_simulation, which flwr 1.42 marks
deprecated in favour of `flwr run`, is its Python entry point):
- num_supernodes = the export's clients C (100); node partition-id c is client c's examples.
- ServerApp: first a query round to every node (message type "query"), whose replies give the
  partition id behind each Flower node id (node ids are random per run) and load each actor's
  model. Then flwr.serverapp.strategy.FedAvg's start() for --rounds R, with FedAvg subclassed in
  two places only: configure_train samples the round's --clients-per-round A clients itself,
  uniformly without replacement from a numpy Generator seeded by (--seed, round) (FedAvg's own
  sampling, random.sample over the random node ids, cannot repeat across runs; fraction_train is
  still set to A / C), and aggregate_train sorts the replies by client before FedAvg's
  weighted average (so the float sums run in one order) and fails on a missing or failed reply.
  The average is FedAvg's: weighted_by_key "num-examples", each client's number of training
  examples. The message carries the global prompt embeddings (ArrayRecord "arrays", key
  "prompt_embeddings", P x C) and the settings (ConfigRecord "config").
- ClientApp (train): a sampled client copies the global embeddings into its model, runs
  --local-steps (250) steps of --batch-size (1) on its own examples with a FRESH Adam (--lr),
  batches in an order seeded by (--seed, round, client), and replies its embeddings and
  num-examples (with its mean loss, seconds and tokens).
- Evaluation: centralized, on the server (FedAvg's evaluate_fn, fraction_evaluate 0), of the
  global prompts on the held-out split after every --eval-every rounds and after the last
  (--eval-every defaults to --rounds: once at the end).
- Resources: Ray starts with num_cpus = --parallel-clients (2) and no GPU, so that many
  ClientApp actors run at once, each with client_resources num_cpus 1 and 1 torch thread;
  the object store is --object-store-mb (512) MB; Ray's and Flower's logs are kept quiet
  (--verbose shows them); run_simulation shuts Ray down when the ServerApp returns (and atexit
  does again if it is still up), and then the script waits for the actors' processes to exit
  (`actor_exit_seconds`, a second or two; any left after 30 s get SIGTERM, by process id).
- Caching: each Ray actor (a process) keeps, in this module's _ACTOR_STATE, the PEFT model (base
  weights loaded once per actor, not per round or per client) and the export's train examples
  grouped by client (parsed once per actor). Not cached: the optimizer (a fresh Adam for every
  client run, as FedPrompt prescribes) and the prompts (the message's global embeddings are
  copied in every time). The server process has its own model, for the initial prompts and the
  evaluation. This script is also imported by name (flower_fedprompt) so that the ClientApp's
  functions are pickled by reference and the cache is that module's in every actor.

Timing: `seconds` = run_simulation's whole wall time (Ray start-up, the query round, the rounds,
the evaluations, Ray's shutdown); `setup_seconds` = from its start to the end of the query round
(Ray, the actors, their imports and model loads); `round_seconds` = each round's training, from
configure_train to the end of aggregate_train; `eval_seconds` each evaluation's;
`teardown_seconds` from the ServerApp's return to run_simulation's. steps_per_second and
tokens_per_second = all clients' local steps and padded B x T tokens over the sum of
round_seconds (wall time, with --parallel-clients running at once). The JSON (--out) has every
option and figure, the sampled clients and every client run; a progress line per round (about
every 5 % of the rounds) goes to stderr and a summary table to stdout.

Requires the project's venv (.venv/bin/python: flwr with ray, torch, transformers, peft).
"""
import argparse
import atexit
import importlib
import logging
import os
import sys
import time

STARTED = time.perf_counter()
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import peft_loop  # noqa: E402  (light; torch, flwr and ray are imported after the options are checked)

EMBEDDINGS = "prompt_embeddings"
_ACTOR_STATE = {}  # in each Ray actor: (model dir, data, virtual tokens) -> {"model", "clients"}


# ---------------------------------------------------------------------------------------------
# ClientApp (runs in the Ray actors)

def _actor_state(config):
    """This actor's model and examples by client, loaded on first use and kept."""
    import torch
    torch.set_num_threads(1)
    key = (config["model"], config["data"], int(config["virtual-tokens"]))
    loaded = 0.0
    if key not in _ACTOR_STATE:
        start = time.perf_counter()
        export = peft_loop.read_export(config["data"])
        model = peft_loop.build_model(config["model"], "prompt", virtual_tokens=key[2])
        _ACTOR_STATE[key] = {"model": model, "clients": export.clients}
        loaded = time.perf_counter() - start
    return _ACTOR_STATE[key], loaded


def client_query(message, context):
    """Reports this node's partition id (its client) and loads the actor's model."""
    from flwr.app import Message, MetricRecord, RecordDict
    state, loaded = _actor_state(message.content["config"])
    client = int(context.node_config["partition-id"])
    reply = MetricRecord({"partition-id": client, "num-examples": len(state["clients"][client]),
                          "pid": os.getpid(), "load-seconds": loaded})
    return Message(RecordDict({"info": reply}), reply_to=message)


def client_train(message, context):
    """One FedPrompt client run: the global prompts in, --local-steps with a fresh Adam, its prompts out."""
    import numpy as np
    import torch
    from flwr.app import ArrayRecord, Message, MetricRecord, RecordDict
    config = message.content["config"]
    state, loaded = _actor_state(config)
    client = int(context.node_config["partition-id"])
    examples, model = state["clients"][client], state["model"]
    weight = peft_loop.prompt_embedding(model)
    with torch.no_grad():
        weight.copy_(message.content["arrays"].to_torch_state_dict()[EMBEDDINGS])
    rng = np.random.default_rng([int(config["seed"]), 1, int(config["server-round"]), client])
    run = peft_loop.train_steps(model, examples, int(config["local-steps"]), int(config["batch-size"]),
                                float(config["lr"]), rng)
    metrics = MetricRecord({"num-examples": len(examples), "train-loss": sum(run["losses"]) / len(run["losses"]),
                            "final-loss": peft_loop.mean_of_last(run["losses"]), "train-seconds": run["seconds"],
                            "train-tokens": run["train_tokens"], "pid": os.getpid(), "load-seconds": loaded})
    arrays = ArrayRecord({EMBEDDINGS: weight.detach().clone()})
    return Message(RecordDict({"arrays": arrays, "metrics": metrics}), reply_to=message)


def make_client_app():
    from flwr.clientapp import ClientApp
    app = ClientApp()
    app.query()(client_query)
    app.train()(client_train)
    return app


# ---------------------------------------------------------------------------------------------
# ServerApp (runs in this process, in Flower's ServerApp thread)

def make_strategy_class():
    """FedAvg with seeded client sampling and a fixed aggregation order (the module docstring)."""
    import numpy as np
    from flwr.app import MessageType, MetricRecord, RecordDict
    from flwr.serverapp.strategy import FedAvg

    def mean_train_loss(records, weighting_key):
        """The clients' train losses averaged with FedAvg's weights (num-examples)."""
        weights = [next(iter(r.metric_records.values()))[weighting_key] for r in records]
        losses = [next(iter(r.metric_records.values()))["train-loss"] for r in records]
        return MetricRecord({"train-loss": sum(w * x for w, x in zip(weights, losses)) / sum(weights)})

    class SeededFedAvg(FedAvg):
        def __init__(self, seed, num_clients, clients_per_round, node_of_client):
            super().__init__(fraction_train=clients_per_round / num_clients, fraction_evaluate=0.0,
                             min_train_nodes=clients_per_round, min_available_nodes=num_clients,
                             weighted_by_key="num-examples", train_metrics_aggr_fn=mean_train_loss)
            self.seed, self.num_clients, self.clients_per_round = seed, num_clients, clients_per_round
            self.node_of_client = node_of_client
            self.client_of_node = {n: c for c, n in node_of_client.items()}
            self.sampled, self.client_runs, self.round_seconds = [], [], []
            self.round_started = None

        def configure_train(self, server_round, arrays, config, grid):
            self.round_started = time.perf_counter()
            rng = np.random.default_rng([self.seed, 0, server_round])
            clients = sorted(int(c) for c in rng.choice(self.num_clients, self.clients_per_round, replace=False))
            self.sampled.append(clients)
            config["server-round"] = server_round
            record = RecordDict({self.arrayrecord_key: arrays, self.configrecord_key: config})
            return self._construct_messages(record, [self.node_of_client[c] for c in clients], MessageType.TRAIN)

        def aggregate_train(self, server_round, replies):
            replies = list(replies)
            failed = [m for m in replies if m.has_error()]
            if failed:
                raise RuntimeError(f"round {server_round}: client {self.client_of_node[failed[0].metadata.src_node_id]} "
                                   f"failed: {failed[0].error.reason}")
            if len(replies) != self.clients_per_round:
                raise RuntimeError(f"round {server_round}: {len(replies)} replies for {self.clients_per_round} clients")
            replies.sort(key=lambda m: self.client_of_node[m.metadata.src_node_id])
            runs = []
            for m in replies:
                metrics = m.content["metrics"]
                runs.append({"client": self.client_of_node[m.metadata.src_node_id],
                             "examples": int(metrics["num-examples"]), "train_loss": metrics["train-loss"],
                             "final_loss": metrics["final-loss"], "seconds": metrics["train-seconds"],
                             "train_tokens": int(metrics["train-tokens"]), "pid": int(metrics["pid"]),
                             "load_seconds": metrics["load-seconds"]})
            self.client_runs.append(runs)
            out = super().aggregate_train(server_round, replies)
            self.round_seconds.append(time.perf_counter() - self.round_started)
            return out

    return SeededFedAvg


# ---------------------------------------------------------------------------------------------

def _actor_alive(pid):
    """Whether process pid runs and is a Ray actor (by its command line, "ray::...")."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            command = f.read()
    except OSError:
        return False
    return state not in ("Z", "X") and command.startswith(b"ray::")


def wait_for_actors(pids, seconds=30.0):
    """Waits for the actors' processes to exit after ray.shutdown() (they leave on their own,
    within a few seconds); those left after `seconds` get SIGTERM. Returns the ones that did."""
    import signal
    end = time.monotonic() + seconds
    alive = [p for p in pids if _actor_alive(p)]
    while alive and time.monotonic() < end:
        time.sleep(0.1)
        alive = [p for p in alive if _actor_alive(p)]
    for pid in alive:
        os.kill(pid, signal.SIGTERM)
    return alive


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog=__doc__[__doc__.index("\n\n") + 2:],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=10, help="federated rounds (10)")
    parser.add_argument("--clients-per-round", type=int, default=10,
                        help="clients sampled each round, at most the export's clients (10)")
    parser.add_argument("--local-steps", type=int, default=250, help="each sampled client's training steps (250)")
    parser.add_argument("--eval-every", type=int, help="evaluate every N rounds, and after the last (default: --rounds)")
    parser.add_argument("--parallel-clients", type=int, default=2,
                        help="ClientApp actors running at once: Ray's num_cpus, each actor 1 CPU and 1 thread (2)")
    parser.add_argument("--object-store-mb", type=int, default=512, help="Ray's object store, MB (512)")
    parser.add_argument("--verbose", action="store_true", help="show Flower's and Ray's logs")
    peft_loop.add_common_options(parser, steps_name="local step")
    args = parser.parse_args()
    config = peft_loop.check_common_options(parser, args)
    peft_loop.check_range(parser, "--rounds", args.rounds, 1, 10**6)
    peft_loop.check_range(parser, "--clients-per-round", args.clients_per_round, 1, 10**6)
    peft_loop.check_range(parser, "--local-steps", args.local_steps, 1, peft_loop.MAX_COUNT)
    if args.eval_every is None:
        args.eval_every = args.rounds
    peft_loop.check_range(parser, "--eval-every", args.eval_every, 1, args.rounds)
    peft_loop.check_range(parser, "--parallel-clients", args.parallel_clients, 1, 256)
    peft_loop.check_range(parser, "--object-store-mb", args.object_store_mb, 80, 1 << 20)
    return parser, args, config


def main():
    parser, args, config = parse_args()
    t = time.perf_counter()
    import numpy as np  # noqa: F401
    import peft  # noqa: F401
    import torch
    import transformers  # noqa: F401
    import flwr  # noqa: F401
    import ray
    from flwr.app import ArrayRecord, ConfigRecord, Message, MessageType, MetricRecord, RecordDict
    from flwr.serverapp import ServerApp
    from flwr.simulation import run_simulation
    import_seconds = time.perf_counter() - t
    if not args.verbose:
        logging.getLogger("flwr").setLevel(logging.ERROR)
    torch.set_num_threads(args.threads)
    os.environ["OMP_NUM_THREADS"] = "1"  # the Ray actors' (they also call torch.set_num_threads(1))
    atexit.register(lambda: ray.shutdown() if ray.is_initialized() else None)

    t = time.perf_counter()
    try:
        export = peft_loop.read_export(args.data)
        peft_loop.check_export_fits(export, config, args.virtual_tokens)
    except ValueError as e:
        parser.error(f"--data: {e}")
    if export.clients is None:
        parser.error(f"--data {args.data}: no \"client\" on the train lines (export with --clients N)")
    num_clients = len(export.clients)
    peft_loop.check_range(parser, "--clients-per-round", args.clients_per_round, 1, num_clients)
    torch.manual_seed(args.seed)
    model = peft_loop.build_model(args.model, "prompt", virtual_tokens=args.virtual_tokens)
    trainable = peft_loop.trainable_parameters(model)
    initial = peft_loop.prompt_embedding(model).detach().clone()  # (P, C)
    load_seconds = time.perf_counter() - t
    startup_seconds = time.perf_counter() - STARTED
    print(f"FedPrompt on Flower {flwr.__version__} (Ray {ray.__version__}): {num_clients} clients, "
          f"{args.clients_per_round} a round, {args.rounds} rounds x {args.local_steps} local steps x batch "
          f"{args.batch_size}; {trainable} trainable parameters; {args.parallel_clients} parallel clients; "
          f"startup {startup_seconds:.1f} s", file=sys.stderr, flush=True)

    client_config = ConfigRecord({"model": os.path.abspath(args.model), "data": os.path.abspath(args.data),
                                  "virtual-tokens": args.virtual_tokens, "lr": args.lr,
                                  "batch-size": args.batch_size, "local-steps": args.local_steps, "seed": args.seed})
    Strategy = make_strategy_class()
    shared = {"evaluations": {}, "eval_seconds": {}}
    progress = peft_loop.Progress(args.rounds, unit="round")

    def evaluate_fn(server_round, arrays):
        if server_round == 0:
            return None
        strategy = shared["strategy"]
        loss = strategy.client_runs[-1]
        loss = sum(r["train_loss"] for r in loss) / len(loss)
        extra = f"train loss {loss:.4f} ({strategy.round_seconds[-1]:.1f} s)"
        if server_round % args.eval_every == 0 or server_round == args.rounds:
            torch.set_num_threads(args.threads)
            start = time.perf_counter()
            with torch.no_grad():
                peft_loop.prompt_embedding(model).copy_(arrays.to_torch_state_dict()[EMBEDDINGS])
            evaluation = peft_loop.evaluate(model, export.held_out, args.eval_batch_size, export.tasks)
            shared["eval_seconds"][server_round] = time.perf_counter() - start
            shared["evaluations"][server_round] = evaluation
            ppl = evaluation["test_perplexity"]["overall"]
            extra += f", {export.held_out_split} ppl {ppl:.4f}"
            progress.tick(server_round, extra)
            return MetricRecord({"perplexity": ppl})
        progress.tick(server_round, extra)
        return None

    server_app = ServerApp()

    @server_app.main()
    def server_main(grid, context):
        while len(list(grid.get_node_ids())) < num_clients:
            time.sleep(0.05)
        nodes = sorted(grid.get_node_ids())
        queries = [Message(RecordDict({"config": client_config}), dst_node_id=n, message_type=MessageType.QUERY)
                   for n in nodes]
        replies = list(grid.send_and_receive(queries, timeout=3600))
        failed = [m for m in replies if m.has_error()]
        if failed or len(replies) != num_clients:
            raise RuntimeError("query round: " + (failed[0].error.reason if failed else
                                                  f"{len(replies)} replies from {num_clients} nodes"))
        node_of_client, actors = {}, {}
        for m in replies:
            info = m.content["info"]
            node_of_client[int(info["partition-id"])] = m.metadata.src_node_id
            actors[int(info["pid"])] = actors.get(int(info["pid"]), 0.0) + info["load-seconds"]
        shared["setup_end"] = time.perf_counter()
        shared["query_actors"] = actors
        strategy = Strategy(args.seed, num_clients, args.clients_per_round, node_of_client)
        shared["strategy"] = strategy
        progress.start = time.perf_counter()
        strategy.start(grid=grid, initial_arrays=ArrayRecord({EMBEDDINGS: initial}), num_rounds=args.rounds,
                       timeout=7 * 24 * 3600.0, train_config=client_config, evaluate_fn=evaluate_fn)
        shared["server_end"] = time.perf_counter()

    backend_config = {
        "init_args": {"num_cpus": args.parallel_clients, "num_gpus": 0,
                      "object_store_memory": args.object_store_mb * 1024 * 1024,
                      "include_dashboard": False, "log_to_driver": bool(args.verbose),
                      "logging_level": logging.INFO if args.verbose else logging.ERROR},
        "client_resources": {"num_cpus": 1, "num_gpus": 0.0},
    }
    client_app = importlib.import_module("flower_fedprompt").make_client_app()
    sim_start = time.perf_counter()
    run_simulation(server_app=server_app, client_app=client_app, num_supernodes=num_clients,
                   backend_name="ray", backend_config=backend_config, verbose_logging=args.verbose)
    sim_end = time.perf_counter()
    if "server_end" not in shared:
        print("flower_fedprompt: the simulation ended before the ServerApp finished (run with --verbose)",
              file=sys.stderr)
        return 1
    if ray.is_initialized():
        ray.shutdown()
    strategy = shared["strategy"]
    pids = sorted({r["pid"] for rr in strategy.client_runs for r in rr} | set(shared["query_actors"]))
    t = time.perf_counter()
    killed = wait_for_actors(pids)
    actor_exit_seconds = time.perf_counter() - t

    final = shared["evaluations"][args.rounds]
    runs = [r for round_runs in strategy.client_runs for r in round_runs]
    round_total = sum(strategy.round_seconds)
    local_steps = len(runs) * args.local_steps
    train_tokens = sum(r["train_tokens"] for r in runs)
    round_loss = [sum(r["train_loss"] for r in rr) / len(rr) for rr in strategy.client_runs]
    model_loads = (sum(1 for s in shared["query_actors"].values() if s > 0)
                   + sum(1 for r in runs if r["load_seconds"] > 0))
    options = vars(args)
    result = {
        "impl": "flower", "method": "fedprompt",
        "seconds": sim_end - sim_start, "setup_seconds": shared["setup_end"] - sim_start,
        "teardown_seconds": sim_end - shared["server_end"],
        "round_seconds": strategy.round_seconds, "rounds_seconds": round_total,
        "eval_seconds": {str(k): v for k, v in shared["eval_seconds"].items()},
        "rounds": args.rounds, "num_clients": num_clients, "clients_per_round": args.clients_per_round,
        "local_steps": args.local_steps, "batch_size": args.batch_size,
        "local_steps_total": local_steps, "train_tokens": train_tokens,
        "steps_per_second": local_steps / round_total, "tokens_per_second": train_tokens / round_total,
        "round_train_loss": round_loss, "final_train_loss": round_loss[-1],
        "test_perplexity": final["test_perplexity"], "held_out_split": export.held_out_split,
        "response_tokens": final["response_tokens"],
        "test_perplexity_by_round": {str(k): v["test_perplexity"] for k, v in shared["evaluations"].items()},
        "trainable_parameters": trainable, "train_examples": len(export.train),
        "held_out_examples": len(export.held_out),
        "sampling": "numpy default_rng([seed, 0, round]).choice(clients, clients_per_round, replace=False), "
                    "in FedAvg.configure_train (overridden); FedAvg weighted_by_key num-examples",
        "sampled_clients": strategy.sampled, "client_runs": strategy.client_runs,
        "actor_pids": pids, "model_loads": model_loads, "actor_exit_seconds": actor_exit_seconds,
        "actors_terminated": killed,
        "backend_config": backend_config, "threads": args.threads,
        "import_seconds": import_seconds, "load_seconds": load_seconds, "startup_seconds": startup_seconds,
        "self_max_rss_kib": peft_loop.max_rss_kib(),
        "versions": peft_loop.versions("flwr", "ray"), "options": options,
    }
    peft_loop.write_json(args.out, result, args.overwrite)
    peft_loop.print_summary(
        f"FedPrompt on Flower {flwr.__version__} (Ray {ray.__version__}, {args.parallel_clients} parallel clients): "
        f"{args.rounds} rounds x {args.clients_per_round} of {num_clients} clients x {args.local_steps} local steps "
        f"x batch {args.batch_size}",
        [("seconds", f"{result['seconds']:.2f} (run_simulation, all of it)"),
         ("setup seconds", f"{result['setup_seconds']:.2f} (Ray, actors, their model loads, query round)"),
         ("round seconds", f"{round_total / args.rounds:.2f} mean, "
                           + " ".join(f"{s:.1f}" for s in strategy.round_seconds)),
         ("eval seconds", " ".join(f"{v:.2f}" for v in shared["eval_seconds"].values())),
         ("teardown seconds", f"{result['teardown_seconds']:.2f} (then {actor_exit_seconds:.2f} until the actors "
                              f"exited{', SIGTERM to ' + str(len(killed)) if killed else ''})"),
         ("local steps/s", f"{result['steps_per_second']:.3f} (all clients, over the rounds' wall time)"),
         ("tokens/s", f"{result['tokens_per_second']:.1f} ({train_tokens} padded tokens)"),
         ("final train loss", f"{result['final_train_loss']:.4f} (last round, mean over its clients)"),
         ("trainable", str(trainable)),
         ("actors", f"{len(pids)} processes, {model_loads} model loads"),
         ("startup seconds", f"{startup_seconds:.2f} (imports {import_seconds:.2f}, data and model {load_seconds:.2f})"),
         ("results", args.out)],
        final, export.held_out_split)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``causalrl`` command line: run | list | sweep | tune | bench | report | evaluate | graph (docs/cli.md).

Errors in what the user gave (config, overrides, graphs, files) print one line
``causalrl: error: ...`` and exit with status 2 before anything ran; a run that started and
failed (a NaN/inf, an error or ``sys.exit`` in plugin code, a full disk; status.json says
failed) prints one line and exits with status 1; a complete run exits 0 (docs/runner.md, exit
codes); ``--debug`` shows the traceback instead. This module is the parser and those exit codes;
what each command does is :mod:`causalrl.commands`, loaded once a command runs.
"""

from __future__ import annotations

import argparse
import sys

import yaml

__all__ = ["main"]

# OSError: a folder that cannot be created or written (permissions, a file in the way, a full disk)
USER_ERRORS = (ValueError, KeyError, OSError, yaml.YAMLError)


def _error_text(error: BaseException) -> str:
    from causalrl.experiment.config import one_line  # only on the error path: --help stays light

    return one_line(error, with_type=False)


def _parser() -> argparse.ArgumentParser:
    from causalrl import __version__

    parser = argparse.ArgumentParser(prog="causalrl", description="Causal RL and causal bandits: run experiments.")
    parser.add_argument("--version", action="version", version=f"causalrl {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors (anywhere on the line)")
    commands = parser.add_subparsers(dest="command", required=True)
    run_parser = commands.add_parser("run", help="run a preset or YAML file (no argument: the default experiment)")
    run_parser.add_argument("config", nargs="?", default=None, help="preset name or YAML file")
    run_parser.add_argument("overrides", nargs="*", help="dotted overrides, e.g. seed=3 agent.exploration=2")
    run_parser.add_argument("--verbose", action="store_true", help="print every logged row")
    run_parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    run_parser.add_argument("--trust-models", action="store_true",
                            help="load the SB3 model files of the config or of --resume's checkpoint with SB3's own "
                                 "loader, which unpickles them and can run code (README, Pickles): only files you trust")
    run_parser.add_argument("--force", action="store_true",
                            help="run even when the judge check refuses the judge (sets env.intervention.force)")
    run_parser.add_argument("--resume", metavar="RUN_DIR", default=None,
                            help="continue an interrupted run from its last checkpoint (its config.yaml fixes the rest)")
    run_parser.set_defaults(handler="run")
    list_parser = commands.add_parser("list", help="registered envs, agents and presets, one line each")
    list_parser.set_defaults(handler="list")
    sweep_parser = commands.add_parser("sweep", help="a base config x overrides x seeds, one run directory per trial")
    sweep_parser.add_argument("file", help="sweep YAML file or sweep-* preset")
    sweep_parser.add_argument("overrides", nargs="*",
                              help="overrides for every trial, e.g. env.id=Reacher-v5 agent.learning_rate=1e-3")
    sweep_parser.add_argument("--workers", type=int, default=None,
                              help="worker processes (local; default: CPU count) or concurrent trials (ray)")
    sweep_parser.add_argument("--backend", choices=["local", "ray"], default=None,
                              help="local worker processes, or Ray Tune (joins RAY_ADDRESS / a `ray start` cluster, else "
                                   "starts one); default: ray with --ray-address or the file's ray_address, else local")
    sweep_parser.add_argument("--output-dir", default=None, help="parent of sweeps/<name> (default: the file's output_dir, else runs)")
    sweep_parser.add_argument("--storage", default=None, help="Ray Tune storage path or URI (default: <sweep dir>/ray_results)")
    sweep_parser.add_argument("--ray-address", "--address", dest="address", default=None, metavar="ADDRESS",
                              help="run the trials on the existing Ray cluster at ADDRESS (head-host:6379; implies "
                                   "--backend ray; default: the file's ray_address, RAY_ADDRESS, else a local one)")
    sweep_parser.add_argument("--no-progress", action="store_true", help="hide the progress line")
    sweep_parser.set_defaults(handler="sweep")
    tune_parser = commands.add_parser("tune", help="Optuna search over declared ranges, then a held-out evaluation")
    tune_parser.add_argument("file", help="tune YAML file or tune-* preset")
    tune_parser.add_argument("--n-trials", type=int, default=None, help="total trials of the study (default: the file's n_trials)")
    tune_parser.add_argument("--storage", default=None,
                             help="journal file path, or an RDB URL for many hosts (default: <output_dir>/tune/<name>/study.log)")
    tune_parser.add_argument("--study-name", default=None, help="study name in the storage (default: the file's name)")
    tune_parser.add_argument("--output-dir", default=None, help="parent of tune/<name> (default: the file's output_dir, else runs)")
    tune_parser.add_argument("--no-eval", action="store_true", help="skip the held-out evaluation of best vs default")
    tune_parser.add_argument("--no-progress", action="store_true", help="hide the progress line")
    tune_parser.set_defaults(handler="tune")
    bench_parser = commands.add_parser("bench", help="a benchmark suite: its sweeps, report and leaderboard (bench-* presets)")
    bench_parser.add_argument("suite", help="suite name (preset bench-NAME), suite YAML file, or all")
    bench_parser.add_argument("--tier", choices=["smoke", "standard", "full"], default="standard",
                              help="smoke (seconds, checks the pipeline), standard (the published numbers) or full")
    bench_parser.add_argument("--workers", type=int, default=None, help="worker processes (default: CPU count)")
    bench_parser.add_argument("--output-dir", default=None, help="parent of bench/<suite>/<tier> (default: runs)")
    bench_parser.add_argument("--reps", type=int, default=2000, help="bootstrap replicates (default 2000)")
    bench_parser.add_argument("--no-progress", action="store_true", help="hide the progress lines")
    bench_parser.set_defaults(handler="bench")
    report_parser = commands.add_parser("report", help="IQM + 95%% CI tables and curves of runs, sweeps or several sweeps")
    report_parser.add_argument("dirs", nargs="+", help="run directories, sweep directories or any folders holding them")
    report_parser.add_argument("--out", default=None, help="output folder (default: DIR/report for one DIR, else ./report)")
    report_parser.add_argument("--reps", type=int, default=2000, help="bootstrap replicates (default 2000)")
    report_parser.add_argument("--no-progress", action="store_true", help="hide the progress line")
    report_parser.set_defaults(handler="report")
    evaluate_parser = commands.add_parser("evaluate", help="play a run's saved agent alone: mean return with a 95%% CI, "
                                                           "optionally a video (RL Zoo's enjoy)")
    evaluate_parser.add_argument("run_dir", help="a complete run directory (config.yaml and model.zip)")
    evaluate_parser.add_argument("--episodes", type=int, default=10, help="episodes to play (default 10)")
    evaluate_parser.add_argument("--video", metavar="DIR", default=None,
                                 help="record the first episode into DIR (MP4 with imageio-ffmpeg, else GIF)")
    acting = evaluate_parser.add_mutually_exclusive_group()
    acting.add_argument("--deterministic", dest="deterministic", action="store_true", default=True,
                        help="act with predict(deterministic=True) (the default)")
    acting.add_argument("--stochastic", dest="deterministic", action="store_false", help="sample the policy's actions")
    evaluate_parser.add_argument("--seed", type=int, default=None,
                                 help="reset seed of the first episode, episode i gets SEED+i (default 1000000: the "
                                      "runner's evaluation episodes)")
    evaluate_parser.add_argument("--trust-models", action="store_true",
                                 help="load the run's model files with SB3's own loader, which unpickles them and can "
                                      "run code (README, Pickles): only files you trust")
    evaluate_parser.set_defaults(handler="evaluate")
    graph_parser = commands.add_parser("graph", help="draw a run's learned causal graph over the true one (graph.png, DOT)")
    graph_parser.add_argument("run_dir", help="a run directory of an agent with a learned structure")
    graph_parser.add_argument("--checkpoint", default=None,
                              help="the step to draw (a checkpoint step listed in structure.jsonl; default: the last)")
    graph_parser.add_argument("--out", default=None, help="PNG path (default: RUN_DIR/graph.png, graph_step<N>.png for earlier steps)")
    graph_parser.add_argument("--dot", action="store_true", help="also write the graph as Graphviz DOT beside the PNG")
    graph_parser.set_defaults(handler="graph")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    parser = _parser()
    # parse_known_args + regrouping lets `run` take options and overrides in any order
    # (`causalrl run default --no-progress seed=3`), which plain argparse refuses
    args, extra = parser.parse_known_args([item for item in argv if item != "--debug"])
    if extra and (args.command != "run" or any(item.startswith("-") for item in extra)):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if extra:
        args.overrides.extend(extra)
    # `causalrl run seed=3` means the default experiment with an override
    if args.command == "run" and args.config is not None and "=" in args.config:
        args.overrides.insert(0, args.config)
        args.config = None
    try:
        from causalrl import commands  # only now: --help and argument errors never load it

        return getattr(commands, f"command_{args.handler}")(args)
    except USER_ERRORS as error:
        if debug:
            raise
        print(f"causalrl: error: {_error_text(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("causalrl: interrupted", file=sys.stderr)
        return 130
    except RuntimeError as error:
        from causalrl.experiment.run.rundir import RunFailed  # a run that started and failed: status 1

        if debug or not isinstance(error, RunFailed):
            raise
        print(f"causalrl: error: {_error_text(error)}", file=sys.stderr)
        return 1
    except ArithmeticError as error:
        from causalrl.experiment.run.checkpoints import (
            NonFiniteError,  # a run that diverged: the guard's one line, exit 1
        )

        if debug or not isinstance(error, NonFiniteError):
            raise
        print(f"causalrl: error: {_error_text(error)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

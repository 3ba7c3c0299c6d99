"""``causalrl`` command line: run | list | sweep | tune | bench | report | evaluate | graph (docs/cli.md).

Errors in what the user gave (config, overrides, graphs, files) print one line
``causalrl: error: ...`` and exit with status 2 before anything ran; a run that started and
failed (a NaN/inf, an error or ``sys.exit`` in plugin code, a full disk; status.json says
failed) prints one line and exits with status 1; a complete run exits 0 (docs/runner.md, exit
codes); ``--debug`` shows the traceback instead.
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


def _summary_line(result) -> str:
    final = result.summary["final"]
    metrics = ", ".join(f"{key}={value:.4g}" for key, value in final.items() if key != "time/steps")
    return f"  {result.summary['agent']:<24} {result.summary['wall_time_s']:7.2f}s  {metrics}"


def _command_run(args) -> int:
    from causalrl import api

    progress = False if args.no_progress else None
    if args.resume is not None:
        if args.config is not None or args.overrides:
            given = " ".join([args.config or "", *args.overrides]).strip()
            raise ValueError(f"--resume: give only the run directory (its config.yaml fixes the run), not {given!r}")
        result = api.resume(args.resume, verbose=args.verbose, progress=progress, trust_models=args.trust_models)
        for each in result if isinstance(result, list) else [result]:  # a batched run: every seed
            print(each.run_dir, flush=True)
            print(_summary_line(each))
        return 0
    # the config's own progress_bar unless --no-progress
    configs = api.configs(args.config, *args.overrides, *(["trust_models=true"] if args.trust_models else []))
    if args.no_progress:
        configs = [type(config)(**{**config.__dict__, "progress_bar": False}) for config in configs]
    if args.force:  # run even when the judge check refuses the judge (env.intervention.force / env.force)
        configs = [_forced(config) for config in configs]
    lines = []
    results = [] if not configs else api.run(configs, progress=None, verbose=args.verbose,
                                               on_result=lambda result: (print(result.run_dir, flush=True),
                                                                         lines.append(_summary_line(result))))
    print("\n".join(lines))
    if getattr(results, "comparison_plot", None) is not None:
        print(f"comparison plot: {results.comparison_plot}")
    return 0


def _forced(config):
    from dataclasses import replace

    kwargs = dict(config.env.kwargs)
    if isinstance(kwargs.get("intervention"), dict):
        kwargs["intervention"] = {**kwargs["intervention"], "force": True}
    elif "judge" in kwargs:  # an intervention world (causalrl/FactoredLQRIntervention-v0)
        kwargs["force"] = True
    else:
        raise ValueError(f"--force: {config.env.id} has no judge to check (no env.intervention); drop --force")
    return replace(config, env=replace(config.env, kwargs=kwargs))


def _command_list(args) -> int:
    from causalrl import api

    for section, entries in api.catalog().items():
        print(f"{section}:")
        for name, summary in entries.items():
            print(f"  {name:<36} {summary}")
    return 0


def _command_sweep(args) -> int:
    from causalrl import api

    if args.workers is not None and args.workers < 1:
        raise ValueError(f"--workers: must be >= 1, got {args.workers}")
    outcome = api.sweep(args.file, *args.overrides, workers=args.workers, backend=args.backend,
                        progress=not args.no_progress, output_dir=args.output_dir, storage=args.storage,
                        address=args.address)
    skipped = sum(1 for record in outcome.records.values() if record.get("skipped"))
    print(f"sweep {outcome.directory}: {len(outcome.records)} trials, "
          f"{len(outcome.records) - len(outcome.failed)} ok ({skipped} already finished), {len(outcome.failed)} failed")
    for name, record in outcome.failed.items():
        print(f"  FAILED {name}: {record['error']}")
    print(f"report: causalrl report {outcome.directory}")
    return 1 if outcome.failed else 0


def _command_tune(args) -> int:
    from causalrl import api

    outcome = api.tune(args.file, n_trials=args.n_trials, evaluate=not args.no_eval, progress=not args.no_progress,
                       output_dir=args.output_dir, storage=args.storage, study_name=args.study_name)
    print(outcome.text)
    return 0


def _command_bench(args) -> int:
    from causalrl import api

    if args.workers is not None and args.workers < 1:
        raise ValueError(f"--workers: must be >= 1, got {args.workers}")
    outcomes = api.bench(args.suite, tier=args.tier, workers=args.workers, progress=not args.no_progress,
                         output_dir=args.output_dir, reps=args.reps)
    outcomes = outcomes if isinstance(outcomes, list) else [outcomes]
    for outcome in outcomes:
        print(f"bench {outcome.suite} ({outcome.tier} tier): {outcome.directory}")
        for stage in outcome.stages:
            skipped = sum(1 for record in stage.records.values() if record.get("skipped"))
            print(f"  sweep {stage.directory.name}: {len(stage.records)} trials, {len(stage.records) - len(stage.failed)} ok "
                  f"({skipped} already finished), {len(stage.failed)} failed")
        for name, record in outcome.failed.items():
            print(f"  FAILED {name}: {record['error']}")
        if outcome.leaderboard is not None:
            board = outcome.leaderboard
            print(board.text)
            print(f"leaderboard: {board.markdown}  table: {board.csv}  plot: {board.png}  report: {outcome.report.markdown}")
        for board in outcome.more_leaderboards:
            print(board.text)
            print(f"leaderboard: {board.markdown}  table: {board.csv}  plot: {board.png}")
        print(f"reproduce: {outcome.command}")
    return 1 if any(outcome.failed for outcome in outcomes) else 0


def _command_report(args) -> int:
    from causalrl import api

    report = api.report(args.dirs, out=args.out, reps=args.reps, progress=not args.no_progress)
    print(report.text)
    print(f"report: {report.markdown}  tables: {report.csv}  plots: {', '.join(str(p) for p in report.plots)}")
    return 0


def _command_evaluate(args) -> int:
    from causalrl import api

    evaluation = api.evaluate(args.run_dir, episodes=args.episodes, video=args.video, deterministic=args.deterministic,
                              seed=args.seed, trust_models=args.trust_models)
    print(evaluation.text)
    return 0


def _command_graph(args) -> int:
    from causalrl import api

    for path in api.graph(args.run_dir, checkpoint=args.checkpoint, out=args.out, dot=args.dot):
        print(path)
    return 0


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
    run_parser.set_defaults(handler=_command_run)
    list_parser = commands.add_parser("list", help="registered envs, agents and presets, one line each")
    list_parser.set_defaults(handler=_command_list)
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
    sweep_parser.set_defaults(handler=_command_sweep)
    tune_parser = commands.add_parser("tune", help="Optuna search over declared ranges, then a held-out evaluation")
    tune_parser.add_argument("file", help="tune YAML file or tune-* preset")
    tune_parser.add_argument("--n-trials", type=int, default=None, help="total trials of the study (default: the file's n_trials)")
    tune_parser.add_argument("--storage", default=None,
                             help="journal file path, or an RDB URL for many hosts (default: <output_dir>/tune/<name>/study.log)")
    tune_parser.add_argument("--study-name", default=None, help="study name in the storage (default: the file's name)")
    tune_parser.add_argument("--output-dir", default=None, help="parent of tune/<name> (default: the file's output_dir, else runs)")
    tune_parser.add_argument("--no-eval", action="store_true", help="skip the held-out evaluation of best vs default")
    tune_parser.add_argument("--no-progress", action="store_true", help="hide the progress line")
    tune_parser.set_defaults(handler=_command_tune)
    bench_parser = commands.add_parser("bench", help="a benchmark suite: its sweeps, report and leaderboard (bench-* presets)")
    bench_parser.add_argument("suite", help="suite name (preset bench-NAME), suite YAML file, or all")
    bench_parser.add_argument("--tier", choices=["smoke", "standard", "full"], default="standard",
                              help="smoke (seconds, checks the pipeline), standard (the published numbers) or full")
    bench_parser.add_argument("--workers", type=int, default=None, help="worker processes (default: CPU count)")
    bench_parser.add_argument("--output-dir", default=None, help="parent of bench/<suite>/<tier> (default: runs)")
    bench_parser.add_argument("--reps", type=int, default=2000, help="bootstrap replicates (default 2000)")
    bench_parser.add_argument("--no-progress", action="store_true", help="hide the progress lines")
    bench_parser.set_defaults(handler=_command_bench)
    report_parser = commands.add_parser("report", help="IQM + 95%% CI tables and curves of runs, sweeps or several sweeps")
    report_parser.add_argument("dirs", nargs="+", help="run directories, sweep directories or any folders holding them")
    report_parser.add_argument("--out", default=None, help="output folder (default: DIR/report for one DIR, else ./report)")
    report_parser.add_argument("--reps", type=int, default=2000, help="bootstrap replicates (default 2000)")
    report_parser.add_argument("--no-progress", action="store_true", help="hide the progress line")
    report_parser.set_defaults(handler=_command_report)
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
    evaluate_parser.set_defaults(handler=_command_evaluate)
    graph_parser = commands.add_parser("graph", help="draw a run's learned causal graph over the true one (graph.png, DOT)")
    graph_parser.add_argument("run_dir", help="a run directory of an agent with a learned structure")
    graph_parser.add_argument("--checkpoint", default=None,
                              help="the step to draw (a checkpoint step listed in structure.jsonl; default: the last)")
    graph_parser.add_argument("--out", default=None, help="PNG path (default: RUN_DIR/graph.png, graph_step<N>.png for earlier steps)")
    graph_parser.add_argument("--dot", action="store_true", help="also write the graph as Graphviz DOT beside the PNG")
    graph_parser.set_defaults(handler=_command_graph)
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
        return args.handler(args)
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

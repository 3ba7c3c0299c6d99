"""What each ``causalrl`` command does once :mod:`causalrl.cli` has parsed its arguments
(docs/cli.md). Loaded only when a command runs, so that ``causalrl --help`` and argument errors
stay light; ``command_<name>(args)`` returns the exit status.
"""

from __future__ import annotations

__all__ = ["command_bench", "command_evaluate", "command_graph", "command_list", "command_report", "command_run",
           "command_sweep", "command_tune"]


def _summary_line(result) -> str:
    final = result.summary["final"]
    metrics = ", ".join(f"{key}={value:.4g}" for key, value in final.items() if key != "time/steps")
    return f"  {result.summary['agent']:<24} {result.summary['wall_time_s']:7.2f}s  {metrics}"


def command_run(args) -> int:
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


def command_list(args) -> int:
    from causalrl import api

    for section, entries in api.catalog().items():
        print(f"{section}:")
        for name, summary in entries.items():
            print(f"  {name:<36} {summary}")
    return 0


def command_sweep(args) -> int:
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


def command_tune(args) -> int:
    from causalrl import api

    outcome = api.tune(args.file, n_trials=args.n_trials, evaluate=not args.no_eval, progress=not args.no_progress,
                       output_dir=args.output_dir, storage=args.storage, study_name=args.study_name)
    print(outcome.text)
    return 0


def command_bench(args) -> int:
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


def command_report(args) -> int:
    from causalrl import api

    report = api.report(args.dirs, out=args.out, reps=args.reps, progress=not args.no_progress)
    print(report.text)
    print(f"report: {report.markdown}  tables: {report.csv}  plots: {', '.join(str(p) for p in report.plots)}")
    return 0


def command_evaluate(args) -> int:
    from causalrl import api

    evaluation = api.evaluate(args.run_dir, episodes=args.episodes, video=args.video, deterministic=args.deterministic,
                              seed=args.seed, trust_models=args.trust_models)
    print(evaluation.text)
    return 0


def command_graph(args) -> int:
    from causalrl import api

    for path in api.graph(args.run_dir, checkpoint=args.checkpoint, out=args.out, dot=args.dot):
        print(path)
    return 0

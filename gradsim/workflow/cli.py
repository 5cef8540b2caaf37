"""The ``gradsim`` command.

    gradsim list [--studies DIR]
    gradsim run STUDY|PATH.py [--quick] [--jobs N | --scheduler ADDR] [--out DIR] [--resume] [--set key=value ...]
    gradsim report [--quick] [--jobs N | --scheduler ADDR] [--out DIR] [--studies DIR]
    gradsim compare DIR_A DIR_B [--studies DIR]
    gradsim check [--quick] [--jobs N | --scheduler ADDR] [--only ID ...] [--claims FILE] [--out DIR] [--list]
    gradsim analyze WEIGHTS_FILE [--layer K] [--reverse] [--inputs FILE | --steps T] [--out DIR]

A bad invocation prints one line to stderr and exits 2; nothing already written is lost.
Set GRADSIM_DEBUG=1 to see the traceback of an unexpected error.
"""

from __future__ import annotations

import argparse
import ast
import os
import sys
import time

from ..interop import analysis as _analyze
from .runner import UsageError, default_out, find_studies, load_study, make_executor, resolve_study

__all__ = ["main", "parse_set"]


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2, as for every other bad invocation
        raise UsageError(f"{self.prog}: {message}")


def parse_set(items) -> dict:
    """``["gain=[0.5, 1]", "cell='lstm'"]`` -> ``{"gain": [0.5, 1], "cell": "lstm"}``.

    Values are Python literals (numbers, strings, lists, tuples, booleans, None) read by
    ``ast.literal_eval``, never evaluated as code; a bare word is taken as a string.
    """
    overrides = {}
    for item in items or ():
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise UsageError(f"--set expects key=value with a parameter name as key; got {item!r}")
        try:
            value = ast.literal_eval(text.strip())
        except (ValueError, SyntaxError):
            if text.strip().replace("_", "").replace("-", "").isalnum():
                value = text.strip()
            else:
                raise UsageError(f"--set {key}: {text!r} is not a literal (number, string or list)") from None
        overrides[key] = value
    return overrides


def _add_execution(parser):
    parser.add_argument("--quick", action="store_true", help="small grids, for a smoke run")
    _add_workers(parser)
    parser.add_argument("--out", default=None,
                        help="output folder (default: reports, or reports/quick with --quick)")
    _add_studies(parser)


def _add_studies(parser):
    parser.add_argument("--studies", default=None, metavar="DIR",
                        help="folder of study files to use instead of the built-in studies")


def _add_workers(parser):
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--jobs", type=int, default=None, help="worker processes (default: serial)")
    group.add_argument("--scheduler", default=None,
                       help="Dask scheduler address tcp://host:port, or 'local' for a LocalCluster")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="gradsim", description="Gradient dynamics in recurrent networks.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("list", help="list the studies")
    _add_studies(p)

    p = sub.add_parser("run", help="run one study: CSV, metadata and figure in --out")
    p.add_argument("study", help="a study's name (see `gradsim list`) or the path of a study file")
    _add_execution(p)
    p.add_argument("--resume", action="store_true", help="finish an interrupted run")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", default=[],
                   help="override a grid parameter (a literal: number, string, list)")

    p = sub.add_parser("report", help="run every study and the claims, write <out>/README.md")
    _add_execution(p)
    p.add_argument("--resume", action="store_true", help="finish interrupted runs")

    p = sub.add_parser("check", help="check the claims registry against simulation")
    p.add_argument("--quick", action="store_true", help="small simulations")
    _add_workers(p)
    p.add_argument("--only", nargs="+", metavar="ID", default=None, help="check only these claim ids")
    p.add_argument("--claims", default=None, metavar="FILE",
                   help="also check the CLAIMS list of this Python file")
    p.add_argument("--seeds", type=int, default=3, help="seeds per claim (default 3)")
    p.add_argument("--out", default=None,
                   help="output folder (default: reports, or reports/quick with --quick)")
    p.add_argument("--list", action="store_true", help="list the claim ids and statements, run nothing")

    p = sub.add_parser("compare", help="compare two report folders within their uncertainties "
                                          "(exit 0 agree, 1 disagree)")
    p.add_argument("dir_a", metavar="DIR_A", help="a report folder (e.g. the committed reports/)")
    p.add_argument("dir_b", metavar="DIR_B", help="another report folder (e.g. a fresh gradsim report --out)")
    _add_studies(p)

    p = sub.add_parser("analyze", help="spectra and gradient-norm curves of a trained network "
                                          "(all its layers, stacked; or one with --layer K)")
    _analyze.add_arguments(p)
    return parser


def _cmd_list(args) -> int:
    for name, path in find_studies(args.studies).items():
        study = load_study(path)
        print(f"{name:20s} {study.question}")
    return 0


def _cmd_run(args) -> int:
    from .report import produce

    path = resolve_study(args.study, args.studies)
    overrides = parse_set(args.set)
    with make_executor(args.jobs, args.scheduler) as executor:
        result = produce(path, quick=args.quick, out=args.out, executor=executor,
                         resume=args.resume, overrides=overrides)
    note = f", {result.n_errors} configuration(s) failed (see the error column)" if result.n_errors else ""
    print(f"{result.csv_path} ({len(result.frame)} rows){note}")
    return 0


def _cmd_report(args) -> int:
    from .report import produce, write_claims, write_report

    start = time.perf_counter()
    with make_executor(args.jobs, args.scheduler) as executor:
        for name, path in find_studies(args.studies).items():
            t0 = time.perf_counter()
            result = produce(path, quick=args.quick, out=args.out, executor=executor,
                             resume=args.resume)
            print(f"{name}: {len(result.frame)} rows in {time.perf_counter() - t0:.1f} s")
        from ..claims import builtin_claims

        out = args.out if args.out is not None else default_out(args.quick)
        table, path, seconds = write_claims(builtin_claims(), out=out, quick=args.quick,
                                            executor=executor)
    print(f"claims: {len(table)} checked in {seconds:.1f} s ({path})")
    readme = write_report(out, args.studies)
    print(f"{readme} written in {time.perf_counter() - start:.1f} s")
    return 0


def _cmd_compare(args) -> int:
    from .compare import compare_reports

    result = compare_reports(args.dir_a, args.dir_b, args.studies)
    for note in result.notes:
        print(note)
    for difference in result.disagreements:
        print(difference.line())
    print(f"gradsim compare: {result.summary()}")
    return 0 if result.agree else 1


def _cmd_check(args) -> int:
    from ..claims import builtin_claims, load_claims
    from .report import write_claims

    executor = make_executor(args.jobs, args.scheduler)  # checks --jobs before anything runs
    claims = builtin_claims()
    if args.claims:
        claims += load_claims(args.claims)
    if args.list:
        for claim in claims:
            print(f"{claim.id:40s} {claim.statement}")
        return 0
    if args.seeds < 1:
        raise UsageError(f"--seeds must be a positive integer; got {args.seeds}")
    selected = bool(args.only or args.claims)
    out = args.out if args.out is not None else default_out(args.quick)
    with executor as pool:
        table, path, seconds = write_claims(claims, out=out, quick=args.quick, only=args.only,
                                            seeds=tuple(range(args.seeds)),
                                            name="claims-selected" if selected else "claims",
                                            executor=pool)
    _print_claims(table)
    counts = table.verdict.value_counts().to_dict()
    summary = ", ".join(f"{counts[v]} {v}" for v in ("supported", "conditional", "refuted", "error") if v in counts)
    print(f"{len(table)} claims: {summary}. {path} written in {seconds:.1f} s")
    # A refuted claim is a finding, not a failure; only a check that crashed is.
    return 1 if "error" in counts else 0


def _print_claims(table):
    for row in table.itertuples():
        numbers = ""
        if row.measured == row.measured:  # not NaN
            numbers = f"  measured {row.measured:.4g}"
            if row.predicted == row.predicted:
                numbers += f" vs {row.predicted:.4g}"
            if row.tolerance == row.tolerance:
                numbers += f" (tol {row.tolerance:.2g})"
        print(f"{row.verdict:12s} {row.id:40s}{numbers}")
        if row.verdict in ("refuted", "conditional", "error"):
            print(f"{'':12s}   {row.detail}")


def main(argv=None) -> int:
    """Entry point of the ``gradsim`` command; returns the exit status."""
    try:
        args = build_parser().parse_args(argv)
        handler = {"list": _cmd_list, "run": _cmd_run, "report": _cmd_report,
                   "check": _cmd_check, "compare": _cmd_compare, "analyze": _analyze.run}[args.command]
        return handler(args)
    except UsageError as exc:
        print(f"gradsim: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader went away (`gradsim list | head`): not an error of ours. Point stdout at
        # devnull so that the interpreter's final flush does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print("gradsim: interrupted; finished configurations are kept (use --resume)", file=sys.stderr)
        return 130
    except Exception as exc:
        if os.environ.get("GRADSIM_DEBUG"):
            raise
        print(f"gradsim: error: {type(exc).__name__}: {exc} (GRADSIM_DEBUG=1 shows the traceback)",
              file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())

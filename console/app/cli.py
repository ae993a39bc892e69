"""The `brahma` command line. The console (textual) is imported only when it opens, so headless
runs, validation and reports never load it."""

from __future__ import annotations

import argparse
import asyncio
import functools
import gc
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from console.app.exits import EXIT_COMPLETED, EXIT_INTERRUPTED, demo_exit_code
from console.app.problems import REFUSALS, refuse, report_internal_error, report_refusal, say, say_problems, say_warnings
from console.plan.problems import PlanError

if TYPE_CHECKING:
    from console.plan.model import RolloutPlan

DEMO_SPEED = 60.0
"""The sample canary plan (1h45m planned) runs in under two minutes."""
SAMPLE_PLAN = Path(__file__).resolve().parent.parent.parent / "sample_configs" / "canary.yaml"


def speed(text: str) -> float:
    """--speed: how many times real time; NaN, infinity, zero or less would make no clock (and no JSON)."""
    value = float(text)
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of times real time, not {text!r}")
    return value


def workers(text: str) -> int:
    """--workers: one process at least."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number of processes, 1 or more, not {text!r}")
    return value


@functools.cache  # built once: a controller forked from this process (supervision.py) parses with this one
def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="brahma", description="A terminal control console for progressive delivery.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser("demo", help="the console on the built-in simulator, sample plan, time compressed")
    demo.add_argument("--scenario", default="healthy", help="simulator behaviour (a built-in name or a file)")
    demo.add_argument("--speed", type=speed, default=DEMO_SPEED, help="N x real time")
    demo.add_argument("--state-dir", type=Path, default=None, help="journal and report (default: a temporary folder)")
    demo.add_argument("--headless", action="store_true", help="no console: print events")

    run = commands.add_parser("run", help="a rollout: the console by default, --headless for none")
    _add_rollout_options(run)
    run.add_argument("--manual", action="store_true", help="every stage waits for an operator's promote")
    run.add_argument("--headless", action="store_true", help="no console")
    run.add_argument("--json", action="store_true", help="headless: one JSON event per line on stdout")
    run.add_argument("--read-only", action="store_true", help="console: watch, never act")
    run.add_argument("--demo", action="store_true", help=argparse.SUPPRESS)  # brahma demo: fault keys on

    supervise = commands.add_parser("supervise", help="the controller alone, with no console: it serves consoles on a socket in the state dir")
    _add_rollout_options(supervise)
    supervise.add_argument("--detach", action="store_true", help="start it in its own session and return once it answers")
    supervise.add_argument(
        "--stay",
        action="store_true",
        help="as a Deployment runs it: keep serving once the rollout has finished, and on a restart serve a release this plan finished instead of running it again",
    )
    supervise.add_argument("--manual", action="store_true", help=argparse.SUPPRESS)
    supervise.add_argument("--attended", action="store_true", help=argparse.SUPPRESS)  # started for a console: waits for people
    supervise.add_argument("--undo", action="store_true", help=argparse.SUPPRESS)  # a finished release taken up to roll it back

    attach = commands.add_parser("attach", help="the console on a supervised rollout (restarts its controller if it died)")
    attach.add_argument("rollout", nargs="?", help="the rollout's name (default: the only one in the state dir)")
    attach.add_argument("--state-dir", type=Path, default=Path(".brahma"))
    attach.add_argument("--headless", action="store_true", help="no console: print the rollout's events")
    attach.add_argument("--read-only", action="store_true", help="console: watch, never act")
    attach.add_argument(
        "--pod",
        metavar="NAMESPACE/POD",
        help="the controller runs in this pod (or NAMESPACE/deployment/NAME): attach through kubectl exec; --state-dir is then the pod's",
    )

    relay = commands.add_parser("relay", help="a supervised rollout's socket on stdin and stdout (what attach --pod runs in the pod)")
    relay.add_argument("rollout", nargs="?", help="the rollout's name (default: the only one supervised in the state dir)")
    relay.add_argument("--state-dir", type=Path, default=Path(".brahma"))

    fleet = commands.add_parser("fleet", help="every rollout, ordered by what needs a person (brahma alone, when BRAHMA_STATE_DIRS is set)")
    fleet.add_argument(
        "--state-dir", type=Path, action="append", dest="state_dirs", help="a state dir (repeat for more; default: BRAHMA_STATE_DIRS, or ./.brahma)"
    )

    ls = commands.add_parser("ls", help="the rollouts in a state dir and whether a controller supervises them")
    ls.add_argument("--state-dir", type=Path, default=Path(".brahma"))

    validate = commands.add_parser("validate", help="exit 0 when valid, 2 with PATH:LINE: messages on stderr")
    validate.add_argument("plans", type=Path, nargs="+")

    preflight = commands.add_parser("preflight", help="the pre-flight gate alone")
    preflight.add_argument("plan", type=Path)
    preflight.add_argument("--json", action="store_true")

    flags = commands.add_parser("flags", help="the flag editor, or one change")
    flags.add_argument("file")
    flags.add_argument("--state-dir", type=Path, default=Path(".brahma"), help="where flags.jsonl journals every change")
    flags.add_argument(
        "verb",
        nargs=argparse.REMAINDER,
        help="list | create NAME | enable NAME | disable NAME | set NAME PERCENT | allow NAME USER | disallow NAME USER | kill [NAME...]",
    )

    backtest = commands.add_parser(
        "backtest",
        help="replay the plan over Prometheus history as if its first stage had started at TIME; exit as run --headless (2: history too short)",
        description="Replays the plan with the controller and judge of a release, in virtual time, on Prometheus history: no pre-flight, "
        "no flags, no notifications, nothing real acted on; promotes and sign-offs a person would give are taken as given.",
    )
    backtest.add_argument("plan", type=Path)
    backtest.add_argument(
        "--at", required=True, metavar="TIME", help="ISO 8601 (2026-12-01T10:00; without a zone it is UTC), or before now: -3d, -36h, -90m, -1h30m"
    )
    backtest.add_argument("--prometheus", metavar="URL", help="override the plan's Prometheus server")
    backtest.add_argument("--json", action="store_true", help="one JSON event per line on stdout, t on the rollout clock")
    backtest.add_argument("--report", type=Path, metavar="FILE", help="write the runbook of the replay there")
    backtest.add_argument("--canary-selector", metavar="MATCHERS", help='PromQL label matchers in place of the canary\'s track labels, e.g. pod="checkout-7f9"')
    backtest.add_argument("--stable-selector", metavar="MATCHERS", help="the same for stable")

    calibrate = commands.add_parser(
        "calibrate",
        help="A/A over history: how often the plan would pause or roll back a release identical to stable, per limit; suggested limits",
        description="Replays the plan, as backtest does, at a start every --every from --from to --to, with both tracks read from "
        "stable's population (stable against itself one interval earlier, or --canary-selector against --stable-selector). "
        "Exit 0 when done, whatever the rate found; 2 for invalid input or history with nothing to replay; 1 when Prometheus cannot be reached.",
    )
    calibrate.add_argument("plan", type=Path)
    calibrate.add_argument("--from", dest="from_time", required=True, metavar="TIME", help="the first start: ISO 8601 (UTC without a zone) or -7d")
    calibrate.add_argument("--to", dest="to_time", required=True, metavar="TIME", help="starts stop before this time (their replays read past it, up to now)")
    calibrate.add_argument("--every", metavar="DURATION", help="time between starts, a whole number of intervals (default: 30 intervals, 5m at 10s)")
    calibrate.add_argument("--target-false-rollbacks", default="1%", metavar="PERCENT", help="the false-rollback rate limits are suggested to keep under")
    calibrate.add_argument("--prometheus", metavar="URL", help="override the plan's Prometheus server")
    calibrate.add_argument("--json", action="store_true", help="one summary object on stdout")
    calibrate.add_argument("--canary-selector", metavar="MATCHERS", help="the second label set of stable's population (two pods), read as the canary")
    calibrate.add_argument("--stable-selector", metavar="MATCHERS", help="stable's label set in place of the plan's track labels")
    calibrate.add_argument("--workers", type=workers, metavar="N", help="processes the replays are spread over (default: one per core)")

    history = commands.add_parser("history", help="past rollouts per app: outcome, planned vs actual duration, rollbacks and their measured time")
    history.add_argument("app", nargs="?", help="one app (default: every app)")
    history.add_argument("--state-dir", type=Path, action="append", help="where the journals are (repeatable; default ./.brahma)")
    history.add_argument("--json", action="store_true", help="one JSON document on stdout")

    assess = commands.add_parser("assess", help="the think step: what changes, its risk, the strategy it suggests, the rollback estimate")
    assess.add_argument("plan", type=Path)
    assess.add_argument("--state-dir", type=Path, action="append", help="where the app's past releases are (repeatable; default ./.brahma)")
    assess.add_argument("--context", help="kubeconfig context (a plan on Kubernetes: its Deployment is read)")
    assess.add_argument("--json", action="store_true", help="one JSON document on stdout")

    report = commands.add_parser("report", help="write the runbook again from a journal, and print where")
    report.add_argument("journal", type=Path)
    report.add_argument("--output", "-o", type=Path, help="default: beside the journal, .md")
    return parser


def _add_rollout_options(parser: argparse.ArgumentParser) -> None:
    """The plan and where and how it runs: shared by `run` and `supervise`."""
    parser.add_argument("plan", type=Path)
    parser.add_argument("--target", choices=["sim", "kubernetes"])
    parser.add_argument("--metrics", choices=["sim", "prometheus"])
    parser.add_argument("--scenario", help="simulator behaviour: healthy, error-spike, latency-creep, no-data, flapping, or a file")
    pace = parser.add_mutually_exclusive_group()
    pace.add_argument("--speed", type=speed, help="sim only: N x real time")
    pace.add_argument("--fast", action="store_true", help="sim only: virtual time, as fast as possible")
    parser.add_argument("--state-dir", type=Path, default=Path(".brahma"), help="journal and report (default ./.brahma)")
    parser.add_argument("--prometheus", metavar="URL", help="override the plan's Prometheus server")
    parser.add_argument("--context", help="kubeconfig context")


def _run_options(args: argparse.Namespace, manual: bool, headless: bool):
    from console.app.wiring import RunOptions

    return RunOptions(
        target=args.target,
        metrics=args.metrics,
        scenario=args.scenario,
        speed=args.speed,
        fast=args.fast,
        manual=manual,
        headless=headless,
        state_dir=args.state_dir,
        prometheus_url=args.prometheus,
        context=args.context,
    )


def _refuse_promotes_nobody_gives(plan) -> int | None:
    """A run with nobody at a console cannot give a promote: a plan whose stages wait for one is refused
    before anything changes (as --headless --manual is), rather than held until pause_timeout rolls it back."""
    if plan.manual:
        where = "manual: every stage waits"
    else:
        held = [stage.index for stage in plan.stages if plan.waits_for_promote(stage.index)]
        if not held:
            return None
        fields = ", ".join(f"stages[{index}].manual" for index in held)
        where = f"{fields}: {', '.join(plan.stages[index].name for index in held)} wait{'s' if len(held) == 1 else ''}"
    return refuse(
        f"{plan.source}: {where} for an operator's promote, and a headless run has nobody to give it: run it in the console, or leave manual out for CI"
    )


def cmd_validate(args: argparse.Namespace) -> int:
    from console.plan import load_plan
    from console.units import format_duration

    status = 0
    for path in args.plans:
        try:
            plan = load_plan(path)
        except PlanError as error:
            status = say_problems(error)
            continue
        say_warnings(plan)
        print(f"{path}: valid: {plan.strategy} of {plan.image}, {len(plan.stages)} stages, {format_duration(plan.planned_duration)} planned")
        for line in [*limits_as_read(plan), judge_as_read(plan)]:
            print(f"  {line}")
    return status


def limits_as_read(plan: RolloutPlan) -> list[str]:
    """Every limit as Brahma read it, so a number taken for what it was not meant to be shows before a run:
    "stage 1 (5%, 10m): error_rate < 1% (must), ...", "every sample: rolls back if error_rate > 1%, ..."."""
    from console.units import format_duration

    def said(check) -> str:
        in_a_row = f" ({check.consecutive} in a row)" if check.consecutive > 1 else ""
        return f"{check.metric} {check.describe()}{in_a_row}"

    lines = [
        f"{stage.name} ({stage.weight}%, {format_duration(stage.observe)}): "
        + (", ".join(f"{said(check)} (must)" for check in stage.criteria) or "no criteria")
        for stage in plan.stages
    ]
    for severity, action in (("critical", "rolls back if"), ("warning", "pauses if")):
        triggers = [said(t.check) for t in plan.triggers if t.severity == severity]
        if triggers:
            lines.append(f"every sample: {action} " + ", ".join(triggers))
    return lines


def judge_as_read(plan: RolloutPlan) -> str:
    """analysis.judge and its settings: "judge: sequential (alpha 1%, tolerance 20%, floor 0.01%): rolls back ..."."""
    if plan.judge != "sequential":
        return f"judge: {plan.judge}: the limits alone decide"
    settings = ", ".join(f"{name} {value * 100:g}%" for name, value in (("alpha", plan.alpha), ("tolerance", plan.tolerance), ("floor", plan.floor)))
    return f"judge: sequential ({settings}): rolls back once sure the new version fails over {1 + plan.tolerance:g}× as often as stable"


def cmd_run(args: argparse.Namespace) -> int:
    from console.app.supervision import attach, launch_of, run_supervised

    if args.headless and args.manual:
        return refuse("--manual needs a person at the console; it cannot run with --headless")
    if args.json and not args.headless:
        return refuse("--json is for headless runs (add --headless)")
    options = _run_options(args, manual=args.manual, headless=args.headless)
    if not args.headless and not args.demo:
        return run_supervised(args.plan, options, args.read_only, entry=main)  # which reads the plan in the process that starts the controller
    from console.actor import current_actor
    from console.app.headless import run_headless
    from console.app.wiring import build_rollout, rollout_files
    from console.plan import load_plan
    from console.supervisor.files import lock_holder, take_lock

    try:
        plan = load_plan(args.plan)
        say_warnings(plan)
        if args.headless and (refused := _refuse_promotes_nobody_gives(plan)) is not None:
            return refused
        files = rollout_files(plan, options)
        # One controller per rollout, the lock held until this process ends. A state dir that does not
        # exist yet has no controller, and is created only once the input is known to be good.
        lock = take_lock(files) if args.state_dir.exists() else None
        if lock is None and args.state_dir.exists():
            say(f"{plan.name} is already supervised (pid {lock_holder(files)}): following it")
            gc.enable()  # no console opens: start-up is over
            return attach(args.state_dir, plan.name, headless=True, read_only=True)
        rollout = build_rollout(plan, options, current_actor())
        lock = lock or take_lock(files)
    except REFUSALS as error:
        return report_refusal(error)
    # How a controller of this release is started again: `brahma attach` opens a console on it once it
    # has ended, whose rollback key undoes it as for a release run with a console.
    launch_of(args.plan, options, attended=False)[0].write(files.launch)
    if args.headless:
        return asyncio.run(run_headless(rollout, json_lines=args.json))
    from console.app.console import open_console

    code = open_console(rollout, read_only=args.read_only, demo=args.demo)
    if files.report.exists():
        say(f"the runbook: {files.report}")
    return code


def cmd_demo(args: argparse.Namespace) -> int:
    """The sample canary on the simulator; its exit code is demo_exit_code's."""
    import tempfile

    state_dir = args.state_dir or Path(tempfile.mkdtemp(prefix="brahma-demo-"))
    argv = ["run", str(SAMPLE_PLAN), "--target", "sim", "--scenario", args.scenario, "--speed", str(args.speed), "--state-dir", str(state_dir), "--demo"]
    code = cmd_run(_parser().parse_args(argv + (["--headless"] if args.headless else [])))
    return demo_exit_code(code)


def cmd_preflight(args: argparse.Namespace) -> int:
    from console.app.preflight import run_preflight
    from console.plan import load_plan

    try:
        plan = load_plan(args.plan)
    except PlanError as error:
        return say_problems(error)
    return asyncio.run(run_preflight(plan, json_lines=args.json))


def cmd_flags(args: argparse.Namespace) -> int:
    from console.app.flags import run_flags

    return run_flags(args.file, args.verb, args.state_dir)


def cmd_calibrate(args: argparse.Namespace) -> int:
    from console.app.calibrate import run_calibrate

    return run_calibrate(
        args.plan,
        args.from_time,
        args.to_time,
        args.prometheus,
        args.json,
        args.every,
        args.target_false_rollbacks,
        args.canary_selector,
        args.stable_selector,
        args.workers,
    )


def cmd_report(args: argparse.Namespace) -> int:
    from console.journal.journal import JournalError
    from console.report import write_report

    try:
        output = write_report(args.journal, args.output)
    except JournalError as error:
        return refuse(str(error))
    print(output)
    return EXIT_COMPLETED


def cmd_history(args: argparse.Namespace) -> int:
    from console.app.history import run_history

    return run_history(args.app, args.state_dir or [Path(".brahma")], args.json)


def cmd_assess(args: argparse.Namespace) -> int:
    from console.app.history import run_assess

    return run_assess(args.plan, args.state_dir or [Path(".brahma")], args.json, args.context)


def cmd_backtest(args: argparse.Namespace) -> int:
    from console.app.backtest import run_backtest

    return run_backtest(args.plan, args.at, args.prometheus, args.json, args.report, args.canary_selector, args.stable_selector)


def cmd_supervise(args: argparse.Namespace) -> int:
    from console.app.supervision import plan_to_supervise, supervise

    if args.manual and not args.attended:
        return refuse("--manual needs a person at a console; an unattended controller cannot wait for one")
    try:
        plan = plan_to_supervise(args.plan)
    except PlanError as error:
        return say_problems(error)
    if not (args.attended or args.undo) and (refused := _refuse_promotes_nobody_gives(plan)) is not None:
        return refused
    if args.detach:  # the person's command; the controller it starts does not repeat them in its log
        say_warnings(plan)
    # Unattended, nobody is at a console: a pause waits pause_timeout, then rolls back, as in headless runs.
    options = _run_options(args, manual=args.manual, headless=not (args.attended or args.undo))
    options.undo, options.stay = args.undo, args.stay
    # Undoing is asked for from a console, whose operator stays to see it through.
    return supervise(plan, args.plan, options, detach=args.detach, attended=args.attended or args.undo)


def cmd_attach(args: argparse.Namespace) -> int:
    from console.app.supervision import attach, attach_pod

    if args.pod is not None:
        if args.headless:  # a pod's controller writes its events to its log
            return refuse(f"--headless with --pod: kubectl logs -f --namespace {args.pod.replace('/', ' ', 1)} prints the rollout's events")
        return attach_pod(args.pod, args.state_dir, args.rollout, args.read_only)
    return attach(args.state_dir, args.rollout, args.headless, args.read_only)


def cmd_relay(args: argparse.Namespace) -> int:
    from console.app.supervision import relay_rollout

    return relay_rollout(args.state_dir, args.rollout)


def cmd_fleet(args: argparse.Namespace) -> int:
    from console.app.fleet import run_fleet

    return run_fleet(args.state_dirs)


def cmd_ls(args: argparse.Namespace) -> int:
    from console.app.supervision import list_state_dir

    return list_state_dir(args.state_dir)


COMMANDS = {
    "supervise": cmd_supervise,
    "attach": cmd_attach,
    "relay": cmd_relay,
    "ls": cmd_ls,
    "fleet": cmd_fleet,
    "demo": cmd_demo,
    "run": cmd_run,
    "validate": cmd_validate,
    "preflight": cmd_preflight,
    "flags": cmd_flags,
    "report": cmd_report,
    "backtest": cmd_backtest,
    "calibrate": cmd_calibrate,
    "history": cmd_history,
    "assess": cmd_assess,
}
CONSOLE_COMMANDS = ("run", "demo", "attach")
"""The commands that open the console unless --headless."""


TIME_OPTIONS = ("--at", "--from", "--to")
"""Options whose value may be a time before now, `-36h`, that argparse would take for an option."""


def relative_times_joined(argv: Sequence[str]) -> list[str]:
    """`--at -36h` as `--at=-36h`, so that a relative time is read as the option's value."""
    joined: list[str] = []
    for word in argv:
        if joined and joined[-1] in TIME_OPTIONS and word.startswith("-") and word[1:2].isdigit():
            joined[-1] = f"{joined[-1]}={word}"
        else:
            joined.append(word)
    return joined


def main(argv: Sequence[str] | None = None) -> int:
    from console.streams import guarded

    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        from console.app.fleet import configured_state_dirs

        if configured_state_dirs():
            argv = ["fleet"]  # `brahma` alone, with state dirs configured: the fleet on them
    args = _parser().parse_args(relative_times_joined(argv))
    if args.command not in CONSOLE_COMMANDS or args.headless:
        gc.enable()  # paused for start-up by entry.py; a console collects again once its first frame shows (BrahmaApp)
    # A reader that goes away (`| head`, a closed terminal) stops the printing, never a rollout.
    shown = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = guarded(sys.stdout), guarded(sys.stderr)  # type: ignore[assignment]
    try:
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        say("interrupted; the journal keeps where the rollout was (run the same command to resume)")
        return EXIT_INTERRUPTED
    except Exception as error:  # the last guard: one line for the operator, the trace in a file
        return report_internal_error(error, Path(getattr(args, "state_dir", None) or "."))
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        sys.stdout, sys.stderr = shown

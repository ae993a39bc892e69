"""`brahma supervise`, `brahma attach` and `brahma ls`: the command-line side of the detached controller."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import os
import select
import sys
import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

from console import strict_json
from console.actor import current_actor
from console.app.exits import EXIT_COMPLETED, EXIT_ERROR, EXIT_INTERRUPTED, EXIT_INVALID, exit_code
from console.app.problems import (
    REFUSALS,
    refuse,
    report_internal_error,
    report_refusal,
    report_unavailable,
    say,
    say_problems,
    say_rollback_unverified,
    say_warnings,
)
from console.controller.identity import ResumeRefused, check_resume
from console.journal.events import event_from_dict
from console.journal.journal import JournalError, read_events
from console.journal.state import Phase, read_state
from console.journal.state_dir import RolloutFiles
from console.narrate import event_printer
from console.plan.model import RolloutPlan, plan_from_plain
from console.plan.names import release_name_problem
from console.plan.problems import PlanError
from console.rollout import Rollout
from console.streams import guarded
from console.supervisor.client import (
    Started,
    SupervisorClient,
    SupervisorUnavailable,
    answers,
    ensure_running,
    list_rollouts,
    start_detached,
)
from console.supervisor.files import Launch, lock_held, lock_holder, take_lock

if TYPE_CHECKING:
    from console.app.wiring import RunOptions
    from console.supervisor.remote import RemoteController

PROMETHEUS_USERINFO = "BRAHMA_PROMETHEUS_USERINFO"
"""The user:password of a --prometheus URL, handed to a detached controller in its environment: a password
in its argv would show in ps, and in the launch record it would outlive the controller."""

Entry = Callable[[list[str]], int]
"""The command line's main: what a controller forked from this process runs, with its arguments."""

_checked_plans: dict[Path, RolloutPlan] = {}
"""The plan a console's starter read and checked (start_for_console), by its absolute path: the controller forked
from the starter runs it as checked, rather than compiling the file a second time on the way to the first frame."""


def split_userinfo(url: str) -> tuple[str, str | None]:
    """`url` without its user:password@ (as written, still percent-encoded), and that part (None when it has none)."""
    parts = urlsplit(url)
    userinfo, at, host = parts.netloc.rpartition("@")
    return (urlunsplit(parts._replace(netloc=host)), userinfo) if at else (url, None)


def launch_of(plan_path: Path, options: RunOptions, attended: bool) -> tuple[Launch, dict[str, str]]:
    """How a detached controller runs this plan with these options, and the secrets only its environment carries."""
    url, userinfo = split_userinfo(options.prometheus_url) if options.prometheus_url else (None, None)
    argv = supervise_args(plan_path, replace(options, prometheus_url=url), attended)
    if userinfo is None:
        return Launch.here(argv), {}
    return Launch.here(argv, {PROMETHEUS_USERINFO: f"the user:password of --prometheus {url}"}), {PROMETHEUS_USERINFO: userinfo}


def start_launched(files: RolloutFiles, launch: Launch, secrets: dict[str, str], fork_with: Entry | None = None) -> Started:
    """start_detached, the secrets in the environment: this process keeps them too, so that it can restart
    the controller (a console does when its controller dies under it). `fork_with` (the command line's main):
    started as a fork of this process running it, unless there are secrets: a fork shows this process's command
    line in ps, and the controller outlives it."""
    os.environ.update(secrets)
    return start_detached(files, launch, fork_with=None if secrets else fork_with)


def take_secrets(options: RunOptions) -> RunOptions:
    """The options with the secrets a launching process handed over in the environment put back where they
    belong; they leave this process's environment, so no check it runs inherits them."""
    userinfo = os.environ.pop(PROMETHEUS_USERINFO, None)
    if userinfo is None or not options.prometheus_url or split_userinfo(options.prometheus_url)[1] is not None:
        return options  # nothing handed over, or a URL that carries its own (given by hand) stands as given
    parts = urlsplit(options.prometheus_url)
    return replace(options, prometheus_url=urlunsplit(parts._replace(netloc=f"{userinfo}@{parts.netloc}")))


def supervise_args(plan_path: Path, options: RunOptions, attended: bool = False) -> list[str]:
    """The `brahma supervise` arguments that run this plan again with these options (absolute paths)."""
    # A scenario file is kept by absolute path: the restart may run from another directory.
    scenario = str(Path(options.scenario).resolve()) if options.scenario and Path(options.scenario).exists() else options.scenario
    argv = [str(plan_path.resolve()), "--state-dir", str(options.state_dir.resolve())]
    for flag, value in (
        ("--target", options.target),
        ("--metrics", options.metrics),
        ("--scenario", scenario),
        ("--speed", options.speed),
        ("--prometheus", options.prometheus_url),
        ("--context", options.context),
    ):
        if value is not None:
            argv += [flag, str(value)]
    switches = (("--fast", options.fast), ("--manual", options.manual), ("--attended", attended), ("--stay", options.stay))
    return argv + [flag for flag, on in switches if on]


def plan_to_supervise(plan_path: Path) -> RolloutPlan:
    """The plan `brahma supervise` runs: the one its starter checked, in a controller forked from it; else the file, loaded."""
    from console.plan import load_plan

    return _checked_plans.get(plan_path.resolve()) or load_plan(plan_path)


def supervise(plan: RolloutPlan, plan_path: Path, options: RunOptions, detach: bool, attended: bool) -> int:
    files = RolloutFiles(options.state_dir, plan.name)
    if detach:
        try:
            pid = lock_holder(files) if answers(files) else start_launched(files, *launch_of(plan_path, options, attended)).pid
        except SupervisorUnavailable as error:
            return report_unavailable(error)
        print(f"{plan.name}: supervised by pid {pid}; follow it with: brahma attach {plan.name} --state-dir {options.state_dir}")
        return EXIT_COMPLETED
    lock = take_lock(files)
    if lock is None:
        say(f"{plan.name} is already supervised (pid {lock_holder(files)}); attach with: brahma attach {plan.name}")
        return EXIT_ERROR
    from console.app.wiring import build_rollout

    options = take_secrets(options)
    if options.stay and not options.undo and finished_under(plan, files):
        # A pod restarted after its release finished: running the plan again would release it again.
        say(f"{plan.name} finished under this plan ({files.journal}): not run again, served for consoles; change the plan to release anew")
        options = replace(options, undo=True)  # taken up as a finished release is to be undone: its journal stays
    with lock:
        try:
            rollout = build_rollout(plan, options, current_actor())
        except REFUSALS as error:
            return report_refusal(error)
        launch_of(plan_path, options, attended)[0].write(files.launch)  # only a rollout that started can be restarted
        if rollout.controller.resumed:
            say(f"resuming rollout {plan.name} from {files.journal}")
        return asyncio.run(serve(rollout, files, attended, options.stay))


def finished_under(plan: RolloutPlan, files: RolloutFiles) -> bool:
    """The rollout's journal is of a finished run of exactly this plan (not one since edited or for another version)."""
    try:
        state = read_state(files.journal)
        return state.finished and check_resume(plan, state, files.journal) is None
    except (JournalError, ResumeRefused):
        return False


async def serve(rollout: Rollout, files: RolloutFiles, attended: bool, stay: bool = False) -> int:
    """The detached controller: the rollout served on its socket until it has ended (with `stay`, until a signal);
    how it ended, as the exit code."""
    from console.supervisor.server import SupervisorServer

    phase = await SupervisorServer(rollout, files, attended, stay).run()
    if phase == Phase.ROLLING_BACK:
        say_rollback_unverified(rollout.controller.state)
    return exit_code(phase)


def run_supervised(plan_path: Path, options: RunOptions, read_only: bool, entry: Entry) -> int:
    """`brahma run` with a console: the controller in a process of its own, the console attached to it.

    A fork of this process (the starter, start_for_console) reads and checks the plan and starts its controller,
    while this one loads the console on the other core. A plan that does not load (or arguments that do not fit) is
    said on this terminal by the starter, before any console opens, and its exit code is this command's. Once the
    plan is checked the console opens at once, saying it is starting, while the controller starts: the starter's
    output reaches it through a pipe, and is said on the terminal when the console has left. The console shows the
    rollout once the controller answers, on the plan the controller runs. `entry`: the command line's main, which the
    controller, forked again, runs."""
    # This process keeps the secrets too, so that the console can restart the controller should it die.
    os.environ.update(launch_of(plan_path, options, attended=True)[1])
    starter = Starter(plan_path, options, entry)
    try:
        load_console()
        if (refused := starter.refused()) is not None:
            return refused
        from console.app.console import open_console

        arriving = ArrivingRollout(starter, options.state_dir, read_only, plan_path)
        # A controller that failed at once is said without a console opening first.
        failed = starter.told() and starter.finish()[0] != "attach"
        code = EXIT_COMPLETED if failed else open_console(None, read_only=read_only, arriving=arriving)
        verb, rest, said = starter.finish()
    finally:
        starter.close()
    sys.stderr.write(said)  # what the starter said while the console was open
    if arriving.controller is not None:
        say_detached(arriving.controller)
        return code
    if verb != "attach":
        return int(rest) if rest.isdigit() else EXIT_ERROR
    name = rest.partition(" ")[0]  # left before its controller answered, which goes on supervising
    say(f"{name} is supervised by pid {lock_holder(RolloutFiles(options.state_dir, name))}; attach with: brahma attach {name} --state-dir {options.state_dir}")
    return EXIT_COMPLETED


CHECKED = "checked"
"""The starter's first line to the console once the plan is checked: the console may open."""


class Starter:
    """The fork that reads and checks the plan and starts its controller (start_for_console), as its console sees it.

    It tells the console, through a pipe, CHECKED once the plan is checked, then how it ended: "attach NAME PLAN" (the
    plan its controller runs, in JSON) or "exit CODE". Until CHECKED it writes to this terminal; from then on its
    output goes through another pipe, for the console to say once it has left the terminal."""

    def __init__(self, plan_path: Path, options: RunOptions, entry: Entry):
        told, telling = os.pipe()
        said, saying = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        gc.freeze()  # what both have imported stays shared: no collection in either copies the pages it is on
        self.pid = os.fork()
        if not self.pid:
            os.close(told)
            os.close(said)
            self._start(plan_path, options, entry, telling, saying)
        os.close(telling)
        os.close(saying)
        self._told, self._said = told, said
        self._heard, self._said_text = b"", b""
        self._hearing = threading.Lock()
        """finish is called by the console's thread waiting for it, and again once the console has left."""

    @staticmethod
    def _start(plan_path: Path, options: RunOptions, entry: Entry, telling: int, saying: int) -> None:
        def checked() -> None:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saying, 1)  # before the console is told to open: nothing more reaches the terminal under it
            os.dup2(saying, 2)
            tell(CHECKED)

        def tell(line: str) -> None:
            told_all = f"{line}\n".encode()
            while told_all:  # a plan can be more than a pipe takes in one write
                told_all = told_all[os.write(telling, told_all) :]

        outcome = f"exit {EXIT_ERROR}"
        try:
            outcome = start_for_console(plan_path, options, entry, checked)
        except KeyboardInterrupt:
            say("interrupted before the rollout started")
            outcome = f"exit {EXIT_INTERRUPTED}"
        except Exception as error:
            outcome = f"exit {report_internal_error(error, options.state_dir)}"
        finally:
            try:
                sys.stdout.flush()
                sys.stderr.flush()
                tell(outcome)
            finally:
                os._exit(0)  # never back into the stack of the process it was forked from

    def refused(self) -> int | None:
        """None once the plan is checked (the console may open); else the exit code, the starter having said why."""
        while b"\n" not in self._heard and self._hear(self._told):
            pass
        if self._heard.startswith(f"{CHECKED}\n".encode()):
            self._heard = self._heard[len(CHECKED) + 1 :]
            return None
        verb, rest, _ = self.finish()
        return int(rest) if verb == "exit" and rest.isdigit() else EXIT_ERROR

    def finish(self) -> tuple[str, str, str]:
        """Once the starter has told how it ended: ("attach", "NAME PLAN") or ("exit", "CODE"), and what it said after
        CHECKED. Not its exit, which a process of its size takes a while over (its memory freed before its pipes close)."""
        with self._hearing:
            while not self._told_all():
                ready, _, _ = select.select([fd for fd in (self._told, self._said) if fd >= 0], [], [])
                for fd in ready:
                    self._hear(fd)
            # All it said was written before it told: what the pipe still holds is the rest.
            while self._said >= 0 and select.select([self._said], [], [], 0)[0] and self._hear(self._said):
                pass
        said = self._said_text.decode(errors="replace")
        verb, _, rest = self._heard.decode().strip().partition(" ")
        if verb not in ("attach", "exit"):  # killed before it could tell
            said += "brahma: the process that starts the controller ended before it said how (was it killed?)\n"
            return "exit", str(EXIT_ERROR), said
        return verb, rest, said

    def told(self) -> bool:
        """Whether the starter has told how it ended, without waiting for it."""
        with self._hearing:
            while not self._told_all() and select.select([self._told], [], [], 0)[0]:
                self._hear(self._told)
            return self._told_all()

    def _told_all(self) -> bool:
        return self._heard.endswith(b"\n") or self._told < 0

    def _hear(self, fd: int) -> bool:
        """One read of the starter's pipes; False at its end (the pipe is then closed)."""
        chunk = os.read(fd, 65536)
        if fd == self._said:
            self._said_text += chunk
        else:
            self._heard += chunk
        if not chunk:
            os.close(fd)
            if fd == self._said:
                self._said = -1
            else:
                self._told = -1
        return bool(chunk)

    def close(self) -> None:
        for fd in (self._told, self._said):
            if fd >= 0:
                os.close(fd)
        self._told = self._said = -1
        os.waitpid(self.pid, 0)


class ArrivingRollout:
    """The rollout a console opens on before its controller answers: the one the starter's controller runs, once
    the starter has ended (a thread waits for it, off the console's event loop)."""

    def __init__(self, starter: Starter, state_dir: Path, read_only: bool, plan_path: Path):
        self.starter, self.state_dir, self.read_only = starter, state_dir, read_only
        self.waiting_for = f"waiting for the controller of {plan_path.name}"
        self.controller: RemoteController | None = None

    def arrived(self) -> Rollout | None:
        return self._rollout(*self.starter.finish()) if self.starter.told() else None

    async def rollout(self) -> Rollout | None:
        return self._rollout(*await asyncio.to_thread(self.starter.finish))

    def _rollout(self, verb: str, rest: str, said: str) -> Rollout | None:
        if verb != "attach":
            return None
        from console.app.wiring import plan_flags
        from console.supervisor.remote import RemoteController

        name, _, served = rest.partition(" ")
        plan = plan_from_plain(strict_json.loads(served))
        files = RolloutFiles(self.state_dir, name)
        self.controller = RemoteController(plan, files, actor=current_actor(), watch_only=self.read_only)
        return Rollout(self.controller, plan_flags(plan, files), detached=True)


def start_for_console(plan_path: Path, options: RunOptions, entry: Entry, checked: Callable[[], None]) -> str:
    """The plan read and checked (`checked` is called then: the console opens), and its controller started unless
    one runs already: "attach NAME PLAN" for the console, PLAN the plan the controller runs in JSON (the one checked
    here when its controller won the rollout's lock; else the one the winner gives), or "exit CODE" once the problem
    is said."""
    from console.app.wiring import choose_kinds, refuse_unwritable_flags, rollout_files, simulator_scenario
    from console.plan import load_plan

    try:
        plan = load_plan(plan_path)
        say_warnings(plan)
        target_kind = choose_kinds(plan, options)[0]  # arguments that do not fit are refused here, not in a log file
        if options.scenario:
            simulator_scenario(plan, options)  # a scenario file or name given here: refused on the terminal too
        refuse_unwritable_flags(plan, rollout_files(plan, options))
        files = RolloutFiles(options.state_dir, plan.name)
        state = read_state(files.journal)
        # Checked here too, so the console is never opened on a journal its plan does not describe.
        changed = check_resume(plan, state, files.journal, target_kind)
        running = answers(files)
        if running:
            say(f"{plan.name} is already supervised (pid {lock_holder(files)}): attaching")
        elif state.started and not state.finished:
            say(f"resuming rollout {plan.name} from {files.journal}")
            if changed:
                say(changed)
    except REFUSALS as error:
        return f"exit {report_refusal(error)}"
    checked()
    try:
        if not running:
            # The controller is this process forked again (no second interpreter to start).
            _checked_plans[plan_path.resolve()] = plan
            if start_launched(files, *launch_of(plan_path, options, attended=True), fork_with=entry).ours:
                return f"attach {plan.name} {strict_json.dumps(dataclasses.asdict(plan))}"
        # Another console's controller won the rollout's lock meanwhile (or ran already): it gives the plan it runs.
        served = served_plan(files)
    except REFUSALS as error:
        return f"exit {report_refusal(error)}"
    except SupervisorUnavailable as error:
        return f"exit {report_unavailable(error)}"
    return f"attach {plan.name} {strict_json.dumps(dataclasses.asdict(served))}" if served is not None else f"exit {EXIT_INVALID}"


def load_console() -> None:
    """Import what the console needs to open (textual, its widgets, the remote controller, the flag store)."""
    import console.app.console  # noqa: F401
    import console.app.wiring  # noqa: F401
    import console.supervisor.remote  # noqa: F401
    import console.tui.app  # noqa: F401
    import console.tui.keymap  # noqa: F401


def attach_console(plan: RolloutPlan, files: RolloutFiles, read_only: bool) -> int:
    from console.app.console import open_console
    from console.app.wiring import plan_flags
    from console.supervisor.remote import RemoteController

    controller = RemoteController(plan, files, actor=current_actor(), watch_only=read_only)
    code = open_console(Rollout(controller, plan_flags(plan, files), detached=True), read_only=read_only)
    say_detached(controller)
    return code


def say_detached(controller: RemoteController) -> None:
    """What a console that has left a detached controller says of it: it goes on supervising, or where its runbook is."""
    files, name = controller.files, controller.plan.name
    if not controller.state.finished and controller.pid is not None:
        say(f"detached; pid {controller.pid} keeps supervising {name}. Attach again with: brahma attach {name} --state-dir {files.state_dir}")
        say(f"the runbook is written to {files.report} when the rollout ends (brahma report {files.journal} writes it now)")
    elif files.report.exists():
        say(f"the runbook: {files.report}")


def attach(state_dir: Path, name: str | None, headless: bool, read_only: bool) -> int:
    """The console on a supervised rollout (restarting its controller if it died); --headless prints its story."""
    if name is not None and (problem := release_name_problem(name)):  # it names files: never one outside the state dir
        return refuse(f"no rollout can be named {name!r}: {problem}")
    if name is None:
        listings = list_rollouts(state_dir) if state_dir.is_dir() else []
        if len(listings) != 1 or listings[0].unreadable is not None:
            if listings:
                list_state_dir(state_dir)
            return refuse(
                f"{'no rollout' if not listings else 'name the rollout'} to attach to in {state_dir}"
                + (f": brahma attach NAME --state-dir {state_dir}" if listings else "")
            )
        name = listings[0].name
    files = RolloutFiles(state_dir, name)
    if not answers(files) and lock_held(files):
        return refuse(
            f"{name} is supervised by pid {lock_holder(files)}, which serves no console (a --headless run, or brahma demo): "
            f"its events are in {files.journal} as they happen (brahma report {files.journal} writes the runbook so far); "
            "once it has ended, brahma attach opens the console on it and can undo it"
        )
    # A controller that answers gives the console the plan it runs; one that is to be started again is started from
    # the plan file its launch record names, which must still load.
    running = answers(files)
    plan = None if headless or running else launched_plan(files)
    if not (headless or running) and plan is None:
        return EXIT_INVALID
    try:
        # A controller that died is started again first: one that refuses the journal (its plan was
        # changed for another's) is exit 2 here, not a console left waiting for it.
        pid = ensure_running(files)
    except SupervisorUnavailable as error:
        return report_unavailable(error)
    except JournalError as error:
        return report_refusal(error)
    if not headless:
        plan = plan or served_plan(files)
        return attach_console(plan, files, read_only) if plan is not None else EXIT_INVALID
    out = guarded(sys.stdout)  # type: ignore[arg-type]
    print_event = event_printer(out, json_lines=False)
    try:
        if pid is None:  # finished: the journal tells the whole story
            for event in read_events(files.journal):
                print_event(event)
        else:
            say(f"attached to {name} (controller pid {pid}); ctrl+c detaches, the controller keeps supervising")
            with SupervisorClient(files.socket) as client:
                client.settimeout(None)  # a person follows the stream: quiet stretches (a long pause) are normal
                for message in client.attach(0, current_actor()):
                    print_event(event_from_dict(message))
                    if out.lost is not None:  # nobody reads any more: this follower leaves, the controller goes on
                        return EXIT_COMPLETED
        return exit_code(read_state(files.journal).phase)
    except SupervisorUnavailable as error:
        return report_unavailable(error)
    except JournalError as error:
        return report_refusal(error)
    except KeyboardInterrupt:
        print(file=sys.stderr)
        say(f"detached; {name} is still supervised")
        return EXIT_COMPLETED


def relay_rollout(state_dir: Path, name: str | None) -> int:
    """`brahma relay`: the rollout's socket on stdin/stdout, for a console attaching through `kubectl exec` (relay.py)."""
    from console.supervisor.relay import relay

    if name is not None and (problem := release_name_problem(name)):
        return refuse(f"no rollout can be named {name!r}: {problem}")
    if name is None:
        listings = [listing for listing in list_rollouts(state_dir) if listing.running] if state_dir.is_dir() else []
        if len(listings) != 1:
            return refuse(f"{'no rollout is' if not listings else 'several rollouts are'} supervised in {state_dir}: name the one to relay")
        name = listings[0].name
    try:
        relay(RolloutFiles(state_dir, name))
    except SupervisorUnavailable as error:
        return report_unavailable(error)
    return EXIT_COMPLETED


def attach_pod(pod: str, state_dir: Path, name: str | None, read_only: bool) -> int:
    """The console on the controller a pod runs (`--pod NAMESPACE/POD`), through `kubectl exec` and `brahma relay` there."""
    from console.app.console import open_console
    from console.supervisor.relay import PodLink
    from console.supervisor.remote import RemoteController

    namespace, _, pod_name = pod.partition("/")
    if not namespace or not pod_name:
        return refuse(f"--pod {pod}: expected NAMESPACE/POD (or NAMESPACE/deployment/NAME)")
    if name is not None and (problem := release_name_problem(name)):
        return refuse(f"no rollout can be named {name!r}: {problem}")
    link = PodLink(namespace, pod_name, str(state_dir), name)
    try:
        plan = link.plan()
    except SupervisorUnavailable as error:
        return report_unavailable(error)
    files = RolloutFiles(state_dir, plan.name)  # the pod's: named in messages, never read here
    # Named from now on: should the controller be replaced, the relay must not take up another rollout there.
    controller = RemoteController(plan, files, actor=current_actor(), watch_only=read_only, pod=replace(link, rollout=plan.name))
    # No flags beside the journal: the flag file, if any, is the pod's; the console shows them as the controller journals them.
    code = open_console(Rollout(controller, None, detached=True), read_only=read_only)
    if not controller.state.finished:
        say(f"detached; the controller in {link.where} keeps supervising {plan.name}. Attach again with: brahma attach --pod {pod} --state-dir {state_dir}")
    return code


def served_plan(files: RolloutFiles) -> RolloutPlan | None:
    """The plan the rollout's controller runs, as it gives it; should it not (it has just ended), the one its launch record names."""
    try:
        with SupervisorClient(files.socket) as client:
            return client.plan()
    except (SupervisorUnavailable, OSError, ValueError):
        return launched_plan(files)


def launched_plan(files: RolloutFiles) -> RolloutPlan | None:
    """The plan the rollout's controller was started with (its launch record names the file)."""
    from console.plan import load_plan

    launch = Launch.read(files.launch)
    if launch is None:
        if not files.journal.exists():
            say(f"no rollout {files.name} in {files.state_dir} (brahma ls --state-dir {files.state_dir} lists them)")
        else:  # a journal from before runs recorded how they were started
            say(
                f"{files.name} in {files.state_dir} has no {files.launch.name}, so no controller can be started for it: "
                f"read it with brahma attach {files.name} --headless (or brahma report {files.journal}), and roll it back by "
                "running its plan again with the same --state-dir"
            )
        return None
    try:
        return load_plan(Path(launch.argv[0]))
    except PlanError as error:
        say(f"the plan {files.name} was started with no longer loads:")
        say_problems(error)
        return None


def list_state_dir(state_dir: Path) -> int:
    """Every rollout in the state dir; one whose journal cannot be read is listed with its FILE:LINE (exit 2), the others as ever."""
    listings = list_rollouts(state_dir) if state_dir.is_dir() else []
    if not listings:
        print(f"no rollouts in {state_dir}")
        return EXIT_COMPLETED
    print(f"{'ROLLOUT':<28} {'PHASE':<16} {'STAGE':<14} CONTROLLER")
    for listing in listings:
        if listing.unreadable is not None:
            print(f"{listing.name:<28} unreadable: {listing.unreadable}")
            continue
        state = listing.state
        stage = f"{state.stage + 1} ({state.weight}%)" if state.stage >= 0 else "-"
        controller = f"running (pid {listing.pid})" if listing.running else "none"
        print(f"{listing.name:<28} {state.phase:<16} {stage:<14} {controller}")
    return EXIT_INVALID if any(listing.unreadable is not None for listing in listings) else EXIT_COMPLETED

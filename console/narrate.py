"""Events told in one line a person reads: the headless output, the console's event log."""

from __future__ import annotations

from typing import TextIO

from console import strict_json
from console.journal import events as ev
from console.journal.evidence import by_trigger
from console.streams import GuardedStream, guarded
from console.units import format_duration


def describe(event: ev.Event) -> str | None:
    """One line a person reads, or None for the events too frequent to print (samples)."""
    match event:
        case ev.RolloutStarted():
            return f"rollout {event.rollout}: {event.strategy} of {event.image}, {format_duration(event.planned_s)} planned"
        case ev.PreflightResult():
            return f"pre-flight {event.item}: {event.status}" + (f" ({event.by})" if event.by and event.by != "brahma" else "")
        case ev.PreflightPassed():
            return "pre-flight gate passed"
        case ev.PreflightFailed():
            return f"pre-flight gate FAILED: {', '.join(event.failed)}; nothing was changed"
        case ev.StageStarted():
            return f"{event.stage_name} started: {event.weight}% of traffic on the new version, observing {format_duration(event.observe_s)}"
        case ev.TrafficShifted():
            # Said only when the shift had to wait (a rollout on a cluster): otherwise stage_started said it all.
            return f"{event.weight}% in place after {format_duration(event.waited_s)}: the window starts now" if event.waited_s else None
        case ev.StagePassed():
            return f"stage {event.stage + 1} passed"
        case ev.AwaitingPromote():
            return f"stage {event.stage + 1} held: waiting for promote"
        case ev.Paused():
            return f"PAUSED: {event.reason}"
        case ev.Resumed():
            return "resumed"
        case ev.SupervisionResumed():
            return supervision_resumed(event)
        case ev.ConsoleAttached():
            return f"{event.actor} attached" + (" (watching only)" if event.watch_only else "")
        case ev.ConsoleDetached():
            return console_detached(event)
        case ev.RollbackStarted():
            return f"ROLLING BACK{by_trigger(event.trigger)}: {event.reason}"
        case ev.RollbackFailed():
            return f"ROLLBACK NOT VERIFIED: {rollback_failed(event)}; retrying in {format_duration(event.retry_in_s)}"
        case ev.RollbackVerified():
            return f"rollback verified: {event.detail}"
        case ev.RolledBack():
            return f"rolled back in {event.duration_s:.3f}s: stable serves 100%"
        case ev.Completed():
            return "completed: the new version serves 100% and the monitoring window held"
        case ev.CommandIssued():
            about = f" {event.argument!r}" if event.argument else ""
            return f"command {event.command}{about} by {event.actor}"
        case ev.FlagChanged():
            why = f" ({event.reason})" if event.reason else ""
            return f"flag {event.flag}: {flag_change(event.old, event.new)} by {event.actor}{why}"
        case ev.NotificationSent():
            detail = f" ({event.detail})" if event.detail and event.status != "sent" else ""
            return f"notified {event.webhook} of {event.about}: {event.status}{detail}"
        case ev.DriftDetected():
            return f"DRIFT: the target changed beside the release: {'; '.join(event.changes)}"
        case ev.DriftResolved():
            return "drift resolved: the target is as the release left it"
        case ev.ErrorRaised():
            return f"error in {event.where}{times_repeated(event)}: {event.message}"
    return None


def times_repeated(event: ev.ErrorRaised) -> str:
    """` (N more times)` for a line counting an error's repeats, else nothing."""
    return f" ({event.repeated} more time{'' if event.repeated == 1 else 's'})" if event.repeated else ""


def supervision_resumed(event: ev.SupervisionResumed) -> str:
    said = f"supervision resumed from the journal after {format_duration(event.unwatched_s)} unwatched"
    return said + ("; samples were missed, so the stage's window starts again" if event.window_restarted else "")


def console_detached(event: ev.ConsoleDetached) -> str:
    said = f"{event.actor} detached" + (f" ({event.reason})" if event.reason else "")
    if event.consoles == 0 and not event.watch_only:
        said += "; no console that may act is attached: a pause rolls back after pause_timeout, as in a headless run"
    return said


def rollback_failed(event: ev.RollbackFailed) -> str:
    """`the target failed to roll back (3 attempts, 1m): ...`: what the journal says of an open rollback."""
    what = {"rollback": "the target failed to roll back", "read_back": "the target could not be read back"}.get(
        event.reason, "the target does not serve stable alone"
    )
    tries = f"{event.attempts} attempt{'s' if event.attempts != 1 else ''}" + (f", {format_duration(event.since_s)}" if event.since_s else "")
    return f"{what} ({tries}): {event.detail}"


DAY_S = 86400.0


def spans_days(planned_s: float) -> bool:
    """Whether a rollout planned to last `planned_s` is told in days (a week-long flag schedule), not minutes."""
    return planned_s > DAY_S


def rollout_clock(t: float, days: bool = False) -> str:
    """`t` as minutes:seconds on the rollout's clock; with `days`, its day and the time into it, `d3 04:12:00`
    (day 3 as the console's "day 3 of 7" says, and in order as text for a week's lines). Pre-flight (t < 0) is
    minutes either way."""
    if days and t >= 0:
        day, into = divmod(int(t), int(DAY_S))
        hours, rest = divmod(into, 3600)
        return f"d{day + 1} {hours:02d}:{rest // 60:02d}:{rest % 60:02d}"
    sign = "-" if t < 0 else ""
    minutes, seconds = divmod(int(abs(t)), 60)
    return f"{sign}{minutes}:{seconds:02d}"


def flag_state(flag: dict) -> str:
    """`on, 25% + 2 allowed users` or `off, 25%` (the share it returns to when switched on)."""
    users = len(flag.get("allowed_users") or ())
    share = flag.get("percentage")
    allowed = f" + {users} allowed user{'' if users == 1 else 's'}" if users else ""
    return ("on" if flag.get("enabled") else "off") + (f", {share}%" if share is not None else "") + allowed


def flag_change(old: dict, new: dict) -> str:
    if not old:
        return f"created ({flag_state(new)})"
    return f"{flag_state(old)} → {flag_state(new)}"


def event_printer(out: TextIO | GuardedStream, json_lines: bool, days: bool = False):
    """Prints each event on `out`, which stops taking them, quietly, once its reader has gone. Its clock is in
    days (`days`, or once a rollout_started says the rollout spans them)."""
    out = guarded(out)  # type: ignore[arg-type]

    def print_event(event: ev.Event) -> None:
        nonlocal days
        if json_lines:
            out.write(strict_json.dumps(event.to_dict()) + "\n")
        else:
            days = days or (isinstance(event, ev.RolloutStarted) and spans_days(event.planned_s))
            line = describe(event)
            if line is None:
                return
            out.write(f"[{rollout_clock(event.t, days):>7}] {line}\n")
        out.flush()

    return print_event

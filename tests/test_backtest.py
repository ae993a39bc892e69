"""brahma backtest: --at and the selectors read, the history fetched ahead, and whole replays on a real
Prometheus serving generated history (testbed/history.py) with a healthy stretch, a canary incident, a
gap and a restart at known times."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from console.app.cli import main
from console.backtest.history import History
from console.backtest.replay import FetchedHistory, fetch_history, history_source, replay, replay_span
from console.backtest.selectors import SelectorError, parse_selector
from console.backtest.shared import SharedSamples
from console.backtest.times import TimeError, format_wall, parse_time
from console.journal import events as ev
from console.metrics.prometheus import MAX_POINTS_PER_SERIES
from console.plan import load_plan
from console.samples import TRACKS
from testbed.history import Change, Gap, Restart, TrackRates, recent_range, require_history_tools, serving_history
from testbed.history import History as GeneratedHistory
from testbed.prometheus_server import PrometheusServer

NOW = 1_780_000_000.0

# -- --at ------------------------------------------------------------------------------------------


def test_a_relative_time_counts_back_from_now():
    assert parse_time("-36h", NOW) == NOW - 36 * 3600
    assert parse_time("-90m", NOW) == NOW - 5400
    assert parse_time("-1h30m", NOW) == NOW - 5400
    assert parse_time("-3d", NOW) == NOW - 3 * 86400


def test_an_iso_time_without_a_zone_is_utc():
    assert parse_time("2026-05-01T10:00", NOW) == datetime(2026, 5, 1, 10, tzinfo=UTC).timestamp()
    assert parse_time("2026-05-01T12:00+02:00", NOW) == datetime(2026, 5, 1, 10, tzinfo=UTC).timestamp()
    assert parse_time("2026-05-01T10:00:00Z", NOW) == datetime(2026, 5, 1, 10, tzinfo=UTC).timestamp()


def test_a_time_is_whole_seconds_the_grid_of_the_range_queries():
    assert parse_time("2026-05-01T10:00:00.750Z", NOW) == datetime(2026, 5, 1, 10, tzinfo=UTC).timestamp()


@pytest.mark.parametrize("text", ["yesterday", "-3x", "-", "2026-13-01", "+3h"])
def test_an_unreadable_time_says_what_is_expected(text):
    with pytest.raises(TimeError, match="--at"):
        parse_time(text, NOW)


def test_a_time_not_in_the_past_is_refused():
    with pytest.raises(TimeError, match="not in the past"):
        parse_time(format_wall(NOW + 60), NOW)


# -- selectors ----------------------------------------------------------------------------------


def test_a_selector_is_read_as_promql_matchers():
    selector = parse_selector('{pod="checkout-7f9", env!~"dev|test",}')
    assert selector.matchers == 'pod="checkout-7f9",env!~"dev|test"'
    assert selector.equal == {"pod": "checkout-7f9"}


def test_a_selector_value_keeps_its_escapes():
    assert parse_selector(r'path="a\"b"').matchers == r'path="a\"b"'


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ('pod="x" env="y"', "a comma"),
        ("pod=x", "a quoted value"),
        ('pod=="x"', "a quoted value"),
        ('="x"', "a label name"),
        ('pod="x', "the closing quote"),
        ('pod=~"("', "not a regular expression"),
        ('pod=~".*"', "every matcher matches the empty label"),
        ("", "a label name"),
    ],
)
def test_a_bad_selector_says_where(text, why):
    with pytest.raises(SelectorError, match=why):
        parse_selector(text, "--canary-selector")


# -- the command line, before any server is asked ---------------------------------------------


def test_bad_at_exits_2_with_a_clear_message(capsys):
    assert main(["backtest", "sample_configs/minimal.yaml", "--at", "last tuesday", "--prometheus", "http://127.0.0.1:9"]) == 2
    assert "--at 'last tuesday': expected ISO 8601" in capsys.readouterr().err


def test_a_relative_at_is_its_value_not_an_option(capsys):
    assert main(["backtest", "sample_configs/minimal.yaml", "--at", "-36x", "--prometheus", "http://127.0.0.1:9"]) == 2
    assert "--at '-36x': a relative time" in capsys.readouterr().err


def test_bad_selector_exits_2_with_a_clear_message(capsys):
    argv = ["backtest", "sample_configs/minimal.yaml", "--at", "-2h", "--prometheus", "http://127.0.0.1:9", "--canary-selector", "pod=checkout"]
    assert main(argv) == 2
    assert "--canary-selector 'pod=checkout': a quoted value at column 5" in capsys.readouterr().err


def test_an_unreachable_server_is_said_not_replayed(capsys):
    assert main(["backtest", "sample_configs/minimal.yaml", "--at", "-2h", "--prometheus", "http://127.0.0.1:9"]) == 1
    assert "cannot reach Prometheus at http://127.0.0.1:9" in capsys.readouterr().err


# -- the history fetched ahead ----------------------------------------------------------------


class RecordingServer:
    """Range queries answered with one series valued at its own timestamp; instant queries recorded."""

    def __init__(self) -> None:
        self.ranges: list[tuple[str, float, float, str]] = []
        self.instants: list[tuple[str, float]] = []

    def custom_query_range(self, query, start_time, end_time, step, params=None):
        start, end = float(params["start"]), float(params["end"])
        self.ranges.append((query, start, end, step))
        points = []
        at = start
        while at <= end + 1e-9:
            points.append([at, str(at)])
            at += float(step)
        return [{"metric": {"q": query}, "values": points}]

    def custom_query(self, query, params=None):
        at = float(params["time"])
        self.instants.append((query, at))
        return [{"metric": {"q": query}, "value": [at, "-1"]}]


def test_a_range_is_fetched_in_chunks_under_the_points_limit_on_the_grid():
    server = RecordingServer()
    history = History(server, origin_wall=NOW, step_s=10.0)
    history.fetch(["up"], NOW - 60, NOW + 25_000 * 10)
    assert all((end - start) / 10 + 1 <= MAX_POINTS_PER_SERIES for _, start, end, _ in server.ranges)
    assert server.ranges[0][1] == NOW - 60 and server.ranges[-1][2] == NOW + 250_000
    covered = sum((end - start) / 10 + 1 for _, start, end, _ in server.ranges)
    assert covered == 25_000 + 7  # every instant once, none twice
    assert all(step == "10" for *_, step in server.ranges)


def test_instants_on_the_grid_are_answered_from_the_history_and_others_by_the_server():
    server = RecordingServer()
    history = History(server, origin_wall=NOW, step_s=10.0)
    history.fetch(["up"], NOW, NOW + 600)
    assert history.custom_query("up", {"time": f"{NOW + 300:.3f}"}) == [{"metric": {"q": "up"}, "value": [NOW + 300, repr(NOW + 300)]}]
    assert history.fallbacks == 0
    history.custom_query("up", {"time": f"{NOW + 305:.3f}"})  # off the grid
    history.custom_query("other", {"time": f"{NOW + 300:.3f}"})  # not fetched
    history.custom_query("up", {"time": f"{NOW + 700:.3f}"})  # past what was fetched
    assert server.instants == [("up", NOW + 305), ("other", NOW + 300), ("up", NOW + 700)]
    assert history.fallbacks == 3


def test_a_shifted_history_reads_earlier_and_stamps_the_time_asked():
    history = History(RecordingServer(), origin_wall=NOW, step_s=10.0)
    history.fetch(["up"], NOW, NOW + 600)
    answer = history.shifted(-10.0).custom_query("up", {"time": f"{NOW + 300:.3f}"})
    assert answer == [{"metric": {"q": "up"}, "value": [NOW + 300, repr(NOW + 290)]}]


# -- replays on a real Prometheus -------------------------------------------------------------

PLAN = """\
app: checkout
image: registry.example.com/checkout:2.4.1
interval: 10s
pause_timeout: 3m
stages:
  - weight: 5
    observe: 5m
  - weight: 50
    observe: 5m
  - weight: 100
    observe: 5m
"""
"""15 minutes planned; at 15 s scrapes the rate window is 60 s (four scrapes)."""

START, END = recent_range(110 * 60)
HEALTHY_AT = START + 5 * 60
INCIDENT_AT = START + 30 * 60
INCIDENT_FROM = INCIDENT_AT + 7 * 60
"""Two minutes into the second stage, the canary fails 3% of its requests."""
GAP_AT = START + 55 * 60
GAP = Gap(GAP_AT + 3 * 60, GAP_AT + 9 * 60)
"""Six minutes without scrapes: longer than Prometheus' 5 minute lookback."""
RESTART_AT = START + 80 * 60
RESTART = Restart(RESTART_AT + 3 * 60, down_s=120, counters_reset=True)
HEALTHY = TrackRates(error_rate=0.0001)
"""Well within the 99.95% success the later stages ask (the default 0.05% errors sits on that line)."""
HISTORY = GeneratedHistory(
    START,
    END,
    stable=HEALTHY,
    canary=HEALTHY,
    changes=(Change("canary", INCIDENT_FROM, INCIDENT_AT + 20 * 60, error_rate=0.03),),
    gaps=(GAP,),
    restarts=(RESTART,),
    seed=7,
)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    require_history_tools()
    with serving_history(HISTORY, tmp_path_factory.mktemp("backtest-history")) as (server, _):
        yield server


@pytest.fixture
def plan_file(tmp_path: Path) -> Path:
    path = tmp_path / "plan.yaml"
    path.write_text(PLAN)
    return path


def backtest(capsys, plan: Path, at: float, url: str, *extra: str) -> tuple[int, list[dict], str]:
    """The command's exit code, its JSON events and its stderr."""
    code = main(["backtest", str(plan), "--at", format_wall(at), "--prometheus", url, "--json", *extra])
    out, err = capsys.readouterr()
    return code, [json.loads(line) for line in out.splitlines()], err


def named(events: list[dict], name: str) -> list[dict]:
    return [event for event in events if event["event"] == name]


def test_a_healthy_history_promotes(served, plan_file, capsys):
    code, events, err = backtest(capsys, plan_file, HEALTHY_AT, served.url)
    assert code == 0, err
    assert [event["event"] for event in events if event["event"] in ("stage_started", "stage_passed", "completed")] == [
        "stage_started",
        "stage_passed",
        "stage_started",
        "stage_passed",
        "stage_started",
        "stage_passed",
        "completed",
    ]
    samples = named(events, "sample")
    assert [sample["t"] for sample in samples] == [10.0 * k for k in range(1, 91)]  # t on the rollout clock, every interval
    assert all(sample["verdict"] == "pass" for sample in samples)
    assert named(events, "completed")[0]["t"] == 900.0
    assert "would have promoted (exit 0)" in err


def test_the_timeline_prints_as_a_headless_run_does(served, plan_file, capsys):
    code = main(["backtest", str(plan_file), "--at", format_wall(HEALTHY_AT), "--prometheus", served.url])
    out = capsys.readouterr().out
    assert code == 0
    assert out.splitlines()[-1] == "[  15:00] completed: the new version serves 100% and the monitoring window held"
    assert "[   5:00] stage 1 passed" in out


def test_a_promote_a_person_would_give_is_taken_as_given(served, tmp_path, capsys):
    plan = tmp_path / "held.yaml"
    plan.write_text(PLAN.replace("  - weight: 50\n", "  - weight: 50\n    manual: true\n"))
    code, events, err = backtest(capsys, plan, HEALTHY_AT, served.url)
    assert code == 0, err
    [held] = named(events, "awaiting_promote")
    [promote] = named(events, "command")
    assert (promote["name"], promote["actor"], promote["t"]) == ("promote", "backtest (taken as given)", held["t"])
    assert "promotes taken as given" in err


def test_a_canary_incident_rolls_back_at_its_time_for_its_trigger(served, plan_file, capsys):
    code, events, err = backtest(capsys, plan_file, INCIDENT_AT, served.url)
    assert code == 3, err
    [started] = named(events, "rollback_started")
    # The first scrape with errors is at most one scrape (15 s) after they begin, and a 60 s rate window
    # passes 1% once two scrapes of 3% are in it: within four samples of the incident.
    assert INCIDENT_FROM - INCIDENT_AT <= started["t"] <= INCIDENT_FROM - INCIDENT_AT + 40
    assert started["trigger"] in ("error_rate", "success_rate", "judge"), started
    assert named(events, "rolled_back")
    assert all(sample["verdict"] == "pass" for sample in named(events, "sample") if sample["t"] < INCIDENT_FROM - INCIDENT_AT)


def test_the_selectors_replace_the_track_labels(served, plan_file, capsys):
    """The canary read from stable's series does not see the canary's incident: the release promotes."""
    code, events, err = backtest(capsys, plan_file, INCIDENT_AT, served.url, "--canary-selector", 'app="checkout",track="stable"')
    assert code == 0, err
    assert named(events, "completed")


def test_a_gap_is_never_a_pass(served, plan_file, capsys):
    """Once the rate window (60 s) is inside the gap, every sample is inconclusive (the counters stand still for
    Prometheus' 5 minute lookback, then are gone): the rollout pauses and, headless, rolls back after pause_timeout."""
    code, events, err = backtest(capsys, plan_file, GAP_AT, served.url)
    assert code != 0, err
    in_gap = [sample for sample in named(events, "sample") if GAP.start + 60 <= GAP_AT + sample["t"] <= GAP.end]
    assert in_gap and all(sample["verdict"] != "pass" for sample in in_gap)
    assert not named(events, "completed")
    assert named(events, "paused")[0]["trigger"] == "inconclusive"
    assert code == 3


def test_a_prometheus_restart_is_never_a_pass(served, plan_file, capsys):
    """Once the rate window (60 s) holds nothing but the time Prometheus was down, no sample passes; the
    scrape after it counts what the restarted service served since (its counters' reset, as increase() takes it)."""
    code, events, err = backtest(capsys, plan_file, RESTART_AT, served.url)
    down = [sample for sample in named(events, "sample") if RESTART.at + 60 <= RESTART_AT + sample["t"] < RESTART.at + RESTART.down_s]
    assert down and all(sample["verdict"] != "pass" for sample in down)
    assert not named(events, "completed") and code != 0, err


def test_history_that_ends_before_the_plan_is_not_finished(served, plan_file, capsys):
    code, events, err = backtest(capsys, plan_file, END - 8 * 60, served.url)
    assert code == 2
    assert "not finished: the history ends at" in err
    assert max(event["t"] for event in events) <= 8 * 60
    assert not named(events, "completed") and not named(events, "rolled_back")


def test_a_time_before_the_history_is_refused(served, plan_file, capsys):
    code, events, err = backtest(capsys, plan_file, START - 300, served.url)
    assert (code, events) == (2, [])
    assert "the history of the request counters of either track begins at " in err and f"after --at {format_wall(START - 300)}" in err
    code, events, err = backtest(capsys, plan_file, START - 3600, served.url)
    assert (code, events) == (2, [])
    assert f"Prometheus has no data for the request counters of either track from {format_wall(START - 3600)} on" in err


def test_selectors_that_select_nothing_are_refused(served, plan_file, capsys):
    code, events, err = backtest(capsys, plan_file, HEALTHY_AT, served.url, "--canary-selector", 'app="nobody"', "--stable-selector", 'app="nobody"')
    assert (code, events) == (2, [])
    assert "Prometheus has no data for the request counters of either track" in err


def test_an_a_a_replay_reads_the_canary_as_stable_one_interval_back(served, plan_file):
    """calibrate's A/A: both tracks stable's series, the canary's read one interval earlier."""
    plan = load_plan(plan_file, history_only=True)
    stable = {track: parse_selector('app="checkout",track="stable"') for track in TRACKS}

    async def run():
        fetched = await fetch_history(plan, HEALTHY_AT, HEALTHY_AT + 1200, url_override=served.url, selectors=stable)
        try:
            return await replay(plan, HEALTHY_AT, fetched, selectors=stable, canary_lag_s=plan.interval), fetched.history.fallbacks
        finally:
            await fetched.close()

    result, fallbacks = asyncio.run(run())
    assert result.outcome == "promoted" and fallbacks <= 6  # the first canary read's lead, one interval before the stable's
    samples = [event for event in result.events if isinstance(event, ev.SampleTaken)]
    counters = [(sample.counts["canary"]["requests"], sample.counts["stable"]["requests"]) for sample in samples]
    # With 15 s scrapes and 10 s samples, the stable's increase at one sample is the canary's at the next.
    assert any(canary != stable for canary, stable in counters)
    assert all(counters[k][1] == counters[k + 1][0] for k in range(1, len(counters) - 1))


def test_an_a_a_replays_canary_reads_taken_from_the_stables_last_are_its_own(served, plan_file, monkeypatch):
    """A source keeps its counter reads of the history: the A/A canary's read at one instant is the stable's at the
    last, so it is read once. Across the gap and the restart, each replay decides as one that reads every answer."""
    plan = load_plan(plan_file, history_only=True)
    stable = {track: parse_selector('app="checkout",track="stable"') for track in TRACKS}
    starts = [HEALTHY_AT, GAP_AT, RESTART_AT]
    answered = 0
    answer = History.answer

    def counted(history, query, params, shift_s):
        nonlocal answered
        answered += 1
        return answer(history, query, params, shift_s)

    async def run() -> list[list[ev.Event]]:
        fetched = await fetch_history(plan, HEALTHY_AT, RESTART_AT + replay_span(plan), url_override=served.url, selectors=stable)
        try:
            return [(await replay(plan, start, fetched, selectors=stable, canary_lag_s=plan.interval)).events for start in starts]
        finally:
            await fetched.close()

    monkeypatch.setattr(History, "answer", counted)
    keeping = asyncio.run(run())
    answered_keeping, answered = answered, 0
    monkeypatch.setattr(History, "instant_key", lambda history, query, params, shift_s=0.0: None)
    reading_all = asyncio.run(run())
    for start, kept, read in zip(starts, keeping, reading_all, strict=True):
        assert without_ts(kept) == without_ts(read), format_wall(start)
    assert answered_keeping < 0.6 * answered


def test_a_backtest_touches_no_target_flag_store_or_state_dir(served, tmp_path, monkeypatch, capsys):
    """A gated Kubernetes plan with a flag file and webhooks: nothing of it is acted on, no .brahma is made."""
    from console.targets.kubernetes import KubernetesTarget

    def no_cluster(*args, **kwargs):
        raise AssertionError("a backtest opened the cluster")

    monkeypatch.setattr(KubernetesTarget, "from_plan", no_cluster)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PROMETHEUS_TOKEN", "unused")
    plan = tmp_path / "gated.yaml"
    plan.write_text(Path(__file__).resolve().parent.parent.joinpath("sample_configs", "canary-gated.yaml").read_text())
    flags = tmp_path / "deploy" / "flags.json"
    flags.parent.mkdir()
    flags.write_text('{"flags": {}}')
    report = tmp_path / "runbook.md"
    code, events, err = backtest(capsys, plan, HEALTHY_AT, served.url, "--report", str(report))
    assert flags.read_text() == '{"flags": {}}'
    assert not (tmp_path / ".brahma").exists()
    assert not named(events, "flag_changed") and not named(events, "notification_sent")
    assert not named(events, "preflight_result")
    assert "pre-flight not run" in err
    assert named(events, "rollout_started")[0]["target"] == {"kind": "backtest"}
    runbook = " ".join(report.read_text().split())  # as read, whatever the line breaks
    assert runbook.startswith("# Backtest of checkout-2.4.1: ")
    assert f"started by brahma backtest of {format_wall(HEALTHY_AT)}" in runbook and "- Now: a backtest over history: nothing was acted on" in runbook
    assert code in (0, 3), err


def test_the_prefetched_answers_are_the_instant_queries_answers(served, plan_file):
    plan = load_plan(plan_file, history_only=True)

    async def compare() -> tuple[int, int]:
        fetched = await fetch_history(plan, RESTART_AT, RESTART_AT + 900, url_override=served.url)
        compared = 0
        try:
            queries = await fetched.source.sample_queries(plan.metric_names, plan.interval)
            for query in (query for track in TRACKS for query in queries[track]):
                assert fetched.history.fetched(query)
                for step in range(-6, 91, 7):  # across the restart, and the first read's lead
                    params = {"time": f"{RESTART_AT + step * plan.interval:.3f}"}
                    assert as_values(fetched.history.custom_query(query, params)) == as_values(fetched.source.server.custom_query(query, params=params))
                    compared += 1
            return compared, fetched.history.fallbacks
        finally:
            await fetched.close()

    compared, fallbacks = asyncio.run(compare())
    assert compared > 50 and fallbacks == 0


def as_values(vector: list[dict]) -> dict[tuple, tuple[float, float]]:
    return {tuple(sorted(entry["metric"].items())): (float(entry["value"][0]), float(entry["value"][1])) for entry in vector}


def test_a_replay_asks_the_server_nothing_the_history_holds(served, plan_file):
    plan = load_plan(plan_file, history_only=True)

    async def run():
        fetched = await fetch_history(plan, HEALTHY_AT, HEALTHY_AT + 1200, url_override=served.url)
        try:
            return await replay(plan, HEALTHY_AT, fetched), fetched.history.fallbacks
        finally:
            await fetched.close()

    result, fallbacks = asyncio.run(run())
    assert result.outcome == "promoted"
    assert fallbacks == 0
    assert [change["weight"] for change in result.target_changes] == [5, 50, 100]


def without_ts(events: list[ev.Event]) -> list[ev.Event]:
    """The events but their wall times: ts, and a rollback's duration (this process's own time, not the history's)."""
    return [replace(event, ts="", **({"duration_s": 0.0} if isinstance(event, ev.RolledBack) else {})) for event in events]


@pytest.mark.parametrize("a_a", [False, True], ids=["canary-against-stable", "a-a-one-interval-back"])
def test_replays_sharing_samples_decide_exactly_as_replays_on_their_own(served, plan_file, a_a):
    """Starts on the grid across the canary incident, the gap and the restart: every event (decisions, reasons,
    values, counts) of a replay that takes the other replays' samples is the one it has on its own."""
    plan = load_plan(plan_file, history_only=True)
    selectors = {track: parse_selector('app="checkout",track="stable"') for track in TRACKS} if a_a else None
    lag_s = plan.interval if a_a else 0.0
    starts = [HEALTHY_AT + k * 130.0 for k in range(int((RESTART_AT + 600 - HEALTHY_AT) / 130))]

    async def run() -> tuple[list[list[ev.Event]], list[list[ev.Event]], SharedSamples]:
        fetched = await fetch_history(plan, HEALTHY_AT, starts[-1] + replay_span(plan), url_override=served.url, selectors=selectors)
        shared = SharedSamples(plan, fetched, selectors or {}, lag_s)
        try:
            alone, sharing = [], []
            for start in starts:
                alone.append((await replay(plan, start, fetched, selectors, canary_lag_s=lag_s)).events)
                shared.forget_before(start)
                sharing.append((await replay(plan, start, fetched, selectors, canary_lag_s=lag_s, shared=shared)).events)
            return alone, sharing, shared
        finally:
            await shared.close()
            await fetched.close()

    alone, sharing, shared = asyncio.run(run())
    for start, own, with_others in zip(starts, alone, sharing, strict=True):
        assert without_ts(with_others) == without_ts(own), format_wall(start)
    samples = sum(isinstance(event, ev.SampleTaken) for events in alone for event in events)
    ended = {type(events[-1]) for events in alone}
    assert a_a or {ev.Completed, ev.RolledBack} <= ended  # the incident's replays roll back, the others promote
    # Most samples are the sweep's: a replay takes its own only until its rate window has filled, and after the gap.
    assert shared.shared > 0.8 * samples and shared.swept < samples / 2


def test_a_replay_that_leaves_the_shared_samples_goes_on_as_its_own_source_would(served, plan_file):
    """Instants that are not the sweep's next (one skipped, one taken twice, one off the grid, another window) across the
    gap and the restart: the sharing source's samples are its own source's, one by one."""
    plan = load_plan(plan_file, history_only=True)
    step = plan.interval
    walls = [GAP_AT + k * step for k in range(12)]
    walls += [walls[-1] + 2 * step, walls[-1] + 2 * step, walls[-1] + 2.5 * step]
    walls += [walls[-1] + 0.5 * step + k * step for k in range(int((RESTART_AT + 600 - walls[-1]) / step))]
    windows = {len(walls) - 20: 2 * step}

    async def run() -> tuple[int, int]:
        fetched = await fetch_history(plan, GAP_AT - 300, RESTART_AT + 900, url_override=served.url)
        shared = SharedSamples(plan, fetched, {}, 0.0)
        now = [0.0, 0.0]
        own = history_source(plan, fetched.history, None, 0.0, lambda: now[0])
        sharing = shared.source_for_replay(history_source(plan, fetched.history, None, 0.0, lambda: now[1]), lambda: now[1])
        try:
            # Another replay started the sweep: this one's first samples are the sweep's from the first.
            ahead = shared.source_for_replay(history_source(plan, fetched.history, None, 0.0, lambda: now[1]), lambda: now[1])
            for wall in walls[:3]:
                now[1] = wall
                await ahead.sample(plan.metric_names, 0.0, step)
            for number, wall in enumerate(walls):
                now[0] = now[1] = wall
                window_s = windows.get(number, step)
                assert await sharing.sample(plan.metric_names, 0.0, window_s) == await own.sample(plan.metric_names, 0.0, window_s), format_wall(wall)
            return shared.shared, shared.swept
        finally:
            for source in (own, sharing, shared):
                await source.close()
            await fetched.close()

    taken_from_the_sweep, swept = asyncio.run(run())
    assert taken_from_the_sweep > len(walls) * 0.8 and swept < len(walls)


class PodsServer:
    """Counters of two pods: `a` always scraped, `b` from the start until gone_at and again from back_at on (the same
    series, counting on), each series valued at its seconds since NOW (requests; the latency histogram's +Inf bucket)."""

    def __init__(self, gone_at: float, back_at: float) -> None:
        self.gone_at, self.back_at = gone_at, back_at

    def _vector(self, query: str, at: float) -> list[dict]:
        pods = ["a"] + (["b"] if at < self.gone_at or at >= self.back_at else [])
        if 'code=~"5.."' in query:
            return []
        extra = {"le": "+Inf"} if "_bucket" in query else {"code": "200"}
        return [{"metric": {"pod": pod, **extra}, "value": [at, f"{at - NOW:g}"]} for pod in pods]

    def custom_query_range(self, query, start_time, end_time, step, params=None):
        series: dict[str, dict] = {}
        start, end, step_s = float(params["start"]), float(params["end"]), float(step)
        for index in range(round((end - start) / step_s) + 1):
            for entry in self._vector(query, start + index * step_s):
                series.setdefault(entry["metric"]["pod"], {"metric": entry["metric"], "values": []})["values"].append(entry["value"])
        return list(series.values())

    def custom_query(self, query, params=None):
        return self._vector(query, float(params["time"]))


@pytest.mark.parametrize("back", [True, False], ids=["a-pod-comes-back", "a-pod-gone-for-good"])
def test_a_series_the_sweep_remembers_and_a_replay_never_saw_is_shared_only_if_it_is_never_read_again(plan_file, back):
    """The sweep began while pod b was scraped, the replay after b went: b's series comes back (its increase is the
    sweep's since b's last value, the replay's from zero) or not; either way the replay's samples are its own."""
    plan = load_plan(plan_file, history_only=True)
    step = plan.interval
    gone_at, back_at = NOW + 600, NOW + 1200 if back else math.inf
    history = History(PodsServer(gone_at, back_at), origin_wall=NOW, step_s=step, scrape_interval_s=15.0)
    now = [0.0, 0.0]

    async def run() -> int:
        own = history_source(plan, history, None, 0.0, lambda: now[0])
        history.fetch([query for track in TRACKS for query in (await own.sample_queries(plan.metric_names, step))[track]], NOW, NOW + 2400)
        shared = SharedSamples(plan, FetchedHistory(history, NOW + 2400, NOW + 2400, own), {}, 0.0)
        ahead = shared.source_for_replay(history_source(plan, history, None, 0.0, lambda: now[1]), lambda: now[1])
        for k in range(10):  # the sweep begins at NOW + 300, pod b scraped
            now[1] = NOW + 300 + k * step
            await ahead.sample(plan.metric_names, 0.0, step)
        sharing = shared.source_for_replay(history_source(plan, history, None, 0.0, lambda: now[1]), lambda: now[1])
        for index in range(history.index(now[1]), history.index(NOW + 800) + 1):  # the sweep on past b's going
            await shared.take(index)
        before = shared.shared
        for k in range(100):  # the replay from NOW + 800, b gone
            now[0] = now[1] = NOW + 800 + k * step
            assert await sharing.sample(plan.metric_names, 0.0, step) == await own.sample(plan.metric_names, 0.0, step), k
        return shared.shared - before

    shared_samples = asyncio.run(run())
    # Gone for good, b is no reason not to share; coming back, it is until its value is the same for both.
    assert (shared_samples > 80) if not back else (0 < shared_samples < 80), shared_samples

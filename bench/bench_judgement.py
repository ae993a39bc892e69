"""Three judges over one fixed-seed corpus of simulated canaries: which rolls back the bad ones, how fast, and
how many healthy ones it rolls back too.

    python bench/bench_judgement.py

Every canary runs through the real Controller (console/controller) in virtual time, on a SimTarget that
keeps the weights and a metric source (`CanarySource`) that draws each sample's counts for the canary's
traffic, base rates, latency shape and effect with the simulator's samplers (console/sim/traffic.py), and
derives the values the limits judge from them (console/derived.py), as the product's sources do. The plan is sample_configs/canary.yaml: its stages,
windows, interval, min_requests and triggers, headless (a pause nobody decides rolls back after its
pause_timeout, as in CI). Each canary runs three times, under:

- `threshold`: analysis.judge threshold, the plan's limits alone (per-sample triggers, window criteria);
- `sequential`: analysis.judge sequential (the product's e-process, alpha 0.01, tolerance 20%, and its
  promotion gate: a window it holds pauses, and headless the pause rolls back), beside the same limits;
- `mann_whitney`: a Kayenta-like judge, beside the same limits: at each stage window's end, the window's
  per-sample canary values against stable's (error rate, and p99 where the source counts latency), one
  scipy.stats.mannwhitneyu test per metric, one-sided (canary greater); a metric is High when p < 0.025
  (the upper side of Kayenta's default two-sided 95% confidence level) and the canary's window mean is at
  least 1.2 times stable's (Kayenta's effect size, `allowedIncrease`, set to the same 20% tolerance the
  sequential judge is given); any High metric rolls back (both are Kayenta "critical" metrics). It is
  bench-only: the controller's `judge` slot, which holds the SequentialJudge, takes an object with the
  same methods (add, journaled, evidence, regression, held); the product is not changed.

The limits. The reference limits fit a service with errors near 0.025% and p99 near 150 ms: stage 3 asks
success_rate > 99.95% (errors under 0.05%) and p99 < 300 ms. A service at 0.5% errors could never meet
them, and every judge would roll it back for what it is, not for what changed. So each canary's absolute
limits are the reference ones scaled to its base rates: every error-rate limit times
max(1, base / 0.025%) (success-rate limits alike, on 1 - success), every absolute latency limit times
max(1, p99 / 150 ms). The tightest criterion is then
twice the healthy service's own rate, the others as far above it as the reference plan puts them. The
relative check (p99 <= 1.5x stable) stays as written.

The corpus (SEED, `corpus()`; its composition is printed): canary traffic log-uniform in 20-5,000 rps at
5% weight (so 400-100,000 rps in all), base errors log-uniform in 0.01%-2%, one of LATENCY_SHAPES; effects
none; errors x1.2, x1.5, x2, x5; p99 +10%, +30%, +100%; a slow tail (2% of requests about three times the
healthy p99, the simulator's slow mode); one
of the bad effects with its onset delayed into the first half of stage 2 or of stage 3 (a fault that begins
seconds before the 100% stage leaves no judge anything to see); flapping (a bad effect on for 2 minutes,
off for 2, from an onset in stage 1); and a fixed set of x2 errors at 100 canary rps and 0.5% base errors.

Definitions:
- bad: the effect exceeds the 20% tolerance: errors x1.5 and more, p99 +30% and more, the slow tail (its
  p99 effect, computed per canary, is asserted beyond 20%). errors x1.2 and p99 +10% are within it.
- healthy: no effect. A false rollback is a healthy canary rolled back (for any reason); within-tolerance
  canaries rolled back are counted apart (`within_tolerance_rollback_pct`).
- missed: a bad canary promoted to 100% (the run stops as the 100% stage starts: after it, stable serves
  nothing to compare with). `missed_2x_50rps_pct`: the same over the bad canaries whose effect is x2 or
  more (errors x2, x5, p99 +100%, in any onset) at 50 canary rps or more.
- detect: rollout seconds from the fault's onset (0 for an immediate one) to rollback_started, median over
  the bad canaries rolled back after the onset; `detect_2x_s` over the fixed x2 set alone.
- exposure: canary requests served from the onset to rollback_started, median over the same canaries.

Cost: a rollout runs the whole controller loop, journal included (in a temporary directory, on
/dev/shm where there is one, so the group commit's fsyncs cost nothing), about 0.25 s of CPU for a
healthy canary's 270 samples (the simulator's draws, the judges, the journal and its fold each take a
fair part of it; `judgement_rollout_ms`, of CPU, and `judgement_corpus_cpu_s` in all, whatever else shares the
machine). The runs of one canary under the three judges are one run until a judge parts from it
(2,454 rollouts for the corpus' 6,240 judgements): a run stops as the 100% stage starts (its outcome is
decided). Every canary's threshold run is needed to its end, so the sequential and the Mann-Whitney judges
watch it (`Watching`): a judge whose first departure from it is a rollback before the run's own first pause
or rollback has that rollback for its outcome; a judge that never departed from a run the limits alone
decided has the run's outcome; only the others are run themselves (a sequential judge's held window, a
window that failed, a pause): `judged_three_ways`, the same decisions, proven equal by
tests/test_bench_judgement.py. The corpus runs in PROCESSES worker processes; each canary's draws come
from its own seed and happen in the order of its samples, so the figures repeat exactly whatever the
scheduling.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import random
import resource
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from multiprocessing import Pool
from pathlib import Path
from typing import Any

from scipy.stats import mannwhitneyu

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from console.controller.clock import VirtualClock  # noqa: E402
from console.controller.controller import Controller, ControllerOptions  # noqa: E402
from console.controller.sequential import SequentialJudge  # noqa: E402
from console.derived import histogram_quantile, track_values  # noqa: E402
from console.journal import events as ev  # noqa: E402
from console.journal.state import Phase  # noqa: E402
from console.judge.rate_ratio import RatioEvidence  # noqa: E402
from console.plan import load_plan  # noqa: E402
from console.plan.checks import Check  # noqa: E402
from console.plan.model import RolloutPlan  # noqa: E402
from console.samples import HistoryPoint, Sample, TrackCounts, TrackValues  # noqa: E402
from console.sim.target import SimTarget  # noqa: E402
from console.sim.traffic import LATENCY_BUCKETS_S, LatencyShape, bucket_probabilities, draw_track_counts  # noqa: E402

PLAN = Path(__file__).resolve().parent.parent / "sample_configs" / "canary.yaml"
SEED = 15
PROCESSES = 2
JUDGES = ("threshold", "sequential", "mann_whitney")
TOLERANCE = 0.2
"""The plan's analysis.tolerance, and what makes a canary bad."""
FIRST_WEIGHT = 5
"""The reference plan's first stage, at which a canary's traffic is drawn (20-5,000 rps at 5%)."""

REFERENCE_ERROR_RATE = 0.00025
REFERENCE_P99_MS = 150.0
"""The healthy service the reference limits were written for (see the module's docstring)."""

JUDGE_TRIGGER_PREFIX = "judge:"
"""A rollback the sequential judge (console/controller/sequential.py) or the Mann-Whitney judge decided."""
MANN_WHITNEY_ALPHA = 0.025
KAYENTA_METRICS = ("error_rate", "latency_p99")

LATENCY_SHAPES = {"fast": (15.0, 40.0, 80.0), "typical": (40.0, 120.0, 250.0), "slow": (120.0, 350.0, 700.0), "long_tail": (30.0, 150.0, 600.0)}
"""p50, p95 and p99 in milliseconds."""
SLOW_TAIL_SHARE, SLOW_TAIL_TIMES_P99 = 0.02, 3.0
FLAP_ON_S, FLAP_PERIOD_S = 120.0, 240.0
HEALTHY_RESOURCES = {"cpu": 0.3, "memory": 0.5, "health_check_failures": 0.0, "memory_oom_kills": 0.0}

BAD_EFFECTS = (("errors", 2.0), ("errors", 5.0), ("p99", 2.0))
"""The effects a delayed onset or flapping carries."""
CLASSES: tuple[tuple[str, int], ...] = (
    ("none", 700),
    ("errors_x1.2", 100),
    ("errors_x1.5", 120),
    ("errors_x2", 120),
    ("errors_x5", 120),
    ("p99_+10pct", 100),
    ("p99_+30pct", 120),
    ("p99_+100pct", 120),
    ("slow_tail_2pct", 120),
    ("onset_stage_2", 120),
    ("onset_stage_3", 120),
    ("flapping", 120),
    ("errors_x2_at_100rps_0.5pct", 100),
)
"""Effect classes and how many canaries each has."""


@dataclass(frozen=True)
class Canary:
    index: int
    effect_class: str
    canary_rps: float
    """At the first stage's 5%."""
    base_error_rate: float
    shape: str
    kind: str
    """none, errors, p99 or tail."""
    factor: float
    """errors: the error-rate ratio; p99: the p99 ratio; tail: its p99 ratio, computed."""
    onset_s: float
    flapping: bool
    seed: int

    @property
    def bad(self) -> bool:
        return self.kind != "none" and self.factor > 1 + TOLERANCE + 1e-9

    @property
    def healthy(self) -> bool:
        return self.kind == "none"

    def fault_share(self, start: float, end: float) -> float:
        """The share of (start, end] the fault was on."""
        if end <= self.onset_s or end <= start:
            return 0.0
        if not self.flapping:
            return (end - max(start, self.onset_s)) / (end - start)
        on, t = 0.0, self.onset_s
        while t < end:
            on += max(0.0, min(end, t + FLAP_ON_S) - max(start, t))
            t += FLAP_PERIOD_S
        return on / (end - start)


def corpus(seed: int = SEED, classes: Sequence[tuple[str, int]] = CLASSES) -> list[Canary]:
    rng = random.Random(seed)
    canaries: list[Canary] = []
    stage_starts = _stage_starts(_reference_plan())
    for effect_class, count in classes:
        for _ in range(count):
            canary_rps = math.exp(rng.uniform(math.log(20), math.log(5000)))
            base = math.exp(rng.uniform(math.log(0.0001), math.log(0.02)))
            shape = rng.choice(sorted(LATENCY_SHAPES))
            kind, factor, onset, flapping = "none", 1.0, 0.0, False
            if effect_class.startswith("errors_x2_at"):
                canary_rps, base, kind, factor = 100.0, 0.005, "errors", 2.0
            elif effect_class.startswith("errors_x"):
                kind, factor = "errors", float(effect_class.removeprefix("errors_x"))
            elif effect_class.startswith("p99_+"):
                kind, factor = "p99", 1 + float(effect_class.removeprefix("p99_+").removesuffix("pct")) / 100
            elif effect_class == "slow_tail_2pct":
                kind, factor = "tail", _tail_p99_ratio(shape)
            elif effect_class.startswith("onset_stage_"):
                kind, factor = rng.choice(BAD_EFFECTS)
                stage = int(effect_class.removeprefix("onset_stage_")) - 1
                onset = rng.uniform(stage_starts[stage], (stage_starts[stage] + stage_starts[stage + 1]) / 2)
            elif effect_class == "flapping":
                kind, factor = rng.choice(BAD_EFFECTS)
                onset, flapping = rng.uniform(0, stage_starts[1]), True
            elif effect_class != "none":
                raise ValueError(f"unknown effect class {effect_class!r}")
            index = len(canaries)
            canaries.append(Canary(index, effect_class, canary_rps, base, shape, kind, factor, onset, flapping, seed * 1_000_003 + index))
    return canaries


# -- traffic ---------------------------------------------------------------------------------------------


def latency_shape(shape: str, kind: str = "none", factor: float = 1.0) -> LatencyShape:
    """The shape's latencies, healthy or under a latency fault."""
    p50, p95, p99 = LATENCY_SHAPES[shape]
    if kind == "p99":
        return LatencyShape(p50, p95, p99 * factor)
    if kind == "tail":
        return LatencyShape(p50, p95, p99, slow_share=SLOW_TAIL_SHARE, slow_ms=SLOW_TAIL_TIMES_P99 * p99)
    return LatencyShape(p50, p95, p99)


def _p99_ms(shape: LatencyShape) -> float:
    """The p99 a histogram of many requests shows, on the buckets the simulator counts."""
    cumulative = itertools.accumulate(bucket_probabilities(shape))
    return histogram_quantile(0.99, [(bound, share * 1e6) for bound, share in zip((*LATENCY_BUCKETS_S, math.inf), cumulative)]) * 1000  # type: ignore[operator]


def _tail_p99_ratio(shape: str) -> float:
    ratio = _p99_ms(latency_shape(shape, "tail")) / _p99_ms(latency_shape(shape))
    assert ratio > 1 + TOLERANCE, f"a slow tail on {shape} raises p99 only ×{ratio:.2f}"
    return ratio


def _added(one: TrackCounts, other: TrackCounts) -> TrackCounts:
    """What a track served over two parts of a span (the same buckets)."""
    buckets = tuple((bound, a + b) for (bound, a), (_, b) in zip(one.latency_buckets, other.latency_buckets))
    return TrackCounts(one.requests + other.requests, one.errors + other.errors, buckets)


class CanarySource:
    """The MetricSource of one canary: counts drawn per sample for its traffic at the target's weight, and the
    values derived from them as both product sources derive them; it also counts the canary's exposure."""

    def __init__(self, canary: Canary, target: SimTarget):
        self.canary, self.target = canary, target
        self.rng = random.Random(canary.seed)
        self.total_rps = canary.canary_rps * 100 / FIRST_WEIGHT
        self.healthy = latency_shape(canary.shape)
        self.faulty = latency_shape(canary.shape, canary.kind, canary.factor)
        self.faulty_error_rate = canary.base_error_rate * canary.factor if canary.kind == "errors" else canary.base_error_rate
        self.exposed_requests = 0.0
        """Canary requests served while the fault was on or after its onset."""

    async def sample(self, metrics: Sequence[str], t: float, window_s: float) -> Sample:
        canary, cluster = self.canary, self.target.cluster
        weight = cluster.weight if cluster.new_deployed else 0
        canary_counts = self._canary_counts(self.total_rps * weight / 100, t, window_s) if weight > 0 else None
        stable_rps = self.total_rps * (100 - weight) / 100
        stable_counts = draw_track_counts(self.rng, stable_rps, window_s, canary.base_error_rate, self.healthy) if weight < 100 else None
        if canary_counts is not None and t > canary.onset_s:
            self.exposed_requests += canary_counts.requests * (t - max(t - window_s, canary.onset_s)) / window_s
        derived = [track_values(counts, window_s) if counts is not None else {} for counts in (canary_counts, stable_counts)]
        tracks = [{**HEALTHY_RESOURCES, **values} if values else {} for values in derived]
        values = {metric: TrackValues(tracks[0].get(metric), tracks[1].get(metric)) for metric in metrics}
        requests = canary_counts.requests if canary_counts is not None else None
        return Sample(values, requests, canary_counts=canary_counts, stable_counts=stable_counts)

    def _canary_counts(self, rps: float, t: float, window_s: float) -> TrackCounts:
        """The span's requests with the fault on drawn apart from the others: the sum of two Poisson counts is
        the span's, each part's errors and latencies its own."""
        share = self.canary.fault_share(t - window_s, t)
        if share == 0:
            return draw_track_counts(self.rng, rps, window_s, self.canary.base_error_rate, self.healthy)
        faulty = draw_track_counts(self.rng, rps, window_s * share, self.faulty_error_rate, self.faulty)
        if share == 1:
            return faulty
        return _added(draw_track_counts(self.rng, rps, window_s * (1 - share), self.canary.base_error_rate, self.healthy), faulty)

    async def history(self, metric: str, start_t: float, end_t: float, step_s: float) -> list[HistoryPoint]:
        return []

    async def close(self) -> None:
        return None


# -- the plan each canary runs ----------------------------------------------------------------------------


def _reference_plan() -> RolloutPlan:
    return load_plan(PLAN)


def _stage_starts(plan: RolloutPlan) -> list[float]:
    """When each stage starts and the last one ends, when no stage waits."""
    starts = [0.0]
    for stage in plan.stages:
        starts.append(starts[-1] + stage.observe)
    return starts


def _scaled(check: Check, error_scale: float, latency_scale: float) -> Check:
    if check.relative:
        return check
    if check.metric == "error_rate":
        return replace(check, value=check.value * error_scale)
    if check.metric == "success_rate":
        return replace(check, value=1 - (1 - check.value) * error_scale)
    if check.metric.startswith("latency_"):
        return replace(check, value=check.value * latency_scale)
    return check


def plan_for(reference: RolloutPlan, canary: Canary, judge: str) -> RolloutPlan:
    """The reference plan with its absolute limits scaled to the canary's base rates (the module's docstring)."""
    error_scale = max(1.0, canary.base_error_rate / REFERENCE_ERROR_RATE)
    latency_scale = max(1.0, LATENCY_SHAPES[canary.shape][2] / REFERENCE_P99_MS)
    stages = tuple(replace(stage, criteria=tuple(_scaled(c, error_scale, latency_scale) for c in stage.criteria)) for stage in reference.stages)
    triggers = tuple(replace(trigger, check=_scaled(trigger.check, error_scale, latency_scale)) for trigger in reference.triggers)
    return replace(reference, stages=stages, triggers=triggers, judge="sequential" if judge == "sequential" else "threshold", tolerance=TOLERANCE)


# -- the Kayenta-like judge -------------------------------------------------------------------------------


class MannWhitneyJudge:
    """Kayenta-like: at each stage window's end, the window's per-sample canary values against stable's, one
    one-sided Mann-Whitney U test per metric (the module's docstring). It sits in the controller's judge
    slot: add() takes each sample's counts, regression() says why to roll back once a window ended High."""

    def __init__(self, controller: Controller):
        self.controller = controller
        self._stage = -1
        self._values: dict[str, tuple[list[float], list[float]]] = {}
        self._high: KayentaHigh | None = None

    def add(self, canary: TrackCounts | None, stable: TrackCounts | None, stage: int = 0) -> bool:
        state = self.controller.state
        if state.stage != self._stage:
            self._stage, self._values = state.stage, {metric: ([], []) for metric in KAYENTA_METRICS}
        if canary is None or stable is None or canary.requests <= 0 or stable.requests <= 0:
            return False
        for track_index, counts in enumerate((canary, stable)):
            self._values["error_rate"][track_index].append(counts.errors / counts.requests)
            p99_s = histogram_quantile(0.99, counts.latency_buckets) if counts.latency_buckets else None
            if p99_s is not None:
                self._values["latency_p99"][track_index].append(p99_s * 1000)
        stage = self.controller.plan.stages[state.stage]
        window_ends = state.phase == Phase.RUNNING and self.controller.now() >= state.window_started_t + stage.observe - 1e-9
        self._high = self._judge_window() if window_ends else None
        return True

    def _judge_window(self) -> KayentaHigh | None:
        for metric, (canary, stable) in self._values.items():
            if len(canary) < 2 or len(stable) < 2 or len(set(canary) | set(stable)) == 1:
                continue  # Kayenta: no data, or nothing but one value, passes
            if statistics.fmean(canary) < (1 + TOLERANCE) * statistics.fmean(stable):
                continue
            p = float(mannwhitneyu(canary, stable, alternative="greater").pvalue)
            if p < MANN_WHITNEY_ALPHA:
                return KayentaHigh(f"{metric} High (Mann-Whitney p = {p:.2g} < {MANN_WHITNEY_ALPHA:g} over {len(canary)} samples)")
        return None

    def journaled(self) -> dict[str, dict[str, float | None]]:
        return {}

    def evidence(self, metric: str = "error_rate") -> RatioEvidence:
        """None of the running evidence a window asks the sequential judge for: a window failing where stable
        fails too compares the tracks itself, as under the threshold judge."""
        return RatioEvidence(0.0, None, None, None, 0.0, 0, 0.0, 0)

    def regression(self) -> KayentaHigh | None:
        return self._high

    def held(self) -> None:
        """Kayenta has no promotion gate: a window not High passes."""
        return None


class KayentaHigh(str):
    """Why a window was High: the reason the controller journals, carrying its `reason` and `trigger` as the
    sequential judge's regression carries them where it names the metric it judged."""

    @property
    def reason(self) -> str:
        return str(self)

    @property
    def trigger(self) -> str:
        return f"{JUDGE_TRIGGER_PREFIX}{self.split(' ', 1)[0]}"


# -- running the corpus -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    canary: int
    judge: str
    rolled_back_t: float | None
    """rollback_started's rollout time; None when promoted to 100% (or when the run ended otherwise)."""
    trigger: str
    promoted: bool
    exposed_requests: float
    by_window: bool = False
    """Rolled back at or after its stage window's end: a window's verdict may have had a part in it."""
    reused: bool = False
    """Taken from another judge's run of the same canary (`judged_three_ways`), not run again."""


class Watching:
    """The threshold run's judge slot: the sequential and the Mann-Whitney judges watch its samples without a say
    (the run decides as `judge: threshold` does), each until it first parts from the run: for the sequential
    judge a regression (its rollback) or a window it holds (its pause), for the Mann-Whitney judge its first
    High window (its rollback). A rollback is its outcome (`judged_three_ways`)."""

    def __init__(self, controller: Controller, source: CanarySource, sequential: SequentialJudge):
        self.controller, self.source = controller, source
        self.watchers: dict[str, SequentialJudge | MannWhitneyJudge] = {"sequential": sequential, "mann_whitney": MannWhitneyJudge(controller)}
        self.parted: dict[str, Parting] = {}
        """Where each watcher parted from the run, by judge."""

    def add(self, canary: TrackCounts | None, stable: TrackCounts | None, stage: int = 0) -> bool:
        for judge, watcher in self.watchers.items():
            if judge not in self.parted:
                watcher.add(canary, stable, stage)
                regression = watcher.regression()
                if regression is not None:
                    self._part(judge, regression.trigger, rollback=True)
        return False  # no evidence of the run's own: it journals and decides as under judge: threshold

    def held(self) -> None:
        """A window passed: the sequential judge's promotion gate would have paused there."""
        if "sequential" not in self.parted:
            hold = self.watchers["sequential"].held()
            if hold is not None:
                self._part("sequential", hold.trigger, rollback=False)
        return None

    def evidence(self, metric: str = "error_rate") -> RatioEvidence:
        """None, as under judge: threshold (a window that fails is judged on the limits alone)."""
        return RatioEvidence(0.0, None, None, None, 0.0, 0, 0.0, 0)

    def journaled(self) -> dict[str, dict[str, float | None]]:
        return {}

    def regression(self) -> None:
        return None

    def _part(self, judge: str, trigger: str, rollback: bool) -> None:
        state, now = self.controller.state, self.controller.now()
        window_end = state.window_started_t + self.controller.plan.stages[state.stage].observe
        self.parted[judge] = Parting(now, trigger, self.source.exposed_requests, now >= window_end - 1e-9, rollback)


@dataclass(frozen=True)
class Parting:
    t: float
    trigger: str
    exposed_requests: float
    by_window: bool
    rollback: bool
    """A rollback (the judge's outcome), else a pause (its run goes on apart)."""


async def run_rollout(reference: RolloutPlan, canary: Canary, judge: str, journal_dir: Path, watch: bool = False) -> tuple[Outcome, dict[str, Outcome]]:
    """The canary's run under `judge`; with `watch` (the threshold judge only), also the outcomes of the judges
    watching it (`Watching`) that rolled back before the run parted from theirs: before its first pause or
    rollback (a rollback at the same sample as a limit's, which would have gone first, is not known: parted
    too), so their own runs would have rolled back right there."""
    plan = plan_for(reference, canary, judge)
    target = SimTarget("canary", plan.image, "stable")
    source = CanarySource(canary, target)
    journal = journal_dir / f"{canary.index}-{judge}.jsonl"
    controller = Controller(plan, target, source, journal, VirtualClock(), ControllerOptions(headless=True), actor="bench")
    if judge == "mann_whitney":
        controller.judge = MannWhitneyJudge(controller)
    watching = None
    if watch and judge == "threshold":
        sequential = plan_for(reference, canary, "sequential")
        compared = sum(stage.weight < 100 for stage in sequential.stages)
        watching = Watching(controller, source, SequentialJudge(sequential.alpha, sequential.tolerance, sequential.floor, sequential.metric_names, compared))
        controller.judge = watching
    ending: dict[str, Any] = {}
    parted_t = math.inf
    """When the run stopped being the watchers' too: its first pause or rollback."""

    def listen(event: ev.Event) -> None:
        nonlocal parted_t
        if isinstance(event, ev.RollbackStarted):
            state = controller.state
            window_end = state.window_started_t + plan.stages[state.stage].observe
            ending.update(t=event.t, trigger=event.trigger, exposed=source.exposed_requests, by_window=event.t >= window_end - 1e-9)
            parted_t = min(parted_t, event.t)
            controller.stop()
        elif isinstance(event, ev.Paused):
            parted_t = min(parted_t, event.t)
        elif isinstance(event, ev.StageStarted) and event.weight >= 100:
            ending.update(promoted=True, exposed=source.exposed_requests)
            controller.stop()

    controller.subscribe(listen)
    await controller.run()
    controller.journal.close()
    journal.unlink()
    if not ending:
        raise RuntimeError(f"canary {canary.index} under {judge} ended neither rolled back nor promoted: {controller.state.phase}")
    outcome = Outcome(
        canary.index,
        judge,
        ending.get("t"),
        ending.get("trigger", ""),
        ending.get("promoted", False),
        ending.get("exposed", 0.0),
        ending.get("by_window", False),
    )
    return outcome, _watched_outcomes(canary, outcome, watching, parted_t)


def _watched_outcomes(canary: Canary, run: Outcome, watching: Watching | None, parted_t: float) -> dict[str, Outcome]:
    """By judge, the watchers' outcomes the threshold run shows: a watcher's rollback before the run parted; the
    run's own when the watcher never parted from it and the limits alone decided it (promoted, or rolled back
    by a limit before its stage's window ended: a window that failed is judged with the watcher's evidence)."""
    if watching is None:
        return {}
    found: dict[str, Outcome] = {}
    for judge in watching.watchers:
        parting = watching.parted.get(judge)
        if parting is not None and parting.t < parted_t:
            if parting.rollback:
                found[judge] = Outcome(canary.index, judge, parting.t, parting.trigger, False, parting.exposed_requests, parting.by_window, reused=True)
        elif parting is None and (run.promoted or not run.by_window):
            found[judge] = replace(run, judge=judge, reused=True)
    return found


async def judged_three_ways(reference: RolloutPlan, canary: Canary, journal_dir: Path, reuse: bool = True) -> list[Outcome]:
    """The canary under each judge. The sequential and the Mann-Whitney judges run beside the limits and only
    add rollbacks and pauses, and every run of a canary draws the same counts: so the runs of the three judges
    are one run until one of them parts from it (a judge's rollback or pause, a window that failed, a limit's
    pause or rollback). With `reuse` (tests check it gives the same outcomes as running each), the two judges
    watch the threshold run (`Watching`) and are run themselves only when it does not show their outcome."""
    threshold, watched = await run_rollout(reference, canary, "threshold", journal_dir, watch=reuse)
    outcomes = [threshold]
    for judge in ("sequential", "mann_whitney"):
        outcomes.append(watched[judge] if judge in watched else (await run_rollout(reference, canary, judge, journal_dir))[0])
    return outcomes


def run_canaries(canaries: Sequence[Canary], reuse: bool = True) -> list[Outcome]:
    """Every judge on each of `canaries`, one after the other, in this process."""
    reference = _reference_plan()
    shm = Path("/dev/shm")
    with tempfile.TemporaryDirectory(prefix="bench-judgement-", dir=shm if shm.is_dir() else None) as journal_dir:

        async def run_all() -> list[Outcome]:
            return [outcome for canary in canaries for outcome in await judged_three_ways(reference, canary, Path(journal_dir), reuse)]

        return asyncio.run(run_all())


def measure(canaries: Sequence[Canary], processes: int = PROCESSES) -> list[Outcome]:
    if processes <= 1:
        return run_canaries(canaries)
    chunks = [canaries[i : i + 10] for i in range(0, len(canaries), 10)]
    with Pool(processes) as pool:
        return [outcome for chunk in pool.imap(run_canaries, chunks) for outcome in chunk]


# -- figures ----------------------------------------------------------------------------------------------


def _pct(part: int, whole: int) -> float:
    return 100 * part / whole if whole else math.nan


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else math.nan


def figures(canaries: Sequence[Canary], outcomes: Sequence[Outcome]) -> dict[str, float]:
    """Each judge's figures (the module's docstring defines them), by BENCH name."""
    by_index = {canary.index: canary for canary in canaries}
    found: dict[str, float] = {}
    for judge in JUDGES:
        mine = [(by_index[o.canary], o) for o in outcomes if o.judge == judge]
        healthy = [o for c, o in mine if c.healthy]
        within = [o for c, o in mine if not c.healthy and not c.bad]
        bad = [(c, o) for c, o in mine if c.bad]
        strong = [o for c, o in bad if c.factor >= 2 and c.kind != "tail" and c.canary_rps >= 50]
        detected = [(c, o) for c, o in bad if o.rolled_back_t is not None and o.rolled_back_t >= c.onset_s]
        fixed_2x = [o.rolled_back_t - c.onset_s for c, o in detected if c.effect_class.startswith("errors_x2_at")]
        found[f"judge_{judge}_false_rollback_pct"] = _pct(sum(o.rolled_back_t is not None for o in healthy), len(healthy))
        found[f"judge_{judge}_within_tolerance_rollback_pct"] = _pct(sum(o.rolled_back_t is not None for o in within), len(within))
        found[f"judge_{judge}_missed_pct"] = _pct(sum(o.promoted for _, o in bad), len(bad))
        found[f"judge_{judge}_missed_2x_50rps_pct"] = _pct(sum(o.promoted for o in strong), len(strong))
        found[f"judge_{judge}_detect_median_s"] = _median([o.rolled_back_t - c.onset_s for c, o in detected])
        found[f"judge_{judge}_detect_2x_s"] = _median(fixed_2x)
        found[f"judge_{judge}_exposure_requests_median"] = _median([o.exposed_requests for _, o in detected])
    return found


def by_class(canaries: Sequence[Canary], outcomes: Sequence[Outcome]) -> str:
    """A table for the reader: per effect class and judge, the share rolled back and the median detection."""
    by_index = {canary.index: canary for canary in canaries}
    classes = sorted({canary.effect_class for canary in canaries})
    lines = [f"{'class':<28}{'n':>5}" + "".join(f"{judge + ' rolled back, detect':>36}" for judge in JUDGES)]
    for effect_class in classes:
        row = f"{effect_class:<28}{sum(c.effect_class == effect_class for c in canaries):>5}"
        for judge in JUDGES:
            mine = [(by_index[o.canary], o) for o in outcomes if o.judge == judge and by_index[o.canary].effect_class == effect_class]
            rolled = [o.rolled_back_t - c.onset_s for c, o in mine if o.rolled_back_t is not None]
            row += f"{_pct(len(rolled), len(mine)):>26.1f}% {_median(rolled):>7.0f} s"
        lines.append(row)
    return "\n".join(lines)


UNITS = {"_pct": "%", "_s": "s", "_median": "requests"}


def _unit(name: str) -> str:
    return next(unit for suffix, unit in UNITS.items() if name.endswith(suffix))


def main() -> None:
    canaries = corpus()
    for effect_class, count in sorted(Counter(c.effect_class for c in canaries).items()):
        print(f"BENCH judgement_corpus_{effect_class} {count} canaries")
    print(f"BENCH judgement_corpus_canaries {len(canaries)} canaries")
    print(f"BENCH judgement_corpus_bad {sum(c.bad for c in canaries)} canaries")
    started, cpu_started = time.perf_counter(), _cpu_s()
    outcomes = measure(canaries)
    wall, cpu = time.perf_counter() - started, _cpu_s() - cpu_started
    print(by_class(canaries, outcomes), file=sys.stderr)
    for name, value in figures(canaries, outcomes).items():
        print(f"BENCH {name} {value:.1f} {_unit(name)}")
    print(f"BENCH judgement_corpus_wall_s {wall:.1f} s")
    print(f"BENCH judgement_corpus_cpu_s {cpu:.1f} s")
    rollouts = sum(not outcome.reused for outcome in outcomes)
    print(f"BENCH judgement_rollouts {rollouts} rollouts")
    print(f"BENCH judgement_rollout_ms {cpu * 1000 / rollouts:.2f} ms")


def _cpu_s() -> float:
    """CPU seconds of this process and its ended workers: the bench's cost whatever else shares the machine."""
    own, workers = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + workers.ru_utime + workers.ru_stime


if __name__ == "__main__":
    main()

"""One JSON encoder: what Brahma writes is JSON every reader takes, NaN and Infinity never among it.

Python's json writes NaN and Infinity as bare words (not JSON); the encoder refuses them and names the
field. Where one can come in at run time (a metric source), it is made null before anything is written;
what nothing made null is journaled as an error and the rollout goes on.
"""

from __future__ import annotations

import ast
import io
import json
import math
from dataclasses import replace

import pytest

from console import strict_json
from console.app.headless import run_headless
from console.journal import events as ev
from console.journal.journal import Journal, read_events
from console.rollout import Rollout
from console.samples import HistoryPoint, TrackCounts, TrackValues
from console.strict_json import NotJSON
from tests.conftest import ROOT, sim_controller


def nan_sample(t: float = 1.0) -> ev.SampleTaken:
    return ev.SampleTaken(t, stage=0, metrics={"error_rate": {"canary": math.nan, "stable": 0.001}}, requests=10.0, verdict="pass")


def test_the_encoder_writes_compact_json_and_refuses_what_json_cannot_hold_naming_where():
    assert strict_json.dumps({"a": [1, 2.5, None, True], "b": "ü"}) == '{"a":[1,2.5,null,true],"b":"\\u00fc"}'
    assert strict_json.line({"a": 1}) == b'{"a":1}\n'
    value = {"t": 0.0, "flags": {"f": {"variants": [1, 2]}}}
    assert strict_json.dumps(value, indent=1) == json.dumps(value, indent=1), "indented files keep json's own layout"
    assert strict_json.dumps(value, separators=strict_json.SPACED, ensure_ascii=False) == json.dumps(value, ensure_ascii=False)
    cases = [
        ({"metrics": {"error_rate": {"canary": math.nan}}}, "metrics.error_rate.canary: nan is not a number JSON can hold"),
        ({"points": [[0.0, 1.0, math.inf]]}, "points[0][2]: inf is not"),
        ([-math.inf], "[0]: -inf is not"),
        (math.nan, "the value: nan is not"),
        ({"changes": {"a", "b"}}, "changes: a set is not JSON"),  # no default=str: it would read back as text
        ({"at": ROOT}, "at: a PosixPath is not JSON"),
    ]
    for value, message in cases:
        with pytest.raises(NotJSON) as refused:
            strict_json.dumps(value)
        assert str(refused.value).startswith(message), str(refused.value)
    with pytest.raises(NotJSON):
        strict_json.dumps({"v": math.nan}, indent=2)


@pytest.mark.parametrize("text", ['{"v": NaN}', "[Infinity]", '{"v": -Infinity}'])
def test_json_read_strictly_refuses_the_words_python_writes_for_nan_and_infinity(text):
    assert isinstance(json.loads(text), (dict, list)), "Python's own json reads them"
    with pytest.raises(NotJSON, match="is not JSON"):
        strict_json.loads(text)


def test_no_module_of_the_console_writes_json_but_the_encoder():
    """json.dumps, json.dump and json.JSONEncoder are used in console/strict_json.py alone: one place decides what is written."""
    writers = {"dump", "dumps", "JSONEncoder"}
    found = []
    for path in sorted((ROOT / "console").rglob("*.py")):
        if path == ROOT / "console" / "strict_json.py":
            continue
        tree = ast.parse(path.read_text())
        names = {alias.asname or alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names if alias.name == "json"}
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in names and node.attr in writers:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: json.{node.attr}")
            elif isinstance(node, ast.ImportFrom) and node.module == "json" and writers & {alias.name for alias in node.names}:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: from json import {', '.join(alias.name for alias in node.names)}")
    assert not found, "write JSON with console.strict_json (dumps, line), which refuses NaN and Infinity:\n" + "\n".join(found)


def test_the_journal_refuses_a_line_with_nan_and_writes_nothing(tmp_path):
    journal = Journal(tmp_path / "r.jsonl")
    journal.append(ev.ErrorRaised(0.0, where="here", message="before"))
    with pytest.raises(NotJSON, match="metrics.error_rate.canary"):
        journal.append(nan_sample())
    journal.close()
    assert [e.name for e in read_events(tmp_path / "r.jsonl")] == ["error"]
    assert journal.count == 1


class NotANumberSource:
    """The simulator's samples as a broken source might give them: NaN and infinite values, counts and history."""

    def __init__(self, source):
        self.source = source

    def __getattr__(self, name):
        return getattr(self.source, name)

    async def sample(self, metrics, t, window_s):
        sample = await self.source.sample(metrics, t, window_s)
        values = {**sample.values, "error_rate": TrackValues(math.nan, math.inf)}
        stable = TrackCounts(100.0, 1.0, ((0.1, 90.0), (math.inf, 100.0)))
        return replace(sample, values=values, canary_requests=math.inf, canary_counts=TrackCounts(math.nan, 0.0), stable_counts=stable)

    async def history(self, metric, start_t, end_t, step_s):
        return [HistoryPoint(start_t, math.nan, -math.inf)]


async def test_a_source_giving_nan_is_journaled_and_printed_as_null_and_the_run_goes_on(canary_plan, tmp_path):
    controller = sim_controller(canary_plan, tmp_path)
    controller.metrics = NotANumberSource(controller.metrics)
    out = io.StringIO()
    code = await run_headless(Rollout(controller), json_lines=True, out=out)
    assert code == 3, "an error rate that is never a number is no evidence: it rolls back, never promotes"
    printed = [strict_json.loads(line) for line in out.getvalue().splitlines()]
    journaled = [strict_json.loads(line) for line in controller.journal.path.read_bytes().splitlines()]
    assert [e["event"] for e in printed] == [e["event"] for e in journaled]
    sample = next(e for e in journaled if e["event"] == "sample")
    assert sample["metrics"]["error_rate"] == {"canary": None, "stable": None} and sample["requests"] is None
    assert sample["counts"] == {"stable": {"requests": 100.0, "errors": 1.0, "latency_buckets": [[0.1, 90.0], [None, 100.0]]}}, "NaN counts are none"
    assert not [e for e in journaled if e["event"] == "error" and e["where"] == "journal"], "made null where it came in: nothing refused"


async def test_an_event_the_journal_refuses_is_journaled_as_an_error_and_the_rollout_goes_on(canary_plan, tmp_path):
    controller = sim_controller(canary_plan, tmp_path)
    heard = []
    controller.subscribe(heard.append)
    controller.emit(nan_sample())
    error = next(e for e in read_events(controller.journal.path) if isinstance(e, ev.ErrorRaised))
    assert error.where == "journal" and error.message.startswith("sample not journaled: metrics.error_rate.canary: nan")
    assert [e.name for e in heard] == ["error"], "the listeners hear what the journal holds, no more"
    assert controller.state.last_sample_t is None, "the state is the fold of the journal"
    assert await controller.run() == "completed"

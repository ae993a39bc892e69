"""Journal segments: a journal that rolled over into NAME.jsonl.N.gz reads as the one file it continues, for every
reader (events, report, fleet row, resume, the socket's replay); a snapshot's tail opens no segment it covers; a
rollover killed between its two steps loses and repeats nothing; a damaged segment is an error naming it."""

from __future__ import annotations

import asyncio
import gzip
import json
import shutil
from pathlib import Path

import pytest

from console.controller.clock import VirtualClock
from console.journal import events as ev
from console.journal import journal as journal_module
from console.journal.fleet import read_row
from console.journal.journal import Journal, JournalError, closed_segments, read_events, read_lines
from console.journal.snapshot import resume, state_to_plain
from console.journal.state import fold, read_state
from console.journal.state_dir import RolloutFiles, journal_segment
from console.report import write_report
from console.supervisor.files import socket_address
from tests.conftest import sim_controller, stop_at
from tests.served_controller import serving

SEGMENT_MB = "0.25"
"""A canary run journals about 1.3 MB: five or so segments."""


async def canary_run(plan, state_dir: Path, monkeypatch, segment_mb: str | None, stop_at_t: float | None = None) -> Path:
    """The sample canary plan run on the simulator in virtual time, its journal rolled over past `segment_mb`
    (None: the 64 MB default, never reached); killed at `stop_at_t` and resumed to the end, when given."""
    if segment_mb is None:
        monkeypatch.delenv(journal_module.SEGMENT_MB_VARIABLE, raising=False)
    else:
        monkeypatch.setenv(journal_module.SEGMENT_MB_VARIABLE, segment_mb)
    if stop_at_t is not None:
        await stop_at(sim_controller(plan, state_dir, clock=VirtualClock(stop_at=stop_at_t)), stop_at_t)
    controller = sim_controller(plan, state_dir)
    await controller.run()
    controller.journal.close()
    return controller.journal.path


def without_wall_time(events) -> list[dict]:
    """Events as two runs in virtual time share them: all but the wall clock's `ts`."""
    return [{key: value for key, value in event.to_dict().items() if key != "ts"} for event in events]


def flattened(journal: Path, state_dir: Path) -> Path:
    """The journal's segments and live file written as one unsegmented journal of the same name in `state_dir`."""
    state_dir.mkdir()
    flat = state_dir / journal.name
    with open(flat, "wb") as out:
        for segment in closed_segments(journal):
            out.write(gzip.decompress(segment.read_bytes()))
        out.write(journal.read_bytes())
    return flat


@pytest.fixture
async def segmented(canary_plan, tmp_path, monkeypatch) -> Path:
    return await canary_run(canary_plan, tmp_path / "segmented", monkeypatch, SEGMENT_MB)


async def test_a_journal_rolled_over_reads_as_one_file_for_events_report_and_fleet(canary_plan, segmented, tmp_path, monkeypatch):
    segments = closed_segments(segmented)
    assert len(segments) >= 3, "the run rolled over several times"
    limit = float(SEGMENT_MB) * journal_module.MB
    assert all(len(gzip.decompress(segment.read_bytes())) <= limit for segment in segments)
    assert all(segment.stat().st_size < len(gzip.decompress(segment.read_bytes())) / 3 for segment in segments), "compressed"

    whole = await canary_run(canary_plan, tmp_path / "whole", monkeypatch, None)
    assert closed_segments(whole) == []
    assert without_wall_time(read_events(segmented)) == without_wall_time(read_events(whole)), "the same events as an unsegmented run"

    flat = flattened(segmented, tmp_path / "flat")
    events = list(read_events(segmented))
    assert events == list(read_events(flat))
    assert list(read_events(segmented, last_sample_only=True)) == list(read_events(flat, last_sample_only=True))
    report = write_report(segmented, tmp_path / "segmented.md").read_text()
    assert report == write_report(flat, tmp_path / "flat.md").read_text().replace(str(flat.parent), str(segmented.parent))
    assert state_to_plain(read_state(segmented)) == state_to_plain(fold(events))

    said: list[str] = []
    with_snapshot = read_row(RolloutFiles.of_journal(segmented), said.append)
    RolloutFiles.of_journal(segmented).snapshot.unlink()
    from_the_journal = read_row(RolloutFiles.of_journal(segmented), said.append)
    flat_row = read_row(RolloutFiles.of_journal(flat), said.append)
    assert said == [] and not flat_row.unreadable and flat_row.state.finished
    # From the snapshot, the whole fold; from the journal alone, as from the flat one, the fold with only the last sample.
    assert (state_to_plain(with_snapshot.state), with_snapshot.phase_since, with_snapshot.unreadable) == (
        state_to_plain(fold(events)),
        flat_row.phase_since,
        "",
    )
    assert (state_to_plain(from_the_journal.state), from_the_journal.phase_since, from_the_journal.unreadable) == (
        state_to_plain(flat_row.state),
        flat_row.phase_since,
        "",
    )


async def test_a_rolled_over_run_killed_and_resumed_journals_what_an_unsegmented_one_does(canary_plan, tmp_path, monkeypatch):
    killed_at = 200.0
    segmented = await canary_run(canary_plan, tmp_path / "segmented", monkeypatch, SEGMENT_MB, stop_at_t=killed_at)
    whole = await canary_run(canary_plan, tmp_path / "whole", monkeypatch, None, stop_at_t=killed_at)
    events = list(read_events(segmented))
    assert len(closed_segments(segmented)) >= 3 and any(isinstance(event, ev.SupervisionResumed) for event in events)
    assert without_wall_time(events) == without_wall_time(read_events(whole))
    assert [event.stage for event in events if isinstance(event, ev.StageStarted)] == [0, 1, 2, 3]
    changes = json.loads((segmented.parent / "checkout-2.4.1.sim.json").read_text())["changes"]
    assert [change["weight"] for change in changes] == [5, 25, 50, 100], "every traffic shift happened exactly once"


async def test_a_snapshot_and_its_tail_open_no_segment_the_snapshot_covers(segmented, monkeypatch):
    opened: list[str] = []
    gunzip = gzip.open
    monkeypatch.setattr(journal_module.gzip, "open", lambda path, *args, **kwargs: (opened.append(Path(path).name), gunzip(path, *args, **kwargs))[1])
    events = len(list(read_events(segmented)))
    segments = len(closed_segments(segmented))
    assert len(opened) == segments, "a whole read opens every segment"

    opened.clear()
    resumed = resume(segmented)
    assert opened == [] and resumed.snapshot_events == resumed.events == events
    resumed_journal = Journal(segmented, events=resumed.events)  # as a resumed controller opens it: no segment read to count
    resumed_journal.close()
    assert opened == [] and resumed_journal.count == events and resumed_journal.segments == segments

    # Events journaled after the snapshot, rolling over: the tail is read from the segment the snapshot's live
    # file became, and no older one.
    journal = Journal(segmented, segment_bytes=int(float(SEGMENT_MB) * journal_module.MB))
    assert opened == [segmented.name + f".{n}.gz" for n in range(1, segments + 1)], "opening counts the segments' events"
    opened.clear()
    attached = ev.ConsoleAttached(t=1.0, actor="watcher@host")
    while journal.segments == segments:
        journal.append(attached)
    journal.append(attached)
    journal.close()
    resumed = resume(segmented)
    assert opened == [journal_segment(segmented, segments + 1).name]
    assert resumed.events == journal.count and state_to_plain(resumed.state) == state_to_plain(fold(read_events(segmented)))

    # The socket's replay of the live file's events, from the journal's own position: no segment is opened.
    opened.clear()
    lines = list(read_lines(segmented, journal.live_start.events, [journal.live_start]))
    assert opened == [] and [number for number, _ in lines] == list(range(journal.live_start.events, journal.count))
    assert [line for _, line in lines] == segmented.read_bytes().splitlines(keepends=True)
    everything = [line for _, line in read_lines(segmented, 0, [journal.live_start])]
    assert len(everything) == journal.count and everything[-len(lines) :] == [line for _, line in lines]


def journal_of(path: Path, events: int, segment_bytes: int) -> tuple[Journal, list[ev.Event]]:
    journal = Journal(path, segment_bytes=segment_bytes)
    written = [ev.ConsoleAttached(t=float(number), actor=f"person{number}@host") for number in range(events)]
    for event in written:
        journal.append(event)
    return journal, written


def test_a_rollover_killed_between_writing_the_segment_and_restarting_the_live_file_loses_and_repeats_nothing(tmp_path, monkeypatch):
    path = tmp_path / "release.jsonl"
    journal, written = journal_of(path, 30, segment_bytes=1_000)
    segments = journal.segments
    assert segments >= 2

    real_atomic_write = journal_module.atomic_write

    def killed_after_the_segment(target: Path, data: bytes, **kwargs) -> None:
        if target == path:
            raise KeyboardInterrupt("killed")  # as the process dies: the live file is not replaced
        real_atomic_write(target, data, **kwargs)

    monkeypatch.setattr(journal_module, "atomic_write", killed_after_the_segment)
    journal.segment_bytes = journal.size  # the next append rolls over
    with pytest.raises(KeyboardInterrupt):
        journal.append(ev.ConsoleAttached(t=99.0, actor="never@host"))  # never journaled: the caller acts on nothing
    monkeypatch.setattr(journal_module, "atomic_write", real_atomic_write)
    assert len(closed_segments(path)) == segments + 1
    assert gzip.decompress(journal_segment(path, segments + 1).read_bytes()) == path.read_bytes(), "the live file is the last segment over again"
    assert list(read_events(path)) == written, "a reader meanwhile reads each event once"
    assert state_to_plain(resume(path).state) == state_to_plain(fold(written))

    reopened = Journal(path, segment_bytes=1_000)  # the next run finishes the rollover
    assert path.read_bytes() == b"" and reopened.count == len(written) and reopened.segments == segments + 1
    after = ev.ConsoleDetached(t=100.0, actor="person0@host")
    reopened.append(after)
    reopened.close()
    assert list(read_events(path)) == [*written, after]


def test_a_journal_rolls_over_with_every_event_on_disk_and_counted_once(tmp_path):
    path = tmp_path / "release.jsonl"
    journal, written = journal_of(path, 40, segment_bytes=1_000)
    assert journal.count == 40 and journal.segments >= 3 and path.stat().st_size <= 1_000
    assert list(read_events(path)) == written
    reopened = Journal(path, segment_bytes=1_000)
    assert (reopened.count, reopened.segments, reopened.lines) == (journal.count, journal.segments, journal.lines)


@pytest.mark.parametrize("how", ["cut short", "garbled", "missing"])
def test_a_damaged_segment_is_an_error_naming_it(tmp_path, how):
    path = tmp_path / "release.jsonl"
    journal, _ = journal_of(path, 40, segment_bytes=1_000)
    journal.close()
    damaged = journal_segment(path, 2)
    data = damaged.read_bytes()
    if how == "cut short":
        damaged.write_bytes(data[: len(data) // 2])
    elif how == "garbled":
        damaged.write_bytes(data[:20] + bytes(byte ^ 0xFF for byte in data[20:30]) + data[30:])
    else:
        damaged.unlink()
    for read in (lambda: list(read_events(path)), lambda: list(read_events(path, last_sample_only=True)), lambda: read_state(path), lambda: Journal(path)):
        with pytest.raises(JournalError) as error:
            read()
        assert str(damaged) in str(error.value)
    row = read_row(RolloutFiles.of_journal(path))
    assert str(damaged) in row.unreadable


def test_segments_without_their_live_file_are_not_taken_up_by_a_new_journal(tmp_path):
    path = tmp_path / "release.jsonl"
    journal_of(path, 40, segment_bytes=1_000)[0].close()
    path.unlink()
    with pytest.raises(JournalError, match="release.jsonl.1.gz"):
        Journal(path)


def test_a_bad_segment_size_is_an_error_naming_the_variable(tmp_path, monkeypatch):
    monkeypatch.setenv(journal_module.SEGMENT_MB_VARIABLE, "-1")
    with pytest.raises(JournalError, match=journal_module.SEGMENT_MB_VARIABLE):
        Journal(tmp_path / "release.jsonl")


async def test_archiving_moves_the_segments_with_the_journal(segmented):
    events = list(read_events(segmented))
    archived = RolloutFiles.of_journal(segmented).archive_finished()
    assert archived is not None and closed_segments(segmented) == [] and not segmented.exists()
    assert len(closed_segments(archived)) >= 3 and list(read_events(archived)) == events
    shutil.rmtree(segmented.parent)


async def test_the_socket_replays_a_rolled_over_journal_from_any_event(canary_plan, tmp_path, monkeypatch):
    monkeypatch.setenv(journal_module.SEGMENT_MB_VARIABLE, "0.02")
    async with serving(canary_plan, tmp_path) as (controller, files, _):
        assert len(closed_segments(files.journal)) >= 2
        on_disk = [line for _, line in read_lines(files.journal, 0, [])]
        assert len(on_disk) == controller.journal.count
        for start in (0, 5, controller.journal.live_start.events, len(on_disk) - 1):
            with socket_address(files.socket) as address:
                reader, writer = await asyncio.open_unix_connection(address)
            writer.write(b'{"op": "attach", "from": %d}\n' % start)
            replayed = []
            while not (line := await reader.readline()).startswith(b'{"hello"'):
                replayed.append(line)
            writer.close()
            assert replayed == on_disk[start:], f"from event {start}"

"""The flag store: the model <-> flagd mapping, text preservation, safe writes, concurrency, backends, CLI."""

from __future__ import annotations

import copy
import io
import json
import os
import stat
import subprocess
import sys
import tempfile
import textwrap
import threading
from pathlib import Path

import pytest
from kubernetes.client import V1ConfigMap, V1ObjectMeta
from kubernetes.client.exceptions import ApiException

from console.app.flags import run_flags_command
from console.atomic import ReadOnlyFileError, atomic_write
from console.controller.controller import ControllerOptions
from console.controller.release_flags import ReleaseFlags
from console.flags import (
    NEW_FLAG_KEY,
    FileBackend,
    Flag,
    FlagChange,
    FlagError,
    FlagFileError,
    FlagStore,
    ReadOnlyFlagError,
    UnknownFlagError,
    VersionConflict,
)
from console.flags.configmap import ConfigMapBackend
from console.flags.model import definition_for, flag_from_definition, rollout_rules
from console.journal import events as ev
from console.journal.journal import read_events
from tests.conftest import plan_from, sim_controller

ROOT = Path(__file__).resolve().parent.parent
USER = {"var": "targetingKey"}

# A file as a person would write it, in pieces so tests know where each flag's text is.
HEAD = textwrap.dedent(
    """\
    {
        "$schema": "https://flagd.dev/schema/v0/flags.json",
        "metadata": {"team": "payments", "version": 3},
        "flags": {
            "new-checkout": """
)
CHECKOUT = textwrap.dedent(
    """\
    {
                "state": "ENABLED",
                "variants": {"on": true, "off": false},
                "defaultVariant": "off",
                "metadata": {"brahma.new": true, "owner": "team-pay"}
            }"""
)
BETWEEN = ',\n        "search-v2" :   '
SEARCH = '{ "defaultVariant":"on", "variants":{"off":false,"on":true},"state":"ENABLED" }'
TAIL = textwrap.dedent(
    """\
    ,
            "banner-color": {
                "variants": {"red": "#f00", "blue": "#00f"},
                "state": "ENABLED",
                "defaultVariant": "red",
                "targeting": {"if": [{"$ref": "is-staff"}, "blue", null]}
            }
        },
        "$evaluators": {
            "is-staff": {"ends_with": [{"var": "email"}, "@example.com"]}
        }
    }
    """
)
SAMPLE = HEAD + CHECKOUT + BETWEEN + SEARCH + TAIL


@pytest.fixture
def flag_file(tmp_path: Path) -> Path:
    path = tmp_path / "flags.json"
    path.write_text(SAMPLE)
    return path


@pytest.fixture
def store(flag_file: Path) -> FlagStore:
    return FlagStore(FileBackend(flag_file))


# --- the mapping, both ways ---------------------------------------------------------------

FRACTIONAL_25 = {"fractional": [["on", 25], ["off", 75]]}


@pytest.mark.parametrize(
    ("percentage", "users", "targeting", "default_variant"),
    [
        (0, (), None, "off"),
        (100, (), None, "on"),
        (25, (), FRACTIONAL_25, "off"),
        (0, ("alice",), {"if": [{"in": [USER, ["alice"]]}, "on", "off"]}, "off"),
        (25, ("alice", "bob"), {"if": [{"in": [USER, ["alice", "bob"]]}, "on", FRACTIONAL_25]}, "off"),
        (100, ("alice",), {"if": [{"in": [USER, ["alice"]]}, "on", "on"]}, "on"),
    ],
)
def test_rollout_maps_to_flagd_targeting(percentage, users, targeting, default_variant):
    assert rollout_rules(percentage, users) == (targeting, default_variant)
    for enabled in (True, False):
        flag = Flag("f", enabled=enabled, percentage=percentage, allowed_users=users)
        definition = definition_for(flag)
        assert definition["state"] == ("ENABLED" if enabled else "DISABLED")
        assert definition.get("targeting") == targeting
        assert definition["defaultVariant"] == default_variant
        assert flag_from_definition("f", definition) == flag


def test_new_flags_are_marked_in_metadata_and_other_metadata_is_kept():
    base = {"state": "ENABLED", "variants": {"on": 1, "off": 0}, "defaultVariant": "off", "metadata": {"owner": "x"}}
    flag = flag_from_definition("f", base)
    assert not flag.new and flag.variants == {"on": 1, "off": 0}
    marked = definition_for(Flag("f", True, 0, variants={"on": 1, "off": 0}, new=True), base)
    assert marked["metadata"] == {"owner": "x", NEW_FLAG_KEY: True}
    assert flag_from_definition("f", marked).new


def test_keys_of_the_definition_keep_their_order():
    base = {"defaultVariant": "off", "variants": {"on": True, "off": False}, "state": "ENABLED", "x-note": "kept"}
    changed = definition_for(Flag("f", enabled=False, percentage=25), base)
    assert list(changed) == ["defaultVariant", "variants", "state", "x-note", "targeting"]


@pytest.mark.parametrize(
    "definition",
    [
        {"targeting": {"if": [{"$ref": "is-staff"}, "on", "off"]}},
        {"targeting": {"fractional": [["on", 25], ["off", 70], ["beta", 5]]}},
        {"targeting": {"fractional": [{"var": "email"}, ["on", 25], ["off", 75]]}},
        {"targeting": {"fractional": [["on", 25], ["off", 75]]}, "defaultVariant": "on"},
        {"targeting": {"fractional": [["on", "25"], ["off", 75]]}},
        {"targeting": {"if": [{"in": [{"var": "email"}, ["a@x.io"]]}, "on", "off"]}},
        {"targeting": {"if": [{"in": [USER, "alice"]}, "on", "off"]}},
        {"defaultVariant": "beta", "variants": {"on": True, "off": False, "beta": True}},
        {"variants": {"red": "#f00", "off": "#000"}},
        {"state": "ARCHIVED"},
    ],
)
def test_targeting_brahma_did_not_write_is_read_only(definition):
    full = {"state": "ENABLED", "variants": {"on": True, "off": False}, "defaultVariant": "off", **definition}
    flag = flag_from_definition("f", full)
    assert flag.read_only and flag.percentage is None and flag.allowed_users == ()


# --- the document: parse errors and byte-for-byte preservation ------------------------------


def test_lists_every_flag_in_file_order(store):
    flags = store.list()
    assert [flag.name for flag in flags] == ["new-checkout", "search-v2", "banner-color"]
    checkout, search, banner = flags
    assert (checkout.enabled, checkout.percentage, checkout.new, checkout.read_only) == (True, 0, True, False)
    assert (search.percentage, search.new, search.read_only) == (100, False, False)
    assert banner.read_only and banner.enabled


def test_a_change_rewrites_only_the_changed_flag(store, flag_file):
    store.set_percentage("new-checkout", 40, actor="alice", reason="stage 2")
    store.allow("new-checkout", "bob", actor="alice")
    text = flag_file.read_text()
    assert text.startswith(HEAD)
    assert text.endswith(BETWEEN + SEARCH + TAIL)
    checkout = json.loads(text)["flags"]["new-checkout"]
    assert checkout["metadata"] == {"brahma.new": True, "owner": "team-pay"}
    assert checkout["targeting"] == {"if": [{"in": [USER, ["bob"]]}, "on", {"fractional": [["on", 40], ["off", 60]]}]}


def test_a_one_line_flag_stays_on_one_line_and_its_neighbours_untouched(store, flag_file):
    store.disable("search-v2", actor="alice")
    text = flag_file.read_text()
    assert text.startswith(HEAD + CHECKOUT + BETWEEN)
    assert text.endswith(TAIL)
    rewritten = text[len(HEAD + CHECKOUT + BETWEEN) : -len(TAIL)]
    assert "\n" not in rewritten
    assert json.loads(rewritten) == {
        "defaultVariant": "on",
        "variants": {"off": False, "on": True},
        "state": "DISABLED",
    }


def test_a_created_flag_is_added_after_the_last_one_and_nothing_else_moves(store, flag_file):
    last_flag_end = SAMPLE.index('\n    },\n    "$evaluators"')
    store.create("dark-mode", actor="alice")
    text = flag_file.read_text()
    assert text.startswith(SAMPLE[:last_flag_end])
    assert text.endswith(SAMPLE[last_flag_end:])
    added = text[last_flag_end : len(text) - len(SAMPLE) + last_flag_end]
    assert added.startswith(',\n        "dark-mode": {\n            "state": "DISABLED",')
    assert json.loads(text)["flags"]["dark-mode"]["metadata"] == {NEW_FLAG_KEY: True}


def test_windows_line_endings_are_kept(tmp_path):
    path = tmp_path / "flags.json"
    path.write_bytes(SAMPLE.replace("\n", "\r\n").encode())
    FlagStore(FileBackend(path)).set_percentage("new-checkout", 10, actor="alice")
    data = path.read_bytes()
    assert data.count(b"\n") == data.count(b"\r\n") > 0
    assert data.endswith((BETWEEN + SEARCH + TAIL).replace("\n", "\r\n").encode())


def test_a_minified_file_stays_minified(tmp_path):
    path = tmp_path / "flags.json"
    first = '"a":{"state":"ENABLED","variants":{"on":true,"off":false},"defaultVariant":"off"}'
    other = '"b":{"state":"ENABLED","variants":{"on":true,"off":false},"defaultVariant":"on"}'
    path.write_text('{"flags":{' + first + "," + other + "}}")
    store = FlagStore(FileBackend(path))
    store.set_percentage("a", 5, actor="alice")
    store.create("c", actor="alice")
    text = path.read_text()
    assert "\n" not in text and other in text
    assert [flag.name for flag in store.list()] == ["a", "b", "c"]


def test_creating_the_first_flag_writes_a_new_document(tmp_path):
    path = tmp_path / "flags.json"
    result = FlagStore(FileBackend(path)).create("dark-mode", actor="ci", reason="before deploy")
    assert result.changes == (FlagChange("dark-mode", None, Flag("dark-mode", False, 0, new=True).to_dict(), "ci", "before deploy"),)
    document = json.loads(path.read_text())
    assert document["$schema"] == "https://flagd.dev/schema/v0/flags.json"
    assert document["flags"]["dark-mode"]["state"] == "DISABLED"


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ('{\n  "flags": {\n    "a": {}\n    "b": {}\n  }\n}\n', 4, "invalid JSON: Expecting ',' delimiter"),
        ("[1, 2]\n", 1, "a flag document is a JSON object"),
        ('{\n  "flags": [\n  ]\n}', 2, '"flags" must be an object of flags'),
        ('{\n  "flags": {\n    "a": 1\n  }\n}', 3, "flag 'a' must be an object"),
        ('{"flags": {\n  "a": {},\n  "a": {}\n}}', 3, "flag 'a' is defined twice"),
        ('{"flags": {\n  "a": {"variants": {"on": NaN}}\n}}', 2, "flag 'a': variants.on: nan is not a number JSON can hold"),  # flagd refuses it
    ],
)
def test_a_bad_document_is_reported_with_its_line(tmp_path, text, line, message):
    path = tmp_path / "flags.json"
    path.write_text(text)
    with pytest.raises(FlagFileError) as caught:
        FlagStore(FileBackend(path)).list()
    assert caught.value.line == line
    assert str(caught.value).startswith(f"{path}:{line}: {message}")


def test_a_file_that_is_not_utf8_is_reported(tmp_path):
    path = tmp_path / "flags.json"
    path.write_bytes(b'{\n"flags": {"\xff": {}}}')
    with pytest.raises(FlagFileError, match=r"flags.json:2: not UTF-8 text"):
        FlagStore(FileBackend(path)).list()


# --- operations and their journal records -------------------------------------------------


def test_each_change_returns_its_journal_record(store):
    result = store.set_percentage("new-checkout", 25, actor="alice@host", reason="stage 2")
    old = store_flag_dict(enabled=True, percentage=0)
    new = store_flag_dict(enabled=True, percentage=25)
    assert result.changes == (FlagChange("new-checkout", old, new, "alice@host", "stage 2"),)
    assert result.conflicts == 0 and result.note == ""

    assert store.allow("new-checkout", "bob", actor="a").changes[0].new["allowed_users"] == ["bob"]
    assert store.disable("new-checkout", actor="a").changes[0].new["enabled"] is False
    assert store.enable("new-checkout", actor="a").changes[0].new["enabled"] is True
    assert store.disallow("new-checkout", "bob", actor="a").changes[0].new["allowed_users"] == []
    assert store.get("new-checkout") == Flag("new-checkout", True, 25, new=True)


def store_flag_dict(**values) -> dict:
    return Flag("new-checkout", new=True, **values).to_dict()


def test_disabling_keeps_the_rollout_for_when_it_is_enabled_again(store):
    store.set_percentage("new-checkout", 30, actor="a")
    store.allow("new-checkout", "qa-1", actor="a")
    store.disable("new-checkout", actor="a")
    assert store.get("new-checkout") == Flag("new-checkout", False, 30, ("qa-1",), new=True)
    store.enable("new-checkout", actor="a")
    assert store.get("new-checkout") == Flag("new-checkout", True, 30, ("qa-1",), new=True)


def test_a_change_that_is_already_so_writes_nothing(store, flag_file):
    before = flag_file.stat().st_mtime_ns
    assert store.enable("new-checkout", actor="a").changes == ()
    assert store.disallow("new-checkout", "nobody", actor="a").changes == ()
    assert store.create("search-v2", actor="a").changes == ()
    assert flag_file.read_text() == SAMPLE and flag_file.stat().st_mtime_ns == before


@pytest.mark.parametrize("percentage", [-1, 101, 12.5, "50", True, None])
def test_a_bad_percentage_is_refused(store, flag_file, percentage):
    with pytest.raises(FlagError, match="rollout percentage must be a whole number from 0 to 100"):
        store.set_percentage("new-checkout", percentage, actor="a")
    assert flag_file.read_text() == SAMPLE


def test_an_unknown_flag_is_refused_with_a_suggestion(store):
    with pytest.raises(UnknownFlagError, match=r"no flag named 'new-chekout' \(did you mean 'new-checkout'\?\)"):
        store.enable("new-chekout", actor="a")


def test_a_read_only_flag_refuses_every_change(store, flag_file):
    for change in (
        lambda: store.enable("banner-color", actor="a"),
        lambda: store.set_percentage("banner-color", 5, actor="a"),
        lambda: store.allow("banner-color", "bob", actor="a"),
        lambda: store.kill(["new-checkout", "banner-color"], actor="a"),
    ):
        with pytest.raises(ReadOnlyFlagError, match="banner-color: targeting not written by Brahma"):
            change()
    assert flag_file.read_text() == SAMPLE


class CountingBackend(FileBackend):
    writes = 0

    def write(self, text, based_on):
        self.writes += 1
        super().write(text, based_on)


def test_kill_disables_every_named_flag_in_one_write(flag_file):
    backend = CountingBackend(flag_file)
    store = FlagStore(backend)
    result = store.kill(["new-checkout", "search-v2"], actor="oncall", reason="error spike")
    assert backend.writes == 1
    assert [(change.flag, change.old["enabled"], change.new["enabled"]) for change in result.changes] == [
        ("new-checkout", True, False),
        ("search-v2", True, False),
    ]
    assert {change.reason for change in result.changes} == {"error spike"}
    assert not any(flag.enabled for flag in store.list() if not flag.read_only)


def test_bad_users_and_names_are_refused(store):
    with pytest.raises(FlagError, match="a user must be a non-empty targeting key"):
        store.allow("new-checkout", " ", actor="a")
    with pytest.raises(FlagError, match="a flag name must be a non-empty string"):
        store.create("", actor="a")


# --- safe writes ------------------------------------------------------------------------------


def test_a_reader_never_sees_a_half_written_file(store, flag_file):
    done = threading.Event()
    reads, invalid = [0], []

    def read_continuously():
        while not done.is_set():
            text = flag_file.read_text()
            try:
                json.loads(text)
            except json.JSONDecodeError:
                invalid.append(text)
            reads[0] += 1

    reader = threading.Thread(target=read_continuously)
    reader.start()
    try:
        for step in range(300):
            store.set_percentage("new-checkout", step % 101, actor="a")
            store.allow("new-checkout", f"user-{step}", actor="a")
    finally:
        done.set()
        reader.join()
    assert invalid == [] and reads[0] > 100
    assert len(store.get("new-checkout").allowed_users) == 300


def test_writes_keep_the_file_mode_leave_no_temporary_files_and_always_move_mtime_forward(store, flag_file):
    flag_file.chmod(0o640)
    mtimes = []
    for percentage in range(20):
        store.set_percentage("new-checkout", percentage + 1, actor="a")
        mtimes.append(os.path.getmtime(flag_file))
    assert stat.S_IMODE(flag_file.stat().st_mode) == 0o640
    assert sorted(path.name for path in flag_file.parent.iterdir()) == ["flags.json", "flags.json.lock"]
    # flagd's file provider reloads only when the float mtime grows.
    assert all(later > earlier for earlier, later in zip(mtimes, mtimes[1:]))


def test_writing_through_a_symlink_keeps_the_link(tmp_path, flag_file):
    link = tmp_path / "current.json"
    link.symlink_to(flag_file)
    FlagStore(FileBackend(link)).enable("search-v2", actor="a")
    assert link.is_symlink()


READ_ONLY = "read-only (mode 0444, owner uid {uid}): not changed (make it writable to change its flags)"
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="only root may give a file another owner or group")


def test_a_read_only_flag_file_is_refused_not_renamed_over(store, flag_file):
    flag_file.chmod(0o444)
    before = flag_file.stat()
    with pytest.raises(FlagFileError) as refused:
        store.set_percentage("new-checkout", 25, actor="a")
    assert str(refused.value) == f"{flag_file}: " + READ_ONLY.format(uid=before.st_uid)
    after = flag_file.stat()
    assert (after.st_ino, after.st_mtime_ns, stat.S_IMODE(after.st_mode)) == (before.st_ino, before.st_mtime_ns, 0o444)
    assert flag_file.read_text() == SAMPLE
    assert sorted(path.name for path in flag_file.parent.iterdir()) == ["flags.json", "flags.json.lock"]


def test_brahma_flags_on_a_read_only_file_is_exit_2_and_changes_nothing(flag_file, tmp_path):
    flag_file.chmod(0o444)
    result = subprocess.run(
        [sys.executable, "-m", "console.app", "flags", "--state-dir", str(tmp_path / "state"), str(flag_file), "set", "new-checkout", "25"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == f"{flag_file}: " + READ_ONLY.format(uid=flag_file.stat().st_uid) + "\n"
    assert flag_file.read_text() == SAMPLE


@needs_root
def test_a_replaced_flag_file_keeps_its_owner_group_and_mode(store, flag_file):
    os.chown(flag_file, 4321, 4322)  # flagd's user and group, say
    flag_file.chmod(0o640)
    store.set_percentage("new-checkout", 25, actor="a")
    after = flag_file.stat()
    assert (after.st_uid, after.st_gid, stat.S_IMODE(after.st_mode)) == (4321, 4322, 0o640)
    assert store.get("new-checkout").percentage == 25


EXIT_REFUSED = 3


def as_user(uid: int, gid: int, action) -> int:
    """Run `action` in a forked child as `uid` in group `gid`: 0 when it returns, EXIT_REFUSED on
    ReadOnlyFileError, 1 on anything else."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.setgroups([gid])
            os.setgid(gid)
            os.setuid(uid)
            action()
            code = 0
        except ReadOnlyFileError:
            code = EXIT_REFUSED
        finally:
            os._exit(code)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


@needs_root
def test_a_file_this_user_may_not_write_is_refused_even_where_the_folder_lets_it_be_renamed_over(tmp_path):
    # /tmp, not tmp_path: another user has to be able to reach the folder.
    with tempfile.TemporaryDirectory() as shared:
        folder = Path(shared)
        folder.chmod(0o777)  # anyone may rename over anything here (no sticky bit)
        owned = folder / "flags.json"
        owned.write_text(SAMPLE)
        owned.chmod(0o644)
        code = as_user(65534, 65534, lambda: atomic_write(owned, b"{}"))
        assert code == EXIT_REFUSED, "refused as read-only"
        assert owned.read_text() == SAMPLE and owned.stat().st_uid == 0


async def test_a_rollback_says_why_it_could_not_switch_off_the_flags_of_a_read_only_file(tmp_path):
    plan = plan_from("app: checkout\nimage: r/checkout:2.5.0\nflags:\n  - {name: new-checkout}\n")
    path = tmp_path / "flags.json"
    store = FlagStore(FileBackend(path))
    store.create("new-checkout", actor="setup")
    store.enable("new-checkout", actor="setup")
    path.chmod(0o444)
    served = path.read_bytes()
    options = ControllerOptions(flag_hooks=[ReleaseFlags(store, plan.flags).on_rollback])
    controller = sim_controller(plan, tmp_path, "error-spike", options)
    await controller.run()
    events = list(read_events(controller.journal.path))
    assert any(isinstance(e, ev.RollbackStarted) for e in events)
    errors = [e.message for e in events if isinstance(e, ev.ErrorRaised) and e.where == "flags"]
    assert errors == [f"{path}: " + READ_ONLY.format(uid=path.stat().st_uid)]
    assert not any(isinstance(e, ev.FlagChanged) for e in events), "no change journaled that the file does not have"
    assert path.read_bytes() == served


def test_a_created_file_gets_the_mode_asked_for_less_the_umask(tmp_path):
    atomic_write(tmp_path / "private.json", b"{}", new_mode=0o600)
    assert stat.S_IMODE((tmp_path / "private.json").stat().st_mode) == 0o600
    previous = os.umask(0o027)
    try:
        atomic_write(tmp_path / "shared.json", b"{}")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "shared.json").stat().st_mode) == 0o640


def test_new_mode_is_for_a_created_file_only_a_replaced_one_keeps_its_own(tmp_path):
    path = tmp_path / "record.json"
    path.write_text("{}")
    path.chmod(0o664)
    atomic_write(path, b'{"a": 1}', new_mode=0o600)
    assert stat.S_IMODE(path.stat().st_mode) == 0o664 and path.read_bytes() == b'{"a": 1}'


# --- optimistic concurrency -------------------------------------------------------------------


class InterferingBackend(FileBackend):
    """A file backend where someone else writes between our read and our first write."""

    def __init__(self, path: Path, interference):
        super().__init__(path)
        self.interference = interference

    def write(self, text, based_on):
        if self.interference:
            self.interference, interfere = None, self.interference
            interfere()
        super().write(text, based_on)


def test_a_change_computed_on_a_stale_version_is_re_applied(flag_file):
    other = FlagStore(FileBackend(flag_file))
    backend = InterferingBackend(flag_file, lambda: other.allow("new-checkout", "carol", actor="bob"))
    result = FlagStore(backend).allow("new-checkout", "dave", actor="alice")
    assert result.conflicts == 1 and result.note == "re-applied after a conflict"
    assert result.changes[0].old["allowed_users"] == ["carol"]
    assert other.get("new-checkout").allowed_users == ("carol", "dave")


def test_a_change_that_no_longer_applies_is_refused(flag_file):
    def delete_the_flag():
        backend = FileBackend(flag_file)
        snapshot = backend.read()
        data = json.loads(snapshot.text)
        del data["flags"]["new-checkout"]
        backend.write(json.dumps(data), snapshot)

    with pytest.raises(UnknownFlagError, match="new-checkout"):
        FlagStore(InterferingBackend(flag_file, delete_the_flag)).set_percentage("new-checkout", 5, actor="alice")


def test_a_file_that_never_stops_changing_is_given_up_on(flag_file):
    class AlwaysStale(FileBackend):
        def write(self, text, based_on):
            raise VersionConflict("changed")

    with pytest.raises(VersionConflict, match="gave up after 3 attempts"):
        FlagStore(AlwaysStale(flag_file), max_attempts=3).set_percentage("new-checkout", 5, actor="a")
    assert flag_file.read_text() == SAMPLE


WORKER = """
import sys, time
from pathlib import Path
from console.flags import FileBackend, FlagStore
path, flag, prefix, count, go = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), Path(sys.argv[5])
store = FlagStore(FileBackend(path))
while not go.exists():
    time.sleep(0.001)
conflicts = sum(store.allow(flag, f"{prefix}-{i}", actor=prefix).conflicts for i in range(count))
print(conflicts)
"""


def test_two_processes_changing_different_flags_lose_nothing(store, flag_file, tmp_path):
    count, go = 200, tmp_path / "go"
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(flag_file), flag, prefix, str(count), str(go)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        for flag, prefix in (("new-checkout", "a"), ("search-v2", "b"))
    ]
    go.touch()
    outputs = [worker.communicate(timeout=120)[0] for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0]
    assert store.get("new-checkout").allowed_users == tuple(f"a-{i}" for i in range(count))
    assert store.get("search-v2").allowed_users == tuple(f"b-{i}" for i in range(count))
    assert all(output.strip().isdigit() for output in outputs)
    assert flag_file.read_text().endswith(TAIL)


# --- the Kubernetes ConfigMap backend ---------------------------------------------------------


class FakeCoreV1Api:
    """The two CoreV1Api calls the backend makes, with the API server's resourceVersion check."""

    def __init__(self, config_map: V1ConfigMap | None):
        self.config_map = config_map
        self.replace_options: list[dict] = []

    def read_namespaced_config_map(self, name, namespace):
        return copy.deepcopy(self._stored(name, namespace))

    def replace_namespaced_config_map(self, name, namespace, body, **options):
        stored = self._stored(name, namespace)
        if body.metadata.resource_version != stored.metadata.resource_version:
            raise ApiException(status=409, reason="Conflict")
        self.config_map = copy.deepcopy(body)
        self.config_map.metadata.resource_version = str(int(stored.metadata.resource_version) + 1)
        self.replace_options.append(options)
        return copy.deepcopy(self.config_map)

    def _stored(self, name, namespace) -> V1ConfigMap:
        metadata = self.config_map.metadata if self.config_map else None
        if metadata is None or (metadata.name, metadata.namespace) != (name, namespace):
            raise ApiException(status=404, reason="Not Found")
        return self.config_map


def config_map(data: dict | None) -> V1ConfigMap:
    metadata = V1ObjectMeta(name="flags", namespace="shop", resource_version="7", labels={"app": "shop"})
    return V1ConfigMap(metadata=metadata, data=data)


def test_configmap_changes_go_through_replace_with_the_resource_version_read():
    api = FakeCoreV1Api(config_map({"flags.json": SAMPLE, "other.json": "{}"}))
    store = FlagStore(ConfigMapBackend(api, "shop", "flags"))
    result = store.set_percentage("new-checkout", 5, actor="alice")
    assert result.changes[0].new["percentage"] == 5
    stored = api.config_map
    assert stored.metadata.resource_version == "8" and stored.metadata.labels == {"app": "shop"}
    assert stored.data["other.json"] == "{}"
    assert stored.data["flags.json"].startswith(HEAD) and stored.data["flags.json"].endswith(BETWEEN + SEARCH + TAIL)
    assert api.replace_options == [{"field_manager": "brahma"}]


def test_configmap_conflict_is_re_applied_on_the_new_version():
    api = FakeCoreV1Api(config_map({"flags.json": SAMPLE}))
    other = FlagStore(ConfigMapBackend(api, "shop", "flags"))

    class Interfering(FakeCoreV1Api):
        interfered = False

        def replace_namespaced_config_map(self, name, namespace, body, **options):
            if not self.interfered:
                self.interfered = True
                other.allow("new-checkout", "carol", actor="bob")
            return super().replace_namespaced_config_map(name, namespace, body, **options)

    api.__class__ = Interfering
    result = FlagStore(ConfigMapBackend(api, "shop", "flags")).kill(["new-checkout"], actor="alice")
    assert result.conflicts == 1
    assert other.get("new-checkout") == Flag("new-checkout", False, 0, ("carol",), new=True)
    assert api.config_map.metadata.resource_version == "9"


def test_configmap_without_the_key_gets_it_on_create():
    api = FakeCoreV1Api(config_map(None))
    store = FlagStore(ConfigMapBackend(api, "shop", "flags", key="flagd.json"))
    assert store.list() == ()
    store.create("dark-mode", actor="ci")
    assert json.loads(api.config_map.data["flagd.json"])["flags"]["dark-mode"]["state"] == "DISABLED"


def test_missing_configmap_and_api_errors_are_reported():
    with pytest.raises(FlagFileError, match=r"configmap/flags \(namespace shop, key flags.json\): no such ConfigMap"):
        FlagStore(ConfigMapBackend(FakeCoreV1Api(None), "shop", "flags")).list()

    class Broken(FakeCoreV1Api):
        def replace_namespaced_config_map(self, name, namespace, body, **options):
            raise ApiException(status=500, reason="Internal Server Error")

    with pytest.raises(ApiException):
        FlagStore(ConfigMapBackend(Broken(config_map({"flags.json": SAMPLE})), "shop", "flags")).disable("search-v2", actor="a")


# --- the command line -------------------------------------------------------------------------


def run(path: Path | str, *argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = run_flags_command(str(path), list(argv), "alice@host", out, err)
    return code, out.getvalue(), err.getvalue()


def test_cli_lists_flags_as_a_table(flag_file):
    code, out, err = run(flag_file, "list")
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        "NAME          STATE    ROLLOUT  ALLOWED USERS  NOTES",
        "new-checkout  enabled  0%       -              new",
        "search-v2     enabled  100%     -",
        "banner-color  enabled  -        -              read-only",
    ]
    assert run(flag_file)[1] == out


def test_cli_changes_one_flag_and_says_what_changed(flag_file):
    assert run(flag_file, "set", "new-checkout", "25%") == (0, "new-checkout: on, 0% → on, 25%\n", "")
    assert run(flag_file, "allow", "new-checkout", "qa-1")[1] == ("new-checkout: on, 25% → on, 25% + 1 allowed user\n")
    assert run(flag_file, "disable", "search-v2")[1] == "search-v2: on, 100% → off, 100%\n"
    assert run(flag_file, "disable", "search-v2")[1] == "no change: the file already says so\n"
    assert run(flag_file, "enable", "search-v2")[0] == 0
    assert run(flag_file, "create", "dark-mode")[1] == "dark-mode: created (off, 0%)\n"
    assert run(flag_file, "disallow", "new-checkout", "qa-1")[0] == 0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("set", "new-checkout", "120"), "rollout percentage must be a whole number from 0 to 100, not 120"),
        (("set", "new-checkout", "half"), "rollout percentage must be a whole number from 0 to 100, not 'half'"),
        (("enable", "nope"), "no flag named 'nope'"),
        (("enable", "banner-color"), "banner-color: targeting not written by Brahma"),
    ],
)
def test_cli_refuses_invalid_input_naming_the_file(flag_file, argv, message):
    code, out, err = run(flag_file, *argv)
    assert code == 2 and out == ""
    assert err.startswith(f"{flag_file}: ") and message in err
    assert flag_file.read_text() == SAMPLE


@pytest.mark.parametrize("argv", [("frobnicate",), ("set", "new-checkout"), ("list", "extra"), ("enable",)])
def test_cli_prints_usage_for_unknown_verbs_and_wrong_arguments(flag_file, argv):
    code, out, err = run(flag_file, *argv)
    assert code == 2 and err.startswith("usage: brahma flags FILE")


def test_cli_reports_bad_json_with_its_line_and_no_traceback(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{\n  "flags": {\n    "a": {,\n  }\n}\n')
    code, out, err = run(path, "list")
    assert code == 2 and out == ""
    assert err.startswith(f"{path}:3: invalid JSON: ") and "Traceback" not in err
    assert run(tmp_path / "missing.json", "list") == (2, "", f"{tmp_path / 'missing.json'}: no such file (create NAME makes it, with the flag off)\n")


def test_cli_create_makes_the_flag_file_when_there_is_none_yet(tmp_path):
    path = tmp_path / "flags.json"
    assert run(path, "create", "dark-mode") == (0, "dark-mode: created (off, 0%)\n", "")
    assert run(path, "enable", "dark-mode") == (0, "dark-mode: off, 0% → on, 0%\n", "")
    assert [(f.name, f.enabled) for f in FlagStore(FileBackend(path)).list()] == [("dark-mode", True)]
    elsewhere = tmp_path / "no-such-folder" / "flags.json"
    assert run(elsewhere, "create", "x") == (2, "", f"{elsewhere}: cannot be created: its folder {elsewhere.parent} does not exist\n")


def test_cli_kill_without_names_disables_every_new_flag(flag_file):
    code, out, err = run(flag_file, "kill")
    assert (code, err) == (0, "")
    assert out == "new-checkout: on, 0% → off, 0%\n"
    flags = {flag.name: flag for flag in FlagStore(FileBackend(flag_file)).list()}
    assert not flags["new-checkout"].enabled and flags["search-v2"].enabled
    assert run(flag_file, "kill", "search-v2")[1] == "search-v2: on, 100% → off, 100%\n"


def test_cli_kill_without_names_reports_new_flags_it_may_not_change(tmp_path):
    path = tmp_path / "flags.json"
    document = json.loads(SAMPLE)
    document["flags"]["banner-color"]["metadata"] = {NEW_FLAG_KEY: True}
    path.write_text(json.dumps(document, indent=2))
    code, out, err = run(path, "kill")
    assert code == 2
    assert out == "new-checkout: on, 0% → off, 0%\n"
    assert err == f"{path}: banner-color: marked new but its targeting is not Brahma's; not disabled\n"


def test_cli_kill_with_no_new_flags_says_so(tmp_path):
    path = tmp_path / "flags.json"
    FlagStore(FileBackend(path)).create("old", actor="a", new=False)
    assert run(path, "kill") == (0, "no flag is marked new (metadata 'brahma.new'): nothing to disable\n", "")


# --- house rules ------------------------------------------------------------------------------


def test_the_flag_code_imports_neither_textual_nor_kubernetes_unless_asked():
    check = (
        "import sys, console.flags, console.app.flags\n"
        "assert 'kubernetes' not in sys.modules, 'kubernetes imported'\n"
        "import console.flags.configmap\n"
        "assert 'textual' not in sys.modules, 'textual imported'\n"
    )
    subprocess.run([sys.executable, "-c", check], cwd=ROOT, check=True)

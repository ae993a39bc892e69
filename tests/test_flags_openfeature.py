"""Files Brahma writes, read by the real OpenFeature SDK with the flagd provider in file mode.

The provider's file watcher polls the file's mtime every `deadline_ms` (its FileWatcher sleeps
deadline_ms between checks; `offline_poll_interval_ms` exists in its Config but is not used),
so these tests run it at 100 ms and poll for changes with a deadline rather than sleeping.
"""

from __future__ import annotations

import os
import stat
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from openfeature import api
from openfeature.client import OpenFeatureClient
from openfeature.contrib.provider.flagd import FlagdProvider
from openfeature.contrib.provider.flagd.config import ResolverType
from openfeature.evaluation_context import EvaluationContext
from openfeature.flag_evaluation import Reason

from console.flags import FileBackend, FlagFileError, FlagStore
from tests.test_flags import as_user, needs_root

FLAG = "new-checkout"
USERS = [f"user-{number}" for number in range(10_000)]
POLL_INTERVAL_MS = 100
SEEN_WITHIN_S = 5.0


@pytest.fixture
def flag_path(tmp_path: Path) -> Path:
    return tmp_path / "flags.json"


@pytest.fixture
def store(flag_path: Path) -> FlagStore:
    store = FlagStore(FileBackend(flag_path))
    store.create(FLAG, actor="test")
    return store


@contextmanager
def running_client(path: Path) -> Iterator[OpenFeatureClient]:
    """A client of a flagd file provider watching `path`, polling it every 100 ms."""
    provider = FlagdProvider(
        resolver_type=ResolverType.FILE,
        offline_flag_source_path=str(path),
        deadline_ms=POLL_INTERVAL_MS,
    )
    domain = f"brahma-test-{uuid.uuid4()}"
    api.set_provider_and_wait(provider, domain)
    try:
        yield api.get_client(domain)
    finally:
        provider.shutdown()


@pytest.fixture
def client(store: FlagStore, flag_path: Path) -> Iterator[OpenFeatureClient]:
    with running_client(flag_path) as client:
        yield client


def is_on(client: OpenFeatureClient, user: str, default: bool = False) -> bool:
    return client.get_boolean_value(FLAG, default, EvaluationContext(targeting_key=user))


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + SEEN_WITHIN_S
    while not condition():
        assert time.monotonic() < deadline, f"the provider did not see {what} within {SEEN_WITHIN_S}s"
        time.sleep(0.01)


@pytest.mark.parametrize("percentage", [0, 5, 25, 50, 100])
def test_the_share_of_users_on_matches_the_percentage(store, flag_path, percentage):
    store.enable(FLAG, actor="test")
    store.set_percentage(FLAG, percentage, actor="test")
    with running_client(flag_path) as client:
        share = 100 * sum(is_on(client, user) for user in USERS) / len(USERS)
    assert abs(share - percentage) <= 1.5


def test_allowed_users_always_get_on(store, client):
    allowed = USERS[:20]
    for user in allowed:
        store.allow(FLAG, user, actor="test")
    store.enable(FLAG, actor="test")
    wait_until(lambda: is_on(client, allowed[0]), "the allowed users")
    assert all(is_on(client, user) for user in allowed)
    assert not any(is_on(client, user) for user in USERS[20:2000])

    store.set_percentage(FLAG, 50, actor="test")
    wait_until(lambda: 0 < sum(is_on(client, user) for user in USERS[20:2000]), "the rollout")
    assert all(is_on(client, user) for user in allowed)


def test_a_disabled_flag_returns_the_callers_default(store, client):
    store.allow(FLAG, "user-1", actor="test")
    store.set_percentage(FLAG, 100, actor="test")
    store.enable(FLAG, actor="test")
    wait_until(lambda: is_on(client, "user-2"), "the flag enabled")

    store.disable(FLAG, actor="test")
    context = EvaluationContext(targeting_key="user-1")
    wait_until(lambda: client.get_boolean_details(FLAG, True, context).reason == Reason.DISABLED, "the flag disabled")
    details = client.get_boolean_details(FLAG, True, context)
    assert (details.value, details.variant) == (True, None)
    assert is_on(client, "user-1", default=False) is False
    assert is_on(client, "user-2", default=False) is False


def test_a_running_provider_sees_brahmas_changes(store, client):
    assert is_on(client, "user-1") is False
    store.enable(FLAG, actor="test")
    store.set_percentage(FLAG, 100, actor="test")
    wait_until(lambda: is_on(client, "user-1"), "the flag enabled at 100%")

    store.kill([FLAG], actor="oncall", reason="error spike")
    wait_until(
        lambda: client.get_boolean_details(FLAG, False, EvaluationContext(targeting_key="user-1")).reason == Reason.DISABLED,
        "the kill",
    )


def test_raising_the_percentage_keeps_users_who_were_on(store, client):
    store.enable(FLAG, actor="test")
    store.set_percentage(FLAG, 5, actor="test")
    wait_until(lambda: any(is_on(client, user) for user in USERS[:1000]), "5%")
    on_at_5 = {user for user in USERS[:2000] if is_on(client, user)}

    store.set_percentage(FLAG, 25, actor="test")
    wait_until(lambda: sum(is_on(client, user) for user in USERS[:2000]) > 2 * len(on_at_5), "25%")
    on_at_25 = {user for user in USERS[:2000] if is_on(client, user)}
    assert on_at_5 < on_at_25


FLAGD_USER, FLAGD_GROUP = 4321, 4322


@needs_root
def test_a_file_shared_with_flagds_group_stays_readable_by_it_after_a_change(store, flag_path, client, tmp_path):
    os.chown(flag_path, -1, FLAGD_GROUP)
    flag_path.chmod(0o640)
    store.enable(FLAG, actor="test")
    store.set_percentage(FLAG, 100, actor="test")
    wait_until(lambda: is_on(client, "user-1"), "the flag enabled at 100%")
    after = flag_path.stat()
    assert (after.st_gid, stat.S_IMODE(after.st_mode)) == (FLAGD_GROUP, 0o640)
    # flagd's own user, in the file's group only, reads the changed file (the folder opened for it first).
    tmp_path.chmod(0o711)
    folder = os.open(tmp_path, os.O_RDONLY)
    expected = flag_path.read_bytes()

    def read_as_flagd() -> None:
        with open(os.open(flag_path.name, os.O_RDONLY, dir_fd=folder), "rb") as file:
            assert file.read() == expected

    try:
        assert as_user(FLAGD_USER, FLAGD_GROUP, read_as_flagd) == 0
    finally:
        os.close(folder)


def test_a_read_only_file_is_not_changed_until_it_is_made_writable(store, flag_path, client):
    store.enable(FLAG, actor="test")
    store.set_percentage(FLAG, 100, actor="test")
    wait_until(lambda: is_on(client, "user-1"), "the flag enabled at 100%")
    flag_path.chmod(0o444)
    served = flag_path.read_bytes()
    with pytest.raises(FlagFileError, match="read-only"):
        store.kill([FLAG], actor="oncall")
    assert flag_path.read_bytes() == served and is_on(client, "user-1")
    flag_path.chmod(0o644)  # made writable by its owner: the next change goes through
    store.kill([FLAG], actor="oncall")
    wait_until(lambda: not is_on(client, "user-1"), "the kill")

"""The core's one retry policy (imageport.retry): attempts, backoff, Retry-After, deadline -- counted, not timed."""

from __future__ import annotations

import pytest

from imageport.errors import InputError, StorageUnreachable
from imageport.retry import RetryPolicy


class Clock:
    """A clock that moves only when the policy sleeps."""

    def __init__(self) -> None:
        self.now, self.slept = 0.0, []  # type: ignore[var-annotated]

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def failing(times: int, exc: Exception):  # type: ignore[no-untyped-def]
    calls = []

    def action() -> str:
        calls.append(1)
        if times < 0 or len(calls) <= times:
            raise exc
        return "done"

    return action, calls


def test_a_transient_fault_is_retried_with_backoff_until_it_clears() -> None:
    clock = Clock()
    action, calls = failing(2, StorageUnreachable("dropped"))
    policy = RetryPolicy(attempts=5, first_delay=0.5, backoff=2)
    assert policy.run(action, sleep=clock.sleep, clock=lambda: clock.now) == "done"
    assert len(calls) == 3 and clock.slept == [0.5, 1.0]


def test_a_persistent_fault_stops_at_the_attempts_marked_as_given_up() -> None:
    clock = Clock()
    action, calls = failing(-1, StorageUnreachable("dropped"))
    policy = RetryPolicy(attempts=4, first_delay=1, backoff=4, max_delay=15)
    with pytest.raises(StorageUnreachable, match=r"dropped \(gave up after 4 attempts over 20 s\)") as failed:
        policy.run(action, sleep=clock.sleep, clock=lambda: clock.now)
    assert len(calls) == 4 and clock.slept == [1, 4, 15] == policy.schedule()
    assert failed.value.attempts == 4 and failed.value.core_gave_up


def test_the_deadline_ends_a_fault_before_the_attempts_do() -> None:
    clock = Clock()
    action, calls = failing(-1, StorageUnreachable("dropped"))
    policy = RetryPolicy(attempts=100, first_delay=1, backoff=2, max_delay=8, deadline=30)
    with pytest.raises(StorageUnreachable):
        policy.run(action, sleep=clock.sleep, clock=lambda: clock.now)
    assert clock.slept == [1, 2, 4, 8, 8] == policy.schedule() and len(calls) == 6


def test_the_deadline_counts_waits_even_when_sleep_does_not_sleep() -> None:
    slept: list[float] = []
    action, calls = failing(-1, StorageUnreachable("dropped"))
    with pytest.raises(StorageUnreachable):
        RetryPolicy(attempts=100, first_delay=10, backoff=1, deadline=35).run(action, sleep=slept.append)
    assert slept == [10, 10, 10] and len(calls) == 4


def test_retry_after_is_honoured_instead_of_the_backoff() -> None:
    clock = Clock()
    throttled = StorageUnreachable("503")
    throttled.retry_after = 7
    action, calls = failing(2, throttled)
    assert RetryPolicy(attempts=5, first_delay=0.5).run(action, sleep=clock.sleep, clock=lambda: clock.now) == "done"
    assert clock.slept == [7, 7] and len(calls) == 3
    throttled.retry_after = 10_000  # absurd advice is capped
    assert RetryPolicy(attempts=2, first_delay=0.5, max_retry_after=60).delay(1, throttled) == 60


def test_other_errors_pass_through_at_once_unmarked() -> None:
    slept: list[float] = []
    action, calls = failing(-1, InputError("bad"))
    with pytest.raises(InputError, match=r"^bad$") as failed:
        RetryPolicy(attempts=5, first_delay=1).run(action, sleep=slept.append)
    assert len(calls) == 1 and slept == [] and failed.value.attempts == 0


def test_before_retry_and_on_failure_run_per_retry_and_per_failure() -> None:
    seen: list[tuple[int, str]] = []
    logins: list[int] = []
    action, _ = failing(2, RuntimeError("boom"))
    RetryPolicy(attempts=3, first_delay=0).run(
        action,
        retry_on=lambda exc: True,
        before_retry=lambda: logins.append(1),
        on_failure=lambda n, exc: seen.append((n, str(exc))),
        sleep=lambda s: None,
    )
    assert seen == [(1, "boom"), (2, "boom")] and len(logins) == 2

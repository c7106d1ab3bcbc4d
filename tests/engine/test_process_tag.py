"""Attempt tags: real processes found by the tag in their environment, nested tags included."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator

import pytest

from pulsaride.engine.process_tag import (
    TAG_VARIABLE,
    new_tag,
    signal_tagged,
    tagged,
    tagged_pids,
)


@pytest.fixture
def sleeper() -> Iterator[tuple[subprocess.Popen[bytes], str, str]]:
    """A process in a session of its own carrying an outer and an inner tag."""
    outer, inner = new_tag(), new_tag()
    env = tagged(tagged(dict(os.environ), outer), inner)
    proc = subprocess.Popen(["sleep", "30"], env=env, start_new_session=True)
    yield proc, outer, inner
    proc.kill()
    proc.wait()


def test_tags_add_up_instead_of_replacing_each_other():
    outer = tagged({"PATH": "/bin"}, "a")
    assert tagged(outer, "b")[TAG_VARIABLE] == "a:b"
    assert outer[TAG_VARIABLE] == "a"


def test_a_process_is_found_by_each_of_its_tags_and_by_no_other(sleeper):
    proc, outer, inner = sleeper
    assert tagged_pids(outer) == [proc.pid]
    assert tagged_pids(inner) == [proc.pid]
    assert tagged_pids(new_tag()) == []
    assert tagged_pids(outer[:8]) == []  # a part of a tag is not the tag


def test_signalling_the_outer_tag_reaches_a_process_outside_every_group(sleeper):
    proc, outer, _ = sleeper
    assert signal_tagged(outer, signal.SIGTERM) == 1
    assert proc.wait(timeout=10) == -signal.SIGTERM
    assert tagged_pids(outer) == []

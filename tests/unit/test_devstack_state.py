"""Each local stack gives its runners a disk of their own. Every stack starts with empty
emulators, so a journal or auth state left by an earlier stack's runner belongs to a world that
is gone; a benchmark once replayed thousands of such journal entries into a fresh emulator and
ran at a quarter of its speed."""

from __future__ import annotations

from pathlib import Path

from devstack.stack import Stack, StackConfig


def test_two_stacks_on_one_root_never_share_a_runner_disk(tmp_path: Path) -> None:
    first, second = Stack(StackConfig(root=tmp_path)), Stack(StackConfig(root=tmp_path))
    assert first.state_dir(0) != second.state_dir(0)
    assert first.runner_service(0).env["WAGATE_STATE_DIR"] == str(first.state_dir(0))
    assert second.runner_service(0).env["WAGATE_STATE_DIR"] == str(second.state_dir(0))


def test_a_runner_restarted_within_its_stack_finds_its_disk_again(tmp_path: Path) -> None:
    stack = Stack(StackConfig(root=tmp_path, shards=2))
    started = stack.runner_service(0).env["WAGATE_STATE_DIR"]
    restarted = stack.runner_service(0, name="runner-0-b").env["WAGATE_STATE_DIR"]
    assert started == restarted
    assert stack.runner_service(1).env["WAGATE_STATE_DIR"] != started


def test_stopping_a_stack_removes_its_runner_disk_only(tmp_path: Path) -> None:
    stopped, running = Stack(StackConfig(root=tmp_path)), Stack(StackConfig(root=tmp_path))
    for stack in (stopped, running):
        stack.state_dir(0).mkdir(parents=True)
        (stack.state_dir(0) / "journal.sqlite3").write_bytes(b"entries")
    stopped.stop()
    assert not stopped.state_dir(0).exists()
    assert (running.state_dir(0) / "journal.sqlite3").read_bytes() == b"entries"

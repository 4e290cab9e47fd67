"""Progress that a redirected run can read: plain lines when stderr is no terminal."""

from __future__ import annotations

import io

from rich.console import Console

from ragkit import progress


def test_a_redirected_progress_prints_plain_lines(monkeypatch):
    out = io.StringIO()
    monkeypatch.setattr(progress, "Console", lambda stderr: Console(file=out, width=200))
    monkeypatch.setattr(progress, "PLAIN_EVERY", 0.0)
    bar = progress.progress_bar("embedding corpus", transient=True)
    assert isinstance(bar, progress.PlainProgress)
    with bar:
        task = bar.add_task("corpus", total=512)
        for _ in range(2):
            bar.advance(task, 256)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("embedding corpus: 256/512") and lines[-1] == "embedding corpus: 512/512"
    assert len(lines) == 2  # one per update here (PLAIN_EVERY 0), the finished line once


def test_a_terminal_gets_rich_s_live_bar(monkeypatch):
    monkeypatch.setattr(progress, "Console", lambda stderr: Console(file=io.StringIO(), force_terminal=True))
    assert not isinstance(progress.progress_bar("x"), progress.PlainProgress)

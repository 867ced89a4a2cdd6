"""``activatepro demo`` at a small size, and the live progress bar."""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console

from activatepro_async._cli.demo import INVALID_KINDS, generate_users
from activatepro_async._cli.engine import Summary
from activatepro_async._cli.progress import LiveProgress

from .conftest import Invoke, read_jsonl, summary


def test_demo_imports_and_accounts_for_every_user(invoke: Invoke, tmp_path: Path) -> None:
    rejects = tmp_path / "rejects.jsonl"
    result = invoke("demo", "--users", "2000", "--json", "--rejects", str(rejects))
    assert result.exit_code == 0, result.output
    data = summary(result)
    assert data["rows"] == 2000
    assert data["accepted"] + data["rejected"] + data["failed"] == 2000
    assert data["failed"] == 0
    assert 0 < data["rejected"] < 100
    # Every kind of mistake shows up as its own reason.
    assert len(data["rejected_by_reason"]) == len(INVALID_KINDS) - 1
    tracking = data["tracking"]
    assert tracking["processing_errors"] > 0  # the duplicate emails
    assert tracking["success"] == data["accepted"] - tracking["processing_errors"]
    assert len(read_jsonl(rejects)) == data["rejected"]


def test_demo_prints_a_readable_summary(invoke: Invoke) -> None:
    result = invoke("demo", "--users", "300", "--quiet")
    assert result.exit_code == 0, result.output
    for needle in ("users/s", "accepted", "rejected", "retries", "processed", "on purpose"):
        assert needle in result.stdout


def test_demo_with_faults_retries_and_loses_nothing(invoke: Invoke) -> None:
    result = invoke(
        "demo", "--users", "1500", "--chunk-size", "50", "--faults", "--seed", "3", "--json"
    )
    assert result.exit_code == 0, result.output
    data = summary(result)
    assert data["retries"] > 0
    assert data["failed"] == 0
    assert data["accepted"] + data["rejected"] == 1500


def test_generated_users_are_repeatable_and_realistic() -> None:
    first = list(generate_users(50, seed=1))
    assert first == list(generate_users(50, seed=1))
    emails = [u["email"] for u in first if "email" in u]
    assert len(set(emails)) == len(emails)
    assert all(u["businessUnit"] in {"DE", "UK", "FR", "NL", "US"} for u in first)
    assert all(email.isascii() for email in emails)


def test_progress_bar_shows_counts_on_a_terminal() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=200)

    class Source:
        name = "u.csv"
        bytes_read = 50
        total_bytes = 100

    state = Summary("upsert", "u.csv", rows=10, accepted=8, rejected=2)
    state.started -= 1.0
    with LiveProgress("importing", enabled=True, console=console) as live:
        live.update(state, Source())  # type: ignore[arg-type]
    text = out.getvalue()
    for needle in ("read 10", "accepted 8", "rejected 2", "rows/s", "ETA"):
        assert needle in text


def test_progress_bar_is_quiet_when_not_a_terminal() -> None:
    out = io.StringIO()
    live = LiveProgress("importing", enabled=True, console=Console(file=out))
    assert not live.enabled
    with live:
        live.update(Summary("upsert", "x", rows=1), None)  # type: ignore[arg-type]
    assert out.getvalue() == ""

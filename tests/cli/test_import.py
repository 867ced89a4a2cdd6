"""``activatepro import`` and ``delete`` against the in-process emulator."""

from __future__ import annotations

from pathlib import Path

from activatepro_async.emulator import Emulator

from .conftest import Invoke, read_jsonl, summary, write

CSV = (
    "id,email,businessUnit,firstName,birthday\n"
    "u1,ada@example.com,UK,Ada,1815-12-10\n"
    'u2,grace@example.com,,"Hopper, Grace",1906-12-09\n'
    "u3,not-an-email,DE,Bad,1990-01-01\n"
    "u4,alan@example.com,UK,Alan,1912-06-23\n"
)


def test_import_stores_every_valid_row_and_exits_0(
    invoke: Invoke, emulator: Emulator, tmp_path: Path, backend: str
) -> None:
    path = write(tmp_path / "u.csv", "".join(CSV.splitlines(True)[i] for i in (0, 1, 2, 4)))
    result = invoke("import", path, "--json", "--wait", backend=backend)
    assert result.exit_code == 0, result.output
    data = summary(result)
    assert (data["rows"], data["accepted"], data["rejected"], data["failed"]) == (3, 3, 0, 0)
    assert data["tracking"]["success"] == 3
    users = emulator.users
    assert users["u1"]["businessUnit"] == "UK"
    assert users["u2"]["firstName"] == "Hopper, Grace"
    assert "businessUnit" not in users["u2"] or users["u2"]["businessUnit"] is None


def test_rejected_rows_go_to_the_rejects_file_with_line_and_codes(
    invoke: Invoke, emulator: Emulator, tmp_path: Path
) -> None:
    path = write(tmp_path / "u.csv", CSV + "u5,e@example.com\n")
    rejects = tmp_path / "rejects.jsonl"
    result = invoke("import", path, "--rejects", str(rejects), "--json")
    assert result.exit_code == 1
    data = summary(result)
    assert (data["rows"], data["accepted"], data["rejected"]) == (5, 3, 2)
    assert data["rejected_by_reason"] == {"Invalid Email Format (4)": 1, "Unreadable Record": 1}
    records = sorted(read_jsonl(rejects), key=lambda r: r["line"])
    assert [(r["line"], r["stage"], r["errors"][0]["code"]) for r in records] == [
        (4, "api", 4),
        (6, "read", 0),
    ]
    assert records[0]["row"] == {
        "id": "u3",
        "email": "not-an-email",
        "businessUnit": "DE",
        "firstName": "Bad",
        "birthday": "1990-01-01",
    }
    assert records[0]["errors"][0]["pointer"] == "/updated/2/email"
    assert records[1]["row"] == ["u5", "e@example.com"]
    assert set(emulator.users) == {"u1", "u2", "u4"}


def test_map_and_type_shape_what_is_stored(
    invoke: Invoke, emulator: Emulator, tmp_path: Path
) -> None:
    path = write(
        tmp_path / "export.csv",
        "customer_no,mail,born,note\n7,ada@example.com,10.12.1815,internal\n",
    )
    result = invoke(
        "import", path,
        "--map", "customer_no=id", "--map", "mail=email", "--map", "born=birthday",
        "--map", "note=", "--type", "birthday=date:%d.%m.%Y",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    stored = emulator.users["7"]
    assert (stored["email"], stored["birthday"]) == ("ada@example.com", "1815-12-10")
    assert not {"customer_no", "mail", "born", "note"} & set(stored)


def test_locally_refused_rows_are_not_sent(
    invoke: Invoke, emulator: Emulator, tmp_path: Path
) -> None:
    path = write(tmp_path / "u.csv", "id,email,birthday\nu1,a@example.com,1990-02-30\n")
    rejects = tmp_path / "r.jsonl"
    result = invoke("import", path, "--type", "birthday=date", "--rejects", str(rejects))
    assert result.exit_code == 1
    [record] = read_jsonl(rejects)
    assert (record["line"], record["stage"], record["errors"][0]["code"]) == (2, "local", 3)
    assert emulator.requests == []


def test_jsonl_from_stdin(invoke: Invoke, emulator: Emulator) -> None:
    lines = '{"id": "j1", "email": "j1@example.com", "firstName": "Jo"}\n{"id": "j2"}\n'
    result = invoke("import", "-", "--format", "jsonl", "--json", input=lines)
    assert result.exit_code == 1
    data = summary(result)
    assert (data["accepted"], data["rejected"]) == (1, 1)
    assert emulator.users["j1"]["firstName"] == "Jo"


def test_dry_run_sends_nothing_and_needs_no_key(
    invoke: Invoke, emulator: Emulator, tmp_path: Path
) -> None:
    path = write(tmp_path / "u.csv", CSV)
    result = invoke("import", path, "--dry-run", "--json", key=None)
    assert result.exit_code == 1
    data = summary(result)
    assert (data["valid"], data["rejected"], data["sent"]) == (3, 1, 0)
    assert data["rejected_by_reason"] == {"Invalid Email Format (4)": 1}
    assert emulator.requests == []


def test_dry_run_of_a_clean_file_exits_0(invoke: Invoke, tmp_path: Path) -> None:
    path = write(tmp_path / "u.csv", "id,email\nu1,a@example.com\n")
    result = invoke("import", path, "--dry-run", key=None)
    assert result.exit_code == 0
    assert "OK: every row was valid" in result.stdout


def test_human_summary_has_no_terminal_codes_when_piped(invoke: Invoke, tmp_path: Path) -> None:
    path = write(tmp_path / "u.csv", CSV)
    result = invoke("import", path, "--wait")
    assert result.exit_code == 1
    assert "\x1b" not in result.output
    assert "accepted" in result.stdout
    assert "Invalid Email Format (4)" in result.stdout
    assert "processed" in result.stdout


def test_delete_removes_the_users_of_an_id_file(
    invoke: Invoke, emulator: Emulator, tmp_path: Path
) -> None:
    assert invoke("import", write(tmp_path / "u.csv", CSV)).exit_code == 1
    result = invoke("delete", write(tmp_path / "gone.txt", "u1\nu4\nnobody\n"), "--json")
    assert result.exit_code == 0, result.output
    assert summary(result)["accepted"] == 3
    assert set(emulator.users) == {"u2"}


def test_delete_takes_ids_from_a_mapped_csv_column(
    invoke: Invoke, emulator: Emulator, tmp_path: Path
) -> None:
    assert invoke("import", write(tmp_path / "u.csv", CSV)).exit_code == 1
    path = write(tmp_path / "gone.csv", "customer,reason\nu2,left\n")
    result = invoke("delete", path, "--map", "customer=id")
    assert result.exit_code == 0, result.output
    assert set(emulator.users) == {"u1", "u4"}

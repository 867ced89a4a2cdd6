"""The command on real exports: CSV dialects, compressed files, repeated ids, the summary."""

from __future__ import annotations

import gzip
import sys
from pathlib import Path

import pytest

from activatepro_async.emulator import Emulator

from .conftest import Invoke, assert_usage_error, summary, write

zstandard = pytest.importorskip("zstandard")

ROWS = [("u1", "ada@example.com", "Ada"), ("u2", "grace@example.com", "Hopper; Grace")]


def export(delimiter: str, quote: str = '"') -> str:
    """Two users as a spreadsheet would write them with this delimiter and quote."""
    lines = [delimiter.join(("id", "email", "firstName"))]
    for user_id, email, name in ROWS:
        if delimiter in name or "," in name:
            name = f"{quote}{name}{quote}"
        lines.append(delimiter.join((user_id, email, name)))
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("delimiter", [";", "\t", "|", ","])
def test_the_delimiter_is_detected_and_named_in_the_summary(
    invoke: Invoke, emulator: Emulator, tmp_path: Path, delimiter: str
) -> None:
    path = write(tmp_path / "export.csv", export(delimiter))
    result = invoke("import", path, "--json")
    assert result.exit_code == 0, result.output
    assert summary(result)["read_as"] == {
        "format": "csv",
        "compression": None,
        "delimiter": delimiter,
        "quotechar": '"',
        "detected": True,
    }
    assert emulator.users["u2"]["firstName"] == "Hopper; Grace"
    text = flat(invoke("import", path).stdout)
    assert f"delimiter {delimiter!r} (detected; --delimiter to change)" in text


def test_a_single_quote_as_quote_character_is_detected(
    invoke: Invoke, emulator: Emulator, tmp_path: Path
) -> None:
    text = "id,email,firstName\nu1,ada@example.com,'Lovelace, Ada'\nu2,g@example.com,'Hopper, G'\n"
    result = invoke("import", write(tmp_path / "q.csv", text), "--json")
    assert result.exit_code == 0, result.output
    assert summary(result)["read_as"]["quotechar"] == "'"
    assert emulator.users["u1"]["firstName"] == "Lovelace, Ada"


def test_a_file_the_sniffer_cannot_read_falls_back_to_the_comma(
    invoke: Invoke, emulator: Emulator, tmp_path: Path
) -> None:
    # One column: nothing to tell a delimiter by (and the spaces recur in every line).
    path = write(tmp_path / "gone.csv", "id\nuser one\nuser two\n")
    result = invoke("delete", path, "--json")
    assert result.exit_code == 0, result.output
    assert summary(result)["read_as"]["delimiter"] == ","
    assert summary(result)["accepted"] == 2


def test_delimiter_overrides_the_detection(
    invoke: Invoke, emulator: Emulator, tmp_path: Path
) -> None:
    # Detected, the ; would win; the user says the file is tab-separated with ; in cells.
    path = write(tmp_path / "t.csv", "id\temail\tfirstName\nu1\ta@example.com\tx;y;z\n")
    result = invoke("import", path, "--delimiter", "\t", "--json")
    assert result.exit_code == 0, result.output
    assert summary(result)["read_as"]["detected"] is False
    assert emulator.users["u1"]["firstName"] == "x;y;z"


def test_a_header_split_at_the_wrong_delimiter_says_so_and_map_agrees(
    invoke: Invoke, emulator: Emulator, tmp_path: Path
) -> None:
    path = write(tmp_path / "eu.csv", "customer_no;mail\n7;ada@example.com\n")
    first = invoke("import", path, "--delimiter", ",")
    assert_usage_error(
        first,
        "has no 'id' column (its columns: 'customer_no;mail')",
        "the header was split at ',' (given with --delimiter)",
        "pass --delimiter ';'",
    )
    # Following the first message's advice to --map is not contradicted: the
    # second names the same columns and the same fix.
    second = invoke("import", path, "--delimiter", ",", "--map", "customer_no=id")
    assert_usage_error(
        second,
        "--map names column 'customer_no', which",
        "(its columns: 'customer_no;mail')",
        "pass --delimiter ';'",
    )
    detected = invoke("import", path, "--map", "customer_no=id", "--map", "mail=email")
    assert detected.exit_code == 0, detected.output
    assert emulator.users["7"]["email"] == "ada@example.com"
    assert emulator.requests  # and nothing was sent by the refused runs before
    assert len(emulator.requests) == 1


def test_a_missing_id_under_a_detected_delimiter_lists_the_real_columns(
    invoke: Invoke, tmp_path: Path
) -> None:
    path = write(tmp_path / "eu.csv", "customer_no;mail\n7;ada@example.com\n")
    result = invoke("import", path)
    assert_usage_error(result, "(its columns: 'customer_no', 'mail')", "--map COLUMN=id")


def flat(text: str) -> str:
    """The summary's words with its table's padding and line wraps squeezed to single spaces."""
    return " ".join(text.split())


def gz(path: Path, text: str) -> str:
    path.write_bytes(gzip.compress(text.encode()))
    return str(path)


def test_gzip_csv_and_jsonl_are_read_transparently(
    invoke: Invoke, emulator: Emulator, tmp_path: Path, backend: str
) -> None:
    result = invoke("import", gz(tmp_path / "u.csv.gz", export(";")), "--json", backend=backend)
    assert result.exit_code == 0, result.output
    assert summary(result)["read_as"]["compression"] == "gzip"
    jsonl = '{"id": "j1", "email": "j1@example.com"}\n{"id": "j2", "email": "j2@example.com"}\n'
    result = invoke("import", gz(tmp_path / "u.jsonl.gz", jsonl), "--json")
    assert result.exit_code == 0, result.output
    assert set(emulator.users) == {"u1", "u2", "j1", "j2"}
    # From stdin too: the first bytes tell gzip, not a name.
    data = gzip.compress(b'{"id": "s1", "email": "s1@example.com"}\n')
    result = invoke("import", "-", "--format", "jsonl", "--json", input=data)
    assert result.exit_code == 0, result.output
    assert "s1" in emulator.users


def test_a_tsv_gz_falls_back_to_tab(invoke: Invoke, emulator: Emulator, tmp_path: Path) -> None:
    result = invoke("delete", gz(tmp_path / "ids.tsv.gz", "id\nu1\nu2\n"), "--json")
    assert result.exit_code == 0, result.output
    assert summary(result)["read_as"]["delimiter"] == "\t"


def test_zstd_is_read_when_zstandard_is_installed(
    invoke: Invoke, emulator: Emulator, tmp_path: Path
) -> None:
    path = tmp_path / "u.csv.zst"
    cctx = zstandard.ZstdCompressor()
    # Two frames, as zstd writes a file it was given in parts.
    path.write_bytes(
        cctx.compress(export(",")[:40].encode()) + cctx.compress(export(",")[40:].encode())
    )
    result = invoke("import", str(path), "--json")
    assert result.exit_code == 0, result.output
    assert summary(result)["read_as"]["compression"] == "zstd"
    assert emulator.users["u2"]["firstName"] == "Hopper; Grace"


def test_zstd_without_zstandard_names_the_extra(
    invoke: Invoke, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "u.csv.zst"
    path.write_bytes(zstandard.ZstdCompressor().compress(export(",").encode()))
    monkeypatch.setitem(sys.modules, "zstandard", None)
    result = invoke("import", str(path))
    assert_usage_error(result, "is zstd-compressed", "pip install 'activatepro-async[zstd]'")


@pytest.mark.parametrize("kind", ["gzip", "zstd"])
def test_a_cut_short_compressed_file_is_an_error_naming_the_line_not_a_quiet_end(
    invoke: Invoke, emulator: Emulator, tmp_path: Path, kind: str
) -> None:
    text = "id,email\n" + "".join(f"u{i},u{i}@example.com\n" for i in range(3000))
    if kind == "gzip":
        data = gzip.compress(text.encode())
        path = tmp_path / "u.csv.gz"
    else:
        data = zstandard.ZstdCompressor().compress(text.encode())
        path = tmp_path / "u.csv.zst"
    path.write_bytes(data[: len(data) * 2 // 3])
    result = invoke("import", str(path))
    assert_usage_error(result, "the compressed data is damaged or cut short", " line ")
    # And with a journal, the file is refused before anything is sent.
    before = len(emulator.requests)
    result = invoke("import", str(path), "--journal", str(tmp_path / "j"))
    assert_usage_error(result, "damaged or cut short")
    assert len(emulator.requests) == before


def test_a_gzip_run_resumes_from_its_journal(
    invoke: Invoke, emulator: Emulator, tmp_path: Path, backend: str
) -> None:
    # The journal's chunks name lines of the text; the identity must count
    # those, not the newline bytes of the compressed file.
    text = "id,email\n" + "".join(f"u{i},u{i}@example.com\n" for i in range(2500))
    path = gz(tmp_path / "u.csv.gz", text)
    journal = str(tmp_path / "u.journal")
    first = invoke(
        "import", path, "--journal", journal, "--chunk-size", "100", "--json", backend=backend
    )
    assert first.exit_code == 0, first.output
    sent = len(emulator.requests)
    again = invoke("import", path, "--journal", journal, "--json", backend=backend)
    assert again.exit_code == 0, again.output
    data = summary(again)
    assert (data["skipped"], data["accepted"], data["journal"]["resumed"]) == (2500, 2500, True)
    assert len(emulator.requests) == sent


def test_repeated_ids_are_counted_with_their_first_lines(
    invoke: Invoke, emulator: Emulator, tmp_path: Path
) -> None:
    lines = ["id,email"] + [f"u{i % 3},u{i}@example.com" for i in range(10)]
    path = write(tmp_path / "u.csv", "\n".join(lines) + "\n")
    result = invoke("import", path, "--json")
    assert result.exit_code == 0, result.output
    # u0, u1, u2 at lines 2-4; every later row repeats one of them.
    assert summary(result)["duplicate_ids"] == {"rows": 7, "lines": [5, 6, 7, 8, 9]}
    text = flat(invoke("import", path).stdout)
    assert "repeated ids 7 rows repeat an earlier row's id (lines 5, 6, 7, 8, 9, ...): " in text
    assert "the API merges them into one user" in text


def test_the_summary_says_accepted_stored_and_failed_at_processing(
    invoke: Invoke, emulator: Emulator, tmp_path: Path
) -> None:
    assert (
        invoke(
            "import", write(tmp_path / "a.csv", "id,email,businessUnit\na,x@example.com,UK\n")
        ).exit_code
        == 0
    )
    # b takes x@example.com in UK too: accepted, then refused at processing.
    path = write(
        tmp_path / "b.csv",
        "id,email,businessUnit\nb,x@example.com,UK\nc,c@example.com,UK\nd,bad,UK\n",
    )
    result = invoke("import", path, "--wait")
    assert result.exit_code == 1
    out = flat(result.stdout)
    assert "accepted 2 taken by the API for processing" in out
    assert "stored 1 processed and stored" in out
    assert "failed later 1 accepted, then refused when processed" in out
    assert "the API counts them and does not say which users" in out
    assert "errors by reason (a row may have several):" in out
    data = summary(invoke("import", path, "--wait", "--json"))
    assert (data["accepted"], data["stored"], data["failed_at_processing"]) == (2, 1, 1)


def test_a_delete_says_deleted_not_stored(
    invoke: Invoke, emulator: Emulator, tmp_path: Path
) -> None:
    assert invoke("import", write(tmp_path / "u.csv", export(","))).exit_code == 0
    path = write(tmp_path / "gone.txt", "u1\nu2\n")
    result = invoke("delete", path, "--wait")
    assert result.exit_code == 0, result.output
    assert "deleted 2 processed and deleted" in flat(result.stdout)
    assert "OK: every row was deleted" in result.stdout
    assert "stored" not in result.stdout
    data = summary(invoke("delete", path, "--wait", "--json"))
    assert data["deleted"] == 2
    assert "stored" not in data
    without_wait = invoke("delete", path)
    assert "not followed: --wait shows how many were deleted" in flat(without_wait.stdout)
    assert "OK: every row was accepted" in without_wait.stdout

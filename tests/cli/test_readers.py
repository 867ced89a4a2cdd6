"""Reading CSV, JSON Lines and id files: line numbers, quoting, BOM, empty cells, bad lines."""

from __future__ import annotations

import csv
import gzip
from pathlib import Path
from typing import Any

import pytest

from activatepro_async._cli.readers import (
    InputError,
    count_lines,
    open_decompressed,
    open_source,
    sniff_dialect,
)

from .conftest import write


def rows(path: str, fmt: str | None = None, **kwargs: str) -> list[tuple[int, object, object]]:
    with open_source(path, fmt, **kwargs) as source:
        return [(row.line, row.data, row.problem) for row in source]


def test_csv_quoted_fields_keep_commas_quotes_and_line_breaks(tmp_path: Path) -> None:
    path = write(
        tmp_path / "u.csv",
        'id,email,note\n1,a@example.com,"x, y"\n2,b@example.com,"say ""hi"""\n'
        '3,c@example.com,"two\nlines"\n4,d@example.com,last\n',
    )
    assert rows(path) == [
        (2, {"id": "1", "email": "a@example.com", "note": "x, y"}, None),
        (3, {"id": "2", "email": "b@example.com", "note": 'say "hi"'}, None),
        (4, {"id": "3", "email": "c@example.com", "note": "two\nlines"}, None),
        (6, {"id": "4", "email": "d@example.com", "note": "last"}, None),
    ]


def test_csv_byte_order_mark_is_not_part_of_the_first_column(tmp_path: Path) -> None:
    path = tmp_path / "bom.csv"
    path.write_bytes("\ufeffid,email\r\n1,a@example.com\r\n".encode())
    with open_source(str(path)) as source:
        assert [row.data for row in source] == [{"id": "1", "email": "a@example.com"}]
        assert source.header == ["id", "email"]


def test_csv_empty_cells_are_left_out(tmp_path: Path) -> None:
    path = write(tmp_path / "u.csv", "id,email,firstName,lastName\n1,a@example.com,,Lovelace\n")
    assert rows(path) == [(2, {"id": "1", "email": "a@example.com", "lastName": "Lovelace"}, None)]


def test_csv_record_with_wrong_field_count_is_reported_with_its_line(tmp_path: Path) -> None:
    path = write(
        tmp_path / "u.csv", "id,email\n1,a@example.com\n\n2,b@example.com,extra\n3,c@example.com\n"
    )
    result = rows(path)
    assert [line for line, _, _ in result] == [2, 4, 5]
    _line, data, problem = result[1]
    assert data is None
    assert problem is not None
    assert "3 fields, the header has 2" in problem
    assert result[2][1] == {"id": "3", "email": "c@example.com"}


def test_tsv_extension_means_tab_delimited(tmp_path: Path) -> None:
    path = write(tmp_path / "u.tsv", "id\temail\n1\ta,b@example.com\n")
    assert rows(path) == [(2, {"id": "1", "email": "a,b@example.com"}, None)]


def test_bytes_not_in_the_encoding_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "u.csv"
    path.write_bytes(b"id,email\n1,a@example.com\n2,b\xff@example.com\n")
    with pytest.raises(InputError, match=r"line 3 is not valid utf-8.*--encoding"):
        rows(str(path))
    assert rows(str(path), encoding="latin-1")[1][1] == {"id": "2", "email": "b\xff@example.com"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "is empty"),
        ("id,email,id\n", "names column 'id' twice"),
        ("id,,email\n", "column 2 of the header has no name"),
    ],
)
def test_a_broken_header_is_an_input_error(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path / "u.csv", text)
    with pytest.raises(InputError, match=message):
        rows(path)


def test_jsonl_bad_lines_are_reported_with_their_numbers(tmp_path: Path) -> None:
    path = write(
        tmp_path / "u.jsonl",
        '{"id": "1", "email": "a@example.com", "tags": ["x"]}\n'
        "\n"
        '{"id": "2", "email": \n'
        "[1, 2]\n"
        '{"id": "3", "score": NaN}\n'
        '{"id": "4", "email": null}\n',
    )
    result = rows(path)
    assert [line for line, _, _ in result] == [1, 3, 4, 5, 6]
    assert result[0][1] == {"id": "1", "email": "a@example.com", "tags": ["x"]}
    assert result[1][2] is not None
    assert result[1][2].startswith("not valid JSON")
    assert result[2][2] == "a JSON array, not an object (a user)"
    assert result[3][2] is not None
    assert "NaN is not a JSON number" in result[3][2]
    assert result[4][1] == {"id": "4", "email": None}


def test_id_lines_skip_blank_lines(tmp_path: Path) -> None:
    path = write(tmp_path / "ids.txt", "u1\n\n  u2  \n")
    assert rows(path) == [(1, {"id": "u1"}, None), (3, {"id": "u2"}, None)]


@pytest.mark.parametrize(
    ("name", "fmt", "message"),
    [
        ("u.xlsx", None, "cannot tell the format of .*--format"),
        ("-", None, "stdin: say what it holds with --format"),
        ("missing.csv", None, "cannot read .*missing.csv"),
    ],
)
def test_what_cannot_be_opened_says_why(
    tmp_path: Path, name: str, fmt: str | None, message: str
) -> None:
    path = name if name == "-" else str(tmp_path / name)
    if name.endswith(".xlsx"):
        (tmp_path / name).write_bytes(b"PK")
    with pytest.raises(InputError, match=message):
        open_source(path, fmt)


# -- dialects and compression (the pieces other readers reuse) ---------------------------


@pytest.mark.parametrize(
    ("sample", "dialect"),
    [
        ("id;email\n1;a@example.com\n", (";", '"')),
        ("id\temail\n1\ta@example.com\n", ("\t", '"')),
        ("id|email\n1|a@example.com\n", ("|", '"')),
        ("id,name\n1,'Lovelace, Ada'\n2,'Hopper, Grace'\n", (",", "'")),
        ("id;note\n1;a, b\n2;c, d\n", (";", '"')),  # commas inside cells do not win
        ("id\nuser one\nuser two\n", (",", '"')),  # one column: the default
        ("", (",", '"')),
        # Windows line ends with blank lines (a header-only export from Excel): the
        # sniffer read the lone CRs as lines without a delimiter and gave up.
        ("id;email;lastName\r\n\r\n", (";", '"')),
        ("id;email\r\n\r\n1;a@example.com\r\n", (";", '"')),
        ("id\temail\r\n\r\n\r\n", ("\t", '"')),
    ],
)
def test_sniff_dialect(sample: str, dialect: tuple[str, str]) -> None:
    assert sniff_dialect(sample) == dialect


def test_sniff_dialect_falls_back_to_the_given_default() -> None:
    assert sniff_dialect("id\n1\n", default="\t") == ("\t", '"')


def test_a_huge_first_cell_is_not_all_given_to_the_sniffer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[int] = []
    sniff = csv.Sniffer.sniff

    def recording(self: csv.Sniffer, sample: str, delimiters: str | None = None) -> Any:
        seen.append(len(sample))
        return sniff(self, sample, delimiters)

    monkeypatch.setattr(csv.Sniffer, "sniff", recording)
    path = write(tmp_path / "big.csv", 'id;note\n1;"' + "x, " * 300_000 + '"\n2;y\n')
    with open_source(path) as source:
        assert [row.data["id"] for row in source if row.data] == ["1", "2"]
        assert source.delimiter == ";"
    assert seen
    assert max(seen) <= 64 * 1024


@pytest.mark.parametrize(
    ("blob", "message"),
    [
        # mtime=0: the same bytes in every process (pytest-xdist's workers compare ids).
        (gzip.compress(b"", mtime=0), "is empty: a CSV file needs a header line"),
        (b"\x1f\x8b\x00not gzip at all", "line 1: the compressed data is damaged or cut short"),
    ],
    ids=["empty", "damaged"],
)
def test_an_empty_or_broken_gzip_says_what_is_wrong(
    tmp_path: Path, blob: bytes, message: str
) -> None:
    path = tmp_path / "u.csv.gz"
    path.write_bytes(blob)
    with pytest.raises(InputError, match=message), open_source(str(path)) as source:
        list(source)


def test_the_first_bytes_decide_compression_not_the_name(tmp_path: Path) -> None:
    plain = write(tmp_path / "named.csv.gz", "id,email\n1,a@example.com\n")
    packed = tmp_path / "unnamed.csv"
    packed.write_bytes(gzip.compress(b"id,email\n2,b@example.com\n"))
    with open_source(plain) as source:
        assert [row.data for row in source] == [{"id": "1", "email": "a@example.com"}]
        assert source.compression is None
    with open_source(str(packed)) as source:
        assert [row.data for row in source] == [{"id": "2", "email": "b@example.com"}]
        assert source.compression == "gzip"
    with open_decompressed(str(packed)) as stream:
        assert stream.read() == b"id,email\n2,b@example.com\n"
    assert count_lines(str(packed)) == 2


def test_a_compressed_file_counts_its_compressed_bytes_for_the_eta(tmp_path: Path) -> None:
    text = "id,email\n" + "".join(f"u{i},u{i}@example.com\n" for i in range(5000))
    path = tmp_path / "u.csv.gz"
    path.write_bytes(gzip.compress(text.encode()))
    with open_source(str(path)) as source:
        assert source.total_bytes == path.stat().st_size
        rows = iter(source)
        for _ in range(2000):
            next(rows)
        assert 0 < source.bytes_read < source.total_bytes
        assert sum(1 for _ in rows) == 3000
        assert source.bytes_read == source.total_bytes

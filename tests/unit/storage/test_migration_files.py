"""Migration files without a database: naming, ordering, Flyway checksums, summaries."""

from __future__ import annotations

import zlib
from datetime import datetime
from pathlib import Path

import pytest

from fhir_server.storage.migration_files import (
    MigrationFile,
    MigrationInfo,
    discover,
    flyway_checksum,
    format_info,
    lock_key,
    status_summary,
    version_key,
)

SQL_LF = b"CREATE TABLE a (id int);\n\n-- caf\xc3\xa9\nINSERT INTO a VALUES (1);\n"


def crc_over_lines(data: bytes) -> int:
    """Independent reference: Java's readLine loop feeding one CRC32, then (int) cast."""
    text = data.decode("utf-8")
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if lines:
        lines[0] = lines[0].removeprefix("\ufeff")
    crc = 0
    for line in lines:
        crc = zlib.crc32(line.encode("utf-8"), crc)
    return crc if crc < 2**31 else crc - 2**32


def write(folder: Path, name: str, data: bytes | str = b"SELECT 1;\n") -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


# --- checksum ---------------------------------------------------------------------------


def test_checksum_matches_crc32_over_lines() -> None:
    assert flyway_checksum(SQL_LF) == crc_over_lines(SQL_LF)


def test_checksum_known_value_is_signed() -> None:
    # CRC-32 of "123456789" is the standard check value 0xCBF43926; Flyway stores it
    # as a signed Java int. Line breaks are not hashed.
    assert flyway_checksum(b"1234\n56789\n") == 0xCBF43926 - 2**32 == -873187034
    # Well-known CRC-32 of the pangram, below 2**31 so it stays positive.
    assert flyway_checksum(b"The quick brown fox\r\n jumps over the lazy dog") == 0x414FA339


def test_checksum_empty_file() -> None:
    assert flyway_checksum(b"") == 0
    assert flyway_checksum(b"\n\r\n") == 0


@pytest.mark.parametrize(
    "variant",
    [
        SQL_LF.replace(b"\n", b"\r\n"),  # Windows line endings
        SQL_LF.replace(b"\n", b"\r"),  # old Mac line endings
        b"\xef\xbb\xbf" + SQL_LF,  # UTF-8 BOM
        b"\xef\xbb\xbf" + SQL_LF.replace(b"\n", b"\r\n"),
        SQL_LF.rstrip(b"\n"),  # no final newline
    ],
)
def test_checksum_ignores_line_endings_and_bom(variant: bytes) -> None:
    assert flyway_checksum(variant) == flyway_checksum(SQL_LF)


def test_checksum_sees_content_changes() -> None:
    assert flyway_checksum(SQL_LF.replace(b"(1)", b"(2)")) != flyway_checksum(SQL_LF)
    # Only a BOM at the very start is dropped; trailing spaces count.
    assert flyway_checksum(b"a\n\xef\xbb\xbfb") != flyway_checksum(b"a\nb")
    assert flyway_checksum(b"a \nb") != flyway_checksum(b"a\nb")


def test_checksum_splits_lines_only_on_cr_and_lf() -> None:
    # Java's readLine does not break on U+2028, NEL, VT or FF (Python's splitlines does).
    data = "a\u2028b\x85c\x0bd\x0ce".encode()
    assert flyway_checksum(data) == zlib.crc32(data) - 2**32 * (zlib.crc32(data) >= 2**31)


def test_checksum_refuses_invalid_utf8() -> None:
    with pytest.raises(ValueError):
        flyway_checksum(b"SELECT '\xff';\n")


# --- discovery --------------------------------------------------------------------------


def test_discover_orders_numerically_and_normalises(tmp_path: Path) -> None:
    for name in ["V10__ten.sql", "V2__two.sql", "V1_1__one_point_one.sql", "V1__init.sql",
                 "V1.2__dotted.sql", "V2_0_1__patch.sql"]:
        write(tmp_path, name)
    files = discover(tmp_path)
    assert [f.script for f in files] == [
        "V1__init.sql", "V1_1__one_point_one.sql", "V1.2__dotted.sql", "V2__two.sql",
        "V2_0_1__patch.sql", "V10__ten.sql",
    ]
    assert [f.version for f in files] == ["1", "1.1", "1.2", "2", "2.0.1", "10"]
    assert files[1].description == "one point one"


def test_discover_fields(tmp_path: Path) -> None:
    path = write(tmp_path, "V3__add_patient_index.sql", SQL_LF)
    (only,) = discover(tmp_path)
    assert only == MigrationFile("3", "add patient index", "V3__add_patient_index.sql",
                                 crc_over_lines(SQL_LF), path)


def test_discover_description_keeps_extra_separators(tmp_path: Path) -> None:
    write(tmp_path, "V1__a__b.sql")
    write(tmp_path, "V2___lead.sql")
    assert [f.description for f in discover(tmp_path)] == ["a  b", " lead"]
    assert [f.version for f in discover(tmp_path)] == ["1", "2"]


def test_discover_recurses_and_ignores_other_files(tmp_path: Path) -> None:
    write(tmp_path, "V1__init.sql")
    write(tmp_path, "sub/V2__nested.sql")
    write(tmp_path, "README.md", "notes")
    write(tmp_path, "seed.sql", "SELECT 1;")
    write(tmp_path, "V3__draft.sql.bak")
    assert [f.script for f in discover(tmp_path)] == ["V1__init.sql", "sub/V2__nested.sql"]


def test_discover_empty_folder(tmp_path: Path) -> None:
    assert discover(tmp_path) == []


@pytest.mark.parametrize(
    "name",
    ["V1_init.sql", "V1.sql", "Vx__a.sql", "V1.a__x.sql", "V__x.sql", "V1..2__x.sql",
     "V1-2__x.sql", "V.1__x.sql", "V1.__x.sql", "V\u0661__arabic_digit.sql"],  # a non-ASCII digit
)
def test_discover_rejects_bad_names(tmp_path: Path, name: str) -> None:
    write(tmp_path, name)
    with pytest.raises(ValueError, match="bad migration file name"):
        discover(tmp_path)


@pytest.mark.parametrize("other", ["V1_0__again.sql", "V01__again.sql", "V1.0.0__again.sql"])
def test_discover_rejects_duplicate_versions(tmp_path: Path, other: str) -> None:
    write(tmp_path, "V1__init.sql")
    write(tmp_path, other)
    with pytest.raises(ValueError, match="more than one migration with version"):
        discover(tmp_path)


def test_discover_rejects_repeatable_placeholder_and_bad_encoding(tmp_path: Path) -> None:
    write(tmp_path / "r", "R__view.sql")
    with pytest.raises(ValueError, match="repeatable"):
        discover(tmp_path / "r")
    write(tmp_path / "p", "V1__p.sql", "SET search_path = ${flyway:defaultSchema};")
    with pytest.raises(ValueError, match="placeholder"):
        discover(tmp_path / "p")
    write(tmp_path / "e", "V1__latin1.sql", b"SELECT 'caf\xe9';")
    with pytest.raises(ValueError, match="UTF-8"):
        discover(tmp_path / "e")


def test_version_key() -> None:
    assert version_key("1") == version_key("1.0") == version_key("1_0_0") == (1,)
    assert version_key("1.10") > version_key("1.9") > version_key("1")
    assert version_key("0") == (0,)


def test_lock_key_is_flywayss() -> None:
    # 77431708279161 + Java "\"public\".\"flyway_schema_history\"".hashCode(),
    # as computed by a Java program replicating PostgreSQLConnection.lock.
    assert lock_key("public") == 77433833903597


# --- status_summary ----------------------------------------------------------------------


def files_for(tmp_path: Path, *names: str) -> list[MigrationFile]:
    for name in names:
        write(tmp_path, name, f"-- {name}\n")
    return discover(tmp_path)


def test_status_summary_every_case(tmp_path: Path) -> None:
    files = files_for(tmp_path, "V1__a.sql", "V2__b.sql")
    c1, c2 = files[0].checksum, files[1].checksum
    assert status_summary([], files) == "pending"
    assert status_summary([("1", c1, True)], files) == "pending"
    assert status_summary([("1", c1, True), ("2", c2, True)], files) == "up to date"
    assert status_summary([("1", c1, True), ("2", c2 + 1, True)], files) == "checksum mismatch"
    assert status_summary([("1", c1, True), ("2", c2, False)], files) == "failed"
    assert status_summary([("1", c1, True), ("2", c2, True), ("3", 7, True)], files) == "ahead"
    assert status_summary([("1", c1, True), ("2", c2, True)], files[:1]) == "ahead"
    assert status_summary([], []) == "up to date"


def test_status_summary_edge_cases(tmp_path: Path) -> None:
    files = files_for(tmp_path, "V1__a.sql", "V1_1__b.sql", "V2__c.sql")
    c = [f.checksum for f in files]
    # A version recorded as "1.1" matches file V1_1; a "1.0" row matches file V1.
    assert status_summary([("1.0", c[0], True), ("1.1", c[1], True), ("2", c[2], True)],
                          files) == "up to date"
    # Out of order (1.1 missing below 2) still counts as pending work.
    assert status_summary([("1", c[0], True), ("2", c[2], True)], files) == "pending"
    # A row without checksum (as Flyway writes for baselines) is not a mismatch.
    assert status_summary([("1", None, True), ("1.1", c[1], True), ("2", c[2], True)],
                          files) == "up to date"
    # Failure outranks a mismatch; the latest row of a version wins.
    assert status_summary([("1", c[0] + 1, True), ("1.1", c[1], False)], files) == "failed"
    assert status_summary([("1", c[0], False), ("1", c[0], True), ("1.1", c[1], True),
                           ("2", c[2], True)], files) == "up to date"


# --- format_info -------------------------------------------------------------------------


def test_format_info_table() -> None:
    rows = [
        MigrationInfo("1", "init", "V1__init.sql", "Success", datetime(2024, 5, 1, 10, 0, 3), 5),
        MigrationInfo("1.1", "add a much longer name", "V1_1__x.sql", "Pending", None, 6),
    ]
    lines = format_info(rows).splitlines()
    assert len(lines) == 6
    assert len({len(line) for line in lines}) == 1  # fixed width
    assert lines[0] == lines[2] == lines[-1] and set(lines[0]) == {"+", "-"}
    assert lines[1].split("|")[1:-1] == [
        " Category  ", " Version ", " Description            ", " Type ",
        " Installed On        ", " State   ",
    ]
    assert "| Versioned | 1       | init " in lines[3]
    assert "2024-05-01 10:00:03 | Success |" in lines[3]
    assert lines[4].endswith("|                     | Pending |")


def test_format_info_empty() -> None:
    lines = format_info([]).splitlines()
    assert "No migrations found" in lines[3]
    assert len({len(line) for line in lines}) == 1

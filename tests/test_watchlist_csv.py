"""Reading a pasted or uploaded watchlist (pipeline.watchlist.read_import) and CSV dialects
(pipeline.csvfile): Excel's byte-order mark, any-case headers, semicolons, CRLF, duplicates, refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.csvfile import DateReader, DialectError, decode, read_table
from pipeline.watchlist import ImportRow, WatchlistError, read_import

CASES = Path(__file__).parent / "data" / "cases"


def test_watchlist_bom_case_file_reads_two_rows_and_no_header_words():
    plan = read_import(decode((CASES / "watchlist_bom.csv").read_bytes()), "yahoo")
    assert plan.rows == [ImportRow(2, "IBM", "simulated", True), ImportRow(3, "ORCL", "simulated", False)]
    assert plan.skipped == []
    # the same text with the BOM still in it (pasted, or decoded as plain UTF-8)
    raw = (CASES / "watchlist_bom.csv").read_bytes().decode("utf-8")
    assert raw.startswith("\ufeff") and read_import(raw, "yahoo").rows == plan.rows


@pytest.mark.parametrize(
    "text",
    [
        "SYMBOL,SOURCE,ENABLED\nIBM,simulated,TRUE\nORCL,Simulated,False\n",
        "Ticker;Source;Enabled\r\nIBM;simulated;yes\r\nORCL;simulated;no\r\n",
        "symbol\tsource\tenabled\rIBM\tsimulated\t1\rORCL\tsimulated\t0\r",
        "IBM,simulated,true\nORCL,simulated,false\n",  # no header, but the second column is a source
    ],
)
def test_other_real_world_watchlist_shapes(text):
    plan = read_import(text, "yahoo")
    assert [(r.symbol, r.source, r.enabled) for r in plan.rows] == [
        ("IBM", "simulated", True),
        ("ORCL", "simulated", False),
    ]
    assert plan.skipped == []


def test_a_ticker_list_stays_a_ticker_list():
    plan = read_import("AAPL, msft\n7203.T;EURUSD=X  ^GSPC", "yahoo")
    assert [(r.line, r.symbol) for r in plan.rows] == [
        (1, "AAPL"),
        (1, "msft"),
        (2, "7203.T"),
        (2, "EURUSD=X"),
        (2, "^GSPC"),
    ]
    assert {r.source for r in plan.rows} == {"yahoo"} and all(r.enabled for r in plan.rows)


def test_duplicates_later_row_wins_and_rows_not_taken_have_line_numbers():
    text = "symbol,source,enabled\nIBM,simulated,true\n,simulated,true\nORCL,yahoo,perhaps\nibm,yahoo,false\n"
    plan = read_import(text, "simulated")
    assert plan.rows == [ImportRow(5, "ibm", "yahoo", False)]
    assert plan.skipped == [
        (2, "IBM", "listed again on line 5, which wins"),
        (3, ", simulated, true", "no symbol in this row"),
        (4, "ORCL", "enabled 'perhaps' is not true or false"),
    ]


def test_a_csv_whose_rows_do_not_split_alike_is_refused_naming_the_dialect():
    with pytest.raises(WatchlistError, match="comma-separated with 2 header fields but 3 fields on lines 3"):
        read_import("symbol,enabled\nIBM,true\nORCL,true,extra\n", "yahoo")


def test_semicolons_with_decimal_commas_and_dotted_dates():
    table = read_table("Datum;Schluss\r\n31.12.2024;1.234,50\r\n02.01.2025;1,0842\r\n")
    assert (
        table.delimiter == ";"
        and table.decimal_comma
        and table.dialect == "semicolon-separated, decimal comma"
    )
    assert [table.number(c[1]) for _, c in table.rows] == [1234.5, 1.0842]
    dates = DateReader([c[0] for _, c in table.rows])
    assert [dates.parse(c[0]).date().isoformat() for _, c in table.rows] == ["2024-12-31", "2025-01-02"]


def test_slashed_dates_take_one_order_per_file():
    assert DateReader(["03/05/2024"]).parse("03/05/2024").date().isoformat() == "2024-03-05"  # US
    day_first = DateReader(["03/05/2024", "31/05/2024"])  # a day above 12: the file is day first
    assert day_first.parse("03/05/2024").date().isoformat() == "2024-05-03"
    with pytest.raises(ValueError, match="'soon' is not a date"):
        day_first.parse("soon")


def test_an_empty_or_blank_text_is_nothing_to_import():
    assert read_import("", "yahoo").rows == [] and read_import(" \r\n\ufeff", "yahoo").rows == []
    with pytest.raises(DialectError):
        read_table("\n\n")

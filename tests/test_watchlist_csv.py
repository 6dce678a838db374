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


NEEDS = "not a watchlist: a watchlist file needs a Symbol (or Ticker) column, or one ticker per line."


def test_a_price_history_csv_is_refused_whole_saying_what_it_looks_like():
    text = decode((CASES / "daily_SAP.DE.csv").read_bytes())
    with pytest.raises(WatchlistError) as refused:
        read_import(text, "simulated")
    assert str(refused.value) == (
        f"This file looks like price history (Date, Open, High, Low, Close, …), {NEEDS}"
    )


@pytest.mark.parametrize(
    "text",
    [
        "Date,Open,High,Low,Close,Adj Close,Volume\n",  # the header alone
        "Date;Open;High;Low;Close\r\n2024-03-04;1,5;2\r\n",  # rows that do not split alike
        "<DATE>\t<TIME>\t<OPEN>\t<HIGH>\n2024.01.02\t00:00\t1.1\t1.2\n",  # MetaTrader's export
        (CASES / "metatrader_iso_EURUSD=X.csv").read_text(),
        (CASES / "stooq_novolume_EURUSD=X.csv").read_text(),
    ],
)
def test_other_price_history_shapes_are_refused_whole(text):
    with pytest.raises(
        WatchlistError,
        match=r"^This file looks like price history \(.*" + NEEDS.replace("(", r"\(").replace(")", r"\)"),
    ):
        read_import(text, "simulated")


@pytest.mark.parametrize(
    ("text", "looks_like"),
    [
        ("Name,Price\nApple,180.10\n", "a table of 2 columns (Name, Price) with no Symbol column"),
        (
            "2024-03-04,180.10,182.00\n",
            "a table of 3 columns (2024-03-04, 180.10, 182.00) with no Symbol column",
        ),
    ],
)
def test_any_table_with_numbers_and_no_symbol_column_is_refused_whole(text, looks_like):
    with pytest.raises(WatchlistError) as refused:
        read_import(text, "simulated")
    assert str(refused.value) == f"This file looks like {looks_like}, {NEEDS}"


def test_numbers_and_dates_are_never_tickers_in_any_shape_and_tickers_with_digits_pass():
    real = "7203.T 0700.HK 005930.KS BRK-B ^GSPC EURUSD=X GC=F"
    plan = read_import(f"AAPL 180.10 1500000\n2024-03-04 {real}", "yahoo")
    assert [r.symbol for r in plan.rows] == ["AAPL", *real.split()]
    assert plan.skipped == [
        (1, "180.10", "'180.10' is a number, not a ticker"),
        (1, "1500000", "'1500000' is a number, not a ticker"),
        (2, "2024-03-04", "'2024-03-04' is a date, not a ticker"),
    ]
    plan = read_import("Symbol,Source\nIBM,simulated\n180.10,simulated\n20240304,yahoo\n", "yahoo")
    assert [r.symbol for r in plan.rows] == ["IBM"]
    assert [(line, reason) for line, _, reason in plan.skipped] == [
        (3, "'180.10' is a number, not a ticker"),
        (4, "'20240304' is a date, not a ticker"),
    ]
    plan = read_import("IBM,simulated,true\n-2.5,simulated,true\n", "yahoo")  # no header: symbol,source
    assert [r.symbol for r in plan.rows] == ["IBM"] and plan.skipped[0][
        2
    ] == "'-2.5' is a number, not a ticker"


def test_the_watchlist_refuses_a_number_or_a_date_whoever_adds_it():
    from pipeline.watchlist import Watchlist

    class Nothing:  # a number is refused before the collection or a source is asked
        def __getattr__(self, name):
            raise AssertionError(f"asked the collection for {name}")

    watchlist = Watchlist(Nothing(), lookup=None)  # type: ignore[arg-type]
    for text, reason in [("180.10", "'180.10' is a number"), ("2024-03-04", "'2024-03-04' is a date")]:
        with pytest.raises(WatchlistError, match=f"^{reason}, not a ticker$"):
            watchlist.add(text, "simulated")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("04-Mar-2024", "'04-Mar-2024' is a date, not a ticker"),  # Excel's dd-mmm-yyyy
        ("4-mar-24", "'4-mar-24' is a date, not a ticker"),
        ("1.500.000", "'1.500.000' is a number, not a ticker"),  # German thousands
    ],
)
def test_excel_day_month_name_dates_and_german_thousands_are_not_tickers(text, reason):
    from pipeline.csvfile import is_date_only, is_number

    assert is_date_only(text) or is_number(text)
    assert is_number("1.500,25") and is_number("-1.234.567,8") and not is_number("7203.T")
    plan = read_import(f"AAPL {text} MAR-2024", "yahoo")  # a word with a dash stays a ticker
    assert [r.symbol for r in plan.rows] == ["AAPL", "MAR-2024"]
    assert plan.skipped == [(1, text, reason)]


def test_every_column_name_the_csv_replay_reads_says_price_history_to_the_import():
    from pipeline.csvfile import PRICE_COLUMNS, column_key
    from pipeline.sources.csv_replay import ALIASES

    assert {a for k, names in ALIASES.items() if k != "symbol" for a in names} <= PRICE_COLUMNS
    assert column_key(" <Adj_Close> ") == "adjclose" and "adjclose" in PRICE_COLUMNS
    with pytest.raises(WatchlistError, match=r"^This file looks like price history \(Date/Time, Last, "):
        read_import("Date/Time;Last;TickVolume\n2024-03-04 10:00;1,5;12\n", "simulated")


@pytest.mark.parametrize(
    ("text", "tickers"),
    [
        ("LOW, OPEN, TS", ["LOW", "OPEN", "TS"]),  # Lowe's, Opendoor, Tenaris: real tickers, price words
        ("AAPL;LOW;OPEN;HIGH", ["AAPL", "LOW", "OPEN", "HIGH"]),
        ("LOW\tOPEN\tTS\nAAPL\tMSFT\tGOOG", ["LOW", "OPEN", "TS", "AAPL", "MSFT", "GOOG"]),
        ("7203.T,0700.HK\nBRK-B,EURUSD=X", ["7203.T", "0700.HK", "BRK-B", "EURUSD=X"]),
    ],
)
def test_real_tickers_that_are_price_words_or_have_digits_are_a_ticker_list(text, tickers):
    plan = read_import(text, "yahoo")
    assert [r.symbol for r in plan.rows] == tickers and plan.skipped == []


@pytest.mark.parametrize(
    ("text", "tickers", "skipped"),
    [
        ("AAPL,MSFT,7203", ["AAPL", "MSFT"], [(1, "7203", "'7203' is a number")]),
        ("AAPL,180.10", ["AAPL"], [(1, "180.10", "'180.10' is a number, not a ticker")]),
    ],
)
def test_one_line_of_tickers_with_a_number_skips_the_number_not_the_list(text, tickers, skipped):
    plan = read_import(text, "yahoo")
    assert [r.symbol for r in plan.rows] == tickers
    assert [(line, t) for line, t, _ in plan.skipped] == [(line, t) for line, t, _ in skipped]
    assert all(got[2].startswith(want[2]) for got, want in zip(plan.skipped, skipped, strict=True))


def test_an_uneven_table_with_numbers_is_refused_not_read_as_tickers():
    with pytest.raises(WatchlistError) as refused:
        read_import("Name,Price\nApple,180.10\nTotal\n", "simulated")
    assert (
        str(refused.value)
        == f"This file looks like a table of 2 columns (Name, Price) with no Symbol column, {NEEDS}"
    )


def test_a_bare_asian_listing_code_is_told_to_add_its_exchange_suffix():
    hint = "a listing in Tokyo, Hong Kong or Seoul needs its exchange suffix (7203.T, 0700.HK, 005930.KS)"
    plan = read_import("7203 0700 005930 180", "yahoo")
    assert [reason for _, _, reason in plan.skipped] == [
        f"'7203' is a number; {hint}",
        f"'0700' is a number; {hint}",
        f"'005930' is a number; {hint}",
        "'180' is a number, not a ticker",
    ]

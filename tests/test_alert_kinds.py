"""The alert-kind registry drives validation, the engine and the Alerts page form: every kind
validates its defaults, describes itself and its alert, says what data it needs, and its form fields
are its parameters. A new kind is one registry entry; this test covers it without changes."""

import pytest

from pipeline.alerts import RuleError, describe, validate
from pipeline.alerts.engine import needs
from pipeline.alerts.kinds import KINDS, Needs
from pipeline.alerts.series import Series
from pipeline.intervals import INTERVALS
from ui import alerts_view as view


def sample(kind) -> dict:
    return {"symbol": "AAPL", "kind": kind.name, **{p.name: p.sample for p in kind.params}}


@pytest.mark.parametrize("name", list(KINDS))
def test_every_kind_validates_describes_and_evaluates_its_sample(name):
    kind = KINDS[name]
    assert kind.label and kind.params
    rule = validate(sample(kind))
    assert set(rule.params) == {p.name for p in kind.params}
    assert validate(
        {"symbol": "AAPL", "kind": name, **{p.name: p.sample for p in kind.params if p.default is None}}
    )
    text = describe(rule)
    assert text.startswith("AAPL ") and text != f"AAPL {name}"
    assert kind.message("AAPL", rule.params, 101.5, 1.0, 1).startswith("AAPL ")
    assert "101.50" in kind.message("AAPL", rule.params, 101.5, 1.0, 1)
    need = kind.needs(rule.params)
    assert isinstance(need, Needs) and need.prices_s >= 0
    assert all(tf in INTERVALS and n > 0 for tf, n in need.closes.items())
    horizon, keep = needs([rule])
    assert horizon >= need.prices_s and all(keep[tf] >= n for tf, n in need.closes.items())
    series = Series("AAPL", horizon, keep)
    for i in range(10):
        series.add(1_800_000_000 + i, 100.0 + i % 3, 10.0)
    result, value = kind.condition(rule.params)(series, 1_800_000_010, 101.0)
    assert result in (None, True, False, 1, -1)


@pytest.mark.parametrize("name", list(KINDS))
def test_every_parameter_is_required_or_defaulted_and_bounded(name):
    kind = KINDS[name]
    for p in kind.params:
        raw = sample(kind)
        raw[p.name] = "nonsense" if not p.choices else "not-a-choice"
        with pytest.raises(RuleError) as info:
            validate(raw)
        assert p.name in info.value.errors, (p.name, info.value.errors)
        if not p.choices:
            raw[p.name] = p.high * 2 + 1
            with pytest.raises(RuleError) as info:
                validate(raw)
            assert f"at most {p.high:,.0f}" in info.value.errors[p.name]
        if p.default is None:
            raw.pop(p.name)
            with pytest.raises(RuleError, match="is required"):
                validate(raw)


@pytest.mark.parametrize("name", list(KINDS))
def test_the_form_fields_are_the_kinds_parameters(name):
    kind = KINDS[name]
    new = view.form_fields(name)
    assert [f.name for f in new] == [p.name for p in kind.params]
    assert all(f.label == p.label for f, p in zip(new, kind.params, strict=True))
    rule = validate(sample(kind))
    editing = view.form_fields(name, rule)
    # what the form shows for a stored rule gives that rule back
    assert {f.name: f.to_param(f.value) for f in editing} == rule.params
    for f in new:
        if f.choices:
            assert f.value in f.choices and f.choice_label(f.value)
        elif f.value is None:
            assert f.placeholder, "an empty input shows an example"
    assert view.kind_label(name) == kind.label


def test_cross_kinds_and_drawn_levels():
    assert {n for n, k in KINDS.items() if k.cross} == {"price_cross", "sma_cross"}
    assert {n for n, k in KINDS.items() if k.draws_level} == {"price_above", "price_below", "price_cross"}

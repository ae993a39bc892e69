import pytest
from hypothesis import given
from hypothesis import strategies as st

from console.units import UnitError, format_duration, format_metric_value, parse_duration, parse_metric_value


@pytest.mark.parametrize(
    "text, seconds",
    [("10m", 600), ("1h30m", 5400), ("0.5s", 0.5), ("250ms", 0.25), ("45", 45), (90, 90), ("1d", 86400), ("2h 5m", 7500)],
)
def test_durations(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "10x", "m10", "1h30", "-5", True, None, [1], "1.2.3s"])
def test_bad_durations(text):
    with pytest.raises(UnitError):
        parse_duration(text)


@pytest.mark.parametrize(
    "metric, text, value",
    [
        ("error_rate", "1%", 0.01),
        ("success_rate", "99.95%", 0.9995),
        ("error_rate", "0.5%", 0.005),
        ("latency_p99", "500ms", 500),
        ("latency_p99", "0.5s", 500),
        ("latency_p99", "300", 300),
        ("cpu", "80%", 0.8),
        ("health_check_failures", "3", 3),
    ],
)
def test_metric_values(metric, text, value):
    assert parse_metric_value(metric, text) == pytest.approx(value)


@pytest.mark.parametrize("metric, text", [("latency_p99", "fast"), ("latency_p99", "5%"), ("error_rate", "1 percent"), ("cpu", False)])
def test_bad_metric_values(metric, text):
    with pytest.raises(UnitError):
        parse_metric_value(metric, text)


@pytest.mark.parametrize(
    "text, said",
    [
        ("5", "error_rate is a percentage and '5' has no unit: write \"5%\" for 5 percent"),
        ("150", "error_rate is a percentage and '150' has no unit; a percentage is from 0% to 100%"),
        (
            "0.05",
            'error_rate is a percentage and \'0.05\' has no unit: write "5%" if 0.05 is a fraction, "0.05%" if it is a percentage, '
            "or declare metrics.units.error_rate: fraction to write this metric's limits as fractions",
        ),
        ("0", "error_rate is a percentage and '0' has no unit: write \"0%\" for 0 percent"),
        (0.05, "error_rate is a percentage and 0.05 has no unit"),
        ("150%", "a percentage is from 0% to 100%, got '150%'"),
        ("-1%", "a percentage is from 0% to 100%, got '-1%'"),
    ],
)
def test_a_percentage_is_never_a_bare_number_nor_more_than_all(text, said):
    """A bare 5 read as a ratio is 500%: a canary failing 19% of its requests passed "< 5"."""
    with pytest.raises(UnitError) as refused:
        parse_metric_value("error_rate", text)
    assert str(refused.value).startswith(said)


def test_fractions_when_the_plan_says_so():
    assert parse_metric_value("error_rate", "0.05", "fraction") == 0.05
    assert parse_metric_value("error_rate", "5%", "fraction") == 0.05, "a percentage still reads as one"
    assert parse_metric_value("payment_success_rate", "98%", "percent") == pytest.approx(0.98)
    with pytest.raises(
        UnitError,
        match=r"error_rate's limits are fractions from 0 to 1 \(metrics.units.error_rate: fraction\), "
        r"got '5': write 0.05 for 5%, or \"5%\"",
    ):
        parse_metric_value("error_rate", "5", "fraction")
    with pytest.raises(UnitError, match="expected a number, got '98%'"):
        parse_metric_value("payment_success_rate", "98%")


def test_formats():
    assert format_duration(5400) == "1h30m"
    assert format_duration(0) == "0s"
    assert (format_duration(187200), format_duration(7 * 86400), format_duration(86400 + 5400)) == ("2d 4h", "7d", "1d 1h30m")
    assert format_metric_value("success_rate", 0.9995) == "99.95%"
    assert format_metric_value("error_rate", 0.005) == "0.5%"
    assert format_metric_value("latency_p99", 512.4) == "512ms"
    assert format_metric_value("error_rate", None) == "—"
    assert format_metric_value("payment_success_rate", 0.985) == "0.985"
    assert format_metric_value("payment_success_rate", 0.985, percent=True) == "98.5%"


@given(st.one_of(st.text(max_size=20), st.integers(), st.floats(allow_nan=True), st.none(), st.booleans()))
def test_duration_parser_never_crashes(value):
    try:
        parse_duration(value)
    except UnitError:
        pass

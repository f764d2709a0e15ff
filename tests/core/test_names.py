"""The validators of what users name and number: each accepts exactly what its error message says it accepts.

Every validator is checked with hypothesis against an independent predicate written from the rule the message
states (arbitrary text, names with a trailing newline, non-ASCII letters and digits), and the parsers of version
numbers (``name:3``, ``/versions/3``, lineage ``parent_version``) take ASCII digits only.
"""

from __future__ import annotations

import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from modelyard.errors import InvalidInput
from modelyard.names import check_alias, check_name, check_provider_name, check_tag, is_unicode
from modelyard.types import MAX_INT, Lineage, ModelRef, check_version_number

ALNUM = frozenset(string.ascii_letters + string.digits)
LETTERS = frozenset(string.ascii_letters)
SETTINGS = settings(max_examples=400, deadline=None)

# Characters that tempt a sloppy pattern: separators, whitespace, a newline, non-ASCII letters and digits that
# str.isalnum()/isdigit() and \w, \d accept (full-width, Arabic-Indic, superscript, the Kelvin sign).
TRICKY = "._-/:@ \t\n\r\x00\x0b\u00e9\u00b2\u0661\uff11\uff21\u212a\u0130"
near_names = st.text(alphabet=string.ascii_letters + string.digits + TRICKY, max_size=140)
anything = st.one_of(st.text(max_size=140), near_names, near_names.map(lambda s: s + "\n"),
                     st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}", fullmatch=True).map(lambda s: s + "\n"),
                     st.from_regex(r"[A-Za-z][A-Za-z0-9_-]{0,63}", fullmatch=True).map(lambda s: s + "\n"))


def accepts(check, *args) -> bool:
    try:
        check(*args)
    except (InvalidInput, ValueError):
        return False
    return True


# --------------------------------------------------------------------------------------------- the rules, stated
def name_rule(s: str) -> bool:
    """1-128 characters from ASCII letters, digits, '.', '_' and '-', starting with a letter or digit, no '..'."""
    return (1 <= len(s) <= 128 and s[0] in ALNUM and all(c in ALNUM or c in "._-" for c in s)
            and ".." not in s)


def alias_rule(s: str) -> bool:
    """1-64 ASCII letters, digits, '_' or '-', starting with a letter; 'latest' is reserved."""
    return 1 <= len(s) <= 64 and s[0] in LETTERS and all(c in ALNUM or c in "_-" for c in s) and s != "latest"


def tag_key_rule(s: str) -> bool:
    """1-128 characters from ASCII letters, digits, '.', '_', '/', ':' and '-', starting with a letter or digit."""
    return 1 <= len(s) <= 128 and s[0] in ALNUM and all(c in ALNUM or c in "._/:-" for c in s)


def provider_rule(s: str) -> bool:
    """Lowercase identifiers: [a-z][a-z0-9_-]{0,63}."""
    lower = set(string.ascii_lowercase)
    return 1 <= len(s) <= 64 and s[0] in lower and all(c in lower or c in string.digits or c in "_-" for c in s)


# --------------------------------------------------------------------------------------------- validators = rules
@SETTINGS
@given(anything)
def test_check_name_accepts_exactly_the_rule(s):
    assert accepts(check_name, s) == name_rule(s), repr(s)


@SETTINGS
@given(anything)
def test_check_alias_accepts_exactly_the_rule(s):
    assert accepts(check_alias, s) == alias_rule(s), repr(s)


@SETTINGS
@given(anything)
def test_check_tag_key_accepts_exactly_the_rule(s):
    assert accepts(check_tag, s, "v") == tag_key_rule(s), repr(s)


@SETTINGS
@given(st.one_of(st.text(max_size=1100), st.text(min_size=1020, max_size=1030), st.just("\ud800"),
                 st.text(max_size=5).map(lambda s: s + "\udfff")))
def test_check_tag_value_accepts_exactly_the_rule(value):
    rule = len(value) <= 1024 and not any("\ud800" <= c <= "\udfff" for c in value)
    assert accepts(check_tag, "k", value) == rule, repr(value)


@SETTINGS
@given(anything)
def test_check_provider_name_accepts_exactly_the_rule(s):
    assert accepts(check_provider_name, s) == provider_rule(s), repr(s)


@pytest.mark.parametrize("check", [check_name, check_alias, lambda v: check_tag(v, "x"), check_provider_name])
@pytest.mark.parametrize("value", ["abc\n", "abc\r\n", "\nabc", "ab\nc", "abc ", "\uff41bc", "ab\u212a", "abc\x00"])
def test_no_validator_lets_whitespace_or_unicode_through(check, value):
    assert not accepts(check, value)


@pytest.mark.parametrize("value", [None, 3, b"abc", ["abc"]])
def test_validators_refuse_non_strings(value):
    assert not accepts(check_name, value)
    assert not accepts(check_alias, value)
    assert not accepts(check_tag, value, "v")
    assert not accepts(check_tag, "k", value)


def test_the_error_message_states_the_rule():
    with pytest.raises(InvalidInput) as info:
        check_name("abc\n")
    assert info.value.field == "name"
    assert "1-128 characters from ASCII letters, digits, '.', '_' and '-'" in info.value.message
    assert "without '..'" in info.value.message
    with pytest.raises(InvalidInput) as info:
        check_tag("a b", "v")
    assert "ASCII letters, digits, '.', '_', '/', ':' and '-'" in info.value.message


def test_is_unicode():
    assert is_unicode("plain") and is_unicode("\u00e9\U0001f600")
    assert not is_unicode("\ud800") and not is_unicode("a\udfffb")


# --------------------------------------------------------------------------------------------- version numbers
def version_rule(text: str) -> bool:
    """ASCII digits only, no sign, space or underscore, value 1 .. 2**63 - 1."""
    return 1 <= len(text) <= 19 and all(c in string.digits for c in text) and 1 <= int(text) <= MAX_INT


digits_ish = st.one_of(st.text(alphabet=string.digits + "+-_ \n\uff11\u0661\u00b2", max_size=22),
                       st.integers(-5, 2**64).map(str), st.integers(1, 10**6).map(lambda i: f"{i}\n"))


@SETTINGS
@given(digits_ish)
def test_check_version_number_takes_ascii_digits_only(text):
    assert accepts(check_version_number, text) == version_rule(text), repr(text)
    if version_rule(text):
        assert check_version_number(text) == int(text)


@SETTINGS
@given(digits_ish)
def test_model_ref_version_takes_ascii_digits_only(text):
    ok = accepts(ModelRef.parse, f"churn:{text}")
    # ModelRef.parse strips whitespace around the whole reference (its end, here), as a shell user would expect
    assert ok == version_rule(text.rstrip()), repr(text)
    if ok:
        assert ModelRef.parse(f"churn:{text}") == ModelRef("churn", version=int(text))


@pytest.mark.parametrize("value", [True, False, 1.0, 0, -1, 2**63, "\uff11", "\u0661", "\u00b2", "+1", " 1", "1_0",
                                   "0x1", "", None, [1]])
def test_check_version_number_refuses(value):
    with pytest.raises(InvalidInput) as info:
        check_version_number(value, field="version")
    assert info.value.field == "version"


def test_check_version_number_takes_integers():
    import numpy as np

    assert check_version_number(3) == 3
    assert check_version_number(np.int64(4)) == 4
    assert check_version_number(MAX_INT) == MAX_INT


@pytest.mark.parametrize("ref", ["churn:\uff11", "churn:\u00b2", "churn:+1", "churn:1_0", "churn:0", "churn:1:2",
                                 "abc\n:1", "ab c", "churn@\uff41", "churn@latest"])
def test_model_ref_refuses(ref):
    with pytest.raises(InvalidInput):
        ModelRef.parse(ref)


# --------------------------------------------------------------------------------------------- lineage
def test_lineage_takes_strings():
    lineage = Lineage.from_mapping({"source_run": "run-1", "dataset": "s3://d/a", "datasets": ["s3://d/b"],
                                    "code_ref": "git:abc", "parent_version": "3", "notebook": "train.ipynb"})
    assert lineage.datasets == ("s3://d/b", "s3://d/a")
    assert lineage.parent_version == 3
    assert dict(lineage.extra) == {"notebook": "train.ipynb"}


@pytest.mark.parametrize(("data", "field"), [
    ({"notebook": 3}, "lineage.notebook"),
    ({"notebook": ["a"]}, "lineage.notebook"),
    ({"notebook": {"a": "b"}}, "lineage.notebook"),
    ({"source_run": 5}, "lineage.source_run"),
    ({"code_ref": True}, "lineage.code_ref"),
    ({"datasets": 5}, "lineage.datasets"),
    ({"datasets": [1]}, "lineage.datasets"),
    ({"dataset": {"a": 1}}, "lineage.dataset"),
    ({"parent_version": "\uff11"}, "lineage.parent_version"),
    ({"parent_version": 1.9}, "lineage.parent_version"),
    ({"parent_version": True}, "lineage.parent_version"),
    ({"notebook": "\ud800"}, "lineage.notebook"),
])
def test_lineage_refuses_what_is_not_a_string(data, field):
    with pytest.raises(InvalidInput) as info:
        Lineage.from_mapping(data)
    assert info.value.field == field

"""One test per (model, case, check) found under the golden root: ``golden[model/case/check]``.

``GOLDEN_DIR=/other/root python -m pytest -m golden -k dynamicrafter`` runs another set of cases
of the same format. Models without an adapter module carry the ``unported`` marker too: they are collected
and fail (``-m unported`` shows them); the default test command deselects them.
"""
import pytest

from common import golden as harness

_CASES = harness.discover()
_PARAMS = []
for _case in _CASES:
    _marks = [pytest.mark.golden]
    if not harness.has_adapter(_case.model):
        _marks.append(pytest.mark.unported)
    for _name in _case.check_names:
        _PARAMS.append(pytest.param(_case, _name, id=f"{_case.model}/{_case.name}/{_name}", marks=_marks))


def test_golden_root_has_cases():
    """The golden root must exist and hold cases: an empty root would otherwise pass silently."""
    assert _CASES, f"no golden cases under {harness.golden_root()} (set GOLDEN_DIR or put ../shared beside the repo)"


@pytest.mark.parametrize("case,check", _PARAMS)
def golden(case, check):
    harness.run_check(case, check)

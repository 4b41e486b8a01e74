"""One test per (model, case, check) found under the golden root: ``golden[model/case/check]``.

``GOLDEN_DIR=/other/root python -m pytest -m golden -k dynamicrafter`` runs another set of cases
of the same format. A check that its model's adapter does not implement (every check of a model with no
adapter module, and the checks of features not ported yet) carries the ``unported`` marker too: it is
collected and fails when run (``-m golden``, ``-m unported``); the default test command deselects it.
Marking reads only the adapter class's ``check_<name>`` methods: no case is built at collection time.
"""
import pytest

from common import golden as harness

_CASES = harness.discover()
_PARAMS = []
for _case in _CASES:
    for _name in _case.check_names:
        _marks = [pytest.mark.golden]
        if not harness.is_implemented(_case, _name):
            _marks.append(pytest.mark.unported)
        _PARAMS.append(pytest.param(_case, _name, id=f"{_case.model}/{_case.name}/{_name}", marks=_marks))


def test_golden_root_has_cases():
    """The golden root must exist and hold cases: an empty root would otherwise pass silently."""
    assert _CASES, f"no golden cases under {harness.golden_root()} (set GOLDEN_DIR or put ../shared beside the repo)"


@pytest.mark.parametrize("case,check", _PARAMS)
def golden(case, check):
    harness.run_check(case, check)

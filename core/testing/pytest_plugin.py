"""lamina's pytest plugin (entry point `pytest11`): the `lamina_conformance` marker.

    @pytest.mark.lamina_conformance(Snake, sample_shapes=[(4, 3)])
    def test_snake(lamina_check):
        lamina_check()

runs one test per conformance property (gradients, dtype, shape, ...) of the class.
The function form needs no marker: `test_snake = lamina_conformance(Snake, sample_shapes=[(4, 3)])`.
"""
from __future__ import annotations

from typing import Any


def pytest_configure(config: Any) -> None:
    config.addinivalue_line(
        "markers",
        "lamina_conformance(cls, sample_shapes=None, cases=None, **kwargs): run lamina's "
        "conformance kit on a layer, loss or optimizer class, one test per property; the test "
        "takes the argument lamina_check and calls it",
    )


def pytest_generate_tests(metafunc: Any) -> None:
    marker = metafunc.definition.get_closest_marker("lamina_conformance")
    if marker is None or "lamina_check" not in metafunc.fixturenames:
        return
    from lamina.testing.conformance import checks_for

    checks = checks_for(*marker.args, **marker.kwargs)
    metafunc.parametrize("lamina_check", checks, ids=[check.id for check in checks])

"""lamina.checks, the toolbox plugins check their arguments with: lamina-style messages for bad
values, good values passed through."""
from __future__ import annotations

import numpy as np
import pytest

import lamina


@pytest.mark.parametrize(
    "call, expected",
    [
        (lambda c: c.boolean(1, "shared", "Noise"), "Noise(shared=1): shared must be True or False, got 1 (int)"),
        (lambda c: c.boolean(None, "shared", "Noise"), "shared must be True or False, got None (NoneType)"),
        (lambda c: c.non_negative_int(-1, "patience", "Stop"),
         "Stop(patience=-1): patience must be an int >= 0, got -1 (int)"),
        (lambda c: c.non_negative_int(2.0, "patience", "Stop"), "patience must be an int >= 0, got 2.0 (float)"),
        (lambda c: c.one_of("hoizontal", "mode", "Flip", ["horizontal", "vertical"]),
         "Flip(mode='hoizontal'): mode must be 'horizontal' or 'vertical', got 'hoizontal' (str). "
         "Did you mean 'horizontal'?"),
        (lambda c: c.one_of([1], "mode", "Flip", ["a", "b", "c"]), "mode must be 'a', 'b' or 'c', got [1] (list)."),
    ],
)
def test_the_checks_toolbox_refuses_with_lamina_style_messages(call, expected):
    with pytest.raises(lamina.ArgumentError) as info:
        call(lamina.checks)
    assert expected in str(info.value)


def test_the_checks_toolbox_passes_good_values_through():
    checks = lamina.checks
    assert checks.boolean(np.bool_(True), "f", "O") is True and checks.non_negative_int(0, "n", "O") == 0
    assert checks.one_of("min", "mode", "O", ("min", "max")) == "min"

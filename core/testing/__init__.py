"""lamina.testing: the conformance kit, the gradient checker and the pytest plugin.

The tools that check plugins, for lamina's tests and for plugin authors.

Finite-difference gradient checks (float64, central differences):

>>> errors = check_layer_gradients(Linear(3), np.random.default_rng(0).normal(size=(4, 2)))
>>> max(errors.values()) < 1e-7
True

The conformance kit (every contract of a layer, loss or optimizer class, by property):

>>> results = check_plugin(Snake, sample_shapes=[(4, 3)])
>>> test_snake = lamina_conformance(Snake, sample_shapes=[(4, 3)])   # in a pytest module
"""
from lamina.case import (
    Case,
    away_from_zero,
    binary_for,
    distinct,
    integers,
    labels_for,
    normal,
    normal_for,
    open_unit,
    probabilities,
)
from lamina.testing.conformance import (
    PROPERTIES,
    Check,
    Result,
    cases_for,
    check_plugin,
    checks_for,
    format_failures,
    lamina_conformance,
)
from lamina.testing.gradcheck import check_layer_gradients, check_loss_gradients, numerical_gradient, relative_error

__all__ = [
    "PROPERTIES",
    "Case",
    "Check",
    "Result",
    "away_from_zero",
    "binary_for",
    "cases_for",
    "check_layer_gradients",
    "check_loss_gradients",
    "check_plugin",
    "checks_for",
    "distinct",
    "format_failures",
    "integers",
    "labels_for",
    "lamina_conformance",
    "normal",
    "normal_for",
    "numerical_gradient",
    "open_unit",
    "probabilities",
    "relative_error",
]

"""lamina's conformance kit on the template's plugins: one test per property."""
import pytest

from lamina.testing import lamina_conformance
from lamina_template import LogCosh, Scale

# One line per class: gradients (training and inference), dtypes, shapes, accumulation into
# .grad, no input mutation, save/load round trip, determinism, clear shape errors.
test_scale = lamina_conformance(Scale)
test_log_cosh = lamina_conformance(LogCosh)


# The same through the pytest marker that lamina's pytest plugin provides:
@pytest.mark.lamina_conformance(Scale, sample_shapes=[(3, 2)], init=2.0)
def test_scale_with_other_arguments(lamina_check):
    lamina_check()

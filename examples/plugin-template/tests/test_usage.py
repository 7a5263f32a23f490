"""The plugins work by name once the package is installed."""
import numpy as np

import lamina
from lamina_template import LogCosh, Scale


def test_the_plugins_are_registered_by_name():
    assert type(lamina.layer("Scale")) is Scale
    assert type(lamina.loss("log_cosh")) is LogCosh
    info = lamina.get_registry().get("layer", "scale")
    assert info.package == "lamina-template"


def test_a_model_trains_with_them():
    lamina.seed(0)
    x = np.random.default_rng(0).normal(size=(64, 3))
    y = x @ np.array([[1.0], [-2.0], [0.5]])
    model = lamina.Model([{"type": "Linear", "units": 8}, {"type": "Scale", "init": 0.5}, {"type": "Linear", "units": 1}])
    history = model.train(x, y, optim=lamina.optimizer("Adam", lr=0.05), loss="LogCosh", epochs=100, verbose=False)
    assert history["loss"][-1] < history["loss"][0] / 2

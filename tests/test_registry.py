"""The plugin registry: names, case, aliases, unknown names, conflicts, broken plugins, loading."""
from __future__ import annotations

import itertools
import textwrap
import types
import warnings

import pytest
from conftest import make_distribution, run_python

import lamina
from lamina.plugins import MSE, SGD, Linear, Relu

_ids = itertools.count()

LAYER_PLUGIN = """
    import lamina

    class {cls}(lamina.Layer):
        def forward(self, x):
            return x

        def backward(self, grad):
            return grad

    @lamina.hookimpl
    def register_layers(register):
        register({cls}{extra})
"""


def unique(prefix: str) -> str:
    return f"{prefix}_{next(_ids)}_{id(object())}"


def layer_plugin(cls: str, extra: str = "") -> str:
    return LAYER_PLUGIN.format(cls=cls, extra=extra)


def fresh() -> lamina.Registry:
    return lamina.Registry()


# -- names, case, aliases --------------------------------------------------------------------


def test_builtins_are_registered_through_the_entry_point_group_as_package_lamina():
    names = {(i.kind, i.name): i for i in lamina.get_registry().plugins()}
    expected = {("layer", n) for n in ("Linear", "Sigmoid", "Relu", "Softmax", "Tanh")}
    expected |= {("loss", "MSE"), ("optimizer", "SGD")}
    assert expected <= set(names)
    for key in expected:
        assert names[key].package == "lamina"
        assert names[key].version == lamina.__version__


def test_lookup_ignores_case_and_builds_the_registered_class():
    assert type(lamina.layer("relu")) is Relu
    assert type(lamina.layer("RELU")) is Relu
    assert type(lamina.loss("mse")) is MSE
    optim = lamina.optimizer("sgd", lr=0.5)
    assert type(optim) is SGD and optim.lr == 0.5
    layer = lamina.layer("LINEAR", 4)
    assert type(layer) is Linear and layer.units == 4


def test_aliases_and_package_qualified_names_reach_the_same_class():
    assert type(lamina.layer("Dense", units=2)) is Linear
    assert type(lamina.loss("mean_squared_error")) is MSE
    assert type(lamina.layer("lamina:Relu")) is Relu
    assert type(lamina.layer("LAMINA:relu")) is Relu


def test_unknown_name_suggests_close_matches_and_where_to_look():
    with pytest.raises(lamina.UnknownPluginError) as info:
        lamina.layer("Rellu")
    message = str(info.value)
    assert isinstance(info.value, LookupError)
    assert "'Rellu'" in message and "Did you mean 'Relu'?" in message
    assert "Linear" in message and "lamina list-plugins" in message


def test_unknown_name_without_a_close_match_lists_what_exists():
    with pytest.raises(lamina.UnknownPluginError) as info:
        lamina.loss("Zzzzzz")
    assert "Did you mean" not in str(info.value)
    assert "Available losses: BinaryCrossEntropy, CrossEntropy, Huber, L1, MSE." in str(info.value)


def test_a_name_of_another_kind_is_unknown_for_this_kind():
    with pytest.raises(lamina.UnknownPluginError, match="unknown loss 'Relu'"):
        lamina.loss("Relu")


def test_qualified_name_with_the_wrong_package_says_which_package_has_it():
    with pytest.raises(lamina.UnknownPluginError, match="provided as 'lamina:Relu'"):
        lamina.layer("other-package:Relu")


@pytest.mark.parametrize("bad", [None, "", 3])
def test_a_name_that_is_not_a_string_is_an_argument_error(bad):
    with pytest.raises(lamina.ArgumentError, match="non-empty string"):
        lamina.layer(bad)


def test_wrong_constructor_arguments_name_the_plugin_and_its_signature():
    with pytest.raises(lamina.ArgumentError) as info:
        lamina.layer("Linear", unit=8)
    assert "layer 'Linear' takes Linear(units, weight_init='he_uniform', bias_init='zeros')" in str(info.value)
    assert "missing a required argument: 'units'" in str(info.value)


def test_unknown_kind_lists_the_kinds():
    with pytest.raises(lamina.ArgumentError,
                       match="layer, loss, optimizer, metric, callback, initializer, schedule, dataset, strategy"):
        lamina.get_registry().get("metrics_", "accuracy")


# -- third-party distributions -----------------------------------------------------------------


def test_a_third_party_distribution_registers_by_name_with_its_package_and_version(site):
    module = unique("lamina_thirdparty")
    make_distribution(site, "lamina-thirdparty", "2.3.4", {module: layer_plugin("Wobble", ', aliases=("wob",)')})
    registry = fresh()
    info = registry.get("layer", "wobble")
    assert (info.name, info.package, info.version, info.aliases) == ("Wobble", "lamina-thirdparty", "2.3.4", ("wob",))
    assert registry.get("layer", "WOB") is info
    assert registry.get("layer", "lamina_thirdparty:Wobble") is info  # PEP 503 spelling
    assert registry.get("layer", "Linear").package == "lamina"  # built-ins still there


def test_two_packages_with_one_name_make_it_ambiguous_and_both_stay_reachable(site):
    make_distribution(site, "lamina-one", "1.0", {unique("lamina_one"): layer_plugin("Linear")})
    make_distribution(site, "lamina-two", "2.0", {unique("lamina_two"): layer_plugin("Blend")})
    make_distribution(site, "lamina-three", "3.0", {unique("lamina_three"): layer_plugin("Blend")})
    registry = fresh()
    with pytest.raises(lamina.AmbiguousPluginError) as info:
        registry.get("layer", "linear")
    message = str(info.value)
    assert isinstance(info.value, LookupError)
    assert "lamina 0.1.0" in message and "lamina-one 1.0" in message
    assert "'lamina:Linear' or 'lamina-one:Linear'" in message
    assert registry.get("layer", "lamina:Linear").cls is Linear
    assert registry.get("layer", "lamina-one:linear").package == "lamina-one"
    with pytest.raises(lamina.AmbiguousPluginError, match="lamina-two:Blend"):
        registry.build("layer", "Blend")
    assert registry.get("layer", "lamina-three:Blend").version == "3.0"


def test_an_alias_that_collides_with_another_packages_name_is_ambiguous(site):
    make_distribution(site, "lamina-alias", "1.0",
                      {unique("lamina_alias"): layer_plugin("Smooth", ', aliases=("Tanh",)')})
    registry = fresh()
    with pytest.raises(lamina.AmbiguousPluginError):
        registry.get("layer", "tanh")
    assert registry.get("layer", "Smooth").package == "lamina-alias"


def test_a_broken_plugin_is_recorded_and_warned_about_once_and_lamina_stays_usable(site):
    make_distribution(site, "lamina-broken", "0.3", {unique("lamina_broken"): "import lamina_no_such_module\n"})
    registry = fresh()
    with pytest.warns(lamina.PluginWarning) as record:
        assert registry.get("layer", "Relu").cls is Relu
    assert len(record) == 1
    message = str(record[0].message)
    assert "lamina-broken 0.3" in message and "ModuleNotFoundError" in message
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        registry.get("layer", "Linear")  # no second warning
        [failure] = registry.failures
    assert failure.package == "lamina-broken" and failure.version == "0.3"
    assert "lamina_no_such_module" in failure.error


@pytest.mark.parametrize(
    "source, expected",
    [
        (layer_plugin("Bad").replace("register_layers(register)", "register_layers(reg)"), "named 'register'"),
        (layer_plugin("Bad").replace("def register_layers", "def register_layer"), "Did you mean 'register_layers'?"),
        (layer_plugin("Bad").replace("register(Bad)", "register(42)"), "not a subclass of lamina.Layer"),
        (layer_plugin("Bad").replace("register(Bad)", "register(Bad, name='a:b')"), "without ':'"),
        (layer_plugin("Bad").replace("register(Bad)", "register(Bad); register(Bad, name='BAD')"),
         "registers Bad twice under the name 'bad'"),
        (layer_plugin("Bad").replace("register(Bad)", "1 / 0"), "ZeroDivisionError"),
    ],
    ids=["wrong-signature", "unknown-hook", "not-a-layer", "bad-name", "duplicate-in-package", "raises"],
)
def test_an_invalid_plugin_fails_alone_with_an_error_that_says_what_to_fix(site, source, expected):
    make_distribution(site, "lamina-invalid", "0.1", {unique("lamina_invalid"): source})
    registry = fresh()
    with pytest.warns(lamina.PluginWarning, match="lamina-invalid"):
        registry.load()
    [failure] = registry.failures
    assert expected in failure.error
    assert not [i for i in registry.plugins() if i.package == "lamina-invalid"]  # nothing half-registered
    assert registry.get("layer", "Relu").cls is Relu


def test_plugins_load_lazily_and_only_once(site, tmp_path):
    calls = tmp_path / "calls.txt"
    source = layer_plugin("Counted").replace(
        "        register(Counted)",
        f"        open({str(calls)!r}, 'a').write('called\\n')\n        register(Counted)",
    )
    make_distribution(site, "lamina-counted", "1.0", {unique("lamina_counted"): source})
    registry = fresh()
    assert not calls.exists()  # creating a registry loads nothing
    registry.get("layer", "Counted")
    registry.get("layer", "Relu")
    registry.plugins()
    assert calls.read_text() == "called\n"


def test_importing_lamina_loads_no_plugin():
    result = run_python(
        "-c",
        "import sys, lamina; print('lamina.plugins' in sys.modules); "
        "lamina.layer('Relu'); print('lamina.plugins' in sys.modules)",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "True"]


# -- plugins defined in a script ----------------------------------------------------------------


def test_a_plugin_defined_in_a_script_registers_with_register_plugin():
    class Negate(lamina.Layer):
        def forward(self, x):
            return -x

        def backward(self, grad):
            return -grad

    plugin = types.SimpleNamespace(
        register_layers=lamina.hookimpl(lambda register: register(Negate, name=unique("Negate"))))
    registry = fresh()
    [info] = registry.add_plugin(plugin, package="my-script")
    assert registry.build("layer", info.name).forward(1.0) == -1.0
    assert info.package == "my-script"


KIND_EXAMPLES = {
    "layer": lamina.Layer,
    "loss": lamina.Loss,
    "optimizer": lamina.Optimizer,
    "metric": lamina.Metric,
    "callback": lamina.Callback,
    "initializer": lamina.Initializer,
    "schedule": lamina.Schedule,
    "dataset": lamina.Dataset,
    "strategy": lamina.Strategy,
}


def test_every_hook_has_a_kind_and_a_test():
    """A hook added to hookspecs without a kind (or a kind without an example here) fails."""
    hooks = {name for name in dir(lamina.hookspecs) if name.startswith("register_")}
    assert hooks == {kind.hook for kind in lamina.KINDS.values()}
    assert set(KIND_EXAMPLES) == set(lamina.KINDS)


@pytest.mark.parametrize("kind", sorted(KIND_EXAMPLES))
def test_each_hook_registers_its_kind_by_name(kind):
    spec = lamina.KINDS[kind]
    cls = type(unique("Custom"), (KIND_EXAMPLES[kind],), {})
    plugin = types.SimpleNamespace(**{spec.hook: lamina.hookimpl(lambda register: register(cls, aliases=("extra",)))})
    registry = lamina.Registry(group=None)
    registry.add_plugin(plugin, package="hook-test", version="9.9")
    assert type(registry.build(kind, cls.__name__.upper())) is cls
    assert registry.get(kind, "EXTRA").version == "9.9"
    other_kind = next(k for k in KIND_EXAMPLES if k != kind)
    with pytest.raises(lamina.UnknownPluginError):
        registry.get(other_kind, cls.__name__)


def test_add_plugin_raises_for_an_invalid_plugin():
    plugin = types.SimpleNamespace(register_losses=lamina.hookimpl(lambda register: register(Relu)))
    with pytest.raises(lamina.PluginError, match="not a subclass of lamina.Loss"):
        fresh().add_plugin(plugin, package="bad-script")


def test_a_registry_without_an_entry_point_group_starts_empty():
    registry = lamina.Registry(group=None)
    assert registry.plugins() == []
    with pytest.raises(lamina.UnknownPluginError, match="Available layers: none"):
        registry.get("layer", "Relu")


# -- a plugin module without marked hooks, or registering nothing; names equal up to case ----------


UNMARKED = """
    import lamina

    class Unmarked(lamina.Layer):
        def forward(self, x):
            return x

    def register_layers(register):   # the marker is missing
        register(Unmarked)
"""


def test_an_unmarked_hook_fails_the_plugin_with_the_fix(site):
    make_distribution(site, "lamina-unmarked", "0.1", {"lamina_unmarked_mod": UNMARKED})
    registry = lamina.Registry()
    with pytest.warns(lamina.PluginWarning, match="decorate register_layers with @lamina.hookimpl"):
        registry.load()
    [failure] = registry.failures
    assert failure.package == "lamina-unmarked"
    assert "defines register_layers without the @lamina.hookimpl marker" in failure.error


def test_a_plugin_module_that_registers_nothing_fails(site):
    make_distribution(site, "lamina-empty", "0.1", {"lamina_empty_mod": "import lamina\n"})
    registry = lamina.Registry()
    with pytest.warns(lamina.PluginWarning):
        registry.load()
    [failure] = registry.failures
    assert "registers nothing: it implements none of lamina's hooks" in failure.error


def test_register_plugin_with_nothing_registered_raises():
    empty = types.SimpleNamespace(register_layers=lambda register: None)
    with pytest.raises(lamina.PluginError, match="without the @lamina.hookimpl marker"):
        lamina.register_plugin(empty, package="lamina-test-empty")


@pytest.mark.parametrize(
    "registration",
    ["register(Dup); register(Dup, name='dup')", "register(Dup, aliases=['DUP'])",
     "register(Dup, name='d', aliases=['D'])"],
)
def test_names_equal_up_to_case_are_one_error_whichever_way_they_come(registration):
    namespace: dict = {"lamina": lamina}
    exec(textwrap.dedent(f"""
        class Dup(lamina.Layer):
            def forward(self, x):
                return x

        @lamina.hookimpl
        def register_layers(register):
            {registration}
    """), namespace)
    plugin = types.SimpleNamespace(register_layers=namespace["register_layers"])
    with pytest.raises(lamina.PluginError, match="differ in more than case"):
        lamina.register_plugin(plugin, package="lamina-test-dup")


def test_a_plugin_failure_warning_points_at_the_users_line(site):
    make_distribution(site, "lamina-broken", "0.1", {"lamina_broken_mod": "raise ImportError('nope')\n"})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        lamina.Registry().get("layer", "Relu")  # this line
    [warning] = [w for w in caught if issubclass(w.category, lamina.PluginWarning)]
    assert warning.filename == __file__, warning.filename


# -- loading never depends on where the first lookup comes from -----------------------------------


def test_plugins_load_from_the_first_lookup_deep_inside_a_recursion():
    result = run_python("-c", textwrap.dedent("""
        import sys, warnings
        import lamina
        warnings.simplefilter("error")  # a plugin recorded as failed would warn
        def down(n):
            return lamina.get_registry().get("layer", "Linear") if n == 0 else down(n - 1)
        depth = 0
        frame = sys._getframe()
        while frame is not None:
            depth, frame = depth + 1, frame.f_back
        down(sys.getrecursionlimit() - depth - 10)  # the first lookup, 10 frames below the limit
        assert not lamina.get_registry().failures
        lamina.layer("Linear", 2)
        print(len(lamina.get_registry().plugins("layer")))
    """))
    assert result.returncode == 0, result.stderr[-3000:]
    assert int(result.stdout) > 20


@pytest.mark.parametrize("error", [KeyboardInterrupt, MemoryError, RecursionError], ids=lambda e: e.__name__)
def test_a_load_that_fails_records_nothing_and_the_next_lookup_loads_again(site, tmp_path, error):
    """The process failed (an interrupt, no memory or stack left), not the plugin: nothing is
    recorded as failed or absent, and the registry loads from scratch on the next lookup."""
    flag = tmp_path / "second-time"
    source = f"import pathlib\nif not pathlib.Path({str(flag)!r}).exists():\n    raise {error.__name__}()\n"
    module = unique("lamina_flaky")
    make_distribution(site, "lamina-flaky", "1.0", {module: source + textwrap.dedent(layer_plugin("Flaky"))})
    registry = fresh()
    with pytest.raises(error) as info:
        registry.get("layer", "Relu")
    if error is not KeyboardInterrupt:
        assert "lamina-flaky 1.0" in "".join(getattr(info.value, "__notes__", []))
    flag.write_text("")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert registry.get("layer", "Flaky").package == "lamina-flaky"
        assert registry.get("layer", "Relu").cls is Relu
        assert registry.failures == [] and registry.unavailable("lamina") is None
    assert len([i for i in registry.plugins() if i.name == "Relu"]) == 1  # registered once, not twice

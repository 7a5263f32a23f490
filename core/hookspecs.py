"""The hooks a lamina plugin implements. Their docstrings are the plugin-author documentation.

A plugin is a module (or any object) with functions decorated by `@lamina.hookimpl`,
named like the hooks below. Publish it through the `lamina` entry-point group::

    [project.entry-points.lamina]
    snake = "lamina_snake"

Each hook receives `register(cls, name=None, aliases=())`:

- `cls` is the class to register; it must subclass the hook's base class.
- `name` defaults to `cls.__name__`; lookups ignore case, and it may not contain ':'.
- `aliases` are extra names for the same class (e.g. `aliases=("mae",)`).

A name registered by two packages is ambiguous: neither wins, and users pick one with its
package-qualified name, `"lamina-snake:Snake"`. Two registrations of one name by the same
package are an error in that package.
"""
from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("lamina")
hookimpl = pluggy.HookimplMarker("lamina")


@hookspec
def register_layers(register):
    """Register layer classes (subclasses of `lamina.Layer`).

    A layer implements `forward(x) -> y` in numpy; that is enough: lamina records the forward
    (on every call outside model inference) and derives the backward pass from it
    (`lamina.autodiff`; an operation without a derivative rule raises a LaminaError naming it).
    Weights whose shape depends on the input are made in `build(x)`, called once before the first forward; Parameter
    attributes (and those of sublayer attributes) are found by `parameters()` without listing.
    Optionally, for speed or memory, a layer also writes `backward(grad) -> grad_x`: it *adds*
    each parameter's gradient into `Parameter.grad` and returns the input gradient.
    Constructor arguments are stored under attributes of the same names.

        @lamina.hookimpl
        def register_layers(register):
            register(Snake, aliases=("snake_activation",))
    """


@hookspec
def register_losses(register):
    """Register loss classes (subclasses of `lamina.Loss`).

    A loss implements `forward(pred, y)` (called as `loss(pred, y)`, which returns a float).
    Written in numpy and returning the scalar it computes (not a `float(...)` of it), that is
    enough: lamina derives `backward()` from it, as for a forward-only layer. Optionally it
    writes `backward() -> dL/dpred` itself: the gradient of exactly the value `forward`
    returned, with pred's shape and dtype.

        @lamina.hookimpl
        def register_losses(register):
            register(LogCosh)
    """


@hookspec
def register_optimizers(register):
    """Register optimizer classes (subclasses of `lamina.Optimizer`).

    An optimizer implements `update(param, state)`, which changes `param.value` in place
    from `param.grad`; `state` is a dict kept per parameter between steps.

        @lamina.hookimpl
        def register_optimizers(register):
            register(Lion)
    """


@hookspec
def register_metrics(register):
    """Register metric classes (subclasses of `lamina.Metric`).

    A metric implements `__call__(pred, y) -> float`, a mean over the batch's samples; its
    history key is its `name` class attribute (default: the class name in snake_case).

        @lamina.hookimpl
        def register_metrics(register):
            register(TopKAccuracy, name="top_k_accuracy")
    """


@hookspec
def register_callbacks(register):
    """Register callback classes (subclasses of `lamina.Callback`).

    A callback overrides any of `on_train_begin(logs)`, `on_epoch_begin(epoch, logs)`,
    `on_epoch_end(epoch, logs)` and `on_train_end(logs)`; `self.model` is the model being
    trained, and `self.model.stop_training = True` stops it after the current epoch.

        @lamina.hookimpl
        def register_callbacks(register):
            register(TensorBoardLogger)
    """


@hookspec
def register_initializers(register):
    """Register weight initialiser classes (subclasses of `lamina.Initializer`).

    An initialiser implements `sample(shape, fan_in, fan_out) -> array`, drawing from
    `lamina.rng()`; layers take it by name, e.g. `Linear(8, weight_init="orthogonal")`.

        @lamina.hookimpl
        def register_initializers(register):
            register(Orthogonal, name="orthogonal")
    """


@hookspec
def register_schedules(register):
    """Register learning-rate schedule classes (subclasses of `lamina.Schedule`).

    A schedule implements `__call__(step) -> lr` for the optimizer step `step` (from 0) and
    returns a finite number >= 0; any optimizer's `lr` accepts it.

        @lamina.hookimpl
        def register_schedules(register):
            register(OneCycle)
    """


@hookspec
def register_datasets(register):
    """Register dataset classes (subclasses of `lamina.Dataset`).

    A dataset's constructor takes its options; `load()` returns
    `(x_train, y_train, x_test, y_test)`. Users get them with `lamina.dataset(name, **options)`
    and in `lamina train` configs (`[dataset] name = "..."`).

        @lamina.hookimpl
        def register_datasets(register):
            register(FashionMnist, name="fashion_mnist")
    """


@hookspec
def register_strategies(register):
    """Register training strategy classes (subclasses of `lamina.Strategy`).

    A strategy spreads training over processes: it shards each global batch, sums gradients
    with `allreduce`, and keeps all processes in step. `model.train(..., strategy="name")`
    and `strategy = "name"` in a `lamina train` config pick one; "local" is the default.

        @lamina.hookimpl
        def register_strategies(register):
            register(Gloo, name="gloo")
    """

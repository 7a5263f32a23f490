"""The plugin registry: finds plugins through entry points, once, on first lookup, and builds by name."""
from __future__ import annotations

import contextlib
import difflib
import inspect
import os
import re
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from importlib.metadata import EntryPoint, entry_points
from types import FrameType
from typing import Any

import pluggy
from attrs import frozen

from lamina import hookspecs
from lamina.checks import describe as _describe
from lamina.errors import (
    AmbiguousPluginError,
    ArgumentError,
    PluginError,
    UnknownPluginError,
    warn,
)
from lamina.protocols.callback import Callback
from lamina.protocols.dataset import Data, Dataset
from lamina.protocols.initializer import Initializer
from lamina.protocols.layer import Layer
from lamina.protocols.loss import Loss
from lamina.protocols.metric import Metric
from lamina.protocols.optimizer import Optimizer
from lamina.protocols.schedule import Schedule
from lamina.protocols.strategy import Strategy

ENTRY_POINT_GROUP = "lamina"
BUILTIN_PACKAGE = "lamina"
# Frames of Python stack that loading the plugins may use above its caller, whatever the caller's
# depth: as many as a fresh interpreter has in all (the first lookup may come from deep inside a
# recursion, e.g. building the innermost of nested composite layers).
LOAD_STACK_FRAMES = 1000
# Failures of the process, not of a plugin: loading stops, nothing is recorded, the next lookup
# loads again (a plugin is recorded as failed only for what its own code raised).
NOT_THE_PLUGINS_FAULT = (RecursionError, MemoryError)
# The one rule for names, quoted by every error that enforces it.
NAMING_RULE = (
    "lookups ignore case, so within one package and kind every name and alias must differ "
    "in more than case (register each class once, with its extra names as aliases)"
)


@frozen
class Kind:
    """A kind of plugin: its name, the hook that registers it and the base class it must extend."""

    name: str
    plural: str
    hook: str
    base: type
    default: str | None = None  # the registered name that an argument left as None means


KINDS: dict[str, Kind] = {
    kind.name: kind
    for kind in (
        Kind("layer", "layers", "register_layers", Layer),
        # The defaults of Model.train's loss and optim, as the blog post's API had them.
        Kind("loss", "losses", "register_losses", Loss, default="MSE"),
        Kind("optimizer", "optimizers", "register_optimizers", Optimizer, default="SGD"),
        Kind("metric", "metrics", "register_metrics", Metric),
        Kind("callback", "callbacks", "register_callbacks", Callback),
        Kind("initializer", "initializers", "register_initializers", Initializer),
        Kind("schedule", "schedules", "register_schedules", Schedule),
        Kind("dataset", "datasets", "register_datasets", Dataset),
        Kind("strategy", "strategies", "register_strategies", Strategy),
    )
}
# Built-ins that the core builds by registered name, as it does the defaults above: the callback
# of `tensorboard = true` in lamina train configs, and the metric whose `report(classes)` makes
# Model.evaluate(report=True)'s per-class report.
TENSORBOARD_CALLBACK = "TensorBoard"
REPORT_METRIC = "confusion_matrix"


@frozen
class PluginInfo:
    """One registered class: its name, kind, aliases and the distribution that provides it."""

    name: str
    kind: str
    cls: type
    package: str
    version: str
    aliases: tuple[str, ...]
    plugin: str  # the entry point (or plugin object) that registered it

    @property
    def qualified_name(self) -> str:
        return f"{self.package}:{self.name}"

    def keys(self) -> set[str]:
        return {n.lower() for n in (self.name, *self.aliases)}


@frozen
class PluginFailure:
    """A plugin that failed to load or to register, kept so that lamina stays usable."""

    plugin: str
    package: str
    version: str
    error: str

    def __str__(self) -> str:
        return f"{self.package} {self.version} (plugin {self.plugin!r}): {self.error}"


@frozen
class PluginSkip:
    """An installed plugin that was not loaded, on purpose (an allow- or deny-list)."""

    plugin: str
    package: str
    version: str
    reason: str
    fix: str = ""  # how to load it after all

    def __str__(self) -> str:
        return f"{self.package} {self.version} (plugin {self.plugin!r}): {self.reason}"


@frozen
class PluginSource:
    """Where a loaded plugin came from: its package, module file and the hooks it implements."""

    plugin: str
    package: str
    version: str
    module: str
    hooks: tuple[str, ...]


def _names(value: str | None) -> set[str] | None:
    """The distribution names in a comma- or space-separated environment variable."""
    if value is None:
        return None
    return {normalize_package(name) for name in re.split(r"[,\s]+", value) if name}


def normalize_package(name: str) -> str:
    """PEP 503 normalisation: 'Lamina_Snake' and 'lamina-snake' name the same distribution."""
    return re.sub(r"[-_.]+", "-", name).lower()


def resolve_kind(kind: str) -> Kind:
    """The Kind for 'layer' or 'layers' (any case); ArgumentError listing the valid kinds otherwise."""
    key = kind.lower() if isinstance(kind, str) else kind
    for candidate in KINDS.values():
        if key in (candidate.name, candidate.plural):
            return candidate
    raise ArgumentError(
        f"unknown plugin kind {kind!r}; expected one of: {', '.join(KINDS)}"
    )


class Registry:
    """Plugins by kind and name. Entry points are loaded lazily, once, on the first lookup.

    A plugin that fails to import or to register is recorded in `failures` and warned about
    once; the rest of lamina stays usable.
    """

    def __init__(
        self,
        group: str | None = ENTRY_POINT_GROUP,
        *,
        allow: str | None = None,
        deny: str | None = None,
        trace: bool | None = None,
    ) -> None:
        """`allow`, `deny` and `trace` default to the environment variables LAMINA_PLUGINS,
        LAMINA_DISABLE_PLUGINS and LAMINA_TRACE_PLUGINS, read when the plugins load."""
        self._group = group
        self._settings = (allow, deny, trace)
        self._allow: set[str] | None = None
        self._deny: set[str] = set()
        self._trace = False
        self._skipped: list[PluginSkip] = []
        self._sources: list[PluginSource] = []
        self._lock = threading.RLock()
        self._loaded = False
        self._loading = False
        self._manager = pluggy.PluginManager("lamina")
        self._manager.add_hookspecs(hookspecs)
        self._index: dict[str, dict[str, list[PluginInfo]]] = {kind: {} for kind in KINDS}
        self._entries: list[PluginInfo] = []
        self._failures: list[PluginFailure] = []

    # -- loading -------------------------------------------------------------------------

    def load(self) -> None:
        """Load every entry point of the group; later calls do nothing.

        A plugin whose import or hooks raise is recorded in `failures`. When loading itself fails
        (KeyboardInterrupt, MemoryError, RecursionError) the error is raised, nothing is kept, and
        the next call loads again.
        """
        if self._loaded:
            return
        with self._lock:
            if self._loaded or self._loading:  # a plugin's import looking up plugins: what has loaded so far
                return
            self._loading = True
            try:
                with _stack_room(LOAD_STACK_FRAMES):
                    self._load_all()
            except BaseException:
                self._forget()
                raise
            else:
                self._loaded = True
            finally:
                self._loading = False
            for failure in self._failures:
                warn(
                    f"lamina plugin from {failure} -- it was skipped; the other plugins work. "
                    "Run 'lamina list-plugins' to see every plugin and its status."
                )

    def _load_all(self) -> None:
        allow, deny, trace = self._settings
        self._allow = _names(os.environ.get("LAMINA_PLUGINS") if allow is None else allow)
        self._deny = _names(os.environ.get("LAMINA_DISABLE_PLUGINS") if deny is None else deny) or set()
        if trace is None:
            trace = os.environ.get("LAMINA_TRACE_PLUGINS", "").lower() in ("1", "true", "yes", "on")
        self._trace = trace
        if self._group is None:
            return
        for ep in entry_points(group=self._group):
            self._load_entry_point(ep)

    def _forget(self) -> None:
        """Undo a load that did not finish, so that the next lookup starts again from nothing."""
        for name, _ in list(self._manager.list_name_plugin()):
            self._manager.unregister(name=name)
        self._index = {kind: {} for kind in KINDS}
        self._entries, self._failures, self._skipped, self._sources = [], [], [], []

    def _load_entry_point(self, ep: EntryPoint) -> None:
        dist = getattr(ep, "dist", None)
        package = dist.name if dist is not None else "unknown"
        version = dist.version if dist is not None else ""
        skip = self._skip(ep.name, package, version)
        if skip is not None:  # decided before importing: a disabled plugin's code never runs
            self._skipped.append(skip)
            self._say(f"skipped {skip}")
            return
        try:
            plugin = ep.load()
            self._add(plugin, ep.name, package, version)
        except NOT_THE_PLUGINS_FAULT as err:
            err.add_note(f"(while lamina loaded the plugin {ep.name!r} from {package} {version}; nothing was "
                         "recorded, and the next lookup loads the plugins again)")
            raise
        except Exception as err:  # a broken plugin must never take lamina down
            message = str(err) if isinstance(err, PluginError) else f"{type(err).__name__}: {err}"
            self._failures.append(PluginFailure(ep.name, package, version, message))

    def _skip(self, plugin: str, package: str, version: str) -> PluginSkip | None:
        name = normalize_package(package)
        if name == BUILTIN_PACKAGE:
            return None  # the built-ins always load
        if name in self._deny:
            return PluginSkip(plugin, package, version, "disabled by LAMINA_DISABLE_PLUGINS",
                              f"remove {package} from LAMINA_DISABLE_PLUGINS")
        if self._allow is not None and name not in self._allow:
            return PluginSkip(plugin, package, version, "not in LAMINA_PLUGINS (the allow-list)",
                              f"add {package} to LAMINA_PLUGINS")
        return None

    def _say(self, message: str) -> None:
        if self._trace:
            print(f"lamina: {message}", file=sys.stderr)

    def add_plugin(
        self, plugin: object, *, package: str = "__main__", version: str = "", name: str | None = None
    ) -> list[PluginInfo]:
        """Register a plugin object (a module or class with `@lamina.hookimpl` functions) directly.

        For plugins defined in a script or a test; installed packages use the entry-point group.
        Raises PluginError when the plugin is invalid.
        """
        self.load()
        fallback: str = getattr(plugin, "__name__", repr(plugin))
        with self._lock:
            return self._add(plugin, name or fallback, package, version)

    def _add(self, plugin: object, plugin_name: str, package: str, version: str) -> list[PluginInfo]:
        where = f"{package} plugin {plugin_name!r}"
        manager_name = f"{package}:{plugin_name}"
        try:
            self._manager.register(plugin, name=manager_name)
        except pluggy.PluginValidationError as err:
            raise PluginError(
                f"{where} has a hook implementation whose signature does not match lamina's "
                f"hook: {_one_line(err)}. Every register_* hook takes exactly one argument, "
                "named 'register'."
            ) from None
        except ValueError as err:
            raise PluginError(f"{where} is already registered: {err}") from None
        try:
            staged = self._call_hooks(plugin, manager_name, where, package, version, plugin_name)
            self._require_registrations(plugin, staged, where)
            self._commit(staged, where)
        except BaseException as err:
            self._manager.unregister(name=manager_name)
            self._say(f"{where} failed: {err}")
            raise
        module = getattr(plugin, "__file__", None) or getattr(type(plugin), "__module__", repr(plugin))
        hooks = tuple(sorted(c.name for c in self._manager.get_hookcallers(plugin) or ()))
        self._sources.append(PluginSource(plugin_name, package, version, str(module), hooks))
        for info in staged:
            aliases = f" with aliases {', '.join(map(repr, info.aliases))}" if info.aliases else ""
            self._say(f"registered {info.kind} {info.name!r}{aliases} from {package} {version} (plugin "
                      f"{plugin_name!r})")
        return staged

    def _call_hooks(
        self, plugin: object, manager_name: str, where: str, package: str, version: str, plugin_name: str
    ) -> list[PluginInfo]:
        for caller in self._manager.get_hookcallers(plugin) or ():
            if caller.spec is None:
                close = difflib.get_close_matches(caller.name, [k.hook for k in KINDS.values()], n=1)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                raise PluginError(
                    f"{where} implements {caller.name!r}, which is not a lamina hook.{hint} "
                    f"lamina's hooks: {', '.join(k.hook for k in KINDS.values())}."
                )
        staged: list[PluginInfo] = []
        for kind in KINDS.values():
            for impl in getattr(self._manager.hook, kind.hook).get_hookimpls():
                if impl.plugin_name != manager_name:
                    continue
                if impl.hookwrapper or impl.wrapper:
                    raise PluginError(f"{where}: {kind.hook} cannot be a hook wrapper")
                register = _registrar(kind, where, package, version, plugin_name, staged)
                try:
                    impl.function(**{arg: register for arg in impl.argnames})
                except (PluginError, *NOT_THE_PLUGINS_FAULT):
                    raise
                except Exception as err:
                    raise PluginError(
                        f"{where}: {kind.hook} raised {type(err).__name__}: {err}"
                    ) from err
        return staged

    def _require_registrations(self, plugin: object, staged: list[PluginInfo], where: str) -> None:
        """A plugin that registers nothing is a mistake, most often a hook without its marker."""
        unmarked = [
            kind.hook
            for kind in KINDS.values()
            if callable(getattr(plugin, kind.hook, None))
            and self._manager.parse_hookimpl_opts(plugin, kind.hook) is None
        ]
        if unmarked:
            names = " and ".join(unmarked)
            raise PluginError(
                f"{where} defines {names} without the @lamina.hookimpl marker, so lamina never "
                f"calls it; decorate {names} with @lamina.hookimpl"
            )
        if not staged:
            hooks = sorted(c.name for c in self._manager.get_hookcallers(plugin) or ())
            if hooks:
                problem = f"its {', '.join(hooks)} called register() for no class"
            else:
                problem = f"it implements none of lamina's hooks ({', '.join(k.hook for k in KINDS.values())})"
            raise PluginError(
                f"{where} registers nothing: {problem}; a plugin module's hook calls "
                "register(MyClass), e.g. @lamina.hookimpl def register_layers(register): register(MyLayer)"
            )

    def _commit(self, staged: list[PluginInfo], where: str) -> None:
        package = normalize_package(staged[0].package) if staged else ""
        seen: dict[tuple[str, str], PluginInfo] = {}
        for info in staged:
            for key in info.keys():
                clash = seen.get((info.kind, key))
                if clash is None:
                    for other in self._index[info.kind].get(key, ()):
                        if normalize_package(other.package) == package:
                            clash = other
                if clash is not None and clash is not info:
                    what = (
                        f"{info.cls.__name__} twice"
                        if clash.cls is info.cls
                        else f"two {info.kind}s ({clash.cls.__name__} and {info.cls.__name__})"
                    )
                    raise PluginError(f"{where} registers {what} under the name {key!r}; {NAMING_RULE}")
                seen[(info.kind, key)] = info
        for info in staged:
            self._entries.append(info)
            for key in info.keys():
                self._index[info.kind].setdefault(key, []).append(info)

    # -- lookup --------------------------------------------------------------------------

    def get(self, kind: str, name: str) -> PluginInfo:
        """The plugin registered under `name` (case-insensitive; 'package:Name' picks a package)."""
        spec = resolve_kind(kind)
        if not isinstance(name, str) or not name:
            raise ArgumentError(
                f"a {spec.name} name must be a non-empty string, got {name!r}; "
                f"pass e.g. {self._example(spec)!r}"
            )
        self.load()
        package, _, bare = name.rpartition(":")
        found = self._index[spec.name].get(bare.lower(), [])
        if package:
            found = [i for i in found if normalize_package(i.package) == normalize_package(package)]
        if len(found) == 1:
            return found[0]
        if not found:
            raise UnknownPluginError(self._unknown_message(spec, name, package, bare))
        found = sorted(found, key=lambda i: normalize_package(i.package))
        choices = " or ".join(repr(i.qualified_name) for i in found)
        providers = ", ".join(f"{i.package} {i.version} ({i.cls.__name__})" for i in found)
        raise AmbiguousPluginError(
            f"{spec.name} name {name!r} is registered by {len(found)} packages: {providers}. "
            f"Neither is picked silently: use the package-qualified name {choices}, "
            "or uninstall the package you do not want."
        )

    def build(self, kind: str, name: str, /, *args: Any, **kwargs: Any) -> Any:
        """Instantiate the plugin registered under `name` with the given arguments."""
        info = self.get(kind, name)
        _no_classes(info, args, kwargs)
        try:
            inspect.signature(info.cls).bind(*args, **kwargs)
        except TypeError as err:
            raise ArgumentError(
                f"{info.kind} {info.name!r} takes {info.name}{_plain_signature(info.cls)}; "
                f"the arguments given do not fit: {err}"
            ) from None
        except ValueError:  # no signature to check (e.g. a C type); let the call decide
            pass
        return info.cls(*args, **kwargs)

    def plugins(self, kind: str | None = None) -> list[PluginInfo]:
        """Every registered plugin (of one kind when given), sorted by kind, name and package."""
        self.load()
        order = list(KINDS)
        wanted = resolve_kind(kind).name if kind is not None else None
        return sorted(
            (i for i in self._entries if wanted in (None, i.kind)),
            key=lambda i: (order.index(i.kind), i.name.lower(), i.package),
        )

    def remove_package(self, package: str) -> list[PluginInfo]:
        """Forget every plugin registered by `package` (e.g. one added with `add_plugin`)."""
        self.load()
        with self._lock:
            wanted = normalize_package(package)
            removed = [i for i in self._entries if normalize_package(i.package) == wanted]
            self._entries = [i for i in self._entries if i not in removed]
            for kind in self._index.values():
                for key in list(kind):
                    kind[key] = [i for i in kind[key] if i not in removed]
                    if not kind[key]:
                        del kind[key]
            for name, plugin in list(self._manager.list_name_plugin()):
                if normalize_package(name.partition(":")[0]) == wanted:
                    self._manager.unregister(plugin)
            return removed

    def info_for(self, cls: type) -> PluginInfo | None:
        """The registration of the class `cls`, or None when it is not registered."""
        self.load()
        for info in self._entries:
            if info.cls is cls:
                return info
        return None

    def unavailable(self, package: str) -> PluginSkip | PluginFailure | None:
        """Why an installed `package` registered nothing here: it was skipped (an allow- or
        deny-list) or failed to load; None when it loaded or is not installed."""
        self.load()
        wanted = normalize_package(package)
        records: list[PluginSkip | PluginFailure] = [*self._skipped, *self._failures]
        for record in records:
            if normalize_package(record.package) == wanted:
                return record
        return None

    @property
    def failures(self) -> list[PluginFailure]:
        """Plugins that failed to load or to register, with their errors."""
        self.load()
        return list(self._failures)

    @property
    def skipped(self) -> list[PluginSkip]:
        """Installed plugins left unloaded by LAMINA_PLUGINS or LAMINA_DISABLE_PLUGINS."""
        self.load()
        return list(self._skipped)

    @property
    def sources(self) -> list[PluginSource]:
        """Each loaded plugin's package, module and hooks (for `list-plugins --verbose`)."""
        self.load()
        return list(self._sources)

    def _example(self, spec: Kind) -> str:
        names = sorted({i.name for i in self._entries if i.kind == spec.name})
        return names[0] if names else "Name"

    def _unknown_message(self, spec: Kind, name: str, package: str, bare: str) -> str:
        entries = [i for i in self._entries if i.kind == spec.name]
        if package:
            providers = self._index[spec.name].get(bare.lower(), [])
            if providers:
                qualified = ", ".join(repr(i.qualified_name) for i in providers)
                return (
                    f"no package {package!r} provides the {spec.name} {bare!r}; "
                    f"it is provided as {qualified}"
                )
        spelled: dict[str, str] = {}
        for info in entries:
            for alias in (info.name, *info.aliases):
                spelled.setdefault(alias.lower(), alias)
        close = difflib.get_close_matches(bare.lower(), list(spelled), n=3, cutoff=0.6)
        hint = ""
        if close:
            hint = f" Did you mean {spelled[close[0]]!r}?"
            if len(close) > 1:
                hint += f" (or {', '.join(repr(spelled[c]) for c in close[1:])})"
        available = ", ".join(sorted({i.name for i in entries}, key=str.lower)) or "none"
        return (
            f"unknown {spec.name} {name!r}.{hint} Available {spec.plural}: {available}. "
            f"Run 'lamina list-plugins --kind {spec.name}' to see them with their packages, "
            "or install the package that provides it."
        )


def _registrar(
    kind: Kind, where: str, package: str, version: str, plugin_name: str, staged: list[PluginInfo]
) -> Callable[..., type]:
    """The `register` function handed to one plugin's hook: validates and stages registrations."""

    def register(cls: type, name: str | None = None, aliases: Iterable[str] = ()) -> type:
        if not (isinstance(cls, type) and issubclass(cls, kind.base)):
            raise PluginError(
                f"{where}: {kind.hook} registered {cls!r}, which is not a subclass of "
                f"lamina.{kind.base.__name__}; register the class itself, e.g. register(MyClass)"
            )
        name = cls.__name__ if name is None else name
        aliases = (aliases,) if isinstance(aliases, str) else tuple(aliases)
        seen: set[str] = set()
        for label in (name, *aliases):
            if not isinstance(label, str) or not label.strip() or ":" in label or label != label.strip():
                raise PluginError(
                    f"{where}: {kind.hook} registered {cls.__name__} under the name {label!r}; "
                    "names and aliases must be non-empty strings without ':' or surrounding spaces"
                )
            if label.lower() in seen:
                raise PluginError(
                    f"{where}: {kind.hook} registered {cls.__name__} as {name!r} with the alias "
                    f"{label!r}, which repeats a name; {NAMING_RULE}"
                )
            seen.add(label.lower())
        staged.append(PluginInfo(name, kind.name, cls, package, version, aliases, plugin_name))
        return cls

    return register


def _plain_signature(cls: type) -> inspect.Signature:
    """`(units, alpha=1.0)`: the constructor's arguments without annotations, for messages."""
    signature = inspect.signature(cls)
    return signature.replace(
        parameters=[p.replace(annotation=p.empty) for p in signature.parameters.values()],
        return_annotation=inspect.Signature.empty,
    )


CLASSES = "classes"  # in a `lamina train` config, an int option counted from the dataset


def _no_classes(info: PluginInfo, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """An ArgumentError for the string "classes" where a number belongs: a `lamina train`
    config replaces it by the dataset's class count before building, but Python has no dataset
    at hand. Parameters annotated to take a str keep it."""
    if not any(isinstance(value, str) and value == CLASSES for value in (*args, *kwargs.values())):
        return
    params: Mapping[str, inspect.Parameter] = {}
    try:
        signature = inspect.signature(info.cls)
        bound, params = signature.bind_partial(*args, **kwargs).arguments, signature.parameters
    except (TypeError, ValueError):  # no signature, or arguments that do not fit: build() says so
        bound = dict(kwargs)
    for key, value in bound.items():
        annotation = str(params[key].annotation) if key in params else ""
        takes_text = re.search(r"\bstr\b|\bAny\b", annotation) is not None
        if isinstance(value, str) and value == CLASSES and not takes_text:
            raise ArgumentError(
                f"{info.name}({key}={CLASSES!r}): {CLASSES!r} stands for the number of classes of the training data "
                "(the class names' or a text vocabulary's length), which a `lamina train` config counts from its "
                f"[dataset]; without a dataset pass the number, e.g. {key}=len(data.metadata['classes']) or "
                f"{key}=data.num_classes for data = lamina.dataset(...)"
            )


@contextlib.contextmanager
def _stack_room(frames: int) -> Iterator[None]:
    """At least `frames` frames of recursion room above the caller, however deep the caller is:
    the recursion limit is raised for the duration when the caller is near it."""
    depth = 0
    frame: FrameType | None = sys._getframe()
    while frame is not None:
        depth, frame = depth + 1, frame.f_back
    limit = sys.getrecursionlimit()
    if depth + frames <= limit:
        yield
        return
    sys.setrecursionlimit(depth + frames)
    try:
        yield
    finally:
        sys.setrecursionlimit(limit)


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split())


_default = Registry()


def get_registry() -> Registry:
    """The registry that `lamina.protocols.layer`, `lamina.protocols.loss`, `lamina.protocols.optimizer` and
    `Model` use."""
    return _default


def register_plugin(plugin: object, *, package: str = "__main__", version: str = "") -> list[PluginInfo]:
    """Register a plugin defined in a script (an object with `@lamina.hookimpl` functions)."""
    return _default.add_plugin(plugin, package=package, version=version)


def layer(name: str, /, *args: Any, **kwargs: Any) -> Layer:
    """Build a registered layer by name: `lamina.layer("Linear", units=8)`."""
    return _default.build("layer", name, *args, **kwargs)


def loss(name: str, /, *args: Any, **kwargs: Any) -> Loss:
    """Build a registered loss by name: `lamina.loss("MSE")`."""
    return _default.build("loss", name, *args, **kwargs)


def optimizer(name: str, /, *args: Any, **kwargs: Any) -> Optimizer:
    """Build a registered optimizer by name: `lamina.optimizer("SGD", lr=0.1)`."""
    return _default.build("optimizer", name, *args, **kwargs)


def metric(name: str, /, *args: Any, **kwargs: Any) -> Metric:
    """Build a registered metric by name: `lamina.metric("accuracy")`."""
    return _default.build("metric", name, *args, **kwargs)


def callback(name: str, /, *args: Any, **kwargs: Any) -> Callback:
    """Build a registered callback by name: `lamina.callback("EarlyStopping", patience=3)`."""
    return _default.build("callback", name, *args, **kwargs)


def initializer(name: str, /, *args: Any, **kwargs: Any) -> Initializer:
    """Build a registered initialiser by name: `lamina.initializer("normal", std=0.1)`."""
    return _default.build("initializer", name, *args, **kwargs)


def schedule(name: str, /, *args: Any, **kwargs: Any) -> Schedule:
    """Build a registered schedule by name: `lamina.schedule("CosineDecay", 0.1, decay_steps=1000)`."""
    return _default.build("schedule", name, *args, **kwargs)


def dataset(name: str, /, **options: Any) -> Data:
    """Load a registered dataset by name: `x_train, y_train, x_test, y_test = lamina.dataset("digits")`;
    the result's `.metadata` holds what a model needs to use the data later (a vocabulary)."""
    source = _default.build("dataset", name, **options)
    return Data(source.load(), source.metadata())


def strategy(name: str, /, *args: Any, **kwargs: Any) -> Strategy:
    """Build a registered training strategy by name: `lamina.strategy("mpi")`."""
    return _default.build("strategy", name, *args, **kwargs)


def info_for(obj: object) -> PluginInfo | None:
    """The registration of `obj`'s class (the first, if several packages registered it)."""
    return _default.info_for(type(obj))


def default_plugin(kind: str, value: object, argument: str, owner: str) -> Any:
    """As `resolve`, with None meaning the kind's default (`KINDS[kind].default`)."""
    spec = resolve_kind(kind)
    if value is None and spec.default is not None:
        value = spec.default
    return resolve(spec.name, value, argument, owner)


def resolve(kind: str, value: object, argument: str, owner: str) -> Any:
    """`value` as a plugin of `kind`: an instance passes through, a name is built with no
    arguments, a dict `{"type": name, **arguments}` is built with its arguments.

    For arguments such as `loss="MSE"`, `weight_init="he_uniform"` or a composite layer's
    `layers=[{"type": "Linear", "units": 8}, "Relu"]`; errors name the argument.
    """
    spec = resolve_kind(kind)
    if isinstance(value, spec.base):
        return value
    if isinstance(value, str):
        return _default.build(spec.name, value)
    if isinstance(value, Mapping):
        arguments = dict(value)
        name = arguments.pop("type", None)
        if isinstance(name, str):
            return _default.build(spec.name, name, **arguments)
        hint = f"a dict must name the {spec.name} under 'type', e.g. {{'type': {_default._example(spec)!r}}}"
    elif isinstance(value, type) and issubclass(value, spec.base):
        hint = f"write {value.__name__}(...) or the name {value.__name__!r}"
    else:
        hint = f"pass a lamina.{spec.base.__name__} instance, a registered {spec.name} name or a dict with its 'type'"
    raise ArgumentError(f"{owner}({argument}={_describe(value)}): {hint}")

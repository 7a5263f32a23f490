"""Plugin objects to JSON and back: how configs, model files and `lamina train` name plugins."""
from __future__ import annotations

import re
from typing import Any

import numpy as np

from lamina.checks import MAX_NESTING, describe, nesting, printable
from lamina.errors import ArgumentError, MissingPluginError, UnknownPluginError, warn
from lamina.registry import KINDS, PluginFailure, PluginSkip, get_registry, normalize_package

MARK = "__lamina_plugin__"


def plugin_kind(obj: object) -> str | None:
    """'layer', 'loss', ... for an instance of a plugin base class, else None."""
    for kind in KINDS.values():
        if isinstance(obj, kind.base):
            return kind.name
    return None


def to_json(value: Any, where: str, depth: int = 1) -> Any:
    """`value` as JSON data; plugin instances become {MARK: kind, "type", "package", "version", "config"}.

    `depth` is the level `value` takes in the file (config.json itself is 1): a list or dict deeper
    than MAX_NESTING is an ArgumentError naming its path, raised before going further down, so
    that every file lamina writes is a file lamina loads.
    """
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    if isinstance(value, (list, tuple, dict)) and depth > MAX_NESTING:
        raise too_deep(value, where, depth)
    if isinstance(value, (list, tuple)):
        return [to_json(item, f"{where}[{i}]", depth + 1) for i, item in enumerate(value)]
    if isinstance(value, dict) and all(isinstance(key, str) for key in value):
        return {key: to_json(item, f"{where}.{key}", depth + 1) for key, item in value.items()}
    kind = plugin_kind(value)
    if kind is not None:
        return describe_plugin(value, kind, where, depth)
    raise ArgumentError(
        f"{where} is {describe(value)}, which a model file cannot store; constructor arguments "
        "must be numbers, strings, booleans, None, lists, dicts or registered plugins"
    )


def too_deep(value: object, where: str, depth: int) -> ArgumentError:
    """The error for `value`, at level `depth` of a file, past MAX_NESTING."""
    levels = depth - 1 + nesting(value)[0]
    return ArgumentError(
        f"{printable(where, 160)} would nest {levels:,} levels of lists and tables in the model file, over the limit "
        f"of {MAX_NESTING} (lamina.checks.MAX_NESTING) that loading enforces; flatten it, e.g. a table keyed by "
        "'a/b/c' paths rather than tables inside tables"
    )


def describe_plugin(obj: Any, kind: str, where: str, depth: int = 1) -> dict[str, Any]:
    """The JSON record of a plugin instance (at level `depth` of the file): its registered name,
    package, version and config."""
    if depth > MAX_NESTING:
        raise too_deep({}, where, depth)
    info = get_registry().info_for(type(obj))
    if info is None:
        raise ArgumentError(
            f"{where} is a {type(obj).__name__}, which is not a registered {kind}, so a file "
            "cannot name it; register it through a package's `lamina` entry point or with "
            "lamina.register_plugin(...)"
        )
    return {
        MARK: kind,
        "type": info.name,
        "package": info.package,
        "version": info.version,
        "config": to_json(obj.get_config(), f"{where}.config", depth + 1),
    }


def from_json(value: Any, where: str) -> Any:
    """The inverse of `to_json`: plugin records are built through the registry."""
    if isinstance(value, list):
        return [from_json(item, f"{where}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, dict):
        if MARK in value:
            return build_plugin(value, where)
        return {key: from_json(item, f"{where}.{key}") for key, item in value.items()}
    return value


def build_plugin(record: dict[str, Any], where: str) -> Any:
    """Rebuild a plugin from its record; a missing package gets a 'pip install' message."""
    kind, name, package = record[MARK], record["type"], record.get("package", "")
    version = record.get("version") or ""
    config = from_json(record.get("config", {}), f"{where}.config")
    if not isinstance(config, dict):
        raise ValueError(f"{where}.config must be a table of arguments")
    registry = get_registry()
    try:
        info = registry.get(kind, f"{package}:{name}" if package else name)
    except UnknownPluginError:
        raise MissingPluginError(
            f"{where} needs the {kind} {name!r} from {printable(package)} {printable(version)}".rstrip()
            + f", but {why_missing(package, version, kind, name)}"
        ) from None
    if isinstance(version, str) and older(info.version, version):
        warn(
            f"{where}: the file was written with {info.package} {version}, but {info.version} is "
            f"installed; its {kind} {name!r} may behave differently. To be safe: pip install "
            f"'{info.package}>={version}'"
        )
    return registry.build(kind, info.qualified_name, **config)


def why_missing(package: str, version: str, kind: str | None = None, name: str | None = None) -> str:
    """Why `package`'s plugins are not available, and what to do: 'it is not installed;
    install it with ...', or that it is installed but was skipped or failed to load."""
    registry = get_registry()
    if not valid_package_name(package):  # text from a file is data: never put it in a command unchecked
        return (f"the file names the package {printable(package)!r}, which is not a valid package name; "
                "the file is corrupted or forged")
    need = f"'{package}>={version}'" if valid_version(version) else package
    record = registry.unavailable(package)
    if isinstance(record, PluginSkip):
        return f"{package} {record.version} is installed but was not loaded: {record.reason}; {record.fix}"
    if isinstance(record, PluginFailure):
        return (
            f"{package} {record.version} is installed but failed to load: {record.error}; fix or "
            f"reinstall it ('lamina list-plugins' shows every plugin's status)"
        )
    if kind is not None and any(normalize_package(i.package) == normalize_package(package) for i in registry.plugins()):
        return (f"{package} is installed but registers no {kind} named {name!r} (a different version?); "
                f"install it with: pip install {need}")
    return f"{package} is not installed; install it with: pip install {need}"


_PACKAGE = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._-]{0,98}[A-Za-z0-9])?")
_VERSION = re.compile(r"[A-Za-z0-9.+!_-]{1,64}")


def valid_package_name(name: object) -> bool:
    """True for a distribution name that the packaging grammar allows (PEP 508)."""
    return isinstance(name, str) and _PACKAGE.fullmatch(name) is not None


def valid_version(version: object) -> bool:
    """True for text made of the characters a version may have (PEP 440), at most 64 of them."""
    return isinstance(version, str) and _VERSION.fullmatch(version) is not None


def older(installed: str, recorded: str) -> bool:
    """True when version `installed` is below `recorded`, compared by their release numbers
    (1.2.10 > 1.2.9; pre-release and local parts are ignored)."""
    mine, theirs = _release(installed), _release(recorded)
    return bool(mine and theirs) and mine < theirs


def _release(version: str) -> tuple[int, ...]:
    match = re.match(r"v?(\d+(?:\.\d+)*)", version.strip()) if isinstance(version, str) else None
    if match is None:
        return ()
    numbers = [int(part) for part in match.group(1).split(".")]
    while len(numbers) > 1 and numbers[-1] == 0:  # 1.0 == 1.0.0
        numbers.pop()
    return tuple(numbers)

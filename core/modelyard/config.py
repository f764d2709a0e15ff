"""One config file: load TOML, interpolate ``${env:…}``/``${secret:…}``, validate every section, report all errors.

Each provider declares its schema as a frozen attrs class (STYLE 12). Validation converts every section with a
strict cattrs converter (no silent ``42`` → ``"42"``), rejects unknown sections and keys with a did-you-mean,
and collects *every* problem into one :class:`~modelyard.errors.ConfigError` before anything starts — a file
that is not UTF-8 or not TOML, an unclosed ``${env:…`` reference, and a ``[platform] data_dir`` that cannot be
created included.
"""

from __future__ import annotations

import difflib
import os
import re
import tempfile
import tomllib
import typing
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

import attrs
import cattrs
from cattrs.errors import ClassValidationError, ForbiddenExtraKeysError, IterableValidationError

from modelyard.errors import ConfigError, ConfigIssue
from modelyard.providers import SLOTS, NoConfig, Provider

DEFAULT_FILE = "modelyard.toml"
#: A config file is a page of TOML; anything this large is the wrong file (or /dev/zero).
MAX_CONFIG_BYTES = 4 * 2**20
_INTERP = re.compile(r"\$\{(env|secret):([^}]*)\}")
# A reference with no closing brace anywhere after it: left as it is, it would reach a provider as text.
_UNCLOSED = re.compile(r"\$\{(env|secret):(?![^}]*\})")


@attrs.frozen(kw_only=True)
class PlatformConfig:
    """The ``[platform]`` section."""

    data_dir: str = "./.modelyard"
    disable: list[str] = attrs.field(factory=list)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["auto", "json", "console"] = "auto"
    work_dir: str | None = None
    #: Seconds one registration's build and validation may run; its process is killed after (docs/builders.md).
    build_timeout_s: float = attrs.field(default=60.0, validator=[attrs.validators.gt(0),
                                                                   attrs.validators.le(86_400)])
    #: Builds that run at once, and registrations that may wait for one; more are refused with 429.
    build_concurrency: int = attrs.field(default=2, validator=[attrs.validators.ge(1), attrs.validators.le(256)])
    build_queue: int = attrs.field(default=8, validator=[attrs.validators.ge(0), attrs.validators.le(10_000)])
    #: What an archive a builder expands (a zipped SavedModel) may hold: bytes written, and entries.
    max_archive_bytes: int = attrs.field(default=4 << 30, validator=[attrs.validators.ge(1),
                                                                      attrs.validators.le(1 << 40)])
    max_archive_entries: int = attrs.field(default=10_000, validator=[attrs.validators.ge(1),
                                                                       attrs.validators.le(10_000_000)])


@attrs.frozen(kw_only=True)
class SlotChoice:
    """One validated slot entry: the provider chosen and its typed config."""

    slot: str
    provider: Provider
    config: Any


@attrs.frozen(kw_only=True)
class ResolvedConfig:
    """A config after interpolation and validation: what :class:`~modelyard.platform.Platform` assembles."""

    platform: PlatformConfig
    slots: Mapping[str, tuple[SlotChoice, ...]]
    sections: Mapping[str, Any]
    file: str | None
    base_dir: Path
    #: The plugin manager the config was resolved against (its providers are the ones in ``slots``).
    plugin_manager: Any = attrs.field(default=None, eq=False, repr=False)

    def one(self, slot: str) -> SlotChoice:
        """The single provider of a single-provider slot."""
        return self.slots[slot][0]


# --------------------------------------------------------------------------------------------- loading
@attrs.frozen(kw_only=True)
class RawConfig:
    """Parsed TOML and where it came from; ``lines`` maps (section, key) to line numbers for the report."""

    data: dict[str, Any]
    file: str | None
    base_dir: Path
    lines: Mapping[tuple[str, str | None], int]
    #: Problems found while loading that do not stop the rest of the check (see :func:`validate`).
    issues: tuple[ConfigIssue, ...] = ()


def find_config_file(explicit: str | os.PathLike[str] | None = None) -> Path | None:
    """The file to load: ``explicit``, else ``$MODELYARD_CONFIG``, else ``./modelyard.toml`` if it exists."""
    if explicit is not None:
        return Path(explicit)
    env = os.environ.get("MODELYARD_CONFIG")
    if env:
        return Path(env)
    default = Path(DEFAULT_FILE)
    return default if default.exists() else None


def load_raw(source: str | os.PathLike[str] | Mapping[str, Any] | None) -> RawConfig:
    """Read a config from a path, a mapping, or the default locations (an absent default file means defaults)."""
    if isinstance(source, Mapping):
        data = _deep_copy(source)
        return RawConfig(data=data, file=None, base_dir=Path.cwd(), lines={},
                         issues=tuple(unclosed_references(data, lines={}, file=None)))
    path = find_config_file(source)
    if path is None:
        return RawConfig(data={}, file=None, base_dir=Path.cwd(), lines={})
    try:
        with path.open("rb") as fh:
            raw_bytes = fh.read(MAX_CONFIG_BYTES + 1)  # bounded: -c /dev/zero must not fill memory
    except FileNotFoundError:
        raise ConfigError([ConfigIssue(message=f"config file {str(path)!r} does not exist")], file=str(path)) from None
    except OSError as exc:
        raise ConfigError([ConfigIssue(message=f"cannot read config file: {exc.strerror or exc}")],
                          file=str(path)) from None
    if len(raw_bytes) > MAX_CONFIG_BYTES:
        raise ConfigError([ConfigIssue(message=f"config file is larger than {MAX_CONFIG_BYTES // 2**20} MiB; "
                                               "is it the right file?")], file=str(path))
    try:
        text = raw_bytes.decode("utf-8-sig")  # TOML is UTF-8; a byte-order mark (Windows editors) is allowed
    except UnicodeDecodeError as exc:
        line = raw_bytes[:exc.start].count(b"\n") + 1
        raise ConfigError([ConfigIssue(
            message=f"not UTF-8 text: byte 0x{raw_bytes[exc.start]:02x} at offset {exc.start} cannot be decoded; "
                    "TOML files are UTF-8 — save the file in that encoding", line=line)], file=str(path)) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"line (\d+)", str(exc))
        raise ConfigError([ConfigIssue(message=f"invalid TOML: {exc}", line=int(m[1]) if m else None)],
                          file=str(path)) from None
    lines = _locate(text)
    return RawConfig(data=data, file=str(path), base_dir=path.resolve().parent, lines=lines,
                     issues=tuple(unclosed_references(data, lines=lines, file=str(path))))


def _deep_copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _deep_copy(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_deep_copy(v) for v in value]
    return value


_HEADER = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"^\s*([A-Za-z0-9_\-\"'.]+)\s*=")


def _locate(text: str) -> dict[tuple[str, str | None], int]:
    """Map ``(section, key)`` to the first line defining it; good enough for pointing at mistakes."""
    lines: dict[tuple[str, str | None], int] = {}
    section = ""
    for no, line in enumerate(text.splitlines(), start=1):
        if m := _HEADER.match(line):
            section = m[1].strip().strip("\"'")
            lines.setdefault((section, None), no)
            top = section.split(".")[0]
            lines.setdefault((top, None), no)
            if "." in section:  # [builders.torch] defines key "torch" of [builders]
                lines.setdefault((top, section.split(".", 1)[1]), no)
        elif (m := _KEY.match(line)) and section:
            key = m[1].strip("\"'")
            lines.setdefault((section, key), no)
            lines.setdefault((section, key.split(".")[0]), no)
        elif (m := _KEY.match(line)) and not section:
            lines.setdefault((m[1].split(".")[0], None), no)
    return lines


# --------------------------------------------------------------------------------------------- interpolation
def interpolate(value: Any, resolver: Callable[[str, str], str], path: tuple[str, ...] = ()) -> tuple[Any, list]:
    """Replace ``${kind:ref}`` in every string; returns the new value and a list of (path, message) failures."""
    errors: list[tuple[tuple[str, ...], str]] = []

    def walk(v: Any, p: tuple[str, ...]) -> Any:
        if isinstance(v, str) and "${" in v:
            def sub(m: re.Match[str]) -> str:
                try:
                    return resolver(m[1], m[2])
                except LookupError as exc:
                    errors.append((p, str(exc.args[0] if exc.args else exc)))
                    return m[0]
            return _INTERP.sub(sub, v)
        if isinstance(v, dict):
            return {k: walk(x, (*p, k)) for k, x in v.items()}
        if isinstance(v, list):
            return [walk(x, (*p, str(i))) for i, x in enumerate(v)]
        return v

    return walk(value, path), errors


def unclosed_references(data: Any, *, lines: Mapping, file: str | None,
                        path: tuple[str, ...] = ()) -> list[ConfigIssue]:
    """An issue for every string holding ``${env:`` or ``${secret:`` with no closing brace after it."""
    if isinstance(data, str):
        found = _UNCLOSED.search(data)
        if found is None:
            return []
        kind = found[1]
        shown = data[found.start():]
        shown = shown if len(shown) <= 40 else shown[:37] + "..."
        example = "${env:NAME}" if kind == "env" else "${secret:path#key}"
        section = path[0] if path else None
        key = ".".join(path[1:]) or None
        line = lines.get((section, path[1] if len(path) > 1 else None)) or lines.get((section, None))
        return [ConfigIssue(message=f"unclosed reference {shown!r}: no closing brace; write {example}",
                            section=section, key=key, line=line, file=file)]
    if isinstance(data, Mapping):
        return [i for k, v in data.items() for i in unclosed_references(v, lines=lines, file=file, path=(*path, k))]
    if isinstance(data, list):
        return [i for n, v in enumerate(data)
                for i in unclosed_references(v, lines=lines, file=file, path=(*path, str(n)))]
    return []


def env_resolver(environ: Mapping[str, str]) -> Callable[[str, str], str]:
    """Resolve ``${env:NAME}`` and ``${env:NAME:-default}``; leave ``${secret:…}`` for a later pass."""

    def resolve(kind: str, ref: str) -> str:
        if kind != "env":
            return f"${{{kind}:{ref}}}"
        name, sep, default = ref.partition(":-")
        if name in environ:
            return environ[name]
        if sep:
            return default
        raise LookupError(f"environment variable {name!r} is not set (write ${{env:{name}:-default}} for a default)")

    return resolve


# --------------------------------------------------------------------------------------------- conversion
def _describe(value: Any) -> str:
    kinds = {bool: "the boolean", int: "the integer", float: "the number", str: "the string",
             list: "the list", dict: "the table"}  # fmt: skip
    kind = kinds.get(type(value), f"a {type(value).__name__}")
    shown = repr(value)
    return f"{kind} {shown if len(shown) <= 60 else shown[:57] + '...'}"


def _expected(tp: Any) -> str:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is str:
        return "a string"
    if tp is bool:
        return "a boolean (true or false)"
    if tp is int:
        return "an integer"
    if tp is float:
        return "a number"
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin in (list, tuple, typing.Sequence) or tp in (list, tuple):
        return f"a list of {_expected(args[0]).removeprefix('a ').removeprefix('an ')}s" if args else "a list"
    if origin in (dict, typing.Mapping) or tp is dict:
        return "a table"
    if origin in (typing.Union, __import__("types").UnionType):
        return " or ".join(_expected(a) for a in args if a is not type(None))
    if attrs.has(tp):
        return "a table"
    return getattr(tp, "__name__", str(tp))


class _StrictTypeError(TypeError):
    def __init__(self, expected: str, value: Any) -> None:
        super().__init__(f"expected {expected}, got {_describe(value)}")


def make_converter() -> cattrs.Converter:
    """A cattrs converter that refuses to coerce: ``42`` is not a string and ``"true"`` is not a boolean."""
    conv = cattrs.Converter(forbid_extra_keys=True, detailed_validation=True)

    def strict(tp: type, expected: str, ok: Callable[[Any], bool]) -> None:
        def hook(value: Any, _tp: Any) -> Any:
            if not ok(value):
                raise _StrictTypeError(expected, value)
            return tp(value)

        conv.register_structure_hook(tp, hook)

    strict(str, "a string", lambda v: isinstance(v, str))
    strict(bool, "a boolean (true or false)", lambda v: isinstance(v, bool))
    strict(int, "an integer", lambda v: isinstance(v, int) and not isinstance(v, bool))
    strict(float, "a number", lambda v: isinstance(v, int | float) and not isinstance(v, bool))

    # Containers too: cattrs would happily iterate the string "abc" into ["a", "b", "c"] for a list[str] field,
    # and fail with an AttributeError on 42 for a dict field.
    from cattrs.cols import (
        homogenous_tuple_structure_factory,
        is_mapping,
        is_sequence,
        list_structure_factory,
        mapping_structure_factory,
    )

    def guarded(factory: Callable[[Any, cattrs.Converter], Any], kinds: tuple[type, ...]) -> Any:
        def make(tp: Any, converter: cattrs.Converter) -> Any:
            inner = factory(tp, converter)

            def hook(value: Any, _tp: Any) -> Any:
                if not isinstance(value, kinds):
                    raise _StrictTypeError(_expected(tp), value)
                return inner(value, _tp)

            return hook

        return make

    def homogenous_tuple(tp: Any) -> bool:
        args = typing.get_args(tp)
        return len(args) == 2 and args[1] is Ellipsis

    conv.register_structure_hook_factory(
        lambda tp: is_sequence(tp) and typing.get_origin(tp) is not tuple and tp is not tuple,
        guarded(list_structure_factory, (list, tuple)))
    conv.register_structure_hook_factory(
        lambda tp: typing.get_origin(tp) is tuple and homogenous_tuple(tp),
        guarded(homogenous_tuple_structure_factory, (list, tuple)))
    conv.register_structure_hook_factory(is_mapping, guarded(mapping_structure_factory, (dict, Mapping)))
    return conv


_CONVERTER = make_converter()


def structure(data: Mapping[str, Any], schema: type, *, section: str, lines: Mapping, file: str | None,
              key_prefix: str = "") -> tuple[Any, list[ConfigIssue]]:
    """Convert a section into its schema, returning (instance or None, issues)."""
    if not isinstance(data, Mapping):
        return None, [ConfigIssue(message=f"expected a table, got {_describe(data)}", section=section,
                                  line=lines.get((section, None)), file=file)]
    try:
        return _CONVERTER.structure(dict(data), schema), []
    except Exception as exc:  # cattrs raises exception groups; flatten them into issues
        issues: list[ConfigIssue] = []
        _flatten(exc, schema, data, (), issues, section=section, lines=lines, file=file, key_prefix=key_prefix)
        return None, issues or [ConfigIssue(message=str(exc), section=section, file=file,
                                            line=lines.get((section, None)))]


def _flatten(exc: BaseException, schema: Any, data: Any, path: tuple[str, ...], out: list[ConfigIssue], *,
             section: str, lines: Mapping, file: str | None, key_prefix: str) -> None:
    def issue(message: str, key_path: tuple[str, ...], given: Any = None) -> None:
        key = ".".join((key_prefix, *key_path)).strip(".") or None
        top = key_path[0] if key_path else (key_prefix or None)
        line = lines.get((section, top)) or lines.get((section, key)) or lines.get((section, None))
        out.append(ConfigIssue(message=message, section=section, key=key, line=line, file=file, given=given))

    if isinstance(exc, ClassValidationError | IterableValidationError):
        with_notes, without = exc.group_exceptions()
        for sub, note in with_notes:
            name = getattr(note, "name", None)
            if name is None:
                name = str(getattr(note, "index", "?"))
            sub_data = data.get(name) if isinstance(data, Mapping) else (
                data[int(name)] if isinstance(data, list) and name.isdigit() and int(name) < len(data) else None)
            sub_schema = getattr(note, "type", None)
            if isinstance(sub, KeyError):
                issue(f"missing required key; expected {_expected(sub_schema)}", (*path, str(name)))
                continue
            _flatten(sub, sub_schema, sub_data, (*path, str(name)), out, section=section, lines=lines, file=file,
                     key_prefix=key_prefix)
        for sub in without:
            _flatten(sub, schema, data, path, out, section=section, lines=lines, file=file, key_prefix=key_prefix)
        return
    if isinstance(exc, ForbiddenExtraKeysError):
        known = [f.name for f in attrs.fields(exc.cl)] if attrs.has(exc.cl) else []
        for extra in sorted(exc.extra_fields):
            close = difflib.get_close_matches(extra, known, n=1, cutoff=0.5)
            hint = f" — did you mean {close[0]!r}?" if close else (
                f"; expected one of: {', '.join(known)}" if known else "; this provider takes no options")
            issue(f"unknown key{hint}", (*path, extra), given=extra)
        return
    if isinstance(exc, _StrictTypeError):
        issue(str(exc), path, given=data)
        return
    if typing.get_origin(schema) is Literal:
        issue(f"expected {_expected(schema)}, got {_describe(data)}", path, given=data)
        return
    if isinstance(exc, TypeError | ValueError) and schema is not None:
        detail = str(exc)
        if "Literal" in detail or typing.get_origin(schema) is Literal or "not in" in detail:
            issue(f"expected {_expected(schema)}, got {_describe(data)}", path, given=data)
        else:
            # A whole-section failure (an attrs validator) must not print the resolved table: it may hold secrets.
            shown = f" {_describe(data)}" if path and not isinstance(data, Mapping | list) else ""
            issue(f"invalid value{shown}: {detail}", path, given=data if path else None)
        return
    issue(f"{type(exc).__name__}: {exc}", path, given=data)


# --------------------------------------------------------------------------------------------- the data dir
def data_dir_path(platform: PlatformConfig, base_dir: Path) -> Path:
    """``[platform] data_dir`` as an absolute path: ``~`` expanded, a relative one taken from ``base_dir`` (the
    config file's folder, or the working directory for a dict or no file)."""
    data_dir = Path(platform.data_dir).expanduser()
    return (data_dir if data_dir.is_absolute() else base_dir / data_dir).resolve()


def _data_dir_problem(path: Path) -> str | None:
    """Why ``path`` cannot serve as the data dir (cannot be created or written), or None. Leaves no trace."""
    existing = path
    while not os.path.lexists(existing) and existing != existing.parent:
        existing = existing.parent
    if existing == path and not path.is_dir():
        return f"{str(path)!r} exists and is not a directory"
    if not existing.is_dir():
        return f"{str(path)!r} cannot be created: {str(existing)!r} is a file, not a directory"
    # Try it rather than trust os.access: root, read-only mounts and ACLs all answer differently.
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".modelyard-check-", dir=existing))
    except OSError as exc:
        verb = "is not writable" if existing == path else f"cannot be created in {str(existing)!r}"
        return f"{str(path)!r} {verb}: {exc.strerror or exc}"
    return None


def data_dir_issues(platform: PlatformConfig, base_dir: Path, *, lines: Mapping,
                    file: str | None) -> list[ConfigIssue]:
    """An issue when the data dir cannot be created or written, so ``modelyard check`` says so (nothing is
    created: a probe directory is made and removed where the data dir would go)."""
    try:
        problem = _data_dir_problem(data_dir_path(platform, base_dir))
    except (OSError, RuntimeError, ValueError) as exc:  # a NUL character, a name too long, a symlink loop, …
        problem = f"{platform.data_dir!r} is not a usable path: {exc}"
    if problem is None:
        return []
    return [ConfigIssue(message=problem, section="platform", key="data_dir", file=file, given=platform.data_dir,
                        line=lines.get(("platform", "data_dir")) or lines.get(("platform", None)))]


# --------------------------------------------------------------------------------------------- validation
def did_you_mean(word: str, choices: list[str]) -> str:
    """`` — did you mean [x]?`` or an empty string."""
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f" — did you mean [{close[0]}]?" if close else ""


def validate(raw: RawConfig, providers: Mapping[str, Mapping[str, Any]], *,
             extra_sections: Mapping[str, type] | None = None,
             broken_plugins: Mapping[str, str] | None = None,
             disabled_plugins: Iterable[str] = ()) -> ResolvedConfig:
    """Validate an interpolated config against the installed providers; raise ConfigError with *all* issues.

    ``providers`` is :func:`modelyard.plugins.collect_providers`'s result (slot → name → entry);
    ``disabled_plugins`` (the plugin manager's ``disabled``) lets an unknown provider's issue say that its
    plugin was switched off rather than that it is not installed.
    """
    disabled = frozenset(disabled_plugins)
    extra_sections = dict(extra_sections or {})
    issues: list[ConfigIssue] = []
    data = raw.data
    file = raw.file
    lines = raw.lines
    known_sections = ["platform", *SLOTS, *extra_sections]

    for name in data:
        if name not in known_sections:
            issues.append(ConfigIssue(message=f"unknown section{did_you_mean(name, known_sections)}"
                                      + ("" if did_you_mean(name, known_sections) else
                                         f"; known sections: {', '.join(known_sections)}"),
                                      section=name, line=lines.get((name, None)), file=file))

    issues += raw.issues
    platform_cfg, found = structure(data.get("platform", {}), PlatformConfig, section="platform", lines=lines,
                                    file=file)
    issues += found
    if platform_cfg is not None:
        issues += data_dir_issues(platform_cfg, raw.base_dir, lines=lines, file=file)

    chosen: dict[str, tuple[SlotChoice, ...]] = {}
    for slot in SLOTS.values():
        available = {name: entry.provider for name, entry in providers.get(slot.name, {}).items()}
        section = data.get(slot.name)
        if slot.name == "builders":
            choices, found = _validate_builders(section, available, lines=lines, file=file, disabled=disabled)
        elif slot.many:
            entries = section if section is not None else [{"use": d} for d in slot.default]
            if not isinstance(entries, list):
                found = [ConfigIssue(message=f"expected a list of tables ([[{slot.name}]]), got {_describe(entries)}",
                                     section=slot.name, line=lines.get((slot.name, None)), file=file)]
                choices = []
            else:
                choices, found = [], []
                for entry in entries:
                    choice, f = _validate_choice(slot.name, entry, available, slot.default, lines=lines, file=file,
                                                 broken=broken_plugins, disabled=disabled)
                    found += f
                    if choice is not None:
                        choices.append(choice)
        else:
            choice, found = _validate_choice(slot.name, section if section is not None else {}, available,
                                             slot.default, lines=lines, file=file, broken=broken_plugins,
                                             disabled=disabled)
            choices = [choice] if choice is not None else []
        issues += found
        chosen[slot.name] = tuple(choices)

    sections: dict[str, Any] = {}
    for name, schema in extra_sections.items():
        value, found = structure(data.get(name, {}), schema, section=name, lines=lines, file=file)
        issues += found
        sections[name] = value

    if issues:
        issues.sort(key=lambda i: (i.line or 10**9))
        raise ConfigError(issues, file=file or "config")
    base_dir = raw.base_dir
    return ResolvedConfig(platform=platform_cfg, slots=chosen, sections=sections, file=file, base_dir=base_dir)


def _provider_issue(slot: str, name: Any, available: Mapping[str, Provider], broken: Mapping[str, str] | None,
                    *, line: int | None, file: str | None, key: str = "use",
                    disabled: Iterable[str] = ()) -> ConfigIssue:
    noun = slot[:-1] if slot.endswith("s") else slot
    if not isinstance(name, str):
        return ConfigIssue(message=f"expected a provider name (a string), got {_describe(name)}", section=slot,
                           key=key, line=line, file=file, given=name)
    installed = []
    for n, p in available.items():
        missing = p.missing_requirements()
        installed.append(f"{n} ({n} needs: {p.install_hint()})" if missing else n)
    close = difflib.get_close_matches(name, list(available), n=1)
    disabled = sorted(disabled)
    if name in disabled:
        # Provider hooks of a blocked plugin never run, so the plugin is matched by name (as the built-ins are).
        return ConfigIssue(message=f"{name!r} is not available: plugin {name!r} is disabled by "
                                   "MODELYARD_DISABLE_PLUGINS / [platform] disable; re-enable it or choose "
                                   f"another {noun} (installed: {', '.join(available) or 'none'})",
                           section=slot, key=key, line=line, file=file, given=name)
    msg = f"{name!r} is not an installed {noun}"
    if close:
        msg += f" — did you mean {close[0]!r}?"
    msg += f"; installed: {', '.join(installed) or 'none'}"
    if broken:
        msg += "; plugins that failed to load: " + ", ".join(f"{k} ({v})" for k, v in broken.items())
    if disabled:
        msg += f"; disabled plugins (MODELYARD_DISABLE_PLUGINS / [platform] disable): {', '.join(disabled)}"
    return ConfigIssue(message=msg, section=slot, key=key, line=line, file=file, given=name)


def _validate_choice(slot: str, entry: Any, available: Mapping[str, Provider], default: tuple[str, ...], *,
                     lines: Mapping, file: str | None, broken: Mapping[str, str] | None,
                     disabled: Iterable[str] = ()) -> tuple[SlotChoice | None, list[ConfigIssue]]:
    if not isinstance(entry, Mapping):
        return None, [ConfigIssue(message=f"expected a table, got {_describe(entry)}", section=slot,
                                  line=lines.get((slot, None)), file=file)]
    options = dict(entry)
    use = options.pop("use", default[0] if default else None)
    provider = available.get(use) if isinstance(use, str) else None
    line = lines.get((slot, "use")) or lines.get((slot, None))
    if provider is None:
        return None, [_provider_issue(slot, use, available, broken, line=line, file=file, disabled=disabled)]
    missing = provider.missing_requirements()
    if missing:
        return None, [ConfigIssue(
            message=f"provider {use!r} needs {', '.join(missing)}, which is not installed: {provider.install_hint()}",
            section=slot, key="use", line=line, file=file, given=use)]
    config, issues = structure(options, provider.config_schema or NoConfig, section=slot, lines=lines, file=file)
    if issues:
        return None, issues
    issues = _provider_check(provider, config, slot, lines=lines, file=file)
    if issues:
        return None, issues
    return SlotChoice(slot=slot, provider=provider, config=config), []


def _provider_check(provider: Provider, config: Any, section: str, *, lines: Mapping, file: str | None,
                    key_prefix: str = "") -> list[ConfigIssue]:
    """Run a provider's own static check of its converted config (see :attr:`Provider.check`)."""
    if provider.check is None:
        return []
    issues = []
    try:
        found = list(provider.check(config))
    except Exception as exc:  # a broken check must not hide the config's real problems
        found = [(None, f"provider {provider.name!r} could not check its config: {type(exc).__name__}: {exc}")]
    for key, message in found:
        full = ".".join(k for k in (key_prefix, key) if k) or None
        issues.append(ConfigIssue(message=message, section=section, key=full, file=file,
                                  line=lines.get((section, key)) or lines.get((section, None))))
    return issues


def _validate_builders(section: Any, available: Mapping[str, Provider], *, lines: Mapping, file: str | None,
                       disabled: Iterable[str] = ()) -> tuple[list[SlotChoice], list[ConfigIssue]]:
    """``[builders.<flavor>]`` tables hold options. ``[builders] enabled = [...]`` lists the flavors to enable
    (only those); without it every installed flavor whose packages exist is enabled."""
    issues: list[ConfigIssue] = []
    section = section if section is not None else {}
    if not isinstance(section, Mapping):
        return [], [ConfigIssue(message=f"expected a table of flavors, got {_describe(section)}", section="builders",
                                line=lines.get(("builders", None)), file=file)]
    section = dict(section)
    enabled = section.pop("enabled", None)
    line = lines.get(("builders", "enabled")) or lines.get(("builders", None))
    if enabled is not None:
        if not isinstance(enabled, list) or not all(isinstance(f, str) for f in enabled):
            return [], [ConfigIssue(message="expected a list of flavor names, e.g. enabled = [\"onnx\", \"torch\"]",
                                    section="builders", key="enabled", line=line, file=file,
                                    given=enabled)]
        for flavor in enabled:
            if flavor not in section:
                section[flavor] = {}
        extra = [f for f in section if f not in enabled]
        if extra:
            return [], [ConfigIssue(message=f"[builders.{extra[0]}] has options but {extra[0]!r} is not in "
                                            f"[builders] enabled; add it there or remove the table",
                                    section="builders", key=extra[0], line=line, file=file)]
    choices = []
    for flavor, options in section.items():
        provider = available.get(flavor)
        line = lines.get(("builders", flavor)) or lines.get((f"builders.{flavor}", None))
        if provider is None:
            issues.append(_provider_issue("builders", flavor, available, None, line=line, file=file, key=flavor,
                                          disabled=disabled))
            continue
        if provider.missing_requirements():
            issues.append(ConfigIssue(message=f"builder {flavor!r} needs packages that are not installed: "
                                      f"{provider.install_hint()}", section="builders", key=flavor, line=line,
                                      file=file))
            continue
        config, found = structure(options, provider.config_schema or NoConfig, section="builders", lines=lines,
                                  file=file, key_prefix=flavor)
        issues += found
        if config is not None:
            choices.append(SlotChoice(slot="builders", provider=provider, config=config))
    if enabled is None:
        for flavor, provider in available.items():
            if flavor not in section and not provider.missing_requirements():
                choices.append(SlotChoice(slot="builders", provider=provider,
                                          config=(provider.config_schema or NoConfig)()))
    return choices, issues

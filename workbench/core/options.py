"""Declarative options shared by the CLI and the GUI.

Each codec/quantizer/model declares a frozen dataclass whose fields are created with `option(...)`.
The metadata (help text, range, choices, label) is all the CLI needs to build flags and the GUI needs
to build widgets, so an option is declared once and both front ends stay in step.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Any

from workbench.core.errors import OptionError


def option(default: Any, help: str, *, minimum: float | None = None, maximum: float | None = None,
           choices: tuple | None = None, label: str | None = None, step: float | None = None,
           choice_labels: tuple[str, ...] | None = None) -> Any:
    """A dataclass field carrying the metadata the front ends need.

    `choice_labels` are plain words for `choices`, one each, for people who do not know the values'
    names ("Trellis search, 8 states" for "tcq8"); the CLI keeps the short values.
    """
    if choice_labels is not None and (choices is None or len(choice_labels) != len(choices)):
        raise ValueError("choice_labels needs one label per choice")
    return field(default=default, metadata={
        "help": help, "minimum": minimum, "maximum": maximum, "choices": choices,
        "label": label, "step": step, "choice_labels": choice_labels,
    })


@dataclass(frozen=True)
class OptionSpec:
    name: str
    type: type
    default: Any
    help: str
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple | None = None
    label: str | None = None
    step: float | None = None
    choice_labels: tuple[str, ...] | None = None

    @property
    def title(self) -> str:
        return self.label or self.name.replace("_", " ").capitalize()

    def convert(self, value: Any) -> Any:
        """Turn a CLI string (or GUI value) into a checked value of the declared type."""
        try:
            if self.type is bool and isinstance(value, str):
                low = value.strip().lower()
                if low not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                    raise ValueError(value)
                out: Any = low in ("1", "true", "yes", "on")
            else:
                out = self.type(value)
        except (TypeError, ValueError):
            raise OptionError(f"option {self.name}: {value!r} is not a valid {self.type.__name__}") from None
        if self.choices is not None and out not in self.choices:
            raise OptionError(f"option {self.name}: {out!r} is not one of {', '.join(map(str, self.choices))}")
        if self.minimum is not None and out < self.minimum:
            raise OptionError(f"option {self.name}: {out} is below the minimum {self.minimum}")
        if self.maximum is not None and out > self.maximum:
            raise OptionError(f"option {self.name}: {out} is above the maximum {self.maximum}")
        return out


def specs(options_cls: type) -> list[OptionSpec]:
    """The option declarations of a frozen options dataclass, in declaration order."""
    hints = typing.get_type_hints(options_cls)
    out = []
    for f in dataclasses.fields(options_cls):
        md = f.metadata
        out.append(OptionSpec(name=f.name, type=hints[f.name], default=f.default, help=md.get("help", ""),
                              minimum=md.get("minimum"), maximum=md.get("maximum"), choices=md.get("choices"),
                              label=md.get("label"), step=md.get("step"),
                              choice_labels=md.get("choice_labels")))
    return out


def build(options_cls: type, values: dict[str, Any] | None = None) -> Any:
    """Create an options instance from loosely typed values, checking every field."""
    values = dict(values or {})
    by_name = {s.name: s for s in specs(options_cls)}
    unknown = sorted(set(values) - set(by_name))
    if unknown:
        raise OptionError(f"unknown option(s) {', '.join(unknown)} (known: {', '.join(by_name) or 'none'})")
    kwargs = {}
    for name, spec in by_name.items():
        kwargs[name] = spec.convert(values[name]) if name in values else spec.default
    return options_cls(**kwargs)


def as_dict(opts: Any) -> dict[str, Any]:
    return dataclasses.asdict(opts)

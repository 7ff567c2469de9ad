"""The compact facts kept about one element of a StructureDefinition."""

from __future__ import annotations

from dataclasses import dataclass

# Types whose elements are defined inline (children listed under the element's own path).
BACKBONE_TYPES = frozenset({"BackboneElement", "Element"})


@dataclass(frozen=True, slots=True)
class ElementInfo:
    """One element of a resource or complex data type, from the base snapshot.

    ``path`` is the element path as written in the definition (``Patient.deceased[x]``);
    ``max`` is ``None`` when unbounded (``*``); ``binding`` is the canonical URL (without
    version) of a *required* binding, if any; ``content_reference`` names the element
    whose definition this one re-uses (``Parameters.parameter`` for ``...part``).
    """

    path: str
    min: int
    max: int | None
    types: tuple[str, ...]
    is_summary: bool
    is_modifier: bool = False
    binding: str | None = None
    content_reference: str | None = None
    has_children: bool = False
    #: an XML attribute rather than an element (``representation: xmlAttr``: the ``id``
    #: of an element, ``Extension.url``)
    xml_attribute: bool = False

    @property
    def name(self) -> str:
        """The last path segment (``deceased[x]``, ``given``)."""
        return self.path.rsplit(".", 1)[-1]

    @property
    def is_array(self) -> bool:
        """Whether the element repeats (JSON array)."""
        return self.max is None or self.max > 1

    @property
    def is_choice(self) -> bool:
        """Whether this is a ``[x]`` choice element."""
        return self.path.endswith("[x]")

    @property
    def is_mandatory(self) -> bool:
        """Whether the element must be present (``min >= 1``)."""
        return self.min >= 1

    @property
    def is_backbone(self) -> bool:
        """Whether the element is an inline structure (its own children, or re-used ones)."""
        return self.has_children or self.content_reference is not None

    def json_names(self) -> tuple[str, ...]:
        """The JSON property names this element may appear under (choices expanded)."""
        if not self.is_choice:
            return (self.name,)
        stem = self.name[:-3]
        return tuple(stem + t[0].upper() + t[1:] for t in self.types)

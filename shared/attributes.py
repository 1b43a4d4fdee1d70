"""Attributes beside the category (issue 19): gender, colour family, usage
and season, and how the raw ``styles.csv`` values become model classes.

One definition for training and serving:

- :data:`ATTRIBUTES`: the attribute names, in the order the model's extra
  heads are built and exported, and the ``styles.csv`` column each one reads.
- :data:`COLOUR_FAMILIES`: every ``baseColour`` value found in
  ``fashion-product-images-small`` (2,010 rows, 39 values) and
  ``fashion-product-images-12k`` (11,944 rows, 45 values), mapped to one of
  ten families. Counts below are (small, 12k) over all rows of each
  ``styles.csv``, from ``csv.DictReader`` + ``collections.Counter``.
- :func:`attribute_vocabulary`: the rare-value rule (:data:`MIN_COUNT`).
- :func:`class_weights`: per-attribute class weights for the imbalance.

An empty or unknown raw value is a *missing* label (``None``): training
masks it out of that head's loss, it is never guessed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping

#: attribute name -> the ``styles.csv`` column it is read from; the order of
#: the model's extra heads (and of their outputs) follows this order
ATTRIBUTES: dict[str, str] = {
    "gender": "gender",
    "colour": "baseColour",
    "usage": "usage",
    "season": "season",
}

#: the ten colour families, in a fixed order
FAMILIES: tuple[str, ...] = (
    "black",
    "white",
    "grey",
    "blue",
    "red",
    "green",
    "yellow/orange",
    "pink/purple",
    "brown/beige",
    "multi/other",
)

#: every baseColour of both data sets -> its family; counts are (small, 12k)
COLOUR_FAMILIES: dict[str, str] = {
    "Black": "black",  # (398, 2575)
    "Charcoal": "black",  # (4, 26): near-black grey, sold as dark
    "White": "white",  # (303, 1884)
    "Off White": "white",  # (9, 39)
    "Cream": "white",  # (9, 94)
    "Grey": "grey",  # (146, 691)
    "Grey Melange": "grey",  # (0, 10)
    "Silver": "grey",  # (34, 261): metallic grey
    "Steel": "grey",  # (16, 112)
    "Blue": "blue",  # (240, 1168)
    "Navy Blue": "blue",  # (96, 358)
    "Turquoise Blue": "blue",  # (0, 22)
    "Teal": "blue",  # (1, 27)
    "Red": "red",  # (136, 614)
    "Maroon": "red",  # (31, 167)
    "Burgundy": "red",  # (1, 9)
    "Rust": "red",  # (2, 20)
    "Green": "green",  # (119, 592)
    "Olive": "green",  # (14, 100)
    "Sea Green": "green",  # (2, 5)
    "Lime Green": "green",  # (0, 3)
    "Fluorescent Green": "green",  # (0, 2)
    "Yellow": "yellow/orange",  # (33, 184)
    "Orange": "yellow/orange",  # (22, 130)
    "Mustard": "yellow/orange",  # (3, 31)
    "Gold": "yellow/orange",  # (20, 197): metallic yellow
    "Peach": "yellow/orange",  # (4, 55)
    "Pink": "pink/purple",  # (76, 463)
    "Purple": "pink/purple",  # (84, 466)
    "Magenta": "pink/purple",  # (2, 39)
    "Lavender": "pink/purple",  # (4, 36)
    "Mauve": "pink/purple",  # (0, 2)
    "Rose": "pink/purple",  # (0, 1)
    "Brown": "brown/beige",  # (142, 1011)
    "Coffee Brown": "brown/beige",  # (2, 7)
    "Mushroom Brown": "brown/beige",  # (1, 3)
    "Beige": "brown/beige",  # (23, 248)
    "Tan": "brown/beige",  # (7, 35)
    "Khaki": "brown/beige",  # (5, 23)
    "Taupe": "brown/beige",  # (1, 6)
    "Nude": "brown/beige",  # (1, 2)
    "Copper": "brown/beige",  # (6, 40): metallic brown
    "Bronze": "brown/beige",  # (2, 40): metallic brown
    "Multi": "multi/other",  # (10, 114)
    "Metallic": "multi/other",  # (1, 32): no hue named
}

#: a value seen fewer times than this in the training rows is merged into
#: the attribute's fallback (:data:`MERGE_INTO`) when it has one, else dropped
#: (that label becomes missing and is masked); the counts above show the
#: values it hits: "Smart Casual" (1, 17), "Travel" (0, 3), "Party" (0, 3)
MIN_COUNT = 20

#: where rare values of an attribute go; an attribute not named here drops them.
#: "Smart Casual" is merged into "Casual" rather than "Formal": its rows are
#: watches (11), casual shoes (5) and shirts (2) over both sets, articles that
#: are "Casual" elsewhere in the data.
MERGE_INTO: dict[str, dict[str, str]] = {
    "usage": {"Smart Casual": "Casual"},
}


def raw_value(attribute: str, value: str | None) -> str | None:
    """One ``styles.csv`` cell -> the attribute's value before the rare rule:
    ``colour`` goes through :data:`COLOUR_FAMILIES` (a family name of
    :data:`FAMILIES` stays itself, as the dataset export writes it; an unknown colour -> None);
    other attributes keep the stripped text; an empty cell -> None.
    ValueError for an unknown attribute name."""
    if attribute not in ATTRIBUTES:
        raise ValueError(f"unknown attribute {attribute!r}; known: {list(ATTRIBUTES)}")
    text = (value or "").strip()
    if not text:
        return None
    if attribute == "colour":
        # a family name reads as itself: the dataset export's column holds families
        return COLOUR_FAMILIES.get(text) or (text if text in FAMILIES else None)
    return text


def attribute_vocabulary(values: Iterable[str | None], attribute: str, *, min_count: int = MIN_COUNT) -> dict[str, str]:
    """The rare-value rule for one attribute over its (training) values:
    returns {value: class} for every value seen, where a value seen at least
    ``min_count`` times is its own class, a rarer one maps to its
    :data:`MERGE_INTO` target when that target is itself frequent enough,
    and is otherwise absent (dropped: its label becomes missing). ``None``
    values (missing) are ignored."""
    counts = Counter(v for v in values if v is not None)
    merged: Counter[str] = Counter()
    targets = MERGE_INTO.get(attribute, {})
    for value, n in counts.items():
        merged[targets.get(value, value) if n < min_count else value] += n
    kept = {value for value, n in merged.items() if n >= min_count}
    mapping = {}
    for value, n in counts.items():
        target = value if n >= min_count else targets.get(value)
        if target in kept:
            mapping[value] = target
    return mapping


def classes_of(mapping: Mapping[str, str]) -> list[str]:
    """The sorted class names of a vocabulary (for the colour attribute in
    :data:`FAMILIES` order)."""
    found = set(mapping.values())
    ordered = [f for f in FAMILIES if f in found]
    return ordered + sorted(found - set(ordered))


def class_weights(targets: Iterable[int], classes: int) -> list[float]:
    """Balanced class weights ``n / (classes * count)`` (the
    scikit-learn "balanced" rule) over the non-missing targets (a target < 0
    is missing); a class never seen gets weight 0. Returns ``classes`` floats."""
    counts = Counter(int(t) for t in targets if int(t) >= 0)
    total = sum(counts.values())
    return [round(total / (classes * counts[k]), 6) if counts[k] else 0.0 for k in range(classes)]


def in_order(names: Iterable[str]) -> list[str]:
    """``names`` in :data:`ATTRIBUTES` order, any unknown name after them
    (sorted): one order for every listing of attributes."""
    known = list(ATTRIBUTES)
    names = set(names)
    return [n for n in known if n in names] + sorted(names - set(known))


def compact(values: Mapping[str, str | None] | None) -> str:
    """Effective attribute values in one short cell, in :data:`ATTRIBUTES`
    order, comma-separated; one left empty shows as ``?name``:
    ``Men,?colour,Casual,Fall``. "-" when there are none."""
    values = values or {}
    cells = [values[name] if values[name] is not None else f"?{name}" for name in in_order(values)]
    return ",".join(cells) if cells else "-"

"""Synthetic subjects for tests and demos: complete, realistic, internally consistent, deterministic.

By layer:

- `fill`: one form from its schema (defaults, examples, limits, code lists): no study knowledge;
- `roles`: which form is the consent, the pregnancy test, the infusion... as the forms declare (`x-role`);
- `links`: a whole subject: dates from the schedule, and the records that must agree, found by role;
- `plants`: named problems planted in a clean record (`PLANTS`, `plant`, `@plant_kind`);
- `output`: planted subjects and the files `build_crf.py synth` writes.

A study whose forms declare no roles still generates, from its schemas alone; `skipped(study)` says what
the generator could not do for it.
"""
from __future__ import annotations

from .fill import FIRST_DAY0, as_number, fill_form, form_examples, schema_node, typical_range
from .links import clean_subject, derive, vial_counts
from .output import generate, planted_subject, subject_json
from .plants import PLANTS, Plant, PlantNotApplicable, plant, plant_kind
from .roles import skipped

__all__ = [
    "FIRST_DAY0", "PLANTS", "Plant", "PlantNotApplicable", "as_number", "clean_subject", "derive", "fill_form",
    "form_examples", "generate", "plant", "plant_kind", "planted_subject", "schema_node", "skipped", "subject_json",
    "typical_range", "vial_counts",
]

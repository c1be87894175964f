"""crf.fieldmap.FieldPath: the one way a field's path in a subject document is written and read back."""
from __future__ import annotations

import pytest

from crf.fieldmap import FieldPath, iter_fields, parse_defined_name


def test_a_visit_field_and_a_log_cell_as_written_in_docs_workbook_format():
    assert str(FieldPath.visit("V1", "VS_PRE", "WEIGHT")) == "/visits/V1/VS_PRE/WEIGHT"
    assert str(FieldPath.visit("ATT#2", "EDSS", "EDSSSCR")) == "/visits/ATT#2/EDSS/EDSSSCR"  # the second attack visit
    assert str(FieldPath.log("AE", 0, "AETERM")) == "/logs/AE/0/AETERM"  # the log's first row


@pytest.mark.parametrize("text", ["/visits/V1/VS_PRE/WEIGHT", "/visits/ATT#2/EDSS/EDSSSCR", "/logs/AE/0/AETERM", "/logs/CM/41/CMTRT"])
def test_read_back_as_written(text):
    path = FieldPath.parse(text)
    assert path is not None and str(path) == text
    assert path.is_log == text.startswith("/logs/")


@pytest.mark.parametrize("text", ["/visits/V1/VS_PRE", "/visits/V1/VS_PRE/WEIGHT/0", "/logs/AE/+3/AETERM", "/logs/AE/-1/AETERM",
                                  "/logs/AE/\u00b2/AETERM", "/subject", "", "/forms/V1/VS_PRE/WEIGHT"])
def test_what_is_not_a_field_path(text):
    assert FieldPath.parse(text) is None


def test_every_field_of_the_mini_study_has_the_path_its_defined_name_gives(mini_study):
    for field in iter_fields(mini_study):
        container, form, item, row = parse_defined_name(field.defined_name)
        expected = FieldPath.visit(container, form, item) if row is None else FieldPath.log(container, row, item)
        assert field.path == str(expected) and FieldPath.parse(field.path) == expected

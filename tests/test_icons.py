"""Every icon Providore names exists in the frontend's Material Design Icons."""

from __future__ import annotations

import json
from pathlib import Path
import re

import pytest

ICONS = Path(__file__).parents[1] / "custom_components" / "providore" / "icons.json"
ICON_NAME = re.compile(r'"mdi:([a-z0-9-]+)"')


def test_icons_exist_in_the_frontend() -> None:
    """An icon the frontend does not know leaves an empty space beside the entity."""
    frontend = pytest.importorskip("hass_frontend")
    icon_list = frontend.where() / "static" / "mdi" / "iconList.json"
    known = {icon["name"] for icon in json.loads(icon_list.read_text())}
    named = set(ICON_NAME.findall(ICONS.read_text()))
    assert named, "icons.json names no icon"
    assert named <= known, f"unknown icons: {sorted(named - known)}"

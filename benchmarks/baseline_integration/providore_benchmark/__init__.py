"""Baselines for benchmarks/fleet.py, served by the same Home Assistant as Providore.

A trivial unauthenticated view (what any request costs Home Assistant's HTTP stack)
and Home Assistant's own static file path for a given file (what sending the bytes of
a firmware file costs without Providore). For the benchmark only: never installed.
"""

from __future__ import annotations

from aiohttp import web
from homeassistant.components.http import StaticPathConfig
from homeassistant.core import HomeAssistant
from homeassistant.helpers import config_validation as cv
from homeassistant.helpers.http import HomeAssistantView
from homeassistant.helpers.typing import ConfigType
import voluptuous as vol

DOMAIN = "providore_benchmark"
CONF_STATIC_FILE = "static_file"
TRIVIAL_URL = "/api/providore_benchmark/trivial"
STATIC_URL = "/providore_benchmark/static"

CONFIG_SCHEMA = vol.Schema(
    {DOMAIN: vol.Schema({vol.Required(CONF_STATIC_FILE): cv.string})},
    extra=vol.ALLOW_EXTRA,
)


class TrivialView(HomeAssistantView):
    """GET answers a short text, to anyone."""

    url = TRIVIAL_URL
    name = "api:providore_benchmark:trivial"
    requires_auth = False

    async def get(self, request: web.Request) -> web.Response:
        """Answer at once."""
        return web.Response(text="ok")


async def async_setup(hass: HomeAssistant, config: ConfigType) -> bool:
    """Register the trivial view, and the static path to the file (relative to config)."""
    hass.http.register_view(TrivialView())
    static_file = hass.config.path(config[DOMAIN][CONF_STATIC_FILE])
    await hass.http.async_register_static_paths(
        [StaticPathConfig(STATIC_URL, static_file, cache_headers=False)]
    )
    return True

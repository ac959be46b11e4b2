"""Providore reference device client: a second, independent implementation of protocol v1.

Depends on aiohttp, cryptography and PyYAML only; never on Home Assistant or the integration.
"""

__version__ = "0.1.0"

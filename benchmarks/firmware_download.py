"""Benchmark: firmware downloads through Home Assistant's HTTP stack.

Run with `.venv/bin/python benchmarks/firmware_download.py [--size-mib 64]`.

It sets up Home Assistant with Providore in a temporary folder, serves its HTTP
app on a loopback port, uploads a random firmware build, assigns it to a device,
and prints:

- the signing time of the first download (a pass over the file) versus the second
  (the kept HMAC state, finished with two timestamps);
- download throughput through Home Assistant versus a plain read of the same file;
- the peak of Python memory allocated during a download, for a small and a large
  file: streaming keeps it flat whatever the size.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
import os
from pathlib import Path
import sys
import tempfile
import time
import tracemalloc

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# pylint: disable=wrong-import-position
from aiohttp import ClientSession
from aiohttp.test_utils import TestServer
from homeassistant import loader
from homeassistant.config_entries import ConfigSubentryData
from homeassistant.core import HomeAssistant
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_test_home_assistant,
)

from custom_components.providore.const import (
    API_BASE_PATH,
    CONF_FIRMWARE_TYPE,
    CONF_KEY_ID,
    DOMAIN,
    SUBENTRY_TYPE_DEVICE,
)
from custom_components.providore.hub import ProvidoreHub
from custom_components.providore.protocol import (
    generate_secret_key,
    sign,
)
from custom_components.providore.storage import async_get_storage

KEY_ID = "bench01"
FIRMWARE_TYPE = "bench-board"
MIB = 1024 * 1024


def _signed_headers(secret_key: str) -> dict[str, str]:
    now = datetime.now(UTC)
    created = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    expiry = (now + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    message = f"GET\n/firmware\n0.0.1\n{created}\n{expiry}".encode()
    return {
        "Authorization": f'Hmac key-id="{KEY_ID}", signature="{sign(secret_key, message)}"',
        "X-Firmware-Version": "0.0.1",
        "Created-At": created,
        "Expiry": expiry,
    }


async def _timed[T](work: Callable[[], Awaitable[T]]) -> tuple[T, float]:
    start = time.perf_counter()
    result = await work()
    return result, time.perf_counter() - start


async def _set_up(hass: HomeAssistant, secret_key: str) -> ProvidoreHub:
    # The test harness hides custom integrations unless this is dropped.
    hass.data.pop(loader.DATA_CUSTOM_COMPONENTS)
    assert await async_setup_component(hass, "http", {})
    await (await async_get_storage(hass)).async_set_secret(KEY_ID, secret_key)
    entry = MockConfigEntry(
        domain=DOMAIN,
        unique_id=DOMAIN,
        subentries_data=[
            ConfigSubentryData(
                data={CONF_KEY_ID: KEY_ID, CONF_FIRMWARE_TYPE: FIRMWARE_TYPE},
                subentry_type=SUBENTRY_TYPE_DEVICE,
                title="Bench device",
                unique_id=KEY_ID,
            )
        ],
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    hub: ProvidoreHub = entry.runtime_data
    return hub


async def _add_build(hub: ProvidoreHub, folder: Path, version: str, size: int) -> Path:
    source = folder / f"{version}.bin"
    with source.open("wb") as file:
        for _ in range(size // MIB):
            file.write(os.urandom(MIB))
    build = await hub.firmware.catalog.async_add(FIRMWARE_TYPE, version, source)
    await hub.firmware.async_install(KEY_ID, version)
    return hub.firmware.catalog.path(build)


async def _download(session: ClientSession, url: str, secret_key: str) -> int:
    received = 0
    async with session.get(url, headers=_signed_headers(secret_key)) as resp:
        assert resp.status == 200, resp.status
        async for chunk in resp.content.iter_chunked(256 * 1024):
            received += len(chunk)
    return received


def _plain_read(path: Path) -> int:
    total = 0
    with path.open("rb") as file:
        while chunk := file.read(256 * 1024):
            total += len(chunk)
    return total


async def _peak_memory(work: Callable[[], Awaitable[object]]) -> int:
    tracemalloc.start()
    try:
        await work()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


async def main(size_mib: int) -> None:
    """Run the benchmark and print its results."""
    secret_key = generate_secret_key()
    with tempfile.TemporaryDirectory() as config_dir:
        async with async_test_home_assistant(config_dir=config_dir) as hass:
            hub = await _set_up(hass, secret_key)
            server = TestServer(hass.http.app, host="127.0.0.1")
            await server.start_server()
            url = str(server.make_url(f"{API_BASE_PATH}/firmware"))
            folder = Path(config_dir)
            try:
                async with ClientSession() as session:
                    await _add_build(hub, folder, "1.0.0", 4 * MIB)
                    await _download(session, url, secret_key)  # warm the cache
                    small_peak = await _peak_memory(
                        lambda: _download(session, url, secret_key)
                    )

                    path = await _add_build(hub, folder, "2.0.0", size_mib * MIB)
                    build = hub.firmware.assigned(KEY_ID)
                    assert build is not None
                    cache = hub.firmware.signatures
                    _, first_signing = await _timed(
                        lambda: cache.async_signer(
                            hass, KEY_ID, secret_key, build, path
                        )
                    )
                    _, second_signing = await _timed(
                        lambda: cache.async_signer(
                            hass, KEY_ID, secret_key, build, path
                        )
                    )
                    received, http_time = await _timed(
                        lambda: _download(session, url, secret_key)
                    )
                    large_peak = await _peak_memory(
                        lambda: _download(session, url, secret_key)
                    )
                    plain_size, plain_time = await _timed(
                        lambda: hass.async_add_executor_job(_plain_read, path)
                    )
            finally:
                await server.close()
            assert received == plain_size == size_mib * MIB

    print(f"firmware size:                       {size_mib} MiB")
    print(f"signing, first download:             {first_signing * 1000:9.2f} ms")
    print(f"signing, second download (cached):   {second_signing * 1000:9.2f} ms")
    print(
        f"download through Home Assistant:     {size_mib / http_time:9.1f} MiB/s"
        " (signed, streamed, loopback)"
    )
    print(f"plain read of the same file:         {size_mib / plain_time:9.1f} MiB/s")
    print(f"peak Python memory, 4 MiB download:  {small_peak / MIB:9.2f} MiB")
    print(f"peak Python memory, {size_mib} MiB download: {large_peak / MIB:9.2f} MiB")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=64)
    asyncio.run(main(parser.parse_args().size_mib))

"""The firmware catalog: files, metadata, ordering, bad input and atomic writes."""

from __future__ import annotations

import asyncio
import errno
import hashlib
import io
import os
from pathlib import Path
import threading
from typing import Any
from unittest.mock import patch

from homeassistant.core import HomeAssistant
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.providore.const import DOMAIN
from custom_components.providore.firmware_catalog import (
    CHUNK_SIZE,
    Firmware,
    FirmwareCatalog,
    FirmwareError,
)

from .conftest import FIRMWARE_TYPE

STORE_KEY = f"{DOMAIN}.firmware"


@pytest.fixture
async def catalog(hass: HomeAssistant) -> FirmwareCatalog:
    """Return a loaded, empty catalog."""
    loaded = FirmwareCatalog(hass)
    await loaded.async_load()
    return loaded


@pytest.fixture
def source_dir(tmp_path: Path) -> Path:
    """Return a folder for the files to upload."""
    directory = tmp_path / "src"
    directory.mkdir()
    return directory


def _build(directory: Path, name: str, content: bytes) -> Path:
    path = directory / name
    path.write_bytes(content)
    return path


def _files(directory: Path) -> list[Path]:
    """Return every file under a folder (not the folders)."""
    return sorted(p for p in directory.rglob("*") if p.is_file())


async def _add(
    catalog: FirmwareCatalog,
    source_dir: Path,
    version: str,
    content: bytes | None = None,
    firmware_type: str = FIRMWARE_TYPE,
) -> Firmware:
    data = content if content is not None else f"image {version}".encode()
    source = _build(source_dir, f"{firmware_type}-{version}.bin", data)
    return await catalog.async_add(firmware_type, version, source)


# Upload.


async def test_upload_copies_and_hashes(
    hass: HomeAssistant, catalog: FirmwareCatalog, source_dir: Path
) -> None:
    # Several chunks and a partial last one.
    content = os.urandom(3 * CHUNK_SIZE + 123)
    source = _build(source_dir, "build.bin", content)
    before = dt_util.utcnow()

    build = await catalog.async_add(
        FIRMWARE_TYPE,
        "1.2.0",
        source,
        release_notes="Fixes the *sensor* drift.",
        release_url="https://example.com/releases/1.2.0",
    )

    assert build.firmware_type == FIRMWARE_TYPE
    assert build.version == "1.2.0"
    assert build.size == len(content)
    assert build.sha256 == hashlib.sha256(content).hexdigest()
    assert before <= build.uploaded_at <= dt_util.utcnow()
    assert build.uploaded_at.tzinfo is not None
    assert build.release_notes == "Fixes the *sensor* drift."
    assert build.release_url == "https://example.com/releases/1.2.0"
    path = catalog.path(build)
    assert path == Path(
        hass.config.config_dir, DOMAIN, "firmware", FIRMWARE_TYPE, "1.2.0.bin"
    )
    assert path.read_bytes() == content
    assert source.read_bytes() == content  # the source is copied, not moved
    assert _files(catalog.directory) == [path]
    assert catalog.get(FIRMWARE_TYPE, "1.2.0") == build
    assert catalog.firmware_types() == [FIRMWARE_TYPE]


async def test_upload_is_persisted(
    hass: HomeAssistant,
    catalog: FirmwareCatalog,
    source_dir: Path,
    hass_storage: dict[str, Any],
) -> None:
    build = await catalog.async_add(
        FIRMWARE_TYPE,
        "1.0.0",
        _build(source_dir, "a.bin", b"abc"),
        release_notes="Notes",
    )
    await hass.async_block_till_done()
    assert hass_storage[STORE_KEY]["data"] == {
        FIRMWARE_TYPE: {
            "1.0.0": {
                "size": 3,
                "sha256": hashlib.sha256(b"abc").hexdigest(),
                "uploaded_at": build.uploaded_at.isoformat(),
                "release_notes": "Notes",
                "release_url": None,
            }
        }
    }


async def test_empty_release_notes_and_url_are_none(
    catalog: FirmwareCatalog, source_dir: Path
) -> None:
    build = await catalog.async_add(
        FIRMWARE_TYPE, "1.0.0", _build(source_dir, "a.bin", b"x"), "", ""
    )
    assert build.release_notes is None
    assert build.release_url is None


# Ordering.


async def test_versions_order_semantically(
    catalog: FirmwareCatalog, source_dir: Path
) -> None:
    for version in ("1.9.0", "1.10.0", "2.0.0-beta.1", "1.2.0", "2.0.0", "1.0.5"):
        await _add(catalog, source_dir, version)
    await _add(catalog, source_dir, "9.9.9", firmware_type="other-board")

    assert [b.version for b in catalog.versions(FIRMWARE_TYPE)] == [
        "1.0.5",
        "1.2.0",
        "1.9.0",
        "1.10.0",
        "2.0.0-beta.1",
        "2.0.0",
    ]
    latest = catalog.latest(FIRMWARE_TYPE)
    assert latest is not None
    assert latest.version == "2.0.0"
    assert catalog.firmware_types() == [FIRMWARE_TYPE, "other-board"]


async def test_ten_is_newer_than_nine(
    catalog: FirmwareCatalog, source_dir: Path
) -> None:
    await _add(catalog, source_dir, "1.10.0")
    await _add(catalog, source_dir, "1.9.0")
    latest = catalog.latest(FIRMWARE_TYPE)
    assert latest is not None
    assert latest.version == "1.10.0"


async def test_versions_with_a_name_that_is_no_version(
    catalog: FirmwareCatalog, source_dir: Path
) -> None:
    await _add(catalog, source_dir, "1.0.0")
    await _add(catalog, source_dir, "nightly")
    assert {b.version for b in catalog.versions(FIRMWARE_TYPE)} == {"1.0.0", "nightly"}
    assert catalog.latest(FIRMWARE_TYPE) is not None


async def test_lookups_of_what_is_missing(catalog: FirmwareCatalog) -> None:
    assert catalog.versions(FIRMWARE_TYPE) == []
    assert catalog.latest(FIRMWARE_TYPE) is None
    assert catalog.latest(None) is None
    assert catalog.get(FIRMWARE_TYPE, "1.0.0") is None
    assert catalog.get(None, "1.0.0") is None
    assert catalog.get(FIRMWARE_TYPE, None) is None
    assert catalog.firmware_types() == []


# Bad input.


async def test_duplicate_version_is_refused(
    hass: HomeAssistant,
    catalog: FirmwareCatalog,
    source_dir: Path,
    hass_storage: dict[str, Any],
) -> None:
    first = await _add(catalog, source_dir, "1.0.0", b"first build")
    await hass.async_block_till_done()
    stored = hass_storage[STORE_KEY]["data"]

    with pytest.raises(FirmwareError) as err:
        await _add(catalog, source_dir, "1.0.0", b"second build")

    assert err.value.translation_key == "duplicate_firmware"
    assert err.value.translation_placeholders == {
        "firmware_type": FIRMWARE_TYPE,
        "version": "1.0.0",
    }
    assert catalog.path(first).read_bytes() == b"first build"
    assert catalog.get(FIRMWARE_TYPE, "1.0.0") == first
    assert _files(catalog.directory) == [catalog.path(first)]
    await hass.async_block_till_done()
    assert hass_storage[STORE_KEY]["data"] == stored


async def test_concurrent_uploads_of_one_version(
    catalog: FirmwareCatalog, source_dir: Path
) -> None:
    first_done = threading.Event()

    class HeldBack(Path):
        """A source that is read only once the first upload is in the catalog."""

        def open(self, *args: Any, **kwargs: Any) -> Any:
            assert first_done.wait(10)
            return super().open(*args, **kwargs)

    winner = _build(source_dir, "winner.bin", b"winner")
    _build(source_dir, "loser.bin", b"loser")
    catalog.async_add_listener(lambda _build, _added: first_done.set())

    results = await asyncio.gather(
        catalog.async_add(FIRMWARE_TYPE, "1.0.0", winner),
        catalog.async_add(FIRMWARE_TYPE, "1.0.0", HeldBack(source_dir, "loser.bin")),
        return_exceptions=True,
    )

    assert isinstance(results[0], Firmware)
    assert isinstance(results[1], FirmwareError)
    assert results[1].translation_key == "duplicate_firmware"
    build = catalog.get(FIRMWARE_TYPE, "1.0.0")
    assert build is not None
    content = catalog.path(build).read_bytes()
    assert hashlib.sha256(content).hexdigest() == build.sha256
    assert content == b"winner"


BAD_NAMES = [
    "..",
    "../x",
    "a/b",
    "a\\b",
    "/abs",
    "",
    "a" * 65,
    ".hidden",
    "-rf",
    "_x",
    "1..2",
    "a b",
    "a\x00b",
    "é",
    "\uff11.0",  # a fullwidth digit one
]


@pytest.mark.parametrize("name", BAD_NAMES)
@pytest.mark.parametrize("field", ["firmware_type", "version"])
async def test_bad_names_are_refused(
    catalog: FirmwareCatalog,
    source_dir: Path,
    tmp_path: Path,
    field: str,
    name: str,
) -> None:
    source = _build(source_dir, "build.bin", b"image")
    names = {"firmware_type": FIRMWARE_TYPE, "version": "1.0.0"} | {field: name}

    with pytest.raises(FirmwareError) as err:
        await catalog.async_add(names["firmware_type"], names["version"], source)

    assert err.value.translation_key == "invalid_firmware_name"
    assert err.value.translation_placeholders == {"name": name}
    assert not catalog.directory.exists()
    # Nothing was written anywhere else either (e.g. above the catalog).
    assert _files(tmp_path) == [source]
    assert catalog.firmware_types() == []


async def test_longest_name_is_accepted(
    catalog: FirmwareCatalog, source_dir: Path
) -> None:
    build = await _add(catalog, source_dir, "1." + "0" * 62, firmware_type="b" * 64)
    assert catalog.path(build).is_file()
    assert catalog.path(build).parent.name == "b" * 64


async def test_empty_file_is_refused(
    hass: HomeAssistant,
    catalog: FirmwareCatalog,
    source_dir: Path,
    hass_storage: dict[str, Any],
) -> None:
    with pytest.raises(FirmwareError) as err:
        await _add(catalog, source_dir, "1.0.0", b"")

    assert err.value.translation_key == "empty_firmware"
    assert _files(catalog.directory) == []
    assert catalog.get(FIRMWARE_TYPE, "1.0.0") is None
    assert catalog.firmware_types() == []
    await hass.async_block_till_done()
    assert STORE_KEY not in hass_storage


# Atomicity.


class _FailingRead(io.BytesIO):
    """A file that fails to read after its first chunk, noting what was on disk."""

    def __init__(self, data: bytes, target_dir: Path) -> None:
        super().__init__(data)
        self._target_dir = target_dir
        self.reads = 0
        self.partial_sizes: list[int] = []

    def read(self, size: int | None = -1) -> bytes:
        self.reads += 1
        if self.reads > 1:
            self.partial_sizes = [
                p.stat().st_size for p in self._target_dir.glob(".upload-*")
            ]
            raise OSError(errno.EIO, "Input/output error")
        return super().read(size)


async def test_failure_in_the_middle_of_the_copy(
    hass: HomeAssistant,
    catalog: FirmwareCatalog,
    source_dir: Path,
    hass_storage: dict[str, Any],
) -> None:
    reader = _FailingRead(os.urandom(3 * CHUNK_SIZE), catalog.directory / FIRMWARE_TYPE)

    class BrokenDisk(Path):
        """A source on a disk that fails mid-read."""

        def open(self, *args: Any, **kwargs: Any) -> Any:
            return reader

    with pytest.raises(FirmwareError) as err:
        await catalog.async_add(
            FIRMWARE_TYPE, "1.0.0", BrokenDisk(source_dir, "broken.bin")
        )

    assert err.value.translation_key == "firmware_unreadable"
    assert err.value.translation_placeholders == {"error": "Input/output error"}
    # The failure really came half-way: one chunk sat in a temporary file.
    assert reader.partial_sizes == [CHUNK_SIZE]
    assert _files(catalog.directory) == []
    assert catalog.get(FIRMWARE_TYPE, "1.0.0") is None
    await hass.async_block_till_done()
    assert STORE_KEY not in hass_storage


async def test_failure_to_save_the_metadata(
    hass: HomeAssistant,
    catalog: FirmwareCatalog,
    source_dir: Path,
    hass_storage: dict[str, Any],
) -> None:
    existing = await _add(catalog, source_dir, "1.0.0")
    await hass.async_block_till_done()
    stored = hass_storage[STORE_KEY]["data"]

    with (
        patch(
            "homeassistant.helpers.storage.Store._async_write_data",
            side_effect=OSError(errno.ENOSPC, "No space left on device"),
        ),
        pytest.raises(OSError, match="No space left"),
    ):
        await _add(catalog, source_dir, "2.0.0")

    assert catalog.get(FIRMWARE_TYPE, "2.0.0") is None
    assert catalog.versions(FIRMWARE_TYPE) == [existing]
    assert _files(catalog.directory) == [catalog.path(existing)]
    assert hass_storage[STORE_KEY]["data"] == stored


async def test_failed_save_of_a_new_type_leaves_no_type(
    catalog: FirmwareCatalog, source_dir: Path
) -> None:
    with (
        patch(
            "homeassistant.helpers.storage.Store._async_write_data",
            side_effect=OSError(errno.ENOSPC, "No space left on device"),
        ),
        pytest.raises(OSError, match="No space left"),
    ):
        await _add(catalog, source_dir, "1.0.0", firmware_type="new-board")

    assert catalog.firmware_types() == []


async def test_leftover_temporary_files_are_removed_on_load(
    hass: HomeAssistant, catalog: FirmwareCatalog, source_dir: Path
) -> None:
    build = await _add(catalog, source_dir, "1.0.0")
    type_dir = catalog.path(build).parent
    leftovers = [type_dir / ".upload-k2j3h4", type_dir / ".upload-"]
    for leftover in leftovers:
        leftover.write_bytes(b"half a build")
    other_type = catalog.directory / "other-board"
    other_type.mkdir()
    (other_type / ".upload-zz").write_bytes(b"half")

    restarted = FirmwareCatalog(hass)
    await restarted.async_load()

    assert _files(catalog.directory) == [catalog.path(build)]
    assert restarted.get(FIRMWARE_TYPE, "1.0.0") == build


async def test_load_without_a_firmware_folder(hass: HomeAssistant) -> None:
    catalog = FirmwareCatalog(hass)
    await catalog.async_load()
    assert catalog.firmware_types() == []
    assert not catalog.directory.exists()


# Restart, delete, remove.


async def test_restart_keeps_everything(
    hass: HomeAssistant, catalog: FirmwareCatalog, source_dir: Path
) -> None:
    builds = [
        await catalog.async_add(
            FIRMWARE_TYPE,
            "1.0.0",
            _build(source_dir, "a.bin", b"one"),
            "First",
            "https://example.com/1",
        ),
        await _add(catalog, source_dir, "1.10.0"),
        await _add(catalog, source_dir, "0.1.0", firmware_type="other-board"),
    ]
    await hass.async_block_till_done()

    restarted = FirmwareCatalog(hass)
    await restarted.async_load()

    assert restarted.firmware_types() == [FIRMWARE_TYPE, "other-board"]
    assert restarted.versions(FIRMWARE_TYPE) == builds[:2]
    assert restarted.versions("other-board") == [builds[2]]
    for build in builds:
        assert restarted.path(build).is_file()
    assert restarted.path(builds[0]).read_bytes() == b"one"


async def test_delete(
    hass: HomeAssistant,
    catalog: FirmwareCatalog,
    source_dir: Path,
    hass_storage: dict[str, Any],
) -> None:
    old = await _add(catalog, source_dir, "1.0.0")
    new = await _add(catalog, source_dir, "2.0.0")

    await catalog.async_delete(FIRMWARE_TYPE, "2.0.0")

    assert not catalog.path(new).exists()
    assert catalog.versions(FIRMWARE_TYPE) == [old]
    assert catalog.latest(FIRMWARE_TYPE) == old
    await hass.async_block_till_done()
    assert list(hass_storage[STORE_KEY]["data"][FIRMWARE_TYPE]) == ["1.0.0"]

    await catalog.async_delete(FIRMWARE_TYPE, "1.0.0")

    assert _files(catalog.directory) == []
    assert catalog.firmware_types() == []
    await hass.async_block_till_done()
    assert hass_storage[STORE_KEY]["data"] == {}


async def test_delete_unknown(catalog: FirmwareCatalog, source_dir: Path) -> None:
    build = await _add(catalog, source_dir, "1.0.0")
    for firmware_type, version in (
        (FIRMWARE_TYPE, "9.9.9"),
        ("other-board", "1.0.0"),
        ("..", "1.0.0"),
    ):
        with pytest.raises(FirmwareError) as err:
            await catalog.async_delete(firmware_type, version)
        assert err.value.translation_key == "unknown_firmware"
        assert err.value.translation_placeholders == {
            "firmware_type": firmware_type,
            "version": version,
        }
    assert catalog.path(build).is_file()


async def test_remove_deletes_the_folder_and_metadata(
    hass: HomeAssistant,
    catalog: FirmwareCatalog,
    source_dir: Path,
    hass_storage: dict[str, Any],
    config_dir: Path,
) -> None:
    await _add(catalog, source_dir, "1.0.0")
    await _add(catalog, source_dir, "1.0.0", firmware_type="other-board")
    await hass.async_block_till_done()
    assert STORE_KEY in hass_storage

    await catalog.async_remove()

    assert not catalog.directory.exists()
    assert config_dir.is_dir()
    assert catalog.firmware_types() == []
    assert STORE_KEY not in hass_storage
    restarted = FirmwareCatalog(hass)
    await restarted.async_load()
    assert restarted.firmware_types() == []


async def test_listeners(catalog: FirmwareCatalog, source_dir: Path) -> None:
    seen: list[tuple[Firmware, bool]] = []
    remove = catalog.async_add_listener(
        lambda build, added: seen.append((build, added))
    )

    build = await _add(catalog, source_dir, "1.0.0")
    assert seen == [(build, True)]

    with pytest.raises(FirmwareError):
        await _add(catalog, source_dir, "1.0.0")
    with pytest.raises(FirmwareError):
        await catalog.async_delete(FIRMWARE_TYPE, "9.9.9")
    assert seen == [(build, True)]  # refused changes notify nobody

    await catalog.async_delete(FIRMWARE_TYPE, "1.0.0")
    assert seen == [(build, True), (build, False)]

    remove()
    await _add(catalog, source_dir, "2.0.0")
    assert seen == [(build, True), (build, False)]


async def test_reloading_the_hub_keeps_the_catalog(
    hass: HomeAssistant, init_integration: MockConfigEntry, source_dir: Path
) -> None:
    catalog = init_integration.runtime_data.firmware.catalog
    build = await _add(catalog, source_dir, "1.0.0", b"kept")

    assert await hass.config_entries.async_reload(init_integration.entry_id)
    await hass.async_block_till_done()

    reloaded = init_integration.runtime_data.firmware.catalog
    assert reloaded.get(FIRMWARE_TYPE, "1.0.0") == build
    assert reloaded.path(build).read_bytes() == b"kept"

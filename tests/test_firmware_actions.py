"""Adding and removing firmware: the actions and the upload step of the options flow."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
import tempfile
from typing import Any
from uuid import uuid4

from aiohttp import FormData
from homeassistant.config_entries import ConfigFlowResult
from homeassistant.core import Context, HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.exceptions import (
    HomeAssistantError,
    ServiceValidationError,
    Unauthorized,
)
from homeassistant.helpers.selector import SelectSelector
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, MockUser
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator
import voluptuous as vol

from custom_components.providore.const import DOMAIN
from custom_components.providore.firmware_catalog import (
    FirmwareCatalog,
)

from .conftest import FIRMWARE_TYPE

CONTENT = os.urandom(70_000)


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """Return a folder outside the config folder holding a build."""
    directory = tmp_path / "outside"
    directory.mkdir()
    (directory / "fw.bin").write_bytes(CONTENT)
    return directory


@pytest.fixture
def upload_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Keep the browser uploads of this test apart from other test runs."""
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temporary))
    return temporary / "home-assistant-file_upload"


def _catalog(entry: MockConfigEntry) -> FirmwareCatalog:
    catalog: FirmwareCatalog = entry.runtime_data.firmware.catalog
    return catalog


def _in_config(config_dir: Path, name: str = "builds/fw.bin") -> Path:
    path = config_dir / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(CONTENT)
    return path


async def _upload(hass: HomeAssistant, path: str | Path, **fields: Any) -> None:
    await hass.services.async_call(
        DOMAIN,
        "upload_firmware",
        {"firmware_type": FIRMWARE_TYPE, "version": "1.0.0", "path": str(path)}
        | fields,
        blocking=True,
    )


async def _delete(hass: HomeAssistant, version: str = "1.0.0", **kwargs: Any) -> None:
    await hass.services.async_call(
        DOMAIN,
        "delete_firmware",
        {"firmware_type": FIRMWARE_TYPE, "version": version},
        blocking=True,
        **kwargs,
    )


def _assert_nothing_added(entry: MockConfigEntry) -> None:
    catalog = _catalog(entry)
    assert catalog.firmware_types() == []
    assert not catalog.directory.exists()


# The actions.


async def test_upload_and_delete_firmware(
    hass: HomeAssistant, init_integration: MockConfigEntry, config_dir: Path
) -> None:
    source = _in_config(config_dir)

    await _upload(
        hass,
        source,
        release_notes="Faster Wi-Fi.",
        release_url="https://example.com/1.0.0",
    )

    catalog = _catalog(init_integration)
    build = catalog.get(FIRMWARE_TYPE, "1.0.0")
    assert build is not None
    assert build.size == len(CONTENT)
    assert build.sha256 == hashlib.sha256(CONTENT).hexdigest()
    assert build.release_notes == "Faster Wi-Fi."
    assert build.release_url == "https://example.com/1.0.0"
    assert catalog.path(build).read_bytes() == CONTENT
    assert source.read_bytes() == CONTENT

    await _delete(hass)

    assert catalog.get(FIRMWARE_TYPE, "1.0.0") is None
    assert not catalog.path(build).exists()
    assert source.exists()


async def test_upload_with_a_relative_path(
    hass: HomeAssistant, init_integration: MockConfigEntry, config_dir: Path
) -> None:
    _in_config(config_dir, "www/firmware/sensor.bin")

    await _upload(hass, "www/firmware/sensor.bin")

    build = _catalog(init_integration).get(FIRMWARE_TYPE, "1.0.0")
    assert build is not None
    assert build.sha256 == hashlib.sha256(CONTENT).hexdigest()


async def test_upload_a_symlink_that_stays_in_the_config_folder(
    hass: HomeAssistant, init_integration: MockConfigEntry, config_dir: Path
) -> None:
    _in_config(config_dir, "builds/real.bin")
    (config_dir / "latest.bin").symlink_to(config_dir / "builds/real.bin")

    await _upload(hass, "latest.bin")

    assert _catalog(init_integration).get(FIRMWARE_TYPE, "1.0.0") is not None


@pytest.mark.parametrize(
    "path",
    [
        "{outside}/fw.bin",
        "../outside/fw.bin",
        "builds/../../outside/fw.bin",
        "/etc/passwd",
        "/etc",
    ],
)
async def test_a_path_outside_the_config_folder_is_refused(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    outside: Path,
    path: str,
) -> None:
    _in_config(Path(hass.config.config_dir))
    path = path.format(outside=outside)

    with pytest.raises(HomeAssistantError) as err:
        await _upload(hass, path)

    assert err.value.translation_key == "path_not_allowed"
    assert err.value.translation_placeholders == {"path": path}
    _assert_nothing_added(init_integration)


async def test_a_symlink_pointing_outside_is_refused(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    config_dir: Path,
    outside: Path,
) -> None:
    (config_dir / "fw.bin").symlink_to(outside / "fw.bin")
    (config_dir / "linked").symlink_to(outside)

    for path in ("fw.bin", "linked/fw.bin", str(config_dir / "fw.bin")):
        with pytest.raises(HomeAssistantError) as err:
            await _upload(hass, path)
        assert err.value.translation_key == "path_not_allowed"

    _assert_nothing_added(init_integration)


async def test_an_allowed_external_directory_is_accepted(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    outside: Path,
    tmp_path: Path,
) -> None:
    hass.config.allowlist_external_dirs = {str(outside)}

    await _upload(hass, outside / "fw.bin")

    build = _catalog(init_integration).get(FIRMWARE_TYPE, "1.0.0")
    assert build is not None
    assert build.sha256 == hashlib.sha256(CONTENT).hexdigest()

    # A link in the allowed folder does not lead anywhere else.
    secret = tmp_path / "elsewhere.bin"
    secret.write_bytes(b"not for devices")
    (outside / "link.bin").symlink_to(secret)
    with pytest.raises(HomeAssistantError) as err:
        await _upload(hass, outside / "link.bin", version="2.0.0")
    assert err.value.translation_key == "path_not_allowed"
    assert _catalog(init_integration).get(FIRMWARE_TYPE, "2.0.0") is None


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("missing.bin", "firmware_not_found"),
        ("builds", "path_not_file"),
        ("", "path_not_file"),
        ("builds/fw\x00.bin", "firmware_not_found"),
    ],
)
async def test_what_is_not_a_file_is_refused(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    config_dir: Path,
    path: str,
    reason: str,
) -> None:
    _in_config(config_dir)

    with pytest.raises(HomeAssistantError) as err:
        await _upload(hass, path)

    assert err.value.translation_key == reason
    assert err.value.translation_placeholders == {"path": path}
    _assert_nothing_added(init_integration)


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        (".storage/providore.secrets", "path_private"),
        (".storage/providore.ca", "path_private"),
        ("providore/notes.bin", "path_private"),
        ("builds/.hidden.bin", "path_private"),
        ("secrets.yaml", "path_configuration"),
        ("configuration.yaml", "path_configuration"),
        ("packages/mqtt.YML", "path_configuration"),
        ("backups/2026-11-28.tar", "path_backup"),
        ("home-assistant.log", "path_log"),
        ("home-assistant.log.1", "path_log"),
        ("home-assistant_v2.db", "path_log"),
    ],
)
async def test_private_files_are_never_firmware(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    config_dir: Path,
    name: str,
    reason: str,
) -> None:
    """Keys, the CA, configuration, backups and logs are never handed to a device."""
    _in_config(config_dir, name)
    for path in (name, config_dir / name):
        with pytest.raises(HomeAssistantError) as err:
            await _upload(hass, path)
        assert err.value.translation_key == reason

    # Nor through a link that looks harmless.
    (config_dir / "innocent.bin").symlink_to(config_dir / name)
    with pytest.raises(HomeAssistantError) as err:
        await _upload(hass, "innocent.bin")
    assert err.value.translation_key == reason
    _assert_nothing_added(init_integration)


@pytest.mark.parametrize(
    "name", [".storage/providore.secrets", "secrets.yaml", "home-assistant.log"]
)
async def test_a_hard_link_is_never_firmware(
    hass: HomeAssistant, init_integration: MockConfigEntry, config_dir: Path, name: str
) -> None:
    """A private file under a second, harmless-looking name is refused too."""
    _in_config(config_dir, name)
    (config_dir / "builds").mkdir(exist_ok=True)
    (config_dir / "builds" / "fw.bin").hardlink_to(config_dir / name)
    with pytest.raises(HomeAssistantError) as err:
        await _upload(hass, "builds/fw.bin")
    assert err.value.translation_key == "path_hard_link"
    _assert_nothing_added(init_integration)


async def test_upload_refuses_bad_names_and_duplicates(
    hass: HomeAssistant, init_integration: MockConfigEntry, config_dir: Path
) -> None:
    source = _in_config(config_dir)

    with pytest.raises(HomeAssistantError) as err:
        await _upload(hass, source, version="../../configuration")
    assert err.value.translation_key == "invalid_firmware_name"
    _assert_nothing_added(init_integration)

    await _upload(hass, source)
    other = _in_config(config_dir, "builds/other.bin")
    other.write_bytes(b"another build")
    with pytest.raises(HomeAssistantError) as err:
        await _upload(hass, other)
    assert err.value.translation_key == "duplicate_firmware"
    catalog = _catalog(init_integration)
    build = catalog.get(FIRMWARE_TYPE, "1.0.0")
    assert build is not None
    assert catalog.path(build).read_bytes() == CONTENT


async def test_upload_refuses_an_empty_file(
    hass: HomeAssistant, init_integration: MockConfigEntry, config_dir: Path
) -> None:
    source = _in_config(config_dir)
    source.write_bytes(b"")

    with pytest.raises(HomeAssistantError) as err:
        await _upload(hass, source)

    assert err.value.translation_key == "empty_firmware"
    assert _catalog(init_integration).firmware_types() == []


@pytest.mark.parametrize(
    "release_url", ["not a url", "javascript:alert(1)", "ftp://example.com/x"]
)
async def test_upload_refuses_a_bad_release_url(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    config_dir: Path,
    release_url: str,
) -> None:
    with pytest.raises(vol.Invalid):
        await _upload(hass, _in_config(config_dir), release_url=release_url)
    _assert_nothing_added(init_integration)


async def test_delete_unknown_firmware(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    with pytest.raises(HomeAssistantError) as err:
        await _delete(hass, "9.9.9")
    assert err.value.translation_key == "unknown_firmware"
    assert err.value.translation_placeholders == {
        "firmware_type": FIRMWARE_TYPE,
        "version": "9.9.9",
    }


async def test_firmware_actions_need_a_loaded_hub(
    hass: HomeAssistant, init_integration: MockConfigEntry, config_dir: Path
) -> None:
    source = _in_config(config_dir)
    await _upload(hass, source)
    await hass.config_entries.async_unload(init_integration.entry_id)

    with pytest.raises(ServiceValidationError) as err:
        await _upload(hass, source, version="2.0.0")
    assert err.value.translation_key == "not_loaded"
    with pytest.raises(ServiceValidationError) as err:
        await _delete(hass)
    assert err.value.translation_key == "not_loaded"

    # Nothing changed: set up again, the catalog still holds the first build only.
    assert await hass.config_entries.async_setup(init_integration.entry_id)
    await hass.async_block_till_done()
    assert [b.version for b in _catalog(init_integration).versions(FIRMWARE_TYPE)] == [
        "1.0.0"
    ]


async def test_firmware_actions_are_for_admins_only(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    config_dir: Path,
    hass_read_only_user: MockUser,
) -> None:
    source = _in_config(config_dir)
    context = Context(user_id=hass_read_only_user.id)

    with pytest.raises(Unauthorized):
        await hass.services.async_call(
            DOMAIN,
            "upload_firmware",
            {"firmware_type": FIRMWARE_TYPE, "version": "1.0.0", "path": str(source)},
            blocking=True,
            context=context,
        )
    _assert_nothing_added(init_integration)

    await _upload(hass, source)
    with pytest.raises(Unauthorized):
        await _delete(hass, context=context)
    assert _catalog(init_integration).get(FIRMWARE_TYPE, "1.0.0") is not None


async def test_firmware_actions_for_an_admin(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    config_dir: Path,
    hass_admin_user: MockUser,
) -> None:
    context = Context(user_id=hass_admin_user.id)
    await hass.services.async_call(
        DOMAIN,
        "upload_firmware",
        {
            "firmware_type": FIRMWARE_TYPE,
            "version": "1.0.0",
            "path": str(_in_config(config_dir)),
        },
        blocking=True,
        context=context,
    )
    assert _catalog(init_integration).get(FIRMWARE_TYPE, "1.0.0") is not None
    await _delete(hass, context=context)
    assert _catalog(init_integration).get(FIRMWARE_TYPE, "1.0.0") is None


async def test_removing_the_hub_deletes_the_firmware(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    config_dir: Path,
    hass_storage: dict[str, Any],
) -> None:
    await _upload(hass, _in_config(config_dir))
    catalog = _catalog(init_integration)
    await hass.async_block_till_done()
    assert f"{DOMAIN}.firmware" in hass_storage

    await hass.config_entries.async_remove(init_integration.entry_id)
    await hass.async_block_till_done()

    assert not catalog.directory.exists()
    assert (config_dir / "builds/fw.bin").exists()
    assert f"{DOMAIN}.firmware" not in hass_storage


# The upload step of the options flow, fed by a real browser upload.


async def _browser_upload(
    hass_client: ClientSessionGenerator, content: bytes, filename: str = "fw.bin"
) -> str:
    """Upload a file the way the frontend's file selector does; return its id."""
    client = await hass_client()
    form = FormData()
    form.add_field(
        "file", content, filename=filename, content_type="application/octet-stream"
    )
    response = await client.post("/api/file_upload", data=form)
    assert response.status == 200
    file_id: str = (await response.json())["file_id"]
    return file_id


async def _upload_step(hass: HomeAssistant, entry: MockConfigEntry) -> ConfigFlowResult:
    result = await hass.config_entries.options.async_init(entry.entry_id)
    assert result["type"] is FlowResultType.MENU
    return await hass.config_entries.options.async_configure(
        result["flow_id"], {"next_step_id": "upload_firmware"}
    )


def _suggested_values(schema: vol.Schema) -> dict[str, Any]:
    return {
        key.schema: key.description["suggested_value"]
        for key in schema.schema
        if key.description and "suggested_value" in key.description
    }


def _firmware_type_options(schema: vol.Schema) -> list[str]:
    selector = next(
        value for key, value in schema.schema.items() if key.schema == "firmware_type"
    )
    assert isinstance(selector, SelectSelector)
    assert selector.config["custom_value"] is True
    options: list[str] = selector.config["options"]
    return options


async def test_options_menu(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    result = await hass.config_entries.options.async_init(init_integration.entry_id)
    assert result["type"] is FlowResultType.MENU
    assert result["step_id"] == "init"
    assert result["menu_options"] == [
        "settings",
        "upload_firmware",
        "firmware_builds",
        "start_rollout",
        "manage_rollout",
        "import_ca",
        "server_certificate",
    ]

    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"next_step_id": "upload_firmware"}
    )

    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "upload_firmware"
    assert result["errors"] == {}
    assert [key.schema for key in result["data_schema"].schema] == [
        "firmware_file",
        "firmware_type",
        "version",
        "release_notes",
        "release_url",
    ]


async def test_upload_through_the_ui(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    hass_client: ClientSessionGenerator,
    upload_dir: Path,
) -> None:
    options = dict(init_integration.options)
    file_id = await _browser_upload(hass_client, CONTENT)
    assert (upload_dir / file_id / "fw.bin").read_bytes() == CONTENT
    result = await _upload_step(hass, init_integration)

    result = await hass.config_entries.options.async_configure(
        result["flow_id"],
        {
            "firmware_file": file_id,
            "firmware_type": f" {FIRMWARE_TYPE} ",
            "version": "1.4.0 ",
            "release_notes": "Adds *humidity*.",
            "release_url": "https://example.com/1.4.0",
        },
    )

    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "firmware_uploaded"
    assert result["description_placeholders"] == {
        "firmware_type": FIRMWARE_TYPE,
        "version": "1.4.0",
    }
    catalog = _catalog(init_integration)
    build = catalog.get(FIRMWARE_TYPE, "1.4.0")
    assert build is not None
    assert build.sha256 == hashlib.sha256(CONTENT).hexdigest()
    assert build.release_notes == "Adds *humidity*."
    assert build.release_url == "https://example.com/1.4.0"
    assert catalog.path(build).read_bytes() == CONTENT
    assert not (upload_dir / file_id).exists()
    assert dict(init_integration.options) == options


async def test_ui_upload_of_a_duplicate(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    hass_client: ClientSessionGenerator,
    upload_dir: Path,
) -> None:
    result = await _upload_step(hass, init_integration)
    first = await _browser_upload(hass_client, b"first")
    result = await hass.config_entries.options.async_configure(
        result["flow_id"],
        {"firmware_file": first, "firmware_type": FIRMWARE_TYPE, "version": "1.0.0"},
    )
    assert result["type"] is FlowResultType.ABORT

    result = await _upload_step(hass, init_integration)
    second = await _browser_upload(hass_client, b"second")
    result = await hass.config_entries.options.async_configure(
        result["flow_id"],
        {
            "firmware_file": second,
            "firmware_type": FIRMWARE_TYPE,
            "version": "1.0.0",
            "release_notes": "Second try",
        },
    )

    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "upload_firmware"
    assert result["errors"] == {"base": "duplicate_firmware"}
    # The file was used up: the form asks for it again and keeps the rest.
    assert _suggested_values(result["data_schema"]) == {
        "firmware_type": FIRMWARE_TYPE,
        "version": "1.0.0",
        "release_notes": "Second try",
    }
    assert not (upload_dir / second).exists()
    catalog = _catalog(init_integration)
    build = catalog.get(FIRMWARE_TYPE, "1.0.0")
    assert build is not None
    assert catalog.path(build).read_bytes() == b"first"

    # The same form takes a new upload with a new version.
    third = await _browser_upload(hass_client, b"second")
    result = await hass.config_entries.options.async_configure(
        result["flow_id"],
        {"firmware_file": third, "firmware_type": FIRMWARE_TYPE, "version": "1.0.1"},
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "firmware_uploaded"


@pytest.mark.parametrize(
    ("firmware_type", "version"),
    [(FIRMWARE_TYPE, "../1.0.0"), ("a/b", "1.0.0"), (FIRMWARE_TYPE, "   ")],
)
async def test_ui_upload_with_an_invalid_name(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    hass_client: ClientSessionGenerator,
    upload_dir: Path,
    firmware_type: str,
    version: str,
) -> None:
    result = await _upload_step(hass, init_integration)
    file_id = await _browser_upload(hass_client, CONTENT)

    result = await hass.config_entries.options.async_configure(
        result["flow_id"],
        {"firmware_file": file_id, "firmware_type": firmware_type, "version": version},
    )

    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "invalid_firmware_name"}
    assert not (upload_dir / file_id).exists()
    _assert_nothing_added(init_integration)


async def test_ui_upload_of_an_empty_file(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    hass_client: ClientSessionGenerator,
    upload_dir: Path,
) -> None:
    result = await _upload_step(hass, init_integration)
    file_id = await _browser_upload(hass_client, b"")

    result = await hass.config_entries.options.async_configure(
        result["flow_id"],
        {"firmware_file": file_id, "firmware_type": FIRMWARE_TYPE, "version": "1.0.0"},
    )

    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "empty_firmware"}
    assert not (upload_dir / file_id).exists()
    catalog = _catalog(init_integration)
    assert catalog.firmware_types() == []
    assert not [p for p in catalog.directory.rglob("*") if p.is_file()]


async def test_ui_upload_of_an_unknown_or_expired_file(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    hass_client: ClientSessionGenerator,
    upload_dir: Path,
) -> None:
    result = await _upload_step(hass, init_integration)
    result = await hass.config_entries.options.async_configure(
        result["flow_id"],
        {
            "firmware_file": uuid4().hex,
            "firmware_type": FIRMWARE_TYPE,
            "version": "1.0.0",
        },
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "firmware_unreadable"}

    # The browser deletes an upload when the dialog is closed.
    file_id = await _browser_upload(hass_client, CONTENT)
    client = await hass_client()
    response = await client.delete("/api/file_upload", json={"file_id": file_id})
    assert response.status == 200
    result = await hass.config_entries.options.async_configure(
        result["flow_id"],
        {"firmware_file": file_id, "firmware_type": FIRMWARE_TYPE, "version": "1.0.0"},
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "firmware_unreadable"}
    _assert_nothing_added(init_integration)


async def test_ui_upload_refuses_a_bad_release_url(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    hass_client: ClientSessionGenerator,
    upload_dir: Path,
) -> None:
    result = await _upload_step(hass, init_integration)
    file_id = await _browser_upload(hass_client, CONTENT)

    result = await hass.config_entries.options.async_configure(
        result["flow_id"],
        {
            "firmware_file": file_id,
            "firmware_type": FIRMWARE_TYPE,
            "version": "1.0.0",
            "release_url": "javascript:alert(document.cookie)",
        },
    )

    assert result["type"] is FlowResultType.FORM
    assert result["errors"]
    assert _catalog(init_integration).get(FIRMWARE_TYPE, "1.0.0") is None


async def test_firmware_types_offered(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    config_dir: Path,
) -> None:
    result = await _upload_step(hass, init_integration)
    assert _firmware_type_options(result["data_schema"]) == [FIRMWARE_TYPE]

    await _upload(hass, _in_config(config_dir), firmware_type="zz-board")
    await _upload(hass, _in_config(config_dir), firmware_type="aa-board")
    await _upload(hass, _in_config(config_dir), firmware_type=FIRMWARE_TYPE)

    result = await _upload_step(hass, init_integration)
    assert _firmware_type_options(result["data_schema"]) == [
        "aa-board",
        FIRMWARE_TYPE,
        "zz-board",
    ]

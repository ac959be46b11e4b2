"""The YAML snippet for an ESPHome device, validated by the real `esphome config`.

Every variant is pasted as it is into a small device configuration that already has
`esphome:`, `esp32:`/`esp8266:` and `ota:` blocks, its secrets line goes into
`secrets.yaml`, and ESPHome (.venv-esphome, offline) must accept the result. The
signing recommendation is validated uncommented too, and two broken snippets must be
refused, so the harness itself can fail.
"""

from __future__ import annotations

from dataclasses import dataclass
import re
import subprocess
from typing import Any

import pytest
import yaml

from custom_components.providore.esphome_image import CHIP_IDS, ChipFamily
from custom_components.providore.esphome_snippet import (
    CA_CERTIFICATE_FILE,
    DEFAULT_PROJECT_VERSION,
    MIN_VERSION_SIGNED_OTA,
    SIGNING_KEY_FILE,
    Snippet,
    SnippetWarning,
    generate_snippet,
)

from .esphome_venv import TIMEOUT, esphome_tool

TOKEN = "8f14e45fceea167a5a36dedd4bea2543"
HTTPS_URL = (
    f"https://homeassistant.local:8123/api/providore/esphome/{TOKEN}/manifest.json"
)
HTTP_URL = f"http://192.168.1.20:8123/api/providore/esphome/{TOKEN}/manifest.json"
ESP32_FAMILIES = [family for family in ChipFamily if family in CHIP_IDS]
THREAD_FAMILIES = {ChipFamily.ESP32_H2, ChipFamily.ESP32_H4, ChipFamily.ESP32_H21}
VALID = "INFO Configuration is valid!"
# The Thread network of ESPHome's own OpenThread examples (test data, no real network).
THREAD_TLV = (
    "0e080000000000010000000300001035060004001fffe00208dead00beef00cafe0708fddead00beef"
    "000005108d0d5b91ebbc3df3f5d1c2aa8e6ea1ff030f4f70656e5468726561642d3164353201021d52"
    "0410e1cb4a35fd7efb1ee6fd0a8d4e2b0d0c0402a0f7f8"
)


@dataclass(frozen=True)
class Case:
    """One snippet variant in one device configuration."""

    name: str
    chip_family: ChipFamily
    url: str = HTTPS_URL
    ca_certificate: bool = True
    project_name: str = "acme.kitchen_sensor"
    project_version: str | None = "1.4.2"
    signed: bool = False
    # A deliberate mistake: the real tool must refuse the configuration.
    break_it: str | None = None

    def snippet(self) -> Snippet:
        """Return the case's snippet."""
        return generate_snippet(
            device_name=f"Device {self.name}",
            project_name=self.project_name,
            project_version=self.project_version,
            chip_family=self.chip_family,
            manifest_url=self.url,
            ca_certificate=self.ca_certificate,
        )


# Each ESP32 family with its signing recommendation uncommented: the snippet as pasted
# and the recommendation in one file (esphome config takes about a second per file).
CASES = [
    *(
        Case(f"{family.variant}-signed", family, signed=True)
        for family in ESP32_FAMILIES
    ),
    Case("esp32-https-ca", ChipFamily.ESP32),
    Case("esp32c3-https-ca", ChipFamily.ESP32_C3),
    Case("esp8266-https", ChipFamily.ESP8266),
    Case("esp32-http", ChipFamily.ESP32, url=HTTP_URL),
    Case("esp32c3-http", ChipFamily.ESP32_C3, url=HTTP_URL, ca_certificate=False),
    Case("esp32s3-https-public-ca", ChipFamily.ESP32_S3, ca_certificate=False),
    Case("esp8266-http", ChipFamily.ESP8266, url=HTTP_URL),
    Case(
        "esp32c6-odd-names",
        ChipFamily.ESP32_C6,
        project_name='Ünïcode "author" \\ o\'brien.name: # not a comment',
        project_version=None,
        url="https://user:p%40ss@ha.example:8443/api/providore/esphome/x/manifest.json",
    ),
]
BROKEN = [
    Case("esp8266-verifying", ChipFamily.ESP8266, break_it="verify_ssl: false"),
    Case(
        "esp32s3-wrong-scheme",
        ChipFamily.ESP32_S3,
        signed=True,
        break_it="signing_scheme: rsa3072",
    ),
]


def snippet_version(case: Case) -> str:
    """Return the project version the case's snippet sets."""
    return case.project_version or DEFAULT_PROJECT_VERSION


def device_config(family: ChipFamily) -> str:
    """Return a small device configuration, as a user has it before pasting."""
    if family is ChipFamily.ESP8266:
        platform = "esp8266:\n  board: d1_mini\n"
    else:
        platform = (
            f"esp32:\n  variant: {family.variant}\n  framework:\n    type: esp-idf\n"
        )
    if family in THREAD_FAMILIES:
        network = f"network:\n  enable_ipv6: true\nopenthread:\n  tlv: {THREAD_TLV}\n"
    elif family is ChipFamily.ESP32_P4:
        network = (
            "ethernet:\n  type: W5500\n  clk_pin: GPIO20\n  mosi_pin: GPIO21\n"
            "  miso_pin: GPIO22\n  cs_pin: GPIO23\n  interrupt_pin: GPIO24\n"
            "  reset_pin: GPIO25\n"
        )
    else:
        network = "wifi:\n  ssid: test-network\n  password: test-password\n"
    return (
        "esphome:\n  name: test-device\n"
        f"{platform}{network}"
        "logger:\napi:\nota:\n  - platform: esphome\n    password: test-ota-password\n"
    )


def pasted(case: Case, snippet: Snippet) -> str:
    """Return the device configuration with the snippet pasted below it."""
    text = snippet.yaml
    if case.signed:
        text = uncomment_recommendation(text)
    if case.break_it is not None:
        replacement = (
            "signing_scheme: ecdsa256"
            if case.break_it.startswith("signing_scheme")
            else "verify_ssl: true"
        )
        assert case.break_it in text
        text = text.replace(case.break_it, replacement)
    return device_config(case.chip_family) + "\n" + text


def uncomment_recommendation(text: str) -> str:
    """Uncomment the esp32: signing block and raise min_version, as its comment says."""
    head, block = text.split("    # esp32:\n")
    lines = [
        "    esp32:",
        *(line.replace("    # ", "    ", 1) for line in block.splitlines()),
    ]
    head = "\n".join(
        f"      min_version: {MIN_VERSION_SIGNED_OTA}"
        if line.startswith("      min_version:")
        else line
        for line in head.splitlines()
    )
    return head + "\n" + "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def validated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Validate every case in one `esphome config` run; return each one's output by name."""
    esphome = esphome_tool("esphome")
    root = tmp_path_factory.mktemp("esphome")
    files = []
    for case in [*CASES, *BROKEN]:
        folder = root / case.name
        folder.mkdir()
        snippet = case.snippet()
        (folder / "device.yaml").write_text(pasted(case, snippet), encoding="utf-8")
        (folder / "secrets.yaml").write_text(snippet.secrets, encoding="utf-8")
        if snippet.ca_certificate_file:
            (folder / snippet.ca_certificate_file).write_text("test CA placeholder\n")
        if case.signed:
            (folder / SIGNING_KEY_FILE).write_text("test key placeholder\n")
        files.append(f"{case.name}/device.yaml")
    result = subprocess.run(  # noqa: S603 (our own venv's program)
        [esphome, "config", *files],
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    output = result.stdout
    sections = output.split("INFO Reading configuration ")[1:]
    by_name = {section.split("/", 1)[0]: section for section in sections}
    assert set(by_name) == {case.name for case in [*CASES, *BROKEN]}, output[-3000:]
    return by_name


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_esphome_accepts_the_snippet(case: Case, validated: dict[str, str]) -> None:
    output = validated[case.name]
    assert VALID in output, output
    snippet = case.snippet()
    assert f"source: {case.url}" in output
    assert "  - platform: http_request\n" in output
    assert "  - platform: esphome\n" in output  # the device's own OTA stays
    project = re.search(r"\n  project:\n    name: (.*)\n    version: (.*)\n", output)
    assert project is not None, output
    assert yaml.safe_load(project[1]) == case.project_name
    assert str(yaml.safe_load(project[2])) == snippet_version(case)
    if snippet.ca_certificate_file:
        assert (
            f"ca_certificate_path: {case.name}" not in output
        )  # resolved to a full path
        assert f"/{case.name}/{CA_CERTIFICATE_FILE}" in output
    else:
        assert "ca_certificate_path" not in output
    if case.signed:
        assert "signed_ota_verification:" in output
        assert f"/{case.name}/{SIGNING_KEY_FILE}" in output


@pytest.mark.parametrize("case", BROKEN, ids=lambda case: case.name)
def test_esphome_refuses_a_broken_snippet(
    case: Case, validated: dict[str, str]
) -> None:
    output = validated[case.name]
    assert VALID not in output
    assert "Failed config" in output


# --- the snippet itself -----------------------------------------------------------


class SecretLoader(yaml.SafeLoader):
    """Reads `!secret name` as ("secret", name)."""


SecretLoader.add_constructor(
    "!secret", lambda loader, node: ("secret", loader.construct_scalar(node))
)


def _load(text: str) -> Any:
    return yaml.load(text, Loader=SecretLoader)  # noqa: S506 (a SafeLoader subclass)


def _snippet(**changes: Any) -> Snippet:
    arguments: dict[str, Any] = {
        "device_name": "Kitchen sensor",
        "project_name": "acme.kitchen",
        "project_version": "1.0.0",
        "chip_family": ChipFamily.ESP32_C3,
        "manifest_url": HTTPS_URL,
        "ca_certificate": True,
        **changes,
    }
    return generate_snippet(**arguments)


def test_the_package_and_its_secret() -> None:
    snippet = _snippet()
    package = _load(snippet.yaml)["packages"]["providore"]
    assert package == {
        "esphome": {
            "min_version": "2026.2.0",
            "project": {"name": "acme.kitchen", "version": "1.0.0"},
        },
        "http_request": {
            "ca_certificate_path": CA_CERTIFICATE_FILE,
            "verify_ssl": True,
        },
        "ota": [{"platform": "http_request"}],
        "update": [
            {
                "platform": "http_request",
                "name": "Providore firmware",
                "source": ("secret", "providore_kitchen_sensor_manifest_url"),
            }
        ],
    }
    assert _load(snippet.secrets) == {
        "providore_kitchen_sensor_manifest_url": HTTPS_URL
    }
    assert snippet.secret_name == "providore_kitchen_sensor_manifest_url"
    assert snippet.ca_certificate_file == CA_CERTIFICATE_FILE
    assert snippet.warnings == ()
    assert TOKEN not in snippet.yaml
    assert "signing_scheme: rsa3072" in snippet.yaml


@pytest.mark.parametrize(
    ("changes", "warnings", "http_request", "ca_file"),
    [
        (
            {"manifest_url": HTTP_URL},
            (SnippetWarning.PLAIN_HTTP,),
            None,
            None,
        ),
        (
            {"ca_certificate": False},
            (),
            {"verify_ssl": True},
            None,
        ),
        (
            {"chip_family": ChipFamily.ESP8266},
            (SnippetWarning.TLS_NOT_VERIFIED,),
            {"verify_ssl": False},
            None,
        ),
        (
            {"chip_family": ChipFamily.ESP8266, "manifest_url": HTTP_URL},
            (SnippetWarning.PLAIN_HTTP,),
            {"verify_ssl": False},
            None,
        ),
    ],
)
def test_transport_variants(
    changes: dict[str, Any],
    warnings: tuple[SnippetWarning, ...],
    http_request: dict[str, Any] | None,
    ca_file: str | None,
) -> None:
    snippet = _snippet(**changes)
    package = _load(snippet.yaml)["packages"]["providore"]
    assert snippet.warnings == warnings
    assert package["http_request"] == http_request
    assert snippet.ca_certificate_file == ca_file
    assert package["esphome"]["min_version"] == "2024.6.0"


@pytest.mark.parametrize(
    ("family", "scheme"),
    [
        (ChipFamily.ESP32, "ecdsa_v1"),
        (ChipFamily.ESP32_C2, "ecdsa256"),
        (ChipFamily.ESP32_C61, "ecdsa256"),
        (ChipFamily.ESP32_S3, "rsa3072"),
        (ChipFamily.ESP32_H2, "rsa3072"),
    ],
)
def test_signing_scheme_per_variant(family: ChipFamily, scheme: str) -> None:
    assert f"#         signing_scheme: {scheme}\n" in _snippet(chip_family=family).yaml


def test_esp8266_has_no_signing_recommendation() -> None:
    text = _snippet(chip_family=ChipFamily.ESP8266).yaml
    assert "signed_ota_verification" not in text
    assert "cannot check a signature" in text


def test_default_version_and_secret_names() -> None:
    snippet = _snippet(project_version=None, device_name="Gärten / Küche #2")
    assert _load(snippet.yaml)["packages"]["providore"]["esphome"]["project"] == {
        "name": "acme.kitchen",
        "version": "1.0.0",
    }
    assert snippet.secret_name == "providore_garten_kuche_2_manifest_url"
    assert _snippet(device_name="???").secret_name == "providore_device_manifest_url"
    long_name = _snippet(device_name="x" * 100).secret_name
    assert long_name == f"providore_{'x' * 40}_manifest_url"


def test_odd_texts_are_quoted() -> None:
    name = 'a "b" \\ c\'d.e: # f'
    snippet = _snippet(
        project_name=name, project_version="1.0 #beta", device_name="Kitchen\nsensor"
    )
    project = _load(snippet.yaml)["packages"]["providore"]["esphome"]["project"]
    assert project == {"name": name, "version": "1.0 #beta"}
    assert snippet.secrets.count("\n") == 2
    assert "Kitchen sensor" in snippet.secrets


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"project_name": "kitchen"}, "exactly one dot"),
        ({"project_name": "a.b.c"}, "exactly one dot"),
        ({"project_name": " a.b"}, "exactly one dot"),
        ({"project_name": "a.b\n"}, "exactly one dot"),
        ({"project_name": "a." + "b" * 126}, "127 bytes"),
        ({"project_version": "1\n"}, "printable"),
        ({"manifest_url": "ftp://example.com/manifest.json"}, "http"),
        ({"manifest_url": "https:///manifest.json"}, "http"),
        ({"manifest_url": "https://example.com/a b"}, "spaces"),
    ],
)
def test_bad_arguments(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _snippet(**changes)

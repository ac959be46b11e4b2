"""Generate docs/protocol-notice-vectors-v1.json, the byte-exact push notice vectors.

Run `.venv/bin/python -m tests.notice_vectors` to rewrite the file, `--check` to only
compare. Valid notices are built with the integration's notice module; every other case
is written out here with the outcome the specification requires, so that the tests hold
each implementation to it rather than to its own results.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta
import json
from pathlib import Path
import sys
from typing import Any

# Home Assistant's helpers.network and components.http import each other: loading the
# integration package outside Home Assistant works only with components.http loaded first.
import homeassistant.components.http  # noqa: F401  # isort: skip

from custom_components.providore.notice import (
    MAX_COUNTER,
    Change,
    build_notice,
    notice_message,
    parse_notice,
)
from custom_components.providore.protocol import sign

VECTORS_PATH = Path(__file__).parents[1] / "docs" / "protocol-notice-vectors-v1.json"
KEY_ID = "d8fa0180"
SECRET = "Zq3v9XkP2mRt7LwY4nHc8JdF6sGb1TaE"
OTHER_SECRET = "NotTheRightSecretKeyAtAll1234567"
# 2021-04-09T13:01:24Z, the time of the version 1 vectors.
CREATED = 1617973284
LABEL = "providore-notice-v1"

ACCEPTED = "accepted"
MALFORMED = "malformed"
ANOTHER_DEVICE = "another-device"
BAD_SIGNATURE = "bad-signature"
EXPIRED = "expired"
REPLAYED = "replayed"


def _moment(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def _valid(
    name: str,
    *,
    changes: set[Change],
    counter: int,
    now: int,
    last_counter: int,
    key_id: str = KEY_ID,
    secret: str = SECRET,
    created: int = CREATED,
    lifetime: int = 60,
) -> dict[str, Any]:
    wire = build_notice(
        key_id=key_id,
        secret_key=secret,
        changes=changes,
        counter=counter,
        now=_moment(created),
        lifetime=timedelta(seconds=lifetime),
    )
    notice, message, signature = parse_notice(wire)
    assert message == notice_message(notice)
    return {
        "name": name,
        "notice": wire.decode("ascii"),
        "key_id": key_id,
        "secret": secret,
        "now": now,
        "last_counter": last_counter,
        "result": ACCEPTED,
        "counter": counter,
        "created_at": created,
        "expiry": created + lifetime,
        "changes": sorted(changes),
        "message": message.decode("ascii"),
        "signature": signature.decode("ascii"),
    }


def _signed(lines: list[str], secret: str = SECRET) -> str:
    """Return the lines as a notice signed over them, whatever they hold."""
    message = "\n".join(lines)
    return message + "\n" + sign(secret, message.encode())


def _lines(
    *,
    key_id: str = KEY_ID,
    counter: str = "7",
    created: int = CREATED,
    expiry: int = CREATED + 60,
    changes: str = "config",
    label: str = LABEL,
) -> list[str]:
    return [label, key_id, counter, str(created), str(expiry), changes]


def _invalid(
    name: str,
    notice: str,
    result: str,
    *,
    now: int = CREATED + 10,
    last_counter: int = 6,
    key_id: str = KEY_ID,
) -> dict[str, Any]:
    return {
        "name": name,
        "notice": notice,
        "key_id": key_id,
        "secret": SECRET,
        "now": now,
        "last_counter": last_counter,
        "result": result,
    }


def _v1_request() -> str:
    """Return a protocol version 1 request message and its signature, as a notice."""
    message = "GET\n/config\n1.0.0\n2021-04-09T13:01:24Z\n2021-04-09T13:16:24Z"
    return message + "\n" + sign(SECRET, message.encode())


def _v1_response() -> str:
    """Return a version 1 answer whose body is the start of a notice, as a notice.

    Its message has the seven lines of a notice, but the answer's two timestamps fall
    where the expiry and the changes belong, and neither can be read as them.
    """
    body = "\n".join(_lines()[:4])
    message = f"{body}\n2021-04-09T13:01:25Z\n2021-04-09T13:16:25Z"
    return message + "\n" + sign(SECRET, message.encode())


def build_vectors() -> dict[str, Any]:
    """Return the whole vectors document."""
    good = _signed(_lines())
    body = good.rsplit("\n", 1)[0]
    valid = [
        _valid(
            "config", changes={Change.CONFIG}, counter=1, now=CREATED, last_counter=0
        ),
        _valid(
            "several changes",
            changes={Change.CONFIG, Change.FIRMWARE, Change.CERTIFICATE},
            counter=42,
            now=CREATED + 59,
            last_counter=41,
        ),
        _valid(
            "all, millisecond counter",
            changes={Change.ALL},
            counter=CREATED * 1000,
            now=CREATED + 1,
            last_counter=CREATED * 1000 - 1,
        ),
        _valid(
            "check, another device",
            changes={Change.CHECK},
            counter=3,
            now=CREATED + 30,
            last_counter=1,
            key_id="garden_sensor-01",
            secret="garden-1-secret-0123456789",
        ),
        _valid(
            "longest fields, made 300 s ahead of the device's clock",
            changes=set(Change),
            counter=MAX_COUNTER,
            now=CREATED - 300,
            last_counter=MAX_COUNTER - 1,
            key_id="K" * 32,
            lifetime=300,
        ),
    ]
    invalid = [
        _invalid("signed with another key", _signed(_lines(), OTHER_SECRET), BAD_SIGNATURE),
        _invalid("changes altered", good.replace("\nconfig\n", "\nfirmware\n"), BAD_SIGNATURE),
        _invalid("counter altered", good.replace("\n7\n", "\n8\n"), BAD_SIGNATURE),
        _invalid("expired", good, EXPIRED, now=CREATED + 60),
        _invalid("created too far ahead", good, EXPIRED, now=CREATED - 301),
        _invalid("replayed counter", good, REPLAYED, last_counter=7),
        _invalid("older counter", good, REPLAYED, last_counter=100),
        _invalid("for another device", good, ANOTHER_DEVICE, key_id="other-device"),
        _invalid("label of another version", _signed(_lines(label="providore-notice-v2")), MALFORMED),
        _invalid("label in upper case", _signed(_lines(label=LABEL.upper())), MALFORMED),
        _invalid("CRLF line ends", good.replace("\n", "\r\n"), MALFORMED),
        _invalid("trailing newline", good + "\n", MALFORMED),
        _invalid("a line missing", _signed(_lines()[:-1]), MALFORMED),
        _invalid("unknown change", _signed(_lines(changes="config,reboot")), MALFORMED),
        _invalid("change named twice", _signed(_lines(changes="config,config")), MALFORMED),
        _invalid("no change", _signed(_lines(changes="")), MALFORMED),
        _invalid("change with a space", _signed(_lines(changes="config, firmware")), MALFORMED),
        _invalid("counter 0", _signed(_lines(counter="0")), MALFORMED, last_counter=0),
        _invalid("counter with a leading zero", _signed(_lines(counter="07")), MALFORMED),
        _invalid("counter above 2**63 - 1", _signed(_lines(counter=str(2**63))), MALFORMED),
        _invalid("negative counter", _signed(_lines(counter="-7")), MALFORMED),
        _invalid("valid for 301 s", _signed(_lines(expiry=CREATED + 301)), MALFORMED),
        _invalid("expiry before created-at", _signed(_lines(expiry=CREATED - 1)), MALFORMED),
        _invalid("expiry equal to created-at", _signed(_lines(expiry=CREATED)), MALFORMED),
        _invalid("time as ISO 8601", good.replace(str(CREATED), "2021-04-09T13:01:24Z"), MALFORMED),
        _invalid("key id too long", _signed(_lines(key_id="K" * 33)), MALFORMED),
        _invalid("key id with a dot", _signed(_lines(key_id="d8fa.0180")), MALFORMED),
        _invalid("signature without padding", good.rstrip("="), MALFORMED),
        _invalid("signature in hex", body + "\n" + "ab" * 32, MALFORMED),
        _invalid("not ASCII", _signed(_lines(key_id="d8fa0180é")), MALFORMED),
        _invalid("longer than 512 bytes", _signed(_lines(changes=",".join(["config"] * 80))), MALFORMED),
        _invalid("version 1 request signature", _v1_request(), MALFORMED),
        _invalid("version 1 answer signature", _v1_response(), MALFORMED),
        _invalid("empty", "", MALFORMED),
    ]  # fmt: skip
    return {
        "format": LABEL,
        "description": (
            "Push notice vectors, see docs/protocol.md (Extension: push notices). "
            "`notice` is the exact bytes (UTF-8 of the string); a receiver with key_id "
            "and secret, at time `now` "
            "(Unix seconds), having accepted `last_counter`, must reach `result`: "
            "accepted, or the first rule broken (malformed, another-device, "
            "bad-signature, expired, replayed)."
        ),
        "vectors": valid + invalid,
    }


def render() -> str:
    """Return the file's text."""
    return json.dumps(build_vectors(), indent=2, ensure_ascii=False) + "\n"


def main() -> int:
    """Write the vectors, or with --check report whether the file is up to date."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare")
    args = parser.parse_args()
    text = render()
    if args.check:
        current = VECTORS_PATH.read_text(encoding="utf-8")
        if current != text:
            print(f"{VECTORS_PATH} is out of date: run python -m tests.notice_vectors")  # noqa: T201
            return 1
        return 0
    VECTORS_PATH.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

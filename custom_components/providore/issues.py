"""The repair issues Providore raises and withdraws (their fix flows are in `repairs`)."""

from __future__ import annotations

from datetime import datetime, timedelta

from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import issue_registry as ir

from .certificates import IssuedCertificate
from .const import CA_EXPIRY_WARNING_DAYS, CERTIFICATE_EXPIRY_WARNING_DAYS, DOMAIN
from .models import DeviceProfile
from .stores import STORE_UNREADABLE_PREFIX, StoreUnreadable, store_issue_id

MISSING_SECRET_PREFIX = "missing_secret_"  # noqa: S105 (an issue id prefix)
CERTIFICATE_EXPIRING_PREFIX = "certificate_expiring_"
UPDATE_FAILED_PREFIX = "update_failed_"
ROLLOUT_ABORTED_PREFIX = "rollout_aborted_"
CA_EXPIRING_ISSUE_ID = "ca_expiring"
CA_STORE_KEY = f"{DOMAIN}.ca"


def update_failed_issue_id(key_id: str) -> str:
    """Return the id of the repair issue raised when a device's update failed."""
    return f"{UPDATE_FAILED_PREFIX}{key_id}"


def rollout_issue_id(firmware_type: str) -> str:
    """Return the id of the repair issue raised when a rollout of a type aborted."""
    return f"{ROLLOUT_ABORTED_PREFIX}{firmware_type}"


@callback
def async_create_rollout_issue(
    hass: HomeAssistant,
    firmware_type: str,
    version: str,
    *,
    why: str,
    devices: str,
    untouched: str,
) -> None:
    """Tell the user that a rollout stopped by itself, and which devices failed."""
    ir.async_create_issue(
        hass,
        DOMAIN,
        rollout_issue_id(firmware_type),
        is_fixable=False,
        is_persistent=True,
        severity=ir.IssueSeverity.ERROR,
        translation_key="rollout_aborted",
        translation_placeholders={
            "firmware_type": firmware_type,
            "version": version,
            "why": why,
            "devices": devices,
            "untouched": untouched,
        },
    )


@callback
def async_delete_rollout_issue(hass: HomeAssistant, firmware_type: str) -> None:
    """Withdraw the issue of an aborted rollout (a new one of its type started)."""
    ir.async_delete_issue(hass, DOMAIN, rollout_issue_id(firmware_type))


@callback
def async_update_missing_secret_issue(
    hass: HomeAssistant, device: DeviceProfile, has_secret: bool
) -> None:
    """Raise the issue of a device without a secret key, or withdraw it."""
    issue_id = f"{MISSING_SECRET_PREFIX}{device.key_id}"
    if has_secret:
        ir.async_delete_issue(hass, DOMAIN, issue_id)
        return
    ir.async_create_issue(
        hass,
        DOMAIN,
        issue_id,
        is_fixable=True,
        severity=ir.IssueSeverity.ERROR,
        translation_key="missing_secret",
        translation_placeholders={"name": device.name, "key_id": device.key_id},
        data={"key_id": device.key_id},
    )


@callback
def async_update_certificate_issue(
    hass: HomeAssistant,
    device: DeviceProfile,
    current: IssuedCertificate | None,
    now: datetime,
) -> None:
    """Warn when the device's certificate expires soon with no newer one requested."""
    issue_id = f"{CERTIFICATE_EXPIRING_PREFIX}{device.key_id}"
    warn_before = now + timedelta(days=CERTIFICATE_EXPIRY_WARNING_DAYS)
    if current is None or current.not_after > warn_before:
        ir.async_delete_issue(hass, DOMAIN, issue_id)
        return
    ir.async_create_issue(
        hass,
        DOMAIN,
        issue_id,
        is_fixable=False,
        severity=ir.IssueSeverity.WARNING,
        translation_key="certificate_expiring",
        translation_placeholders={
            "name": device.name,
            "key_id": device.key_id,
            "expires": current.not_after.date().isoformat(),
        },
    )


@callback
def async_update_ca_issue(
    hass: HomeAssistant, expires: datetime, now: datetime
) -> None:
    """Warn before the CA itself expires: then no device can get a certificate."""
    if expires > now + timedelta(days=CA_EXPIRY_WARNING_DAYS):
        ir.async_delete_issue(hass, DOMAIN, CA_EXPIRING_ISSUE_ID)
        return
    ir.async_create_issue(
        hass,
        DOMAIN,
        CA_EXPIRING_ISSUE_ID,
        is_fixable=False,
        severity=ir.IssueSeverity.ERROR,
        translation_key="ca_expiring",
        translation_placeholders={"expires": expires.date().isoformat()},
    )


@callback
def delete_device_issues(hass: HomeAssistant, key_id: str) -> None:
    """Withdraw every issue about a device (it was removed)."""
    for prefix in (
        MISSING_SECRET_PREFIX,
        CERTIFICATE_EXPIRING_PREFIX,
        UPDATE_FAILED_PREFIX,
    ):
        ir.async_delete_issue(hass, DOMAIN, f"{prefix}{key_id}")


@callback
def async_create_store_issue(
    hass: HomeAssistant, entry_id: str, err: StoreUnreadable
) -> None:
    """Tell the user a store cannot be read, where its copy is, and what to do.

    The issue is persistent: until the user restores the store or chooses to
    start afresh, Providore keeps refusing to set up without it.
    """
    is_ca = err.key == CA_STORE_KEY
    ir.async_create_issue(
        hass,
        DOMAIN,
        store_issue_id(err.key),
        is_fixable=True,
        is_persistent=True,
        severity=ir.IssueSeverity.CRITICAL,
        translation_key="ca_unreadable" if is_ca else "store_unreadable",
        translation_placeholders={
            "store": f".storage/{err.key}",
            "corrupt_path": err.corrupt_path or "-",
            "reason": err.reason,
        },
        data={
            "entry_id": entry_id,
            "store": err.key,
            "corrupt_path": err.corrupt_path,
        },
    )


@callback
def delete_store_issues(hass: HomeAssistant) -> None:
    """Withdraw the issues about unreadable stores: every store was read."""
    for domain, issue_id in list(ir.async_get(hass).issues):
        if domain == DOMAIN and issue_id.startswith(STORE_UNREADABLE_PREFIX):
            ir.async_delete_issue(hass, DOMAIN, issue_id)

"""Repair issues and the flows that fix them."""

from __future__ import annotations

from datetime import datetime, timedelta

from homeassistant import data_entry_flow
from homeassistant.components.repairs import ConfirmRepairFlow, RepairsFlow
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import issue_registry as ir

from .const import CA_EXPIRY_WARNING_DAYS, CERTIFICATE_EXPIRY_WARNING_DAYS, DOMAIN
from .device_auth import DATA_GUARDS
from .hub import ProvidoreHub
from .protocol import generate_secret_key
from .storage import async_get_storage

NO_KEY_ISSUE_PREFIX = "missing_secret_"
EXPIRING_ISSUE_PREFIX = "certificate_expiring_"
CA_EXPIRING_ISSUE_ID = "ca_expiring"


@callback
def async_update_missing_secret_issues(hass: HomeAssistant, hub: ProvidoreHub) -> None:
    """Raise an issue for each device without a secret key; drop the stale ones."""
    registry = ir.async_get(hass)
    for domain, issue_id in list(registry.issues):
        if domain == DOMAIN and issue_id.startswith(NO_KEY_ISSUE_PREFIX):
            ir.async_delete_issue(hass, DOMAIN, issue_id)
    for device in hub.devices.values():
        if hub.secret(device.key_id) is None:
            ir.async_create_issue(
                hass,
                DOMAIN,
                f"{NO_KEY_ISSUE_PREFIX}{device.key_id}",
                is_fixable=True,
                severity=ir.IssueSeverity.ERROR,
                translation_key="missing_secret",
                translation_placeholders={"name": device.name, "key_id": device.key_id},
                data={"key_id": device.key_id},
            )


@callback
def async_update_certificate_issues(
    hass: HomeAssistant, hub: ProvidoreHub, now: datetime
) -> None:
    """Warn of each device certificate that expires soon with no newer one requested."""
    warn_before = now + timedelta(days=CERTIFICATE_EXPIRY_WARNING_DAYS)
    expiring = {}
    for device in hub.devices.values():
        current = hub.certificates.current(device.key_id, now)
        if current is not None and current.not_after <= warn_before:
            expiring[f"{EXPIRING_ISSUE_PREFIX}{device.key_id}"] = (device, current)
    registry = ir.async_get(hass)
    for domain, issue_id in list(registry.issues):
        if (
            domain == DOMAIN
            and issue_id.startswith(EXPIRING_ISSUE_PREFIX)
            and issue_id not in expiring
        ):
            ir.async_delete_issue(hass, DOMAIN, issue_id)
    _update_ca_expiry_issue(hass, hub, now)
    for issue_id, (device, current) in expiring.items():
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


def _update_ca_expiry_issue(
    hass: HomeAssistant, hub: ProvidoreHub, now: datetime
) -> None:
    """Warn before the CA itself expires: then no device can get a certificate."""
    expires = hub.certificates.authority.certificate.not_valid_after_utc
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


class UnblockAddressRepairFlow(ConfirmRepairFlow):
    """Let a throttled address call again once the user has looked into it."""

    def __init__(self, address: str) -> None:
        """Remember the address the issue is about."""
        self._address = address

    async def async_step_confirm(
        self, user_input: dict[str, str] | None = None
    ) -> data_entry_flow.FlowResult:
        """Clear the address's failures when the user confirms."""
        if user_input is not None:
            self.hass.data[DATA_GUARDS].throttle.clear(self._address)
        return await super().async_step_confirm(user_input)


class NewSecretRepairFlow(ConfirmRepairFlow):
    """Generate a secret key for a device that has none."""

    def __init__(self, key_id: str) -> None:
        """Remember the device the issue is about."""
        self._key_id = key_id

    async def async_step_confirm(
        self, user_input: dict[str, str] | None = None
    ) -> data_entry_flow.FlowResult:
        """Store a new secret key when the user confirms."""
        if user_input is not None:
            storage = await async_get_storage(self.hass)
            await storage.async_set_secret(self._key_id, generate_secret_key())
        return await super().async_step_confirm(user_input)


async def async_create_fix_flow(
    hass: HomeAssistant, issue_id: str, data: dict[str, str | int | float | None] | None
) -> RepairsFlow:
    """Return the flow that fixes a Providore repair issue."""
    if data is not None and "address" in data:
        return UnblockAddressRepairFlow(str(data["address"]))
    if data is not None and "key_id" in data:
        return NewSecretRepairFlow(str(data["key_id"]))
    raise ValueError(f"Unknown repair issue {issue_id}")

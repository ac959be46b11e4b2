"""Constants for the Providore integration."""

from __future__ import annotations

import logging
from typing import Final

DOMAIN: Final = "providore"
LOGGER = logging.getLogger(__package__)

API_BASE_PATH: Final = "/api/providore"
SUBENTRY_TYPE_DEVICE: Final = "device"
SUBENTRY_TYPE_ESPHOME_DEVICE: Final = "esphome_device"
# Every kind of subentry that is a device (key ids are unique across them).
DEVICE_SUBENTRY_TYPES: Final = frozenset(
    {SUBENTRY_TYPE_DEVICE, SUBENTRY_TYPE_ESPHOME_DEVICE}
)

# Hub options.
CONF_MAX_CLOCK_SKEW: Final = "max_clock_skew"
CONF_MAX_REQUEST_LIFETIME: Final = "max_request_lifetime"
CONF_ONLINE_INTERVAL: Final = "online_interval"
DEFAULT_MAX_CLOCK_SKEW: Final = 300
DEFAULT_MAX_REQUEST_LIFETIME: Final = 900
CONF_UPDATE_TIMEOUT: Final = "update_timeout"
DEFAULT_ONLINE_INTERVAL: Final = 600
DEFAULT_UPDATE_TIMEOUT: Final = 600

# Device subentry data and flow fields.
CONF_KEY_ID: Final = "key_id"
CONF_SECRET_KEY: Final = "secret_key"  # noqa: S105 (a field name)
CONF_FIRMWARE_TYPE: Final = "firmware_type"
CONF_ROTATE_KEY: Final = "rotate_key"
CONF_CONFIG: Final = "config"
CONF_FIRMWARE_VERSION: Final = "firmware_version"

# Firmware upload fields.
CONF_VERSION: Final = "version"
CONF_FIRMWARE_FILE: Final = "firmware_file"
CONF_RELEASE_NOTES: Final = "release_notes"
CONF_RELEASE_URL: Final = "release_url"

# Failed requests tolerated per client address before it is throttled.
THROTTLE_LIMIT: Final = 10
THROTTLE_WINDOW_SECONDS: Final = 300

# How long reported device state may wait before it is written to disk.
STATE_SAVE_DELAY: Final = 5
# A device's last-seen time alone is saved, and shown, at most this often (seconds).
LAST_SEEN_RESOLUTION: Final = 60

# Hub entry data: the SHA-256 fingerprint of the CA this hub created or imported.
CONF_CA_FINGERPRINT: Final = "ca_fingerprint"

# NVS namespace and keys the original bootstrap firmware reads.
NVS_NAMESPACE: Final = "providore"
NVS_KEY_DEVICE_ID: Final = "device_id"
NVS_KEY_PSK: Final = "psk"

# Certificates: hub option, device subentry field, CA import fields.
CONF_CERTIFICATE_VALIDITY: Final = "certificate_validity"
DEFAULT_CERTIFICATE_VALIDITY: Final = 365  # days
CONF_CERTIFICATE_USAGE: Final = "certificate_usage"
CONF_CA_CERTIFICATE: Final = "ca_certificate"
CONF_CA_PRIVATE_KEY: Final = "ca_private_key"
# A repair is raised this many days before a device's certificate expires.
CERTIFICATE_EXPIRY_WARNING_DAYS: Final = 14
CA_EXPIRY_WARNING_DAYS: Final = 30
CA_PATH: Final = "/certificates/ca.pem"
CRL_PATH: Final = "/certificates/crl.pem"

# Hub options: discovery and push notices (all off by default).
CONF_ANSWER_PROVIDORE_LOCAL: Final = "answer_providore_local"
CONF_NOTIFY_MQTT: Final = "notify_mqtt"
CONF_NOTIFY_UDP: Final = "notify_udp"
CONF_NOTIFY_UDP_PORT: Final = "notify_udp_port"
CONF_NOTIFY_UDP_BROADCAST: Final = "notify_udp_broadcast"

# Rollout action fields and flow fields.
CONF_DEVICES: Final = "devices"
CONF_AREAS: Final = "areas"
CONF_LABELS: Final = "labels"
CONF_WAVES: Final = "waves"
CONF_HEALTHY_FOR: Final = "healthy_for"
CONF_MAX_FAILED_PERCENT: Final = "max_failed_percent"
CONF_WINDOW_START: Final = "window_start"
CONF_WINDOW_END: Final = "window_end"
CONF_BUILD: Final = "build"
CONF_ROLLOUT: Final = "rollout"
CONF_ROLLOUT_ACTION: Final = "rollout_action"

# ESPHome devices: subentry data and flow fields, the manifest endpoint.
CONF_MAC: Final = "mac"
CONF_CHIP_FAMILY: Final = "chip_family"
CONF_PROJECT_NAME: Final = "project_name"
CONF_MANIFEST_FILE: Final = "manifest_file"
CONF_MANIFEST_PATH: Final = "manifest_path"
ESPHOME_PATH: Final = "/esphome"
ESPHOME_MANIFEST_NAME: Final = "manifest.json"
ESPHOME_DOMAIN: Final = "esphome"

# Home Assistant's own HTTPS certificate, issued by Providore's CA.
CONF_HOSTS: Final = "hosts"
CONF_SERVER_CERTIFICATE: Final = "server_certificate"

"""One change feed per device: listeners hear only the kinds of change they show."""

from __future__ import annotations

from collections.abc import Callable

from homeassistant.core import CALLBACK_TYPE, callback

from .models import DeviceChange

type ChangeListener = Callable[[DeviceChange], None]


class DeviceFeed:
    """Per-device listeners, each subscribed to some kinds of change."""

    def __init__(self) -> None:
        """Start with no listeners."""
        self._listeners: dict[str, list[tuple[DeviceChange, ChangeListener]]] = {}
        # Per device, every kind of change some listener wants (as bits): a change
        # nobody shows (the common case: a request's new last-seen time) costs one test.
        self._wanted: dict[str, int] = {}

    @callback
    def subscribe(
        self, key_id: str, changes: DeviceChange, listener: ChangeListener
    ) -> CALLBACK_TYPE:
        """Call `listener` with what changed, whenever any of `changes` happens."""
        subscription = (changes, listener)
        self._listeners.setdefault(key_id, []).append(subscription)
        self._wanted[key_id] = self._wanted.get(key_id, 0) | changes.value

        @callback
        def unsubscribe() -> None:
            listeners = self._listeners.get(key_id, [])
            if subscription in listeners:
                listeners.remove(subscription)
            if listeners:
                wanted = 0
                for kinds, _listener in listeners:
                    wanted |= kinds.value
                self._wanted[key_id] = wanted
            else:
                self._listeners.pop(key_id, None)
                self._wanted.pop(key_id, None)

        return unsubscribe

    @callback
    def publish(self, key_id: str, changes: DeviceChange) -> None:
        """Tell the device's listeners that subscribed to any of `changes`."""
        if not self._wanted.get(key_id, 0) & changes.value:
            return
        # A copy: a listener may unsubscribe (its entity is removed) while called.
        for wanted, listener in tuple(self._listeners.get(key_id, ())):
            if wanted & changes:
                listener(wanted & changes)

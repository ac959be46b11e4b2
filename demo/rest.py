"""Home Assistant's REST API as the demo uses it: onboarding, flows, states and actions.

One WebSocket command too, for what REST does not show (repair issues).
"""

from __future__ import annotations

from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import aiohttp

from .waiting import DemoError

ONBOARDING_PATH = "/api/onboarding"
USER_STEP = "user"


class RestError(DemoError):
    """Home Assistant answered a REST call with an error status."""


@dataclass(frozen=True, slots=True)
class Login:
    """A user name and password."""

    username: str
    password: str


async def answers(session: aiohttp.ClientSession, url: str) -> bool:
    """Return whether Home Assistant's HTTP server answers (onboarded or not)."""
    try:
        async with session.get(f"{url}{ONBOARDING_PATH}") as response:
            return response.status in (HTTPStatus.OK, HTTPStatus.NOT_FOUND)
    except aiohttp.ClientError:
        return False


async def open_onboarding_steps(session: aiohttp.ClientSession, url: str) -> list[str]:
    """Return the onboarding steps not done yet, in order (none once onboarded)."""
    async with session.get(f"{url}{ONBOARDING_PATH}") as response:
        if response.status == HTTPStatus.NOT_FOUND:
            return []
        steps = await _json(response, f"GET {ONBOARDING_PATH}")
    return [step["step"] for step in steps if not step["done"]]


async def needs_onboarding(session: aiohttp.ClientSession, url: str) -> bool:
    """Return whether the instance still waits for its first user."""
    return USER_STEP in await open_onboarding_steps(session, url)


async def onboard(session: aiohttp.ClientSession, url: str, login: Login) -> str:
    """Create the owner, finish the other onboarding steps still open; return a token.

    A step done already is left alone: the demo marks the core configuration step done
    before the first start (see `skip_core_config_onboarding`).
    """
    token = await create_owner(session, url, login)
    rest = HomeAssistantRest(session, url, token)
    step_data: dict[str, dict[str, Any]] = {
        "integration": {
            "client_id": f"{url}/",
            "redirect_uri": f"{url}/?auth_callback=1",
        }
    }
    for step in await open_onboarding_steps(session, url):
        await rest.post(f"{ONBOARDING_PATH}/{step}", step_data.get(step, {}))
    return token


async def create_owner(session: aiohttp.ClientSession, url: str, login: Login) -> str:
    """Create the owner (the first onboarding step); return an access token."""
    client_id = f"{url}/"
    async with session.post(
        f"{url}{ONBOARDING_PATH}/users",
        json={
            "client_id": client_id,
            "name": "Developer",
            "username": login.username,
            "password": login.password,
            "language": "en",
        },
    ) as response:
        auth_code = (await _json(response, "POST /api/onboarding/users"))["auth_code"]
    async with session.post(
        f"{url}/auth/token",
        data={
            "grant_type": "authorization_code",
            "code": auth_code,
            "client_id": client_id,
        },
    ) as response:
        token: str = (await _json(response, "POST /auth/token"))["access_token"]
    return token


class HomeAssistantRest:
    """Authenticated calls to one Home Assistant."""

    def __init__(self, session: aiohttp.ClientSession, url: str, token: str) -> None:
        """Talk to `url` (no trailing slash) with a user's access token."""
        self._session = session
        self._url = url
        self._token = token
        self._headers = {"Authorization": f"Bearer {token}"}

    async def get(self, path: str) -> Any:
        """GET a path and return its JSON."""
        async with self._session.get(
            f"{self._url}{path}", headers=self._headers
        ) as response:
            return await _json(response, f"GET {path}")

    async def post(self, path: str, data: dict[str, Any]) -> Any:
        """POST JSON to a path and return its JSON."""
        async with self._session.post(
            f"{self._url}{path}", json=data, headers=self._headers
        ) as response:
            return await _json(response, f"POST {path}")

    async def state(self, entity_id: str) -> dict[str, Any] | None:
        """Return an entity's state object, or None while it does not exist."""
        async with self._session.get(
            f"{self._url}/api/states/{entity_id}", headers=self._headers
        ) as response:
            if response.status == HTTPStatus.NOT_FOUND:
                return None
            state: dict[str, Any] = await _json(
                response, f"GET /api/states/{entity_id}"
            )
            return state

    async def call_service(
        self, domain: str, service: str, data: dict[str, Any]
    ) -> Any:
        """Call an action and return its service response (or its changed states)."""
        return await self.post(f"/api/services/{domain}/{service}", data)

    async def service_response(
        self, domain: str, service: str, data: dict[str, Any]
    ) -> dict[str, Any]:
        """Call an action that answers with data and return that data."""
        answer = await self.post(
            f"/api/services/{domain}/{service}?return_response", data
        )
        response: dict[str, Any] = answer["service_response"]
        return response

    async def websocket_command(self, command: dict[str, Any]) -> Any:
        """Send one command over the WebSocket API and return its result."""
        async with self._session.ws_connect(f"{self._url}/api/websocket") as socket:
            await socket.receive_json()  # auth_required
            await socket.send_json({"type": "auth", "access_token": self._token})
            if (auth := await socket.receive_json())["type"] != "auth_ok":
                raise RestError(f"the WebSocket API refused the token: {auth}")
            await socket.send_json({"id": 1, **command})
            answer = await socket.receive_json()
        if not answer["success"]:
            raise RestError(f"{command['type']} answered {answer['error']}")
        return answer["result"]

    async def finish_flow(
        self,
        index_path: str,
        start: dict[str, Any],
        user_input: dict[str, Any],
        *,
        menu_choice: str | None = None,
    ) -> dict[str, Any]:
        """Start a flow, submit its one form, and return the created entry's result.

        `index_path` is a flow manager's REST path (config entries, subentries or
        options); a flow that opens with a menu first gets `menu_choice`.
        """
        form = await self.post(index_path, start)
        if menu_choice is not None:
            if form.get("type") != "menu":
                raise RestError(f"{index_path} did not show a menu: {form}")
            form = await self.post(
                f"{index_path}/{form['flow_id']}", {"next_step_id": menu_choice}
            )
        if form.get("type") != "form":
            raise RestError(f"{index_path} did not show a form: {form}")
        result: dict[str, Any] = await self.post(
            f"{index_path}/{form['flow_id']}", user_input
        )
        if result.get("type") != "create_entry":
            raise RestError(f"{index_path} did not create an entry: {result}")
        return result


async def _json(response: aiohttp.ClientResponse, what: str) -> Any:
    if response.status >= HTTPStatus.BAD_REQUEST:
        body = await response.text()
        raise RestError(f"{what} answered {response.status}: {body[:500]}")
    return await response.json()

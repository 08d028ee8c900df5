"""Builds the enabled channel adapters from settings.

Each channel package's `adapter` module exposes `build_endpoints(settings, http)` (primary and
backup), which reads its own section of the tree (`settings.wechat`, ...). A package whose app
authorises its payers silently (WeChat, Alipay) also has an `oauth` module exposing
`build_payer_auth(settings, http)`, its `PayerAuth`; the cashier asks `payer_auth(name)` and
never names a channel. Importing them by name keeps this the one place that knows which
channels exist; the sandboxes are composed apart from them, in `fulema.sandboxes`.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Mapping

import httpx

from fulema.channels.base import Channel, PayerAuth
from fulema.channels.routing import GuardedChannel, guard
from fulema.core.channel_settings import BreakerSection
from fulema.core.config import Settings
from fulema.core.errors import ErrorCode, FulemaError
from fulema.core.vocab import ChannelName, WayCode


class ChannelRegistry:
    def __init__(self, channels: dict[ChannelName, Channel],
                 payer_auths: Mapping[ChannelName, PayerAuth] | None = None) -> None:
        self.channels = channels
        self.payer_auths = dict(payer_auths or {})

    def get(self, name: ChannelName | str) -> Channel:
        try:
            return self.channels[ChannelName(name)]
        except (KeyError, ValueError) as exc:
            raise FulemaError(ErrorCode.CHANNEL_NOT_ENABLED, f"channel {name} is not enabled") from exc

    def check_way(self, name: ChannelName | str, way: WayCode) -> None:
        """WAY_NOT_SUPPORTED unless the (enabled) channel takes this way code: asked before
        anything is recorded, so an impossible pair leaves no FAILED order behind."""
        channel = self.get(name)
        if way not in channel.supported_ways:
            takes = ", ".join(w.value for w in WayCode if w in channel.supported_ways)
            raise FulemaError(ErrorCode.WAY_NOT_SUPPORTED,
                              f"{channel.name.value} does not take {way.value}; it takes {takes}")

    def ways(self) -> dict[ChannelName, frozenset[WayCode]]:
        """The table of what each enabled channel takes."""
        return {name: ch.supported_ways for name, ch in self.channels.items()}

    def payer_auth(self, name: ChannelName | str) -> PayerAuth | None:
        """The channel's silent payer authorisation; None for a channel that has none, is not
        enabled or does not exist (the cashier then takes the payment without a payer id)."""
        try:
            return self.payer_auths.get(ChannelName(name))
        except ValueError:
            return None

    def enabled(self) -> list[ChannelName]:
        return list(self.channels)

    def available(self) -> list[ChannelName]:
        """Enabled channels with at least one endpoint whose breaker is not open: what the
        cashier offers while a channel is down."""
        up = []
        for name, channel in self.channels.items():
            health = channel.health() if isinstance(channel, GuardedChannel) else []
            if not health or any(h["state"] != "open" for h in health):
                up.append(name)
        return up


def build_channels(settings: Settings, http: httpx.AsyncClient,
                   breaker: BreakerSection | None = None) -> ChannelRegistry:
    """Every channel is wrapped in a GuardedChannel: timeouts, a circuit breaker per endpoint,
    and failover to the backup endpoint each module's `build_endpoints` offers when configured."""
    breaker = breaker or settings.breaker
    channels: dict[ChannelName, Channel] = {}
    payer_auths: dict[ChannelName, PayerAuth] = {}
    for name in settings.enabled_channels:
        cname = ChannelName(name)
        package = f"fulema.channels.{cname.value}"
        module = importlib.import_module(f"{package}.adapter")
        channels[cname] = guard(cname, module.build_endpoints(settings, http), breaker)
        if importlib.util.find_spec(f"{package}.oauth") is not None:
            oauth = importlib.import_module(f"{package}.oauth")
            payer_auths[cname] = oauth.build_payer_auth(settings, http)
    return ChannelRegistry(channels, payer_auths)


"""Who may set attribution from outside: inbound `costspan.*` baggage is kept only from trusted callers.

W3C baggage is a plain request header. A service that reads `costspan.customer_id` from any caller
lets anyone who can reach it charge their LLM spend to another customer. `AttributionBaggageGuard`
wraps the process's propagator: on extract it removes the `costspan.*` entries a request carried
unless the caller is trusted, and cleans the values of those it keeps (see `attribution_values`).
Baggage under other keys, and the trace context, pass through untouched.

A caller is trusted when

- its peer address (the TCP peer: WSGI `REMOTE_ADDR`, ASGI `scope["client"]`; never a header such
  as X-Forwarded-For, which the caller writes) is in `trusted_networks`, or
- the request carries a valid `costspan-baggage-signature` header: HMAC-SHA256, under a secret
  shared by your services, of the `costspan.*` entries. The guard adds it to every outbound request
  that carries `costspan.*` baggage when it has the secret, so services behind a load balancer, an
  ingress or a sidecar proxy (where every peer address is the proxy's) can still trust each other.

The default trusts no one: an internet-facing service must not take attribution from its callers,
and a service cannot tell whether it faces the internet. Internal hops opt in (see README
"Guarantees"). The guard never raises: a failure is counted in `FAULTS` and the entries dropped.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import threading
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from opentelemetry import baggage, propagate
from opentelemetry.context import Context, get_current
from opentelemetry.propagators import textmap

from costspan.attribution.values import clean_attribution, clean_text, is_attribution_key
from costspan.telemetry.faults import FaultCounter, LogOnce

TRUSTED_PEERS_ENV: Final = "COSTSPAN_TRUSTED_BAGGAGE_PEERS"
SECRET_ENV: Final = "COSTSPAN_BAGGAGE_SECRET"
SIGNATURE_HEADER: Final = "costspan-baggage-signature"
PREFIX: Final = "costspan."
_SIGNATURE_VERSION = "v1="

FAULTS = FaultCounter()

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _parse_networks(spec: str, source: str) -> tuple[tuple[Network, ...], bool]:
    networks: list[Network] = []
    trust_all = False
    for raw in spec.split(","):
        item = raw.strip()
        if not item:
            continue
        if item == "*":
            trust_all = True
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(
                f"{source}: {item!r} is not an IP address or network (e.g. 10.0.0.0/8, ::1, or * for any)"
            ) from None
    return tuple(networks), trust_all


@dataclass(frozen=True)
class InboundBaggagePolicy:
    """Which callers' `costspan.*` baggage is kept. The default keeps none."""

    trusted_networks: tuple[Network, ...] = ()
    trust_all: bool = False
    secret: bytes | None = None

    @classmethod
    def of(
        cls, trusted_peers: Iterable[str] | str = (), secret: str | bytes | None = None
    ) -> InboundBaggagePolicy:
        """From addresses/networks (`"10.0.0.0/8"`, `"::1"`, `"*"` for every caller) and a secret."""
        spec = trusted_peers if isinstance(trusted_peers, str) else ",".join(trusted_peers)
        networks, trust_all = _parse_networks(spec, "trusted_peers")
        if isinstance(secret, str):
            secret = secret.encode("utf-8")
        return cls(networks, trust_all, secret or None)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> InboundBaggagePolicy:
        """From `COSTSPAN_TRUSTED_BAGGAGE_PEERS` and `COSTSPAN_BAGGAGE_SECRET`; ValueError names a bad one."""
        env = os.environ if environ is None else environ
        networks, trust_all = _parse_networks(env.get(TRUSTED_PEERS_ENV, ""), TRUSTED_PEERS_ENV)
        secret = env.get(SECRET_ENV, "")
        return cls(networks, trust_all, secret.encode("utf-8") or None)

    def trusts_peer(self, address: str | None) -> bool:
        if self.trust_all:
            return True
        if address is None or not self.trusted_networks:
            return False
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip in network for network in self.trusted_networks)


def peer_address(carrier: object) -> str | None:
    """The TCP peer of the request `carrier` stands for, when the carrier says so unforgeably.

    Only a WSGI environ (`wsgi.version` is a tuple, which no header value can be) and an ASGI scope
    (`asgi` is a dict) are believed; any other carrier (a header mapping) gives no address.
    """
    if not isinstance(carrier, dict):
        return None
    if isinstance(carrier.get("wsgi.version"), tuple):
        address = carrier.get("REMOTE_ADDR")
        return address if isinstance(address, str) else None
    if isinstance(carrier.get("asgi"), dict):
        client = carrier.get("client")
        if isinstance(client, tuple | list) and client and isinstance(client[0], str):
            return client[0]
    return None


def _canonical(entries: Mapping[str, object]) -> bytes:
    lines = []
    for key in sorted(k for k in entries if isinstance(k, str) and k.startswith(PREFIX)):
        value = clean_text(str(entries[key]))
        if value is not None:
            lines.append(f"{key}={value}")
    return "\n".join(lines).encode("utf-8")


def sign(entries: Mapping[str, object], secret: bytes) -> str:
    """The signature header value for the `costspan.*` entries of a baggage mapping."""
    return _SIGNATURE_VERSION + hmac.new(secret, _canonical(entries), hashlib.sha256).hexdigest()


def _first(values: Any) -> str | None:
    if values is None:
        return None
    if isinstance(values, str):
        return values
    for value in values:
        return value if isinstance(value, str) else None
    return None


class _Stats:
    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def add(self, what: str) -> None:
        with self._lock:
            self._counts[what] += 1

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)


class AttributionBaggageGuard(textmap.TextMapPropagator):
    """Wraps a propagator: drops inbound `costspan.*` baggage from untrusted callers, signs outbound."""

    def __init__(self, inner: textmap.TextMapPropagator, policy: InboundBaggagePolicy | None = None) -> None:
        self.inner = inner
        self.policy = policy if policy is not None else InboundBaggagePolicy()
        self._stats = _Stats()
        self._log = LogOnce(limit=16)

    def inbound(self) -> dict[str, int]:
        """Requests whose `costspan.*` baggage was `kept` or `dropped`, since start."""
        return self._stats.counts()

    def extract(
        self,
        carrier: textmap.CarrierT,
        context: Context | None = None,
        getter: textmap.Getter[textmap.CarrierT] = textmap.default_getter,
    ) -> Context:
        base = context if context is not None else get_current()
        try:
            extracted = self.inner.extract(carrier, base, getter)
        except Exception as exc:
            FAULTS.record("baggage extract", exc)
            return base
        try:
            return self._guard(carrier, getter, base, extracted)
        except Exception as exc:
            FAULTS.record("inbound baggage check", exc)
            try:
                return _restore(base, extracted, _inbound_keys(base, extracted))
            except Exception as restore_exc:
                FAULTS.record("inbound baggage check", restore_exc)
                return base

    def inject(
        self,
        carrier: textmap.CarrierT,
        context: Context | None = None,
        setter: textmap.Setter[textmap.CarrierT] = textmap.default_setter,
    ) -> None:
        self.inner.inject(carrier, context, setter)
        secret = self.policy.secret
        if secret is None:
            return
        try:
            entries = baggage.get_all(context)
            if any(isinstance(key, str) and key.startswith(PREFIX) for key in entries):
                setter.set(carrier, SIGNATURE_HEADER, sign(entries, secret))
        except Exception as exc:
            FAULTS.record("baggage signature", exc)

    @property
    def fields(self) -> set[str]:
        fields = set(self.inner.fields)
        if self.policy.secret is not None:
            fields.add(SIGNATURE_HEADER)
        return fields

    def _guard(self, carrier: Any, getter: textmap.Getter[Any], base: Context, extracted: Context) -> Context:
        keys = _inbound_keys(base, extracted)
        if not keys:
            return extracted
        if self._trusted(carrier, getter, extracted):
            self._stats.add("kept")
            return _cleaned(extracted, keys)
        self._stats.add("dropped")
        peer = peer_address(carrier)
        self._log.warn(
            str(peer),
            "costspan: dropped costspan.* baggage from an untrusted caller (peer %s); attribution is "
            "taken from trusted callers only: see %s and %s",
            peer or "unknown",
            TRUSTED_PEERS_ENV,
            SECRET_ENV,
        )
        return _restore(base, extracted, keys)

    def _trusted(self, carrier: Any, getter: textmap.Getter[Any], extracted: Context) -> bool:
        policy = self.policy
        if policy.trusts_peer(peer_address(carrier)):
            return True
        if policy.secret is None:
            return False
        given = _first(getter.get(carrier, SIGNATURE_HEADER))
        if given is None:
            return False
        expected = sign(baggage.get_all(extracted), policy.secret)
        return hmac.compare_digest(given.strip().encode("utf-8", "replace"), expected.encode("ascii"))


def _inbound_keys(base: Context, extracted: Context) -> list[str]:
    before = baggage.get_all(base)
    after = baggage.get_all(extracted)
    return [
        key
        for key, value in after.items()
        if isinstance(key, str) and key.startswith(PREFIX) and (key not in before or before[key] != value)
    ]


def _restore(base: Context, extracted: Context, keys: list[str]) -> Context:
    before = baggage.get_all(base)
    for key in keys:
        if key in before:
            extracted = baggage.set_baggage(key, before[key], extracted)
        else:
            extracted = baggage.remove_baggage(key, extracted)
    return extracted


def _cleaned(extracted: Context, keys: list[str]) -> Context:
    entries = baggage.get_all(extracted)
    attribution = clean_attribution(entries)
    for key in keys:
        if is_attribution_key(key) and key in attribution:
            extracted = baggage.set_baggage(key, attribution[key], extracted)
        else:  # not an attribution key, or nothing usable left after cleaning
            extracted = baggage.remove_baggage(key, extracted)
    return extracted


_install_lock = threading.Lock()


def guard_inbound_baggage(policy: InboundBaggagePolicy | None = None) -> AttributionBaggageGuard:
    """Wrap the global propagator in an `AttributionBaggageGuard` (again: replaces the policy).

    `policy` defaults to `InboundBaggagePolicy.from_env()`. Call it after the global propagator is
    set (`opentelemetry-instrument` sets it from OTEL_PROPAGATORS before costspan is configured).
    """
    with _install_lock:
        current = propagate.get_global_textmap()
        inner = current.inner if isinstance(current, AttributionBaggageGuard) else current
        guard = AttributionBaggageGuard(
            inner, policy if policy is not None else InboundBaggagePolicy.from_env()
        )
        propagate.set_global_textmap(guard)
        return guard


__all__ = [
    "SECRET_ENV",
    "SIGNATURE_HEADER",
    "TRUSTED_PEERS_ENV",
    "AttributionBaggageGuard",
    "InboundBaggagePolicy",
    "guard_inbound_baggage",
    "peer_address",
    "sign",
]

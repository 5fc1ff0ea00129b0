"""Cost across services: the figure a server returns for a request, and the caller taking it in.

Server side, `response_cost_header(span)`: while the request's server span is still open, the rollup
ledger entry of that span already holds every call that ended under it (the processor hands each
ended span's tally to its nearest open ancestor), so the cost is known when the response headers
go out, before the server span ends.

Client side, `record_returned_cost(span, value, host)`: a `costspan-cost` value on the response of
an HTTP client span is accepted when the host is one the caller trusts (`COSTSPAN_TRUSTED_COST_PEERS`)
or the value is signed with `COSTSPAN_BAGGAGE_SECRET` for this trace. Accepted, its figures go on the
client span (`costspan.remote.*`) and become that span's own tally, cost and calls also in the REMOTE
slots: the processor rolls it up into the ancestors like a call (their `costspan.rollup.cost_usd`
includes it, `costspan.rollup.remote_cost_usd` says how much of it was spent elsewhere). It never
reaches the `costspan.cost` metric or the budgets (the other service recorded and charged its own
calls). Refused values are counted and change nothing.
"""

from __future__ import annotations

import ipaddress
import os
import threading
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from opentelemetry.sdk.trace import Span

from costspan import attributes as attrs
from costspan.attribution.baggage_trust import SECRET_ENV
from costspan.rollup import cost_header
from costspan.rollup.call_pricing import COST, INPUT, LLM_CALLS, OUTPUT, TOOL_CALLS, usd
from costspan.rollup.processor import CALL_TALLY_ATTR, subtree_tally_so_far
from costspan.telemetry.faults import FaultCounter, LogOnce

TRUSTED_COST_PEERS_ENV: Final = "COSTSPAN_TRUSTED_COST_PEERS"

ACCEPTED: Final = attrs.REMOTE_STATUS_ACCEPTED
UNTRUSTED: Final = "untrusted"
BAD_SIGNATURE: Final = "bad_signature"
MALFORMED: Final = "malformed"

FAULTS = FaultCounter()

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class CostPeerPolicy:
    """Whose returned cost a caller believes. The default believes no one (and signs nothing)."""

    hosts: frozenset[str] = frozenset()
    domains: tuple[str, ...] = ()  # from `*.example.internal`: `.example.internal`
    networks: tuple[Network, ...] = ()
    trust_all: bool = False
    secret: bytes | None = None

    @classmethod
    def of(
        cls, trusted_hosts: Iterable[str] | str = (), secret: str | bytes | None = None, *, source: str = ""
    ) -> CostPeerPolicy:
        """From host names (`rag.internal`), `*.suffix` domains, IP addresses or networks, `*` for any.

        Raises ValueError naming `source` and the entry for one that is none of these."""
        spec = trusted_hosts if isinstance(trusted_hosts, str) else ",".join(trusted_hosts)
        hosts: set[str] = set()
        domains: list[str] = []
        networks: list[Network] = []
        trust_all = False
        for raw in spec.split(","):
            item = raw.strip().lower()
            if not item:
                continue
            if item == "*":
                trust_all = True
            elif item.startswith("*."):
                domains.append(item[1:])
            else:
                try:
                    networks.append(ipaddress.ip_network(item.strip("[]"), strict=False))
                    continue
                except ValueError:
                    pass
                if not all(part and part.replace("-", "").isalnum() for part in item.split(".")):
                    raise ValueError(
                        f"{source or 'trusted_hosts'}: {raw.strip()!r} is not a host name, *.domain, IP "
                        "address or network (e.g. rag.internal, *.svc.cluster.local, 10.0.0.0/8, or *)"
                    )
                hosts.add(item)
        if isinstance(secret, str):
            secret = secret.encode("utf-8")
        return cls(frozenset(hosts), tuple(domains), tuple(networks), trust_all, secret or None)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> CostPeerPolicy:
        """From COSTSPAN_TRUSTED_COST_PEERS and COSTSPAN_BAGGAGE_SECRET; ValueError names a bad entry."""
        env = os.environ if environ is None else environ
        return cls.of(
            env.get(TRUSTED_COST_PEERS_ENV, ""), env.get(SECRET_ENV, ""), source=TRUSTED_COST_PEERS_ENV
        )

    def trusts_host(self, host: str | None) -> bool:
        if self.trust_all:
            return True
        if not host:
            return False
        name = host.strip("[]").rstrip(".").lower()
        if name in self.hosts or any(name.endswith(domain) for domain in self.domains):
            return True
        if not self.networks:
            return False
        try:
            ip = ipaddress.ip_address(name.split("%", 1)[0])
        except ValueError:
            return False
        return any(ip in network for network in self.networks)


class _Outcomes:
    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def add(self, what: str) -> None:
        with self._lock:
            self._counts[what] += 1

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)


_policy = CostPeerPolicy()
_outcomes = _Outcomes()
_refusals = LogOnce(limit=16)


def set_cost_peer_policy(policy: CostPeerPolicy) -> None:
    global _policy
    _policy = policy


def cost_peer_policy() -> CostPeerPolicy:
    return _policy


def returned_costs() -> dict[str, int]:
    """Responses with a `costspan-cost` header since start, by outcome (`accepted`, `untrusted`, ...)."""
    return _outcomes.counts()


def response_cost_header(span: object) -> str | None:
    """The header value reporting what the request of open server `span` has cost so far (None: nothing
    spent, or the span is not in a costspan ledger). Signed when this process has the secret."""
    tally = subtree_tally_so_far(span)
    if tally is None or not (tally[LLM_CALLS] or tally[TOOL_CALLS]):
        return None
    body = cost_header.encode(tally)
    secret = _policy.secret
    if secret is None:
        return body
    return cost_header.sign(body, secret, span.get_span_context().trace_id)  # type: ignore[attr-defined]


def record_returned_cost(span: Any, value: str | None, host: str | None) -> None:
    """Take in the `costspan-cost` value (None: the response had none) an HTTP client span's response
    carried, from `host`. Never raises."""
    if value is None:
        return
    try:
        _record(span, value, host)
    except Exception as exc:
        FAULTS.record("returned cost", exc)


def _record(span: Any, value: str, host: str | None) -> None:
    if not isinstance(span, Span) or not span.is_recording():
        return
    body, signature = cost_header.split_signature(value)
    try:
        tally = cost_header.decode(body)
    except cost_header.MalformedCostHeader as exc:
        _refuse(span, MALFORMED, host, f"malformed ({exc})")
        return
    policy = _policy
    if not policy.trusts_host(host):
        if signature is None or policy.secret is None:
            _refuse(span, UNTRUSTED, host, "unsigned, from a host not in " + TRUSTED_COST_PEERS_ENV)
            return
        trace_id = span.get_span_context().trace_id
        if not cost_header.signature_valid(body, signature, policy.secret, trace_id):
            _refuse(span, BAD_SIGNATURE, host, "its signature does not verify under " + SECRET_ENV)
            return
    previous = span.__dict__.get(CALL_TALLY_ATTR)
    if previous is not None:  # two responses on one span (should not happen): both count
        tally = [a + b for a, b in zip(previous, tally, strict=True)]
    span.__dict__[CALL_TALLY_ATTR] = tally
    span.set_attributes(
        {
            attrs.REMOTE_COST_STATUS: ACCEPTED,
            attrs.REMOTE_COST_PEER: host or "",
            attrs.REMOTE_COST_USD: usd(tally[COST]),
            attrs.REMOTE_LLM_CALLS: tally[LLM_CALLS],
            attrs.REMOTE_INPUT_TOKENS: tally[INPUT],
            attrs.REMOTE_OUTPUT_TOKENS: tally[OUTPUT],
        }
    )
    _outcomes.add(ACCEPTED)


def _refuse(span: Span, outcome: str, host: str | None, why: str) -> None:
    _outcomes.add(outcome)
    span.set_attributes({attrs.REMOTE_COST_STATUS: outcome, attrs.REMOTE_COST_PEER: host or ""})
    _refusals.warn(
        f"{host}:{outcome}",
        "costspan: ignored the %s header from %s: %s",
        cost_header.HEADER,
        host or "an unknown host",
        why,
    )


__all__ = [
    "TRUSTED_COST_PEERS_ENV",
    "CostPeerPolicy",
    "cost_peer_policy",
    "record_returned_cost",
    "response_cost_header",
    "returned_costs",
    "set_cost_peer_policy",
]

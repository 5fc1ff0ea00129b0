"""Model resolution against genai-prices' bundled data, through a DataSnapshot of our own.

Never touches genai-prices' process-global snapshot, never starts its update thread, no network.
"""

from __future__ import annotations

import logging
import threading

import genai_prices
from genai_prices import data_snapshot
from genai_prices import types as gp

from .compiled import NotCompilable, compile_model
from .normalise import candidates, split_prefix
from .pricers import CompiledPricer, FallbackPricer, Pricer
from .providers import map_provider

logger = logging.getLogger(__name__)

SOURCE = f"genai-prices {genai_prices.__version__}"
# DataSnapshot caches every successful lookup and every provider miss keyed by model name; clear
# those caches past this size so a flood of junk model names cannot grow memory.
_SNAPSHOT_CACHE_LIMIT = 4096


class BundledPrices:
    """Resolves (provider, model) to a pricer; one compiled pricer per genai-prices model."""

    def __init__(self, providers: list[gp.Provider] | None = None) -> None:
        if providers is None:
            from genai_prices.data import providers as bundled

            providers = bundled
        self._snapshot = data_snapshot.DataSnapshot(providers=providers, from_auto_update=False)
        self._providers = providers
        self._pricers: dict[tuple[int, int], Pricer] = {}
        self._lock = threading.Lock()
        self.fallbacks: dict[str, str] = {}  # "provider/model id" -> why it isn't compiled

    def _provider_exists(self, provider_id: str) -> bool:
        return data_snapshot.find_provider_by_id(self._providers, provider_id) is not None

    def _find(self, name: str, provider_id: str | None) -> tuple[gp.Provider, gp.ModelInfo] | None:
        try:
            return self._snapshot.find_provider_model(name, None, provider_id, None)
        except LookupError:
            return None

    def find_model(self, provider: str | None, model: str) -> tuple[gp.Provider, gp.ModelInfo] | None:
        """The genai-prices provider and model for a span's provider and model strings."""
        provider_id = map_provider(provider)
        if provider_id is not None and not self._provider_exists(provider_id):
            provider_id = None
        if provider_id is None:
            hint = map_provider(split_prefix(model).provider_hint)
            if hint is not None and self._provider_exists(hint):
                provider_id = hint
        with self._lock:
            try:
                for name in candidates(model):
                    if found := self._find(name, provider_id):
                        return found
                return None
            finally:
                self._trim_snapshot_caches()

    def _trim_snapshot_caches(self) -> None:
        snap = self._snapshot
        for cache in (snap._lookup_cache, snap._provider_cache, snap._provider_misses):
            if len(cache) > _SNAPSHOT_CACHE_LIMIT:
                cache.clear()

    def pricer_for(self, provider_obj: gp.Provider, model_obj: gp.ModelInfo) -> Pricer:
        key = (id(provider_obj), id(model_obj))
        pricer = self._pricers.get(key)
        if pricer is None:
            try:
                pricer = CompiledPricer(compile_model(model_obj), SOURCE)
            except NotCompilable as exc:
                name = f"{provider_obj.id}/{model_obj.id}"
                self.fallbacks[name] = str(exc)
                logger.debug("costspan: pricing %s through genai-prices (%s)", name, exc)
                pricer = FallbackPricer(model_obj, provider_obj, SOURCE, str(exc))
            self._pricers[key] = pricer
        return pricer

    def resolve(self, provider: str | None, model: str) -> Pricer | None:
        found = self.find_model(provider, model)
        if found is None:
            return None
        return self.pricer_for(*found)

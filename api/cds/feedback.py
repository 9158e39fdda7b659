"""Card feedback: counts only, in memory, idempotent.

Why digests: the spec lets a client report the same card more than once, so each report is
remembered as a SHA-256 of (card uuid, outcome), in a bounded set, to count it once. No card
content, user or patient is kept.
"""

from __future__ import annotations

import hashlib
import threading
from collections import Counter, OrderedDict

from .models import FeedbackAck, FeedbackCounts, FeedbackItem


class FeedbackStore:
    def __init__(self, remember: int = 100_000):
        self.remember = remember
        self.outcomes: Counter[str] = Counter()
        self.reasons: Counter[str] = Counter()
        self._seen: OrderedDict[bytes, None] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, items: list[FeedbackItem]) -> FeedbackAck:
        counted = repeated = 0
        with self._lock:
            for item in items:
                key = hashlib.sha256(f"{item.card}\x00{item.outcome}".encode()).digest()
                if key in self._seen:
                    repeated += 1
                    continue
                self._seen[key] = None
                if len(self._seen) > self.remember:
                    self._seen.popitem(last=False)
                self.outcomes[item.outcome] += 1
                reason = item.overrideReason.reason if item.overrideReason else None
                if reason is not None:
                    self.reasons[reason.code] += 1
                counted += 1
        return FeedbackAck(counted=counted, repeated=repeated)

    def counts(self) -> FeedbackCounts:
        with self._lock:
            return FeedbackCounts(accepted=self.outcomes["accepted"], overridden=self.outcomes["overridden"],
                                  override_reasons=dict(self.reasons))

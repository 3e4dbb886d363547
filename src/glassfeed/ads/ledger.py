"""Spend and frequency counters that gate delivery: the budget check and the charge are one atomic step, so that
however many requests (and workers) serve a campaign at once, a budget is overspent by at most one price.

``try_charge`` adds a price to a campaign's spend of the day and of its lifetime only while *both are still below
their budgets* (checked and added atomically: under a lock in this process, in one Lua script in Redis across
workers). The charge that crosses a budget is the last one, so spend <= budget + one price. The counters only
gate delivery: what is billed is what the ad log holds (``Store.ad_spend``), and a fresh counter starts from it.

Pacing (throttling): a campaign takes part in an auction only while its spend today is at most its daily budget
times ``min(1, share of the day gone + slack)``, so a budget spreads over the day instead of going to the first
hours' traffic (measured in docs/ads.md)."""

from __future__ import annotations

import threading
from collections import defaultdict
from typing import Protocol, cast

import redis


def day_of(ts: float) -> int:
    """The UTC day number of ``ts`` (budgets and frequency caps are per UTC day)."""
    return int(ts // 86400)


def paced_allowance(daily_budget: int, now: float, slack: float) -> float:
    """What a campaign may have spent today by ``now`` under even pacing (micro-units)."""
    gone = (now % 86400) / 86400.0
    return daily_budget * min(1.0, gone + slack)


class SpendLedger(Protocol):
    def spent(self, campaign: str, day: int) -> tuple[int, int]:
        """(spent on ``day``, spent ever), micro-units."""
        ...

    def try_charge(self, campaign: str, day: int, price: int, daily_budget: int, lifetime_budget: int) -> bool:
        """Add ``price`` to both counters if both are below their budgets (atomically); whether it did."""
        ...

    def spent_many(self, campaigns: list[str], day: int) -> list[tuple[int, int]]:
        """``spent`` of each campaign, in one call (one round trip to Redis)."""
        ...

    def charge_many(self, charges: list[tuple[str, int, int, int]], day: int) -> list[bool]:
        """``try_charge`` of each (campaign, price, daily budget, lifetime budget), in order, in one call; each
        charge is atomic on its own."""
        ...

    def seen(self, user: int, campaigns: list[str], day: int) -> list[int]:
        """How many impressions of each campaign ``user`` got on ``day``."""
        ...

    def count_seen(self, user: int, campaigns: list[str], day: int) -> None:
        """Count one impression of each of ``campaigns`` for ``user`` on ``day``."""
        ...


class LocalLedger:
    """The counters of one process (``[serving] redis_url`` empty: one worker), seeded from the ad log."""

    def __init__(self, spend_today: dict[str, tuple[int, int]], day: int) -> None:
        self._lock = threading.Lock()
        self._day: dict[tuple[str, int], int] = {(c, day): d for c, (d, _) in spend_today.items()}
        self._total: dict[str, int] = {c: t for c, (_, t) in spend_today.items()}
        self._seen: dict[tuple[int, str, int], int] = defaultdict(int)

    def spent(self, campaign: str, day: int) -> tuple[int, int]:
        with self._lock:
            return self._day.get((campaign, day), 0), self._total.get(campaign, 0)

    def spent_many(self, campaigns: list[str], day: int) -> list[tuple[int, int]]:
        with self._lock:
            return [(self._day.get((c, day), 0), self._total.get(c, 0)) for c in campaigns]

    def try_charge(self, campaign: str, day: int, price: int, daily_budget: int, lifetime_budget: int) -> bool:
        with self._lock:
            return self._charge(campaign, day, price, daily_budget, lifetime_budget)

    def _charge(self, campaign: str, day: int, price: int, daily_budget: int, lifetime_budget: int) -> bool:
        d, t = self._day.get((campaign, day), 0), self._total.get(campaign, 0)
        if d >= daily_budget or t >= lifetime_budget:
            return False
        self._day[(campaign, day)] = d + price
        self._total[campaign] = t + price
        return True

    def charge_many(self, charges: list[tuple[str, int, int, int]], day: int) -> list[bool]:
        with self._lock:
            return [self._charge(c, day, price, daily, life) for c, price, daily, life in charges]

    def seen(self, user: int, campaigns: list[str], day: int) -> list[int]:
        with self._lock:
            return [self._seen.get((user, c, day), 0) for c in campaigns]

    def count_seen(self, user: int, campaigns: list[str], day: int) -> None:
        with self._lock:
            for c in campaigns:
                self._seen[(user, c, day)] += 1


#: KEYS: day counter, lifetime counter; ARGV: price, daily budget, lifetime budget, day seed, lifetime seed, ttl.
_CHARGE = """
if redis.call('EXISTS', KEYS[1]) == 0 then redis.call('SET', KEYS[1], ARGV[4], 'EX', ARGV[6]) end
if redis.call('EXISTS', KEYS[2]) == 0 then redis.call('SET', KEYS[2], ARGV[5]) end
local d = tonumber(redis.call('GET', KEYS[1]))
local t = tonumber(redis.call('GET', KEYS[2]))
if d >= tonumber(ARGV[2]) or t >= tonumber(ARGV[3]) then return 0 end
redis.call('INCRBY', KEYS[1], ARGV[1])
redis.call('INCRBY', KEYS[2], ARGV[1])
return 1
"""


class RedisLedger:
    """The counters shared by every worker, in Redis: ``<prefix>ads:spend:<campaign>:<day>`` (expires after two
    days), ``<prefix>ads:total:<campaign>`` and ``<prefix>ads:seen:<user>:<day>`` (a hash campaign -> count). A
    counter missing from Redis (a restart: Redis keeps nothing on disk here) starts from the ad log's sums, read
    when the ad service loads its campaigns (``seed``)."""

    def __init__(self, client: redis.Redis, prefix: str, seed: dict[str, tuple[int, int]], day: int) -> None:
        self.client, self.prefix = client, prefix
        self._seed = dict(seed)
        self._seed_day = day
        self._charge = client.register_script(_CHARGE)

    def close(self) -> None:
        """Close the client's connections (the app's shutdown)."""
        self.client.close()

    def reseed(self, seed: dict[str, tuple[int, int]], day: int) -> None:
        self._seed, self._seed_day = dict(seed), day

    def _keys(self, campaign: str, day: int) -> tuple[str, str]:
        return f"{self.prefix}ads:spend:{campaign}:{day}", f"{self.prefix}ads:total:{campaign}"

    def _seeds(self, campaign: str, day: int) -> tuple[int, int]:
        d, t = self._seed.get(campaign, (0, 0))
        return (d if day == self._seed_day else 0), t

    def spent(self, campaign: str, day: int) -> tuple[int, int]:
        kd, kt = self._keys(campaign, day)
        d, t = cast(list[bytes | None], self.client.mget([kd, kt]))
        sd, st = self._seeds(campaign, day)
        return (int(d) if d is not None else sd), (int(t) if t is not None else st)

    def spent_many(self, campaigns: list[str], day: int) -> list[tuple[int, int]]:
        if not campaigns:
            return []
        keys = [k for c in campaigns for k in self._keys(c, day)]
        got = cast(list[bytes | None], self.client.mget(keys))
        out = []
        for i, c in enumerate(campaigns):
            d, t = got[2 * i], got[2 * i + 1]
            sd, st = self._seeds(c, day)
            out.append(((int(d) if d is not None else sd), (int(t) if t is not None else st)))
        return out

    def _charge_args(self, campaign: str, day: int, price: int, daily: int, lifetime: int) -> list[int]:
        sd, st = self._seeds(campaign, day)
        return [price, daily, lifetime, sd, st, 2 * 86400]

    def try_charge(self, campaign: str, day: int, price: int, daily_budget: int, lifetime_budget: int) -> bool:
        args = self._charge_args(campaign, day, price, daily_budget, lifetime_budget)
        return bool(self._charge(keys=list(self._keys(campaign, day)), args=args))

    def charge_many(self, charges: list[tuple[str, int, int, int]], day: int) -> list[bool]:
        if not charges:
            return []
        pipe = self.client.pipeline(transaction=False)  # one round trip; each script runs atomically
        for c, price, daily, life in charges:
            self._charge(keys=list(self._keys(c, day)), args=self._charge_args(c, day, price, daily, life), client=pipe)
        return [bool(x) for x in pipe.execute()]

    def _seen_key(self, user: int, day: int) -> str:
        return f"{self.prefix}ads:seen:{user}:{day}"

    def seen(self, user: int, campaigns: list[str], day: int) -> list[int]:
        if not campaigns:
            return []
        got = cast(list[bytes | None], self.client.hmget(self._seen_key(user, day), campaigns))
        return [int(v) if v is not None else 0 for v in got]

    def count_seen(self, user: int, campaigns: list[str], day: int) -> None:
        if not campaigns:
            return
        key = self._seen_key(user, day)
        pipe = self.client.pipeline(transaction=False)
        for c in campaigns:
            pipe.hincrby(key, c, 1)
        pipe.expire(key, 2 * 86400)
        pipe.execute()


__all__ = ["LocalLedger", "RedisLedger", "SpendLedger", "day_of", "paced_allowance"]

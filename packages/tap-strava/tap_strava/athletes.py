"""The athletes of a run: one account each (tokens, profile, quota view, failures).

The tap creates one :class:`Athletes` per sync and hands it to every stream (through
:class:`tap_strava.run.SyncRun`): it builds a :class:`StravaAccount` per configured refresh
token, resolves which Strava athlete each one is, isolates one athlete's failures from the
others', and refuses a reconcile that would flag rows it cannot re-read. The accounts share
one rate-limit view, because Strava's quota belongs to the app; their requests go through
the streams' SDK request machinery (``StravaStream.get_one``).
"""

from __future__ import annotations

import logging
import re
import time
import typing as t
from functools import cached_property

from tap_strava import backends
from tap_strava.auth import StravaAuthenticator
from tap_strava.errors import StravaConfigError, one_line
from tap_strava.ratelimit import RateLimitTracker
from tap_strava.responses import ATHLETE_FAILURES
from tap_strava.shared_database import SharedDatabase, describe
from tap_strava.shared_facts import SharedFacts

if t.TYPE_CHECKING:
    from tap_strava.token_store import TokenStore

DEFAULT_API_URL = "https://www.strava.com/api/v3"
DEFAULT_TOKEN_URL = "https://www.strava.com/oauth/token"  # noqa: S105
# One GET of an API path for an account, returning the JSON body (StravaStream.get_one).
Getter = t.Callable[["StravaAccount", str], t.Any]


class StravaAccount:
    """One authorized athlete: its authenticator, quota view and cached profile.

    The tap has one account per configured refresh token; streams are partitioned by
    ``athlete_id`` and each partition uses its athlete's account. Accounts share the
    app's :class:`RateLimitTracker`.
    """

    def __init__(
        self,
        *,
        label: str = "refresh_token",
        authenticator: StravaAuthenticator,
        rate_limits: RateLimitTracker,
        get: Getter,
    ) -> None:
        self.label = label
        self.authenticator = authenticator
        # Why this athlete is skipped for the rest of the run (several athletes), if it is.
        self.failure: str | None = None
        self.rate_limits = rate_limits
        self.unauthorized_retries = 0
        self._get = get
        # Epoch second of Strava's answer to ``GET /athlete`` (once ``profile`` is read).
        self.profile_fetched_at = 0

    @cached_property
    def profile(self) -> dict[str, t.Any]:
        """``GET /athlete``, fetched once per run and shared by every stream.

        The athlete's id goes into the token store: a reconcile needs to know every
        athlete that ever loaded rows (see ``Athletes.check_reconcile_coverage``).
        """
        profile = t.cast("dict[str, t.Any]", self._get(self, "/athlete"))
        self.profile_fetched_at = int(time.time())  # when Strava answered (a cache keeps it)
        if isinstance(profile.get("id"), int):
            self.authenticator.token_store.remember_athlete(int(profile["id"]))
        return profile

    @cached_property
    def athlete_id(self) -> int:
        """The authorized athlete's id: from the token store if known, else the profile's.

        The token store records whose chain it is once a profile said so, so that a run
        that does not need the profile today (it is loaded once a day) does not fetch it
        just to learn the id.
        """
        stored = self.authenticator.token_store.load()
        if stored is not None and isinstance(stored.athlete_id, int):
            return stored.athlete_id
        return int(self.profile["id"])

    @property
    def known_athlete_id(self) -> int | None:
        """The athlete's id if this run knows it already (never a request to learn it)."""
        value = self.__dict__.get("athlete_id")
        return value if isinstance(value, int) else None

    @property
    def profile_fetched(self) -> bool:
        """Whether this run has fetched the profile already (no request to ask)."""
        return "profile" in self.__dict__


class Athletes:
    """Every configured athlete of this sync, built on first use (not at discovery)."""

    def __init__(
        self,
        config: t.Mapping[str, t.Any],
        shared_facts: SharedFacts,
        logger: logging.Logger,
        get: Getter,
    ) -> None:
        self.config = config
        self.shared_facts = shared_facts
        self.logger = logger
        # One GET through a stream's SDK request machinery (see StravaStream.get_one).
        self._get = get

    def save_quota_reading(self) -> None:
        """Keep the last quota reading for the next run of any block (best effort).

        Called while a stream ends, also when it fails: a facts file that cannot be
        written must not hide the real error, and costs only a possible 429 next run.
        """
        accounts = self.__dict__.get("accounts")
        reading = accounts[0].rate_limits.reading() if accounts else None
        if not reading:
            return
        try:
            self.shared_facts.save_quota(reading)
        except StravaConfigError as exc:
            self.logger.warning("The quota reading is not kept for the next run: %s", exc)

    def configured(self) -> list[tuple[str, str]]:
        """``(label, refresh token)`` of every configured athlete, in configuration order."""
        entries = []
        if self.config.get("refresh_token"):
            entries.append(("refresh_token", str(self.config["refresh_token"])))
        for index, item in enumerate(self.config.get("athletes") or []):
            label = str(item.get("name") or "").strip() or f"athletes[{index}]"
            entries.append((label, str(item["refresh_token"])))
        return entries

    @cached_property
    def accounts(self) -> list[StravaAccount]:
        """One account per configured athlete, built on first use (not at discovery).

        They share one rate-limit view: the quota belongs to the app.
        """
        config = self.config
        database = SharedDatabase.from_config(config)
        timeout = float(config.get("request_timeout", 60))
        rate_limits = RateLimitTracker(
            window_seconds=int(config.get("rate_limit_window_seconds", 900)),
            max_wait_seconds=float(config.get("max_rate_limit_wait_seconds", 900)),
        )
        # The quota belongs to the app: start from what the last run of any block saw,
        # and with a shared database reserve every request in the app's ledger.
        rate_limits.restore(self.shared_facts.quota())
        rate_limits.ledger = backends.quota_ledger(config, database)
        accounts = []
        wanted = self.config.get("athlete_ids")
        entries: list[tuple[str, str, TokenStore | None]] = [
            (label, token, None) for label, token in self.configured()
        ]
        if not entries and database is not None:
            # A club's configuration lists no token: its athletes are the shared store's.
            entries = self.stored(database, [int(i) for i in wanted] if wanted else None)
            if not entries and not wanted:
                msg = (
                    f"no refresh_token or athletes configured, and the shared database "
                    f"{describe(database.url)} holds no athlete's tokens yet: let athletes "
                    "connect (the Connect page, or tap-strava-auth), or configure refresh_token"
                )
                raise StravaConfigError(msg)
        for label, refresh_token, found in entries:
            store = found or backends.token_store(
                config,
                client_id=str(config["client_id"]),
                configured_refresh_token=refresh_token,
                database=database,
            )
            authenticator = StravaAuthenticator(
                client_id=str(config["client_id"]),
                client_secret=str(config["client_secret"]),
                refresh_token=refresh_token,
                token_url=str(config.get("token_url") or DEFAULT_TOKEN_URL),
                token_store=store,
                timeout=timeout,
                athlete=None if label == "refresh_token" else label,
            )
            accounts.append(
                StravaAccount(
                    label=label,
                    authenticator=authenticator,
                    rate_limits=rate_limits,
                    get=self._get,
                )
            )
        if wanted:
            return self.restricted(accounts, [int(athlete_id) for athlete_id in wanted])
        return accounts

    def stored(
        self, database: SharedDatabase, wanted: list[int] | None
    ) -> list[tuple[str, str, TokenStore | None]]:
        """``(label, refresh token, store)`` of every athlete of the shared store.

        When the configuration lists no token (neither ``refresh_token`` nor ``athletes``)
        and a shared database is set, the athletes are those who connected: the Connect
        page and ``tap-strava-auth`` store each one's chain there, with its id in clear.
        Each gets the store of its own chain (its row, found by key), labelled
        ``athlete-<id>`` like the Connect page's entries. ``wanted`` (``athlete_ids``)
        limits which tokens are decrypted at all.
        """
        from tap_strava.token_store_postgres import PostgresTokenStore, stored_chains

        client_id = str(self.config["client_id"])
        return [
            (
                f"athlete-{chain.athlete_id}",
                chain.refresh_token,
                PostgresTokenStore(
                    database,
                    client_id=client_id,
                    configured_refresh_token=chain.refresh_token,
                    chain_key=chain.chain_key,
                ),
            )
            for chain in stored_chains(database, wanted)
        ]

    def restricted(self, accounts: list[StravaAccount], wanted: list[int]) -> list[StravaAccount]:
        """The accounts of the ``athlete_ids`` setting only, in its order.

        An orchestrator runs one athlete per run (its own state id, its own failure); the
        configuration still lists every token of the club. Whose chain a token is comes
        from the token store; a token whose athlete is not recorded there yet costs one
        profile read, and only while a wanted id is still missing. An id no token belongs
        to is a configuration error: syncing nothing would look like a quiet success.
        """
        by_id: dict[int, StravaAccount] = {}
        unknown: list[StravaAccount] = []
        for account in accounts:
            store = account.authenticator.token_store
            stored = store.load()  # a shared store's connection is released after use
            if stored is not None and isinstance(stored.athlete_id, int):
                by_id.setdefault(stored.athlete_id, account)
            else:
                unknown.append(account)
        failures: list[str] = []
        for account in unknown:
            if all(athlete_id in by_id for athlete_id in wanted):
                break
            try:
                by_id.setdefault(account.athlete_id, account)
            except ATHLETE_FAILURES as exc:
                failures.append(f"{account.label}: {one_line(exc)}")
        missing = [athlete_id for athlete_id in dict.fromkeys(wanted) if athlete_id not in by_id]
        if missing:
            ids = ", ".join(str(athlete_id) for athlete_id in missing)
            unread = f" (tokens whose athlete could not be read: {'; '.join(failures)})"
            msg = (
                f"athlete_ids: no configured token belongs to athlete {ids}"
                f"{unread if failures else ''}; authorize that athlete (`tap-strava-auth "
                "--athlete NAME` adds an entry to athletes) or remove the id from athlete_ids"
            )
            raise StravaConfigError(msg)
        return [by_id[athlete_id] for athlete_id in dict.fromkeys(wanted)]

    @property
    def first(self) -> StravaAccount:
        """The first configured athlete's account (the only one in a single-athlete setup)."""
        return self.accounts[0]

    @property
    def several(self) -> bool:
        """Whether athletes are isolated from each other's failures (more than one)."""
        return len(self.accounts) > 1

    @cached_property
    def resolved(self) -> dict[int, StravaAccount]:
        """Athlete id to account, for every account whose profile could be read.

        With one athlete an error propagates as it always did (the run fails with one
        line). With several, the failing athlete is skipped and reported at the end.
        """
        if self.config.get("reconcile"):
            self.check_reconcile_coverage()
            self.check_reconcile_scopes()
        resolved: dict[int, StravaAccount] = {}
        for account in self.accounts:
            if account.failure:
                continue
            try:
                athlete_id = account.athlete_id
            except ATHLETE_FAILURES as exc:
                if not self.several:
                    raise
                self.skip(account, exc)
                continue
            if athlete_id in resolved:
                self.logger.warning(
                    "Athletes %s and %s are the same Strava athlete; syncing it once",
                    resolved[athlete_id].label,
                    account.label,
                )
                continue
            resolved[athlete_id] = account
        if self.config.get("reconcile"):
            self.check_reconcile_coverage(resolved)
        return resolved

    def check_reconcile_coverage(self, resolved: t.Iterable[int] | None = None) -> None:
        """Refuse, before any request, a reconcile that would not read what it deletes.

        ACTIVATE_VERSION covers the whole ``activities`` table, every athlete and every
        date: target-postgres flags (or with ``hard_delete`` deletes) each row that the
        pass did not stamp. A pass limited by ``start_date``/``end_date``, or missing an
        athlete who has rows there, would flag rows it never re-read. An athlete with an
        entry in the token store (so synced at some point) that is not configured now
        counts as having rows. Checked before any request, and, if a configured token's
        athlete is not known yet, again with ``resolved`` (the ids the profiles gave)
        before any activity is listed.
        """
        limits = [name for name in ("start_date", "end_date") if self.config.get(name)]
        if limits:
            msg = (
                f"reconcile refused: {' and '.join(limits)} limit the pass to part of the "
                "history, but it flags or deletes every row of the activities table it did "
                f"not read; unset {' and '.join(limits)} for the reconcile (for Meltano: "
                "TAP_STRAVA_RECONCILE_START_DATE= / _END_DATE= override the inherited value)"
            )
            raise StravaConfigError(msg)
        if not self.accounts:
            return
        configured: set[int] = set(resolved or ())
        for account in self.accounts:
            stored = account.authenticator.token_store.load()
            if stored and stored.athlete_id is not None:
                configured.add(int(stored.athlete_id))
            elif resolved is None:
                return  # whose chain this is shows with its profile: checked again then
        missing = self.accounts[0].authenticator.token_store.athlete_ids() - configured
        if missing:
            ids = ", ".join(str(athlete_id) for athlete_id in sorted(missing))
            msg = (
                f"reconcile refused: athlete {ids} has tokens in the token store but is not "
                "configured, so its rows would be flagged as deleted; configure it again, or "
                "remove its rows and its entry (tap-strava-auth --forget-athlete ID)"
            )
            raise StravaConfigError(msg)

    def check_reconcile_scopes(self) -> None:
        """Refuse a reconcile unless every athlete is known to have granted activity:read_all.

        Without it Strava leaves out "Only You" activities, which a reconcile would then
        flag as deleted. Refresh answers do not carry the scope: tap-strava-auth records
        what Strava granted in the token store.
        """
        for account in self.accounts:
            stored = account.authenticator.token_store.load()
            scope = set(re.split(r"[ ,]+", (stored.scope if stored else None) or ""))
            if "activity:read_all" in scope:
                continue
            option = "" if account.label == "refresh_token" else f" --athlete {account.label}"
            known = f"granted only {stored.scope}" if stored and stored.scope else "is not known"
            msg = (
                f"reconcile refused: the scope of {account.label} {known}, and without "
                "activity:read_all private activities would be flagged as deleted; run "
                f"`tap-strava-auth{option}` (it records the granted scope) and grant private "
                "activities"
            )
            raise StravaConfigError(msg)

    def account_for(self, context: t.Mapping[str, t.Any] | None) -> StravaAccount:
        """The account of a stream partition (the first account without a partition)."""
        athlete_id = (context or {}).get("athlete_id")
        if athlete_id is None:
            return self.first
        return self.resolved[int(athlete_id)]

    def skip(self, account: StravaAccount, exc: BaseException) -> None:
        """Record why an athlete is skipped for the rest of this run, and say so."""
        account.failure = one_line(exc)
        self.logger.error(
            "Skipping athlete %s for the rest of this run: %s", account.label, account.failure
        )

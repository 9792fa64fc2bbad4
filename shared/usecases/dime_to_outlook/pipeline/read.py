"""Read: what placing appointments needs to know (Dime.Scheduler → Outlook).

Once per batch (`BatchReads`): Dime.Scheduler's resource directory (cached per process), who is
onboarded (one read of the resources table), the rules in force. Per appointment: its rows (one
partition query) and, for a publication that carries only Dime.Scheduler's internal Id, its GUID.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import replace
from typing import Any

from shared.core.dime_to_outlook.eligibility import (
    DIRECTORY,
    EMAIL_MISMATCH,
    NO_MAILBOX,
    RESOURCE_UNKNOWN,
    DimeResource,
    directory_entry,
    onboarded_mailboxes,
    refusal,
    resources_from_listing,
    target_email,
)
from shared.core.dime_to_outlook.links import AppointmentState, EventLink
from shared.core.dime_to_outlook.publication import Assignment, Publication, appointment_id_of, guid_of, items_of
from shared.core.dime_to_outlook.rules import RuleSet
from shared.core.transactions import ErrorCode, SyncError
from shared.services import Services
from shared.usecases.dime_to_outlook.pipeline.decide import Target
from shared.usecases.dime_to_outlook.rules_in_force import rules_in_force
from shared.usecases.event_locks import event_locks

log = logging.getLogger(__name__)

DIRECTORY_TTL_SECONDS = 300.0
MAILBOX_TTL_SECONDS = 300.0


# Lookups: GET /resource (cached), the directory's e-mail → mailbox ---------------------------


class _Directory:
    """Dime.Scheduler's resources, and (DIME_OUTLOOK_TARGETS=directory only) Graph's answers for
    their e-mails, cached per process.

    A planner change then costs no Dime.Scheduler read at all (one GET /resource per 5 minutes);
    an unknown resource number, or a payload e-mail that differs from the record, refreshes the
    listing at most once a minute (a resource added or changed since). Who is onboarded is never
    cached here: it is read once per batch (`Mailboxes`), so an onboarding is seen at once by
    every instance. Graph's answers (directory mode) live
    MAILBOX_TTL_SECONDS; onboarding a person drops theirs in this process (`forget_mailboxes`),
    and on the other instances the fresh onboarded index wins over a cached "no mailbox" anyway."""

    def __init__(self) -> None:
        self.resources: dict[str, DimeResource] = {}
        self.loaded_at = float("-inf")
        self.mailboxes: dict[str, tuple[str | None, float]] = {}  # e-mail → Graph's answer, when
        self.requests = 0  # GET /resource calls (measured by the tests)


def directory_of(services: Services) -> _Directory:
    """One cache per Services (the process-wide one in Azure; a fresh one per test)."""
    if services.caches.dime_directory is None:
        services.caches.dime_directory = _Directory()
    directory: _Directory = services.caches.dime_directory
    return directory


async def resource_directory(services: Services, *, refresh: bool = False) -> dict[str, DimeResource]:
    directory = directory_of(services)
    async with event_locks.hold(("dime-directory", "")):  # concurrent messages share one listing
        now = time.monotonic()
        if refresh and now - directory.loaded_at < 1.0:
            refresh = False  # another message refreshed it just now
        if refresh or now - directory.loaded_at > DIRECTORY_TTL_SECONDS:
            listing = await services.adime.list_resources()
            directory.requests += 1
            directory.resources = resources_from_listing(listing)
            directory.loaded_at = time.monotonic()
        return directory.resources


def forget_mailboxes(services: Services, addresses: list[str]) -> None:
    """Drop this process's cached answers for these addresses (a person was just onboarded, or
    their e-mail changed): the next message asks again."""
    cached = directory_of(services).mailboxes
    for address in addresses:
        cached.pop(address.strip().lower(), None)


class Mailboxes:
    """The directory's e-mail → mailbox object id, for one batch (or one reconcile run).

    Built once: one read of the resources table (the people onboarded here), however many
    assignments the batch names. A Graph user lookup happens only under
    DIME_OUTLOOK_TARGETS=directory, only for an e-mail of Dime.Scheduler's resource directory
    (callers pass nothing else), and is cached per process."""

    def __init__(self, services: Services, onboarded: dict[str, str]) -> None:
        self.services = services
        self.onboarded = onboarded
        self.mode = services.settings.dime_outlook_targets

    @classmethod
    async def read(cls, services: Services) -> Mailboxes:
        return cls(services, onboarded_mailboxes(await services.astore.list_resources()))

    async def of(self, email: str) -> str | None:
        found = self.onboarded.get(email)
        if found is not None or self.mode != DIRECTORY:
            return found
        directory = directory_of(self.services)
        async with event_locks.hold(("mailbox-of", email)):
            now = time.monotonic()
            cached = directory.mailboxes.get(email)
            if cached is not None and now - cached[1] < MAILBOX_TTL_SECONDS:
                return cached[0]
            user = await self.services.graph.get_user(email)
            answer = str(user["id"]).lower() if user and user.get("id") else None
            directory.mailboxes[email] = (answer, now)
            return answer


async def mailbox_for(services: Services, email: str, mailboxes: Mailboxes | None = None) -> str | None:
    """The mailbox of a directory e-mail (see `Mailboxes`; pass one when asking for many)."""
    return await (mailboxes or await Mailboxes.read(services)).of(email.strip().lower())


class BatchReads:
    """What every appointment of a batch shares, each read at most once for the batch (and only
    when one of them needs it): who is onboarded, the rules in force."""

    def __init__(self, services: Services, mailboxes: Mailboxes | None = None) -> None:
        self.services = services
        self._mailboxes = mailboxes
        self._rules: RuleSet | None = None
        self._lock = asyncio.Lock()

    async def mailboxes(self) -> Mailboxes:
        async with self._lock:
            if self._mailboxes is None:
                self._mailboxes = await Mailboxes.read(self.services)
            return self._mailboxes

    async def rules(self) -> RuleSet:
        if self._rules is None:
            self._rules = await rules_in_force(self.services)
        return self._rules


def _outdated(assignment: Assignment, directory: dict[str, DimeResource]) -> bool:
    """Whether the cached listing may be what refuses this assignment (unknown, or an e-mail hint
    that differs from the record)."""
    _, why = target_email(assignment, directory_entry(assignment, directory))
    return why in (RESOURCE_UNKNOWN, EMAIL_MISMATCH)


async def targets_of(
    services: Services, pub: Publication, mailboxes: Mailboxes | BatchReads | None = None
) -> tuple[dict[str, Target], list[tuple[str, str]]]:
    """The eligible assigned resources by mailbox, and the others with the reason.

    The payload only names resources; every target comes from the directory's record. A refused
    e-mail hint is logged once per appointment (a forged payload costs one line). `mailboxes`:
    one index for many appointments (a batch, the rules preview)."""
    directory = await resource_directory(services)
    if any(_outdated(a, directory) for a in pub.assignments) and (
        time.monotonic() - directory_of(services).loaded_at > 60
    ):
        # A resource added, or its e-mail changed, since the listing: read it again (at most once a
        # minute, so forged numbers and e-mails cost one GET /resource a minute, not one each).
        directory = await resource_directory(services, refresh=True)
    mode = services.settings.dime_outlook_targets
    targets: dict[str, Target] = {}
    unmatched: list[tuple[str, str]] = []
    index: Mailboxes | None = mailboxes if isinstance(mailboxes, Mailboxes) else None
    for assignment in pub.assignments:
        entry = directory_entry(assignment, directory)
        email, why = target_email(assignment, entry)
        label = assignment.resource_no or assignment.email or "?"
        mailbox = None
        if email is not None:
            if index is None:
                index = (
                    await mailboxes.mailboxes() if isinstance(mailboxes, BatchReads) else await Mailboxes.read(services)
                )
            mailbox = await index.of(email)
        why = why or refusal(assignment, entry, mailbox, mode)
        if why is not None or mailbox is None or email is None:
            unmatched.append((label, why or NO_MAILBOX))
            continue
        targets.setdefault(mailbox, Target(mailbox, label, email))
    mismatched = [label for label, why in unmatched if why == EMAIL_MISMATCH]
    if mismatched:
        log.warning(
            "appointment %s: %d assignment(s) name an e-mail other than Dime.Scheduler's resource record "
            "(refused, nothing written for them): %s",
            pub.guid,
            len(mismatched),
            ", ".join(label[:40] for label in mismatched[:10]),
        )
    return targets, unmatched


async def resolve_guid(services: Services, pub: Publication) -> Publication:
    """The AppointmentGuid of a publication that carries only the internal Id (as the Webhook
    connector's payload in the evidence does), from GET /appointment/{id}. Its answer's shape is
    unverified: read it as a publication (one object, an array or an envelope), taking the item
    whose Id is the one asked for (or that has no Id). Not found, or no GUID in the answer: a
    permanent failure (a visible failed transaction), never a guess."""
    assert pub.appointment_id is not None
    document = await services.adime.get_appointment(pub.appointment_id)
    if document is None:
        raise SyncError(
            ErrorCode.PUBLICATION_UNRESOLVED,
            f"appointment Id {pub.appointment_id} has no AppointmentGuid in the payload and GET /appointment/"
            f"{pub.appointment_id} found no such appointment (404): deleted meanwhile, or another environment",
        )
    try:
        items = items_of(document)
    except ValueError:
        items = []
    for item in items:
        guid = guid_of(item)
        if guid is not None and appointment_id_of(item) in (None, pub.appointment_id):
            log.info("appointment Id %s is %s (GET /appointment/{id})", pub.appointment_id, guid)
            return replace(pub, guid=guid)
    raise SyncError(
        ErrorCode.PUBLICATION_UNRESOLVED,
        f"appointment Id {pub.appointment_id}: GET /appointment/{pub.appointment_id} answered without an "
        "AppointmentGuid for that Id",
    )


async def appointment_rows(services: Services, guid: str) -> tuple[AppointmentState | None, dict[str, EventLink]]:
    """The appointment's state row and its links by mailbox (one partition query)."""
    return await services.astore.eventlinks.read(guid)


async def in_primary_calendar(services: Services, mailbox: str, answer: dict[str, Any]) -> bool:
    """Whether the primary calendar lists a patched event over its own time range (the proof the
    Outlook → Dime.Scheduler path asks of a claimed delete; a 200 from PATCH is not one)."""
    from shared.usecases.calendar_proof import in_primary_calendar as listed

    return await listed(services, mailbox, answer)

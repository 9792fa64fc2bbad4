"""What the admin API may do to a transaction by status, and archiving: shared by the inline
operations (`transactions.py`) and the bulk queue (`bulk_transactions.py`).

Why a module of its own: both of those need these two functions and the inline path queues bulk
messages, so keeping them in `transactions.py` made the two modules import each other.
"""

from __future__ import annotations

from shared.adapters.storage.transactions_store import TransactionStore
from shared.core.transactions import Status, Transaction
from shared.services import Services


def eligible_statuses(operation: str) -> tuple[Status, ...]:
    """Statuses an operation may touch: a retry also revives archived transactions; archiving only
    takes failed ones (archiving an archived or succeeded one would rewrite history)."""
    return (Status.FAILED, Status.ARCHIVED) if operation == "retry" else (Status.FAILED,)


def archive(services: Services, store: TransactionStore, transactions: list[Transaction]) -> None:
    """Mark them archived: no longer listed as failed, never retried by the timer."""
    now = services.clock().isoformat()
    for transaction in transactions:
        transaction.status = Status.ARCHIVED
        transaction.next_attempt_at = None
        transaction.updated_at = now
        store.save(transaction)

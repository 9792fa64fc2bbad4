"""The Dime.Scheduler → Outlook pipeline: a batch of appointments, in four steps by file name.

* `read.py`: what the batch needs to know (Dime.Scheduler's resource directory, who is onboarded,
  the rules in force: once per batch; each appointment's rows);
* `decide.py`: pure decisions from `shared/core/dime_to_outlook/*` (targets after the rules, the
  appointment's next state, create / PATCH / delete / skip per mailbox, each with a reason);
* `write.py`: the Graph writes, in the order that keeps a failure retryable (Graph first, the
  rows after; a create announced in its row before it is sent);
* `remember.py`: rows and transactions.

`batch.py` runs them for a batch. The entries build a batch and call it: a publication message
(`place_appointment.apply_publication`, a batch of one), the reconcile (`reconcile.py`, every
listed appointment in one batch), retries (through `apply_publication`). Every table, queue and
Dime.Scheduler call is asynchronous (`services.astore`, `services.adime`): no thread per call.
"""

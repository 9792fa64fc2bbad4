"""Adapters: the only code that talks to Graph, Dime.Scheduler, tables and queues."""

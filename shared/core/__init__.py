"""The pure core: no I/O, no SDKs. Everything here is a function of its arguments."""

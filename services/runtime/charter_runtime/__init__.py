"""Runtime plumbing shared by the three services (Kafka, HTTP, settings).

Adapters only: no indicator arithmetic or charter rule lives here.
"""

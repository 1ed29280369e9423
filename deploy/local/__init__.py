"""The local stack without containers: `python -m deploy.local up|down|status|topics`.

A single-node Kafka in KRaft mode and a PostgreSQL cluster, both in project-local folders and
listening on 127.0.0.1 only, the registry's topics, and whichever services exist. See README.md.
"""

"""The chat server: one model of users and rooms behind IRC, the broker and web signup.

Modules: :mod:`.model` (rooms, users, events; no I/O), :mod:`.store` (SQLite), :mod:`.irc` (the
IRC protocol), :mod:`.pb` (the broker realm and avatars), :mod:`.app` (the service tree that
``pbroker serve chat.app:service`` runs), :mod:`.client` (a terminal client). See README.md.
"""

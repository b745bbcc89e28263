"""A desktop chat client (Qt): the chat example's server over the broker and over IRC, one window.

See README.md here; ``python -m examples.desktop_chat --help``.
"""

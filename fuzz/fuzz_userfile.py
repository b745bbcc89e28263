"""cred.userfile's parser (and ScramVerifier.parse, which it calls per line) fed arbitrary text.

Input: the file's bytes. They are decoded as UTF-8 the way ``FileUserDatabase`` reads a file;
bytes that are not UTF-8 are what ``_read`` refuses before parsing, so they are replaced here to
reach the parser anyway.

Checked: only UserFileError escapes ``parse_user_file``; what parses is written back by
``format_user_file`` to text that parses to the same users (a file the tool writes is one it can
read).
"""

from __future__ import annotations

from fuzz import _util

with _util.instrument(__name__):
    from cred.error import UserFileError
    from cred.userfile import format_user_file, parse_user_file


def TestOneInput(data: bytes) -> None:
    text = data.decode("utf-8", "replace")
    try:
        users = parse_user_file(text)
    except UserFileError:
        return
    assert parse_user_file(format_user_file(users)) == users


if __name__ == "__main__":
    _util.main(TestOneInput)

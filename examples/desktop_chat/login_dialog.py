"""The login dialog: which kind of account, which server, who, and the password.

Opened with ``open()`` (window-modal, not a nested event loop), so the connections of the accounts
already logged in keep running while it is up.
"""

from __future__ import annotations

from PySide6.QtWidgets import QComboBox, QDialog, QDialogButtonBox, QFormLayout, QLineEdit, QWidget

from .accounts import AccountSettings

__all__ = ["LoginDialog", "DEFAULT_ENDPOINTS"]

#: Where the chat example listens when run as its README says.
DEFAULT_ENDPOINTS = {"broker": "tcp:127.0.0.1:8800", "irc": "tcp:127.0.0.1:6667"}


class LoginDialog(QDialog):
    def __init__(self, parent: QWidget | None = None, prefill: AccountSettings | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Add a chat account")
        self.kind = QComboBox()
        self.kind.addItem("pbroker (the chat server's broker interface)", "broker")
        self.kind.addItem("IRC", "irc")
        self.endpoint = QLineEdit(DEFAULT_ENDPOINTS["broker"])
        self.user = QLineEdit()
        self.password = QLineEdit()
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        self.kind.currentIndexChanged.connect(self._kind_changed)
        form = QFormLayout(self)
        form.addRow("Account type", self.kind)
        form.addRow("Server", self.endpoint)
        form.addRow("User", self.user)
        form.addRow("Password", self.password)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self._accept_if_complete)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)
        if prefill is not None:
            self.kind.setCurrentIndex(self.kind.findData(prefill.kind))
            self.endpoint.setText(prefill.endpoint)
            self.user.setText(prefill.user)
            self.password.setText(prefill.password)

    def _kind_changed(self, _index: int) -> None:
        if self.endpoint.text() in DEFAULT_ENDPOINTS.values():
            self.endpoint.setText(DEFAULT_ENDPOINTS[str(self.kind.currentData())])

    def _accept_if_complete(self) -> None:
        if self.user.text().strip() and self.endpoint.text().strip():
            self.accept()

    def settings(self) -> AccountSettings:
        return AccountSettings(str(self.kind.currentData()), self.endpoint.text().strip(),
                               self.user.text().strip(), self.password.text())

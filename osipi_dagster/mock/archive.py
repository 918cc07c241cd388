"""Scaffold: replaced by its owner."""


class Archive:
    def __init__(self, *args) -> None:
        self.args = args

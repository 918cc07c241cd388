"""Scaffold: replaced by its owner."""


class FaultInjector:
    def __init__(self, *args) -> None:
        self.args = args

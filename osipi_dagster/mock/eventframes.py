"""Scaffold: replaced by its owner."""


class EventFrameModel:
    def __init__(self, *args) -> None:
        self.args = args

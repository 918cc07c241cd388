"""Scaffold: replaced by its owner."""


class AssetModel:
    def __init__(self, *args) -> None:
        self.args = args

"""Routes a module declares, put on a blueprint by whoever builds the app.

The API's views live in several modules (web/api.py, web/api_files.py, web/api_dicom.py,
web/api_webhooks.py) and share one blueprint, one authentication and one URL prefix. Each module lists its
views in a ``Routes`` table; web/api.make_blueprint puts the tables it is given on a new blueprint for each
app. So which modules serve the API is written in one place (web/__init__.py), and importing a module
never changes a blueprint behind anyone's back.
"""
from __future__ import annotations

from collections.abc import Callable

from flask import Blueprint


class Routes:
    def __init__(self):
        self.rules: list[tuple[str, Callable, list[str]]] = []

    def route(self, rule: str, methods: list[str]) -> Callable:
        def declare(view: Callable) -> Callable:
            self.rules.append((rule, view, methods))
            return view

        return declare

    def get(self, rule: str) -> Callable:
        return self.route(rule, ["GET"])

    def post(self, rule: str) -> Callable:
        return self.route(rule, ["POST"])

    def put(self, rule: str) -> Callable:
        return self.route(rule, ["PUT"])

    def delete(self, rule: str) -> Callable:
        return self.route(rule, ["DELETE"])

    def add_to(self, blueprint: Blueprint) -> None:
        for rule, view, methods in self.rules:
            blueprint.add_url_rule(rule, view_func=view, methods=methods)

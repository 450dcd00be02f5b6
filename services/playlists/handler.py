"""Playlists service Lambda: playlists and their ordered tracks."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from services.core.http import create_resolver

app = create_resolver("playlists")


def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)

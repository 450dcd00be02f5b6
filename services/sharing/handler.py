"""Sharing service Lambda: shares of tracks and playlists with other users."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from services.core.http import create_resolver

app = create_resolver("sharing")


def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)

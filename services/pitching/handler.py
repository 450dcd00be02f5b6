"""Pitching service Lambda: pitches for their owners, and the recipient page behind each link."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from services.core.http import create_resolver

app = create_resolver("pitching", public_prefixes=("/p/",))


def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)

"""Exit codes of the harness, and the command class that keeps them: 0 valid, 1 invalid,
2 unknown, 3 the harness itself failed (a bad option included; click would say 1 or 2)."""

from __future__ import annotations

from typing import Any

import click

EXIT_VALID, EXIT_INVALID, EXIT_UNKNOWN, EXIT_HARNESS = 0, 1, 2, 3


def exit_code(valid: Any) -> int:
    if valid is True:
        return EXIT_VALID
    if valid is False:
        return EXIT_INVALID
    return EXIT_UNKNOWN


class HarnessCommand(click.Command):
    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.ClickException as e:
            e.exit_code = EXIT_HARNESS
            raise

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except click.ClickException as e:
            e.exit_code = EXIT_HARNESS
            raise

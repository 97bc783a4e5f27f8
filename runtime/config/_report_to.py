"""transformers' `report_to` in every form it accepts, with "mlflow" switched on or off by ftconfig's own plan.

Pure (no mlflow import), so config resolution can use it without depending on the tracking modules.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["adjust_report_to"]


def adjust_report_to(
    report_to: str | Sequence[str] | None, enabled: bool, *, available: Sequence[str] | None = None
) -> list[str]:
    """The integrations transformers should report to: what the user asked for, with "mlflow" on or off.

    Accepts every form transformers does (None, "none", "all", one name, a list, ["none"]) and always returns a
    list that transformers accepts: "none" is dropped (transformers rejects it inside a list), and "all" is
    expanded to the installed integrations (`available`, by default asked of transformers) because "all but
    mlflow" is otherwise not expressible. "mlflow" is then added when tracking is enabled on this process and
    removed otherwise: ftconfig's tracking section, not report_to, decides whether MLflow is used.
    """
    if report_to is None:
        names: list[str] = []
    elif isinstance(report_to, str):
        names = [report_to]
    else:
        names = list(report_to)
    result: list[str] = []
    for name in names:
        keyword = name.strip().lower()
        if keyword == "none":
            continue
        if keyword == "all":
            if available is None:
                from transformers.integrations.integration_utils import get_available_reporting_integrations

                available = list(get_available_reporting_integrations())  # type: ignore[no-untyped-call]  # unannotated upstream
            expanded = list(available)
        else:
            expanded = ["mlflow" if keyword == "mlflow" else name]
        result += [item for item in expanded if item != "mlflow" and item not in result]
    return [*result, "mlflow"] if enabled else result
